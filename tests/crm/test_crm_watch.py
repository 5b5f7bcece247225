"""The built-in CRM's change watch: one small query a look, the changed owners hinted,
an outage logged once and retried without losing a change, a clean stop."""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Iterable, Iterator
from typing import Any

import pytest
from sqlalchemy import event

from syncd.crm.builtin import BuiltinSource
from syncd.crm.builtin.activities import ActivityStore
from syncd.crm.source import OwnersChanged
from syncd.crm_watch import CrmWatcher
from syncd.errors import DatabaseUnavailable
from syncd.store.db import Database


class Hinted:
    """What the watcher handed on, one list per hint."""

    def __init__(self) -> None:
        self.calls: list[list[int]] = []
        self.came = threading.Event()

    def __call__(self, user_ids: Iterable[int]) -> None:
        self.calls.append(list(user_ids))
        self.came.set()


class Flaky:
    """The built-in source, with a database that goes away while ``down`` is set."""

    def __init__(self, source: BuiltinSource) -> None:
        self.source, self.down = source, False

    def _check(self) -> None:
        if self.down:
            raise DatabaseUnavailable(database="sqlite:///syncd.db", reason="unable to open")

    def change_mark(self) -> int:
        self._check()
        return self.source.change_mark()

    def owners_changed(self, after: int, *, limit: int = 1000) -> OwnersChanged:
        self._check()
        return self.source.owners_changed(after, limit=limit)


@pytest.fixture
def store(state_db: Database) -> ActivityStore:
    return ActivityStore(state_db)


@pytest.fixture
def statements(state_db: Database) -> Iterator[list[str]]:
    """Every SQL statement the database is sent, from now on."""
    sent: list[str] = []

    def count(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        sent.append(statement)

    event.listen(state_db.engine, "before_cursor_execute", count)
    yield sent
    event.remove(state_db.engine, "before_cursor_execute", count)


def test_an_idle_watcher_sends_one_query_a_look_and_hints_nothing(
        store: ActivityStore, statements: list[str]) -> None:
    alice = store.add_user("alice@example.com")
    store.add_activity(owner_id=alice, subject="before the watch")
    hinted = Hinted()
    watcher = CrmWatcher(BuiltinSource(store), hinted)
    assert watcher.look()  # notes where the feed is: older changes are the first cycles'
    statements.clear()
    for _ in range(50):
        assert watcher.look()
    assert len(statements) == 50
    assert all("activity_changes" in s and "seq >" in s for s in statements)
    assert hinted.calls == [] and watcher.counts["looks"] == 51


def test_a_crm_edit_hints_its_owner_and_a_reassignment_both_owners(
        store: ActivityStore) -> None:
    alice, bob = store.add_user("alice@example.com"), store.add_user("bob@example.com")
    hinted = Hinted()
    watcher = CrmWatcher(BuiltinSource(store), hinted)
    watcher.look()
    call = store.add_activity(owner_id=alice, subject="Call")
    watcher.look()
    assert hinted.calls == [[alice]]
    store.edit_activity(call.id, owner_id=bob)
    store.edit_activity(call.id, subject="Call again")
    watcher.look()
    assert hinted.calls == [[alice], [alice, bob]]
    watcher.look()
    assert len(hinted.calls) == 2  # read once


def test_a_burst_larger_than_a_page_is_read_in_pages_and_hinted_once(
        store: ActivityStore, statements: list[str]) -> None:
    owners = [store.add_user(f"u{i}@example.com") for i in range(7)]
    hinted = Hinted()
    watcher = CrmWatcher(BuiltinSource(store), hinted, page=10)
    watcher.look()
    store.add_activities([{"owner_id": owners[i % 7], "subject": f"a{i}"} for i in range(35)])
    statements.clear()
    assert watcher.look()
    assert len(statements) == 4  # 10 + 10 + 10 + 5 rows
    assert hinted.calls == [sorted(owners)]


def test_an_outage_is_logged_once_retried_and_loses_no_change(
        store: ActivityStore, caplog: pytest.LogCaptureFixture) -> None:
    alice = store.add_user("alice@example.com")
    flaky, hinted = Flaky(BuiltinSource(store)), Hinted()
    watcher = CrmWatcher(flaky, hinted)
    watcher.look()
    flaky.down = True
    store.add_activity(owner_id=alice, subject="made while the watcher could not look")
    with caplog.at_level(logging.INFO, logger="syncd.crm_watch"):
        assert [watcher.look() for _ in range(5)] == [False] * 5
        flaky.down = False
        assert watcher.look()
    assert hinted.calls == [[alice]]
    warned = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warned) == 1 and "unable to open" in warned[0].getMessage()
    assert "works again" in caplog.records[-1].getMessage()
    assert watcher.counts["failed"] == 5


def test_a_watch_started_while_the_database_is_away_takes_its_mark_when_it_answers(
        store: ActivityStore) -> None:
    alice = store.add_user("alice@example.com")
    flaky, hinted = Flaky(BuiltinSource(store)), Hinted()
    flaky.down = True
    watcher = CrmWatcher(flaky, hinted)
    assert not watcher.look()
    store.add_activity(owner_id=alice, subject="left to the poll")
    flaky.down = False
    assert watcher.look() and watcher.look()
    assert hinted.calls == []  # from the mark on
    store.add_activity(owner_id=alice, subject="seen")
    watcher.look()
    assert hinted.calls == [[alice]]


def test_the_thread_hints_an_edit_and_stops_cleanly(store: ActivityStore) -> None:
    alice = store.add_user("alice@example.com")
    hinted = Hinted()
    watcher = CrmWatcher(BuiltinSource(store), hinted, every=0.01)
    watcher.start()
    try:
        store.add_activity(owner_id=alice, subject="Call")
        assert hinted.came.wait(30)
        assert hinted.calls == [[alice]]
    finally:
        watcher.stop()
    looks, hinted.came = watcher.counts["looks"], threading.Event()
    store.add_activity(owner_id=alice, subject="after the stop")
    assert not hinted.came.wait(0.2)
    assert watcher.counts["looks"] == looks
    assert not any(t.name == "syncd-crm-watch" for t in threading.enumerate())


def test_while_the_database_is_away_the_thread_waits_longer_between_tries(
        store: ActivityStore) -> None:
    flaky = Flaky(BuiltinSource(store))
    flaky.down = True
    pauses: list[float] = []
    watcher = CrmWatcher(flaky, Hinted(), every=1.0, max_backoff=8.0)
    stop = watcher._stop

    def wait(pause: float | None = None) -> bool:
        pauses.append(pause or 0.0)
        if len(pauses) == 7:
            flaky.down = False
        return len(pauses) > 8

    stop.wait = wait  # type: ignore[method-assign]
    watcher._loop()
    assert pauses == [1.0, 2.0, 4.0, 8.0, 8.0, 8.0, 8.0, 1.0, 1.0]


def test_on_postgresql_too_a_look_is_one_query_and_an_edit_is_hinted(
        pg_state_db: Database) -> None:
    store = ActivityStore(pg_state_db)
    owner = store.add_user(f"pg-{uuid.uuid4().hex[:8]}@example.com")
    hinted = Hinted()
    watcher = CrmWatcher(BuiltinSource(store), hinted)
    watcher.look()
    sent: list[str] = []

    def count(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        sent.append(statement)

    event.listen(pg_state_db.engine, "before_cursor_execute", count)
    try:
        for _ in range(20):
            watcher.look()
        assert len(sent) == 20 and hinted.calls == []
        store.add_activity(owner_id=owner, subject="Call")
        watcher.look()
    finally:
        event.remove(pg_state_db.engine, "before_cursor_execute", count)
    assert hinted.calls == [[owner]]
