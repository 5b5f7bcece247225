"""What one write gets back is that item's failure: Graph, inside ``$batch`` and alone.

A 403 ``ErrorAccessDenied`` on one event of a writable calendar (an attendee's copy),
404, 413, 415, 507, a 400 whose body is a proxy's page: the op fails with an item error and
the others of the batch are carried out. Only a calendar that is read-only as a whole (its
``canEdit`` is false), a refused token or an unusable mailbox stop the account.
"""

from __future__ import annotations

import re
from urllib.parse import quote

import pytest

from connectors.base import RemoteEvent, UpdateOp
from connectors.outlook import OutlookCalendar
from syncd.errors import AuthFailed, EventGone, ItemRejected
from syncd_testkit.emulators.graph import FaultRule
from syncd_testkit.emulators.graph_fixtures import (  # noqa: F401 - pytest fixtures
    graph_emulator_with_identity,
    identity_emulator,
)
from tests.contract import create, timed
from tests.outlook.conftest import (  # noqa: F401 - pytest fixtures
    ALICE,
    Env,
    _fresh_mailbox_gates,
    env,
)

# (status, code, verbatim body or None, the item's error)
ANSWERS: list[tuple[int, str, str | None, type]] = [
    (403, "ErrorAccessDenied", None, ItemRejected),
    (403, "ErrorItemNotEditable", None, ItemRejected),
    (404, "ErrorItemNotFound", None, EventGone),
    (413, "RequestEntityTooLarge", None, ItemRejected),
    (415, "UnsupportedMediaType", None, ItemRejected),
    (507, "ErrorQuotaExceeded", None, ItemRejected),
    (400, "", "<html><body>Bad Request</body></html>", ItemRejected),
    (400, "", '{"error": "a string"}', ItemRejected),
    (400, "", '{"error": {"code": {"nested": true}}}', ItemRejected),
    (400, "", "", ItemRejected),
]


def _three(connector: OutlookCalendar) -> list[RemoteEvent]:
    return [create(connector, timed(f"E{i}"), marker=f"e000000{i}") for i in range(3)]


def _edit(event: RemoteEvent, title: str) -> UpdateOp:
    return UpdateOp(event.event_id, event.event_id, event.etag, timed(title),
                    frozenset({"title"}), str(event.marker))


def _path(event_id: str) -> str:
    return re.escape(quote(event_id, safe="")) + "$"


def _titles(world: Env) -> list[str]:
    return sorted(e["subject"] for e in world.graph.events(ALICE))


@pytest.mark.parametrize(("status", "code", "body", "error"), ANSWERS,
                         ids=[f"{a[0]}-{a[1] or (a[2] or 'empty')[:12]}" for a in ANSWERS])
def test_one_refused_item_of_a_batch_fails_alone(env: Env, status: int, code: str,  # noqa: F811
                                                  body: str | None, error: type) -> None:
    connector = env.connector(env.account())
    first, second, third = _three(connector)
    env.graph.inject(FaultRule(method="PATCH", path=_path(second.event_id), status=status,
                               code=code or "x", body=body, count=None))
    results = connector.write([_edit(first, "A"), _edit(second, "B"), _edit(third, "C")])
    assert isinstance(results[1].error, error), results[1]
    assert results[0].error is None and results[2].error is None, results
    assert _titles(env) == ["A", "C", "E1"]


def test_a_read_only_calendar_stops_the_account(env: Env) -> None:  # noqa: F811
    connector = env.connector(env.account())
    first, second, _ = _three(connector)
    env.graph.set_calendar_writable(ALICE, False)
    with pytest.raises(AuthFailed):
        connector.write([_edit(first, "A"), _edit(second, "B")])


def test_the_calendar_is_asked_once_whether_it_is_writable(env: Env) -> None:  # noqa: F811
    connector = env.connector(env.account())
    events = _three(connector)
    for event in events:
        env.graph.inject(FaultRule(method="PATCH", path=_path(event.event_id), status=403,
                                   code="ErrorAccessDenied", count=None))
    env.graph.requests.clear()
    results = connector.write([_edit(e, "X") for e in events])
    assert all(isinstance(r.error, ItemRejected) for r in results), results
    probes = [r for r in env.graph.requests if r.method == "GET" and "canEdit" in r.url]
    assert len(probes) == 1
