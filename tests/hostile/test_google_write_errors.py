"""What one write gets back is that item's failure: Google, alone and inside a batch.

A 403 on one event (an attendee's copy), 404, 413, 415, 507, a 400 whose body is a proxy's
HTML page or JSON of the wrong shape, or a 2xx whose body cannot be parsed: the op fails
with an item error and the others of the same batch are carried out. Only the truly
account-wide answers (401, quota) stop the account (tests/google/test_errors.py).
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest

from connectors.base import RemoteEvent, UpdateOp
from connectors.google import GoogleCalendar
from syncd.errors import EtagMismatch, EventGone, ItemRejected, Transient
from syncd_testkit.emulators.google import FaultRule, GoogleEmulator
from syncd_testkit.emulators.google_fixtures import google_emulator  # noqa: F401 - pytest fixture
from tests.contract import create, timed
from tests.google.helpers import OWNER, TZ, FakeClock, connector

# (status, reason, verbatim body or None, the item's error)
ANSWERS: list[tuple[int, str, str | None, type]] = [
    (403, "forbiddenForNonOrganizer", None, ItemRejected),
    (403, "requiredAccessLevel", None, ItemRejected),
    (403, "", "<html><body>Forbidden by proxy</body></html>", ItemRejected),
    (404, "notFound", None, EventGone),
    (413, "uploadTooLarge", None, ItemRejected),
    (415, "unsupportedMediaType", None, ItemRejected),
    (507, "insufficientStorage", None, ItemRejected),
    (400, "", "not json at all", ItemRejected),
    (400, "", '{"error": ["a", "list"]}', ItemRejected),
    (400, "", '{"error": {"errors": "not a list"}}', ItemRejected),
    (400, "", '{"error": {"errors": [7]}}', ItemRejected),
    (400, "", '{"error": {"errors": [{"reason": {"deep": 1}}]}}', ItemRejected),
    # The client cannot even make its HttpError of this one: a failure of this item alone.
    (400, "", "[" * 50_000 + "]" * 50_000, Transient),
    (400, "", "", ItemRejected),
]


@pytest.fixture
def emu(google_emulator: GoogleEmulator) -> GoogleEmulator:  # noqa: F811
    google_emulator.add_calendar(OWNER, time_zone=TZ)
    return google_emulator


@pytest.fixture
def conn(emu: GoogleEmulator) -> Iterator[GoogleCalendar]:
    c = connector(emu, clock=FakeClock())
    yield c
    c.close()


def _three(conn: GoogleCalendar) -> list[RemoteEvent]:
    return [create(conn, timed(f"E{i}"), marker=f"e000000{i}") for i in range(3)]


def _edit(event: RemoteEvent, title: str) -> UpdateOp:
    return UpdateOp(event.event_id, event.event_id, event.etag, timed(title),
                    frozenset({"title"}), str(event.marker))


@pytest.mark.parametrize(("status", "reason", "body", "error"), ANSWERS,
                         ids=[f"{a[0]}-{a[1] or (a[2] or 'empty')[:12]}" for a in ANSWERS])
def test_one_refused_part_of_a_batch_fails_alone(emu: GoogleEmulator, conn: GoogleCalendar,
                                                  status: int, reason: str, body: str | None,
                                                  error: type) -> None:
    first, second, third = _three(conn)
    emu.inject(FaultRule(method="PATCH", path=re.escape(second.event_id), status=status,
                         reason=reason or "x", body=body, count=None))
    results = conn.write([_edit(first, "A"), _edit(second, "B"), _edit(third, "C")])
    assert isinstance(results[1].error, error), results[1]
    assert results[0].error is None, results
    # Where the client could not read the batch past the refused part, the part after it
    # is sent again alone and meets its own applied write: a re-read, not a failure.
    assert results[2].error is None or isinstance(results[2].error, EtagMismatch), results
    titles = sorted(e["summary"] for e in emu.events(OWNER))
    assert titles == ["A", "C", "E1"]


@pytest.mark.parametrize(("status", "reason", "body", "error"), ANSWERS,
                         ids=[f"{a[0]}-{a[1] or (a[2] or 'empty')[:12]}" for a in ANSWERS])
def test_one_refused_write_sent_alone_fails_alone(emu: GoogleEmulator, conn: GoogleCalendar,
                                                   status: int, reason: str, body: str | None,
                                                   error: type) -> None:
    event = create(conn, timed("E"), marker="e0000001")
    emu.inject(FaultRule(method="PATCH", inner=False, status=status, reason=reason or "x",
                         body=body, count=None))
    [result] = conn.write([_edit(event, "A")])
    assert isinstance(result.error, error), result


@pytest.mark.parametrize("body", ["{" * 10, '{"deep": ' + "[" * 50_000 + "]" * 50_000 + "}",
                                  '{"id": "someone-else"}', "[]", '"text"'],
                         ids=["not-json", "deep", "other-event", "list", "string"])
def test_a_batch_part_answered_with_something_else_than_the_event_fails_alone(
        emu: GoogleEmulator, conn: GoogleCalendar, body: str) -> None:
    first, second, third = _three(conn)
    emu.inject(FaultRule(method="PATCH", path=re.escape(second.event_id), status=200,
                         body=body, count=None))
    results = conn.write([_edit(first, "A"), _edit(second, "B"), _edit(third, "C")])
    assert results[0].error is None and results[2].error is None, results
    # Maybe applied: the next cycle's update is conditional on the etag it read.
    assert isinstance(results[1].error, Transient)
    assert sorted(e["summary"] for e in emu.events(OWNER)) == ["A", "C", "E1"]


def test_an_event_read_alone_whose_answer_cannot_be_parsed_is_a_transient_failure(
        emu: GoogleEmulator, conn: GoogleCalendar) -> None:
    event = create(conn, timed("E"), marker="e0000001")
    emu.inject(FaultRule(method="GET", path=re.escape(event.event_id), status=200,
                         body="{" * 10, count=None))
    with pytest.raises(Transient):
        conn.get(event.event_id)
