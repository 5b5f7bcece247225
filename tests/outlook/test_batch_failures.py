"""Failures of a ``$batch`` as a whole, and of one item of a batched read.

The envelope's status is about the batch, never about an item: a 404 or 400 on ``$batch``
must not read as "every event gone" (the engine would drop links of events that still
exist) or "every item refused" (mass quarantine). And one changed event Graph will not
return must be quarantined alone, not hold up every other change.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import quote

import pytest

from connectors.base import CreateOp, DeleteOp, UpdateOp
from connectors.outlook import OutlookCalendar
from connectors.outlook_http import GraphResponse, envelope_failure
from syncd.errors import AuthFailed, EventGone, ItemRejected, RateLimited, Transient
from syncd_testkit.emulators.graph import FaultRule
from tests.contract import create, timed
from tests.outlook.conftest import ALICE, Env, GraphUser


def _fail_envelope(connector: OutlookCalendar, status: int, code: str,
                   times: int | None = None) -> list[str]:
    """Answer ``$batch`` itself with an error (the emulator scripts faults per item only).

    Returns the log of envelope answers; requests outside ``$batch`` go through.
    """
    real = connector.http.request
    seen: list[str] = []

    def request(method: str, url: str, **kwargs: Any) -> GraphResponse:
        if url == "/$batch" and (times is None or len(seen) < times):
            seen.append(f"{status} {code}")
            return GraphResponse(status, {}, {"error": {"code": code, "message": "m"}})
        return real(method, url, **kwargs)

    connector.http.request = request  # type: ignore[method-assign]
    return seen


# --- the envelope ---------------------------------------------------------------------------


@pytest.mark.parametrize(("status", "code", "idempotent", "expected"), [
    (404, "NotFound", True, Transient),
    (400, "BadRequest", False, Transient),
    (413, "RequestEntityTooLarge", False, Transient),
    (500, "InternalServerError", True, Transient),
    (403, "ErrorAccessDenied", False, AuthFailed),
    (404, "MailboxNotEnabledForRESTAPI", True, AuthFailed),
    (429, "ApplicationThrottled", False, RateLimited),
])
def test_a_failed_envelope_keeps_only_account_wide_errors(
        status: int, code: str, idempotent: bool, expected: type) -> None:
    outer = GraphResponse(status, {}, {"error": {"code": code, "message": "m"}})
    failure = envelope_failure(outer, idempotent=idempotent)
    assert type(failure) is expected


def test_a_batch_answered_404_does_not_report_deletes_as_gone(env: Env) -> None:
    connector = env.connector(env.account(), sleep=lambda _s: None)
    a = create(connector, timed("A"), marker="a0000001")
    b = create(connector, timed("B"), marker="b0000001")
    _fail_envelope(connector, 404, "NotFound")
    results = connector.write([DeleteOp("1", a.event_id, a.etag),
                               DeleteOp("2", b.event_id, b.etag)])
    assert len(env.graph.events(ALICE)) == 2  # nothing was deleted...
    for result in results:  # ...so nothing may say "gone" (the goal of a delete)
        assert isinstance(result.error, Transient)


def test_a_batch_answered_400_is_transient_for_every_item_not_a_rejection(env: Env) -> None:
    connector = env.connector(env.account(), sleep=lambda _s: None)
    event = create(connector, timed("A"), marker="a0000001")
    _fail_envelope(connector, 400, "BadRequest")
    results = connector.write([
        UpdateOp("1", event.event_id, event.etag, timed("A2"), frozenset({"title"}),
                 "a0000001"),
        CreateOp("2", "c0000001", 0, timed("C"))])
    for result in results:
        assert isinstance(result.error, Transient), result


def test_a_batch_too_large_as_a_whole_is_sent_item_by_item(env: Env) -> None:
    connector = env.connector(env.account())
    _fail_envelope(connector, 413, "RequestEntityTooLarge", times=1)
    ops = [CreateOp(str(i), f"c000000{i}", 0, timed(f"T{i}")) for i in range(3)]
    results = connector.write(ops)
    assert [r.error for r in results] == [None, None, None]
    assert sorted(e["subject"] for e in env.graph.events(ALICE)) == ["T0", "T1", "T2"]


def test_an_item_too_large_on_its_own_is_rejected_alone(env: Env) -> None:
    connector = env.connector(env.account())
    _fail_envelope(connector, 413, "RequestEntityTooLarge", times=1)
    env.graph.inject(FaultRule(method="POST", path=r"/events$", in_batch=False, status=413,
                               code="RequestEntityTooLarge", count=1))
    first, second = connector.write([CreateOp("1", "c0000001", 0, timed("Big")),
                                     CreateOp("2", "c0000002", 0, timed("Small"))])
    assert isinstance(first.error, ItemRejected)
    assert second.error is None


def test_an_account_error_on_the_envelope_still_fails_the_account(env: Env) -> None:
    connector = env.connector(env.account())
    event = create(connector, timed("A"), marker="a0000001")
    _fail_envelope(connector, 403, "ErrorAccessDenied")
    with pytest.raises(AuthFailed):
        connector.write([DeleteOp("1", event.event_id, event.etag)])


# --- one item of a batched read -------------------------------------------------------------


def _two_edited_events(env: Env, **options: Any) -> tuple[Any, Any, Any, str]:
    connector = env.connector(env.account(), sleep=lambda _s: None, **options)
    a = create(connector, timed("A"), marker="a0000001")
    b = create(connector, timed("B", hour=12), marker="b0000001")
    cursor = connector.changes(None).cursor
    assert cursor is not None
    user = GraphUser(env.graph)
    user.edit(a.event_id, title="A edited")
    user.edit(b.event_id, title="B edited")
    return connector, a, b, cursor


def _refuse_reading(env: Env, event_id: str, status: int, code: str) -> None:
    path = re.escape(quote(event_id, safe="")) + "|" + re.escape(event_id)
    env.graph.inject(FaultRule(method="GET", path=path, in_batch=True, status=status,
                               code=code, count=None))


@pytest.mark.parametrize(("status", "code"), [(400, "ErrorInvalidIdMalformed"),
                                              (403, "ErrorAccessDenied"),
                                              (403, "ErrorItemNotEditable")])
def test_a_changed_event_graph_will_not_return_is_quarantined_and_the_rest_syncs(
        env: Env, status: int, code: str) -> None:
    connector, a, b, cursor = _two_edited_events(env)
    _refuse_reading(env, a.event_id, status, code)
    changes = connector.changes(cursor)
    by_id = {e.event_id: e for e in changes.events}
    assert by_id[b.event_id].projection is not None
    assert by_id[b.event_id].projection.title == "B edited"
    refused = by_id[a.event_id]
    assert refused.problem == f"HTTP {status} {code}"
    assert refused.projection is None and not refused.deleted


@pytest.mark.parametrize(("status", "code", "raised"), [
    (401, "InvalidAuthenticationToken", AuthFailed),
    (404, "MailboxNotEnabledForRESTAPI", AuthFailed),
    (429, "ApplicationThrottled", RateLimited),
    (503, "ServiceUnavailable", Transient),
])
def test_a_changed_event_read_failing_for_the_account_still_stops_the_round(
        env: Env, status: int, code: str, raised: type) -> None:
    # max_wait=0: a throttled read gives up at once instead of waiting out Retry-After
    connector, a, _b, cursor = _two_edited_events(env, max_wait=0.0)
    _refuse_reading(env, a.event_id, status, code)
    with pytest.raises(raised):
        connector.changes(cursor)


def test_a_changed_event_that_is_gone_still_reads_as_deleted(env: Env) -> None:
    connector, a, b, cursor = _two_edited_events(env)
    _refuse_reading(env, a.event_id, 404, "ErrorItemNotFound")
    by_id = {e.event_id: e for e in connector.changes(cursor).events}
    assert by_id[a.event_id].deleted
    assert by_id[b.event_id].projection is not None


def test_a_delete_answered_gone_per_item_still_reports_gone(env: Env) -> None:
    connector = env.connector(env.account())
    event = create(connector, timed())
    env.graph.delete_event_as_user(ALICE, event.event_id)
    [result] = connector.write([DeleteOp("k", event.event_id, event.etag)])
    assert isinstance(result.error, EventGone)
