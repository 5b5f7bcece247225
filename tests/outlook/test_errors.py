"""The Graph error taxonomy: one test per row, then what each reaction does end to end."""

from __future__ import annotations

from typing import Any

import pytest

from connectors.base import CreateOp, DeleteOp, UpdateOp
from connectors.outlook_http import GRAPH_STATUS, PERMANENT_ACCOUNT_CODES, GraphResponse
from syncd.errors import (
    COMMON_RULES,
    AuthFailed,
    CursorExpired,
    EtagMismatch,
    EventGone,
    ItemRejected,
    RateLimited,
    Transient,
)
from syncd_testkit.emulators.graph import FaultRule
from tests.contract import create, timed
from tests.outlook.conftest import ALICE, Env


def _answer(status: int, code: str | None, **headers: str) -> GraphResponse:
    body = {"error": {"code": code, "message": "m"}} if code else None
    return GraphResponse(status, headers, body)


# (status, code, error for an item, error for a delta read)
ROWS: list[tuple[int, str | None, type, type]] = [
    (401, "InvalidAuthenticationToken", AuthFailed, AuthFailed),
    (401, "SyncStateNotFound", AuthFailed, AuthFailed),  # the token outranks the code
    (403, "ErrorAccessDenied", AuthFailed, AuthFailed),
    *[(404, code, AuthFailed, AuthFailed) for code in (
        "MailboxNotEnabledForRESTAPI", "MailboxNotSupportedForRESTAPI",
        "RESTAPINotEnabledForComponentSharedMailbox", "ErrorInvalidLicense",
        "ErrorNonExistentMailbox", "ErrorAccountDisabled", "ErrorOrganizationAccessBlocked",
        "ErrorInvalidUser")],
    (400, "ErrorDuplicateTransactionId", EtagMismatch, EtagMismatch),
    (409, "ErrorDuplicateTransactionId", EtagMismatch, EtagMismatch),
    (409, "ErrorIrresolvableConflict", EtagMismatch, EtagMismatch),
    (412, "ErrorIrresolvableConflict", EtagMismatch, EtagMismatch),
    (410, "resyncRequired", EventGone, CursorExpired),
    (410, "SyncStateNotFound", EventGone, CursorExpired),
    (400, "syncStateNotFound", EventGone, CursorExpired),
    (410, None, EventGone, CursorExpired),
    (404, "ErrorItemNotFound", EventGone, EventGone),
    (429, "ApplicationThrottled", RateLimited, RateLimited),
    (500, "UnknownError", Transient, Transient),
    (502, None, Transient, Transient),
    (503, "ServiceUnavailable", Transient, Transient),
    (504, "GatewayTimeout", Transient, Transient),
    (400, "ErrorInvalidRequest", ItemRejected, ItemRejected),
    (403, "ErrorItemNotEditable", ItemRejected, ItemRejected),
    (405, None, ItemRejected, ItemRejected),
    (413, None, ItemRejected, ItemRejected),
    (415, None, ItemRejected, ItemRejected),
    (422, None, ItemRejected, ItemRejected),
    (507, "ErrorQuotaExceeded", ItemRejected, ItemRejected),
    (418, "SomethingNew", Transient, Transient),  # unknown: back off, never delete
]


@pytest.mark.parametrize(("status", "code", "item_error", "delta_error"), ROWS,
                         ids=[f"{r[0]}-{r[1]}" for r in ROWS])
def test_status_table_row(status: int, code: str | None, item_error: type,
                          delta_error: type) -> None:
    answer = _answer(status, code, **{"Retry-After": "17"})
    assert type(answer.error("ev1")) is item_error
    assert type(answer.error("ev1", in_delta=True)) is delta_error


def test_every_table_row_and_every_permanent_code_has_a_test() -> None:
    for row in (*GRAPH_STATUS.rules, *COMMON_RULES):
        assert any(row.matches(status, (code or "").lower(), 17.0)
                   and issubclass(row.error, (item, delta))
                   for status, code, item, delta in ROWS), row
    tested = {str(row[1]).lower() for row in ROWS if row[0] == 404 and row[2] is AuthFailed}
    assert tested >= PERMANENT_ACCOUNT_CODES


def test_throttling_keeps_retry_after_and_a_5xx_is_transient() -> None:
    limited = _answer(429, "ApplicationThrottled", **{"Retry-After": "17"}).error()
    assert isinstance(limited, RateLimited) and limited.retry_after == 17
    assert _answer(429, None).error().retry_after > 0  # no header: a default pause
    transient = _answer(504, "GatewayTimeout").error()
    assert isinstance(transient, Transient) and transient.status == 504


def test_errors_carry_no_message_text() -> None:
    body = {"error": {"code": "ErrorInvalidRequest", "message": "secret-ish subject text"}}
    error = GraphResponse(400, {}, body).error("ev1")
    assert "secret-ish" not in str(error)


# --- the reactions, through the emulator --------------------------------------------------


@pytest.mark.parametrize("status", [400, 409])
def test_a_duplicate_transaction_id_is_read_back_and_adopted(env: Env, status: int) -> None:
    connector = env.connector(env.account())
    env.graph.inject(FaultRule(method="POST", path=r"/events$", status=status,
                               code="ErrorDuplicateTransactionId", apply_then_fail=True))
    [result] = connector.write([CreateOp("k", "m0000001", 0, timed())])
    assert result.error is None and result.event is not None
    assert result.event.marker == "m0000001"
    assert [e["id"] for e in env.graph.events(ALICE)] == [result.event.event_id]


def test_an_adopted_event_with_older_content_is_brought_up_to_date(env: Env) -> None:
    connector = env.connector(env.account())
    first = create(connector, timed("Old title"))
    env.graph.inject(FaultRule(method="POST", path=r"/events$", status=400,
                               code="ErrorDuplicateTransactionId"))
    [result] = connector.write([CreateOp("k", "m0000001", 0, timed("New title"))])
    assert result.error is None and result.event is not None
    assert result.event.event_id == first.event_id
    assert result.event.projection is not None
    assert result.event.projection.title == "New title"
    assert len(env.graph.events(ALICE)) == 1


def test_access_denied_in_a_read_only_calendar_fails_the_whole_account(env: Env) -> None:
    connector = env.connector(env.account())
    event = create(connector, timed())
    env.graph.set_calendar_writable(ALICE, False)
    with pytest.raises(AuthFailed):
        connector.write([UpdateOp("k", event.event_id, event.etag, timed("x"),
                                  frozenset({"title"}), "m0000001")])


def test_a_refused_item_is_reported_not_raised(env: Env) -> None:
    connector = env.connector(env.account())
    event = create(connector, timed())
    env.graph.inject(FaultRule(method="PATCH", status=400, code="ErrorInvalidRequest"))
    ops: list[Any] = [UpdateOp("k1", event.event_id, event.etag, timed("x"),
                               frozenset({"title"}), "m0000001"),
                      CreateOp("k2", "m0000002", 0, timed("Other"))]
    first, second = connector.write(ops)
    assert isinstance(first.error, ItemRejected)
    assert second.error is None


def test_a_missing_calendar_on_a_delta_read_backs_off_instead_of_deleting(env: Env) -> None:
    connector = env.connector(env.account(calendar="AAMkNoSuchCalendar"))
    with pytest.raises(Transient):
        connector.changes(None)


def test_a_delete_of_an_event_already_gone_reports_gone(env: Env) -> None:
    connector = env.connector(env.account())
    event = create(connector, timed())
    env.graph.delete_event_as_user(ALICE, event.event_id)
    [result] = connector.write([DeleteOp("k", event.event_id, event.etag)])
    assert isinstance(result.error, EventGone)


def test_an_expired_access_token_is_refreshed_once(env: Env) -> None:
    connector = env.connector(env.account())
    connector.changes(None)
    env.identity.expire_access_tokens()
    connector.changes(None)
    grants = [r["grant_type"] for r in env.identity.token_requests]
    assert grants == ["client_credentials", "client_credentials"]
    assert [r.status for r in env.graph.requests].count(401) == 1


def test_an_adoption_that_cannot_read_back_is_a_transient_failure(env: Env) -> None:
    connector = env.connector(env.account(), sleep=lambda _s: None)
    env.graph.inject(FaultRule(method="POST", path=r"/events$", status=409,
                               code="ErrorDuplicateTransactionId", apply_then_fail=True))
    env.graph.inject(FaultRule(method="GET", path=r"/events$", status=503, count=None))
    [result] = connector.write([CreateOp("k", "m0000001", 0, timed())])
    assert isinstance(result.error, Transient)
