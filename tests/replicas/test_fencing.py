"""The writes a cycle makes besides links and cursors are fenced too: a replica whose lease
was taken over (it was paused longer than the lease) cannot count an item's failure, claim
a meeting, write the hour's guest e-mail count or forget retried items with its old token;
the new holder can, and nothing the old one tried is left behind."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import delete, func, select

from syncd.errors import LeaseLost
from syncd.store.db import Database
from syncd.store.queue import WorkQueue
from syncd.store.state import RETRY, StateStore
from syncd.store.state_tables import SyncMeeting, SyncQuarantine

TTL = timedelta(minutes=10)
HOUR = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)


def _taken_over(db: Database) -> tuple[StateStore, int, int]:
    """The account ``acc`` claimed by replica a, whose lease lapsed and was taken over by
    replica b: (the store, a's stale token, b's token). The session's PostgreSQL
    database is shared by the tests: the tables these tests count start empty."""
    with db.session() as s:
        s.execute(delete(SyncQuarantine))
        s.execute(delete(SyncMeeting))
    a, b = WorkQueue(db, "host-a:1"), WorkQueue(db, "host-b:2")
    a.enrol(["acc"])
    start = datetime.now(UTC)
    [old] = a.claim(["acc"], 1, timedelta(0), now=start)  # expires at once
    [new] = b.claim(["acc"], 1, TTL, now=start + timedelta(seconds=1))
    assert new.token > old.token
    return StateStore(db), old.token, new.token


def _quarantine_rows(db: Database) -> int:
    with db.session() as s:
        return int(s.scalar(select(func.count()).select_from(SyncQuarantine)) or 0)


def _meeting_rows(db: Database) -> int:
    with db.session() as s:
        return int(s.scalar(select(func.count()).select_from(SyncMeeting)) or 0)


def test_a_stale_token_cannot_count_an_item_failure(any_db: Database) -> None:
    state, stale, held = _taken_over(any_db)
    with pytest.raises(LeaseLost):
        state.record_failure("acc", "crm:1", "v1", "HTTP 503", token=stale)
    with pytest.raises(LeaseLost):
        state.record_failure("acc", "crm:1", "v1", "unreadable", immediate=True, token=stale)
    assert _quarantine_rows(any_db) == 0
    assert state.record_failure("acc", "crm:1", "v1", "unreadable", immediate=True,
                                token=held)
    assert state.quarantined("acc") == {"crm:1": "v1"}


def test_a_stale_token_cannot_claim_a_meeting(any_db: Database) -> None:
    state, stale, held = _taken_over(any_db)
    with pytest.raises(LeaseLost):
        state.claim_meeting("acc", "board@example.org", token=stale)
    with pytest.raises(LeaseLost):
        state.claim_meeting("acc", "board@example.org", 42, token=stale)
    assert _meeting_rows(any_db) == 0
    assert state.claim_meeting("acc", "board@example.org", 42, token=held) == "acc"
    assert state.meeting_activities("acc", ["board@example.org"]) == {"board@example.org": 42}


def test_a_stale_token_cannot_write_the_hours_guest_email_count(any_db: Database) -> None:
    state, stale, held = _taken_over(any_db)
    state.record_guest_emails("acc", HOUR, 40, token=held)  # the new holder's count
    with pytest.raises(LeaseLost):
        state.record_guest_emails("acc", HOUR + timedelta(hours=1), 1, token=stale)
    row = state.account("acc")
    assert (row.guest_window_start, row.guest_window_count) == (HOUR, 40)


def test_a_stale_token_cannot_forget_items_an_admin_released(any_db: Database) -> None:
    state, stale, held = _taken_over(any_db)
    state.record_failure("acc", "calendar:ev1", "e1", "bad", immediate=True, token=held)
    [item] = state.quarantine_list("acc")
    state.retry_item(item["id"])
    with pytest.raises(LeaseLost):
        state.clear_retries("acc", ["calendar:ev1"], token=stale)
    assert state.retry_keys("acc") == ["calendar:ev1"]
    state.clear_retries("acc", ["calendar:ev1"], token=held)
    assert state.retry_keys("acc") == [] and RETRY == "retry"


@pytest.mark.parametrize("write", [
    lambda s: s.record_failure("acc", "crm:1", None, "x"),
    lambda s: s.claim_meeting("acc", "m@example.org"),
    lambda s: s.record_guest_emails("acc", HOUR, 1),
    lambda s: s.clear_retries("acc", ["crm:1"]),
], ids=["failure", "meeting", "guest-emails", "retries"])
def test_without_a_token_the_writes_stay_unfenced_for_tools(
        any_db: Database, write: Callable[[StateStore], object]) -> None:
    """Admin commands and tests write outside any cycle; only a cycle's token fences."""
    state, _stale, _held = _taken_over(any_db)
    write(state)  # no LeaseLost
