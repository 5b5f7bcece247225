"""The change feed: strictly increasing numbers, and nothing missed or invented.

A Hypothesis state machine adds, edits, completes, reopens, deletes, reassigns and purges
activities while a model records which activities each change touched and which owners
it concerned. At every step, ``changes_after(N)`` for any earlier cursor N, read in small
pages, must return exactly the activities touched after N (deletions and purges
included), with and without an owner filter. A threaded test checks the same under
concurrent writers, where a sequence handed out before commit could otherwise be skipped.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from datetime import date, timedelta

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    precondition,
    rule,
    run_state_machine_as_test,
)

from syncd.crm.builtin.activities import ActivityStore
from syncd.model import Activity, Tombstone
from tests.store.conftest import StoreFactory
from tests.store.helpers import NOW


@dataclass
class Change:
    """What the model expects one change row to stand for."""

    seq: int
    activity_id: int
    owners: frozenset[int]  # the owner after the change, and before it when it moved


@dataclass
class Model:
    owner: dict[int, int] = field(default_factory=dict)
    done: dict[int, bool] = field(default_factory=dict)
    deleted: set[int] = field(default_factory=set)
    purged: set[int] = field(default_factory=set)
    changes: list[Change] = field(default_factory=list)


def read_all(store: ActivityStore, after: int, owner_id: int | None,
             limit: int) -> tuple[list[Activity | Tombstone], int]:
    """Follow the feed from ``after`` to its end; returns the items and the final cursor."""
    items: list[Activity | Tombstone] = []
    cursor = after
    while True:
        page = store.changes_after(cursor, owner_id=owner_id, limit=limit)
        ids = [item.id for item in page.items]
        assert len(ids) == len(set(ids)), "an activity appeared twice in one page"
        assert page.last_seq >= cursor
        assert page.more or page.last_seq >= cursor
        items.extend(page.items)
        cursor = page.last_seq
        if not page.more:
            return items, cursor


def make_machine(new_store: StoreFactory) -> type[RuleBasedStateMachine]:
    class FeedMachine(RuleBasedStateMachine):
        def __init__(self) -> None:
            super().__init__()
            self.store = new_store()
            self.users = [self.store.add_user(f"u{n}@example.com") for n in range(3)]
            self.model = Model()
            self.now = NOW
            self.last_seq = 0

        def _changed(self, activity_id: int, owners: set[int]) -> None:
            seq = self.store.last_change_seq()
            assert seq > self.last_seq, "change numbers must strictly increase"
            self.last_seq = seq
            self.model.changes.append(Change(seq, activity_id, frozenset(owners)))

        def _bulk(self, ids: list[int]) -> None:
            # One call, one change row per activity. The model only needs to know that
            # all of them come after the previous cursor, so it records the final seq.
            seq = self.store.last_change_seq()
            assert seq >= self.last_seq + len(ids)
            self.last_seq = seq
            for activity_id in ids:
                self.model.changes.append(
                    Change(seq, activity_id, frozenset({self.model.owner[activity_id]})))

        def _unchanged(self) -> None:
            assert self.store.last_change_seq() == self.last_seq

        def _tick(self) -> None:
            self.now += timedelta(minutes=1)

        def live(self) -> list[int]:
            return sorted(set(self.model.owner) - self.model.deleted - self.model.purged)

        @initialize()
        def start(self) -> None:
            self._unchanged()

        @rule(owner=st.integers(0, 2), done=st.booleans())
        def add(self, owner: int, done: bool) -> None:
            self._tick()
            user = self.users[owner]
            a = self.store.add_activity(owner_id=user, subject="s", due_date=date(2026, 3, 3),
                                        done=done, now=self.now)
            self.model.owner[a.id] = user
            self.model.done[a.id] = done
            self._changed(a.id, {user})

        @precondition(lambda self: self.live())
        @rule(data=st.data(), subject=st.sampled_from(["s", "t", "u"]))
        def edit(self, data: st.DataObject, subject: str) -> None:
            activity_id = data.draw(st.sampled_from(self.live()))
            self._tick()
            before = self.store.get(activity_id).subject
            self.store.edit_activity(activity_id, subject=subject, now=self.now)
            if before == subject:
                self._unchanged()  # an edit that changes nothing writes nothing
            else:
                self._changed(activity_id, {self.model.owner[activity_id]})

        @precondition(lambda self: self.live())
        @rule(data=st.data(), done=st.booleans())
        def mark(self, data: st.DataObject, done: bool) -> None:
            activity_id = data.draw(st.sampled_from(self.live()))
            self._tick()
            if done:
                self.store.mark_done(activity_id, now=self.now)
            else:
                self.store.mark_undone(activity_id, now=self.now)
            if self.model.done[activity_id] == done:
                self._unchanged()
            else:
                self.model.done[activity_id] = done
                self._changed(activity_id, {self.model.owner[activity_id]})

        @precondition(lambda self: self.live())
        @rule(data=st.data(), owner=st.integers(0, 2))
        def reassign(self, data: st.DataObject, owner: int) -> None:
            activity_id = data.draw(st.sampled_from(self.live()))
            self._tick()
            old, new = self.model.owner[activity_id], self.users[owner]
            self.store.edit_activity(activity_id, owner_id=new, now=self.now)
            if old == new:
                self._unchanged()
            else:
                self.model.owner[activity_id] = new
                self._changed(activity_id, {old, new})

        @precondition(lambda self: self.live())
        @rule(data=st.data())
        def delete(self, data: st.DataObject) -> None:
            ids = data.draw(st.lists(st.sampled_from(self.live()), min_size=1, max_size=3,
                                     unique=True))
            self._tick()
            assert self.store.delete_activities(ids, now=self.now) == len(ids)
            self.model.deleted.update(ids)
            self._bulk(ids)
            self.store.delete_activities(ids[:1], now=self.now)  # again: a no-op
            self._unchanged()

        @precondition(lambda self: self.model.deleted - self.model.purged)
        @rule()
        def purge(self) -> None:
            self._tick()
            victims = sorted(self.model.deleted - self.model.purged)
            assert self.store.purge_deleted(older_than_days=0, now=self.now) == len(victims)
            self.model.purged.update(victims)
            self._bulk(victims)

        def _check_feed(self, cursor: int, owner: int | None, limit: int) -> None:
            expected = {c.activity_id for c in self.model.changes
                        if c.seq > cursor and (owner is None or owner in c.owners)}
            items, end = read_all(self.store, cursor, owner, limit)
            assert {item.id for item in items} == expected
            if owner is None:
                assert end == self.last_seq
            for item in items:
                self._check_current(item)

        @rule(data=st.data())
        def read_feed(self, data: st.DataObject) -> None:
            cursor = data.draw(st.sampled_from([0, *(c.seq for c in self.model.changes)]))
            owner = data.draw(st.sampled_from([None, *self.users]))
            self._check_feed(cursor, owner, limit=data.draw(st.integers(1, 4)))

        def teardown(self) -> None:
            # The start, the middle and the end of the run, for everyone and for each owner
            # (read_feed has tried random cursors along the way).
            seqs = [c.seq for c in self.model.changes]
            middle = seqs[len(seqs) // 2] if seqs else 0
            for cursor in sorted({0, middle, self.last_seq}):
                for owner in (None, *self.users):
                    self._check_feed(cursor, owner, limit=1000)

        def _check_current(self, item: Activity | Tombstone) -> None:
            if item.id in self.model.purged:
                assert isinstance(item, Tombstone)
                return
            assert isinstance(item, Activity)
            assert item.owner_id == self.model.owner[item.id]
            assert item.deleted == (item.id in self.model.deleted)
            assert item.done == self.model.done[item.id]

    return FeedMachine


def test_change_feed_matches_a_model_of_every_change(new_store: StoreFactory) -> None:
    machine = make_machine(new_store)
    run_state_machine_as_test(
        machine, settings=settings(max_examples=40, stateful_step_count=15, deadline=None))


def test_feed_pages_cover_everything_once_and_cursor_stays_when_idle(
    store: ActivityStore,
) -> None:
    ann = store.add_user("ann@example.com")
    ids = [a for a in store.add_activities([{"owner_id": ann, "subject": f"#{n}"}
                                            for n in range(25)], now=NOW)]
    store.edit_activity(ids[0], subject="edited last", now=NOW)
    items, cursor = read_all(store, 0, None, limit=7)
    # ids[0] shows in the first page (its insert) and again in the last (its edit).
    assert [i.id for i in items].count(ids[0]) == 2
    assert {i.id for i in items} == set(ids)
    assert cursor == store.last_change_seq() == 26
    idle = store.changes_after(cursor)
    assert (idle.items, idle.last_seq, idle.more) == ([], cursor, False)
    seq = store.last_change_seq()
    store.edit_activity(ids[1], subject="#1", now=NOW)  # same value: no change row
    assert store.last_change_seq() == seq


@pytest.mark.slow
def test_concurrent_writers_never_let_a_reader_skip_a_change(store: ActivityStore) -> None:
    ann = store.add_user("ann@example.com")
    per_thread, threads = 10, 4
    errors: list[BaseException] = []
    written: set[int] = set()
    lock = threading.Lock()
    done = threading.Event()

    def write() -> None:
        try:
            for n in range(per_thread):
                a = store.add_activity(owner_id=ann, subject=f"w{n}")
                store.edit_activity(a.id, subject=f"w{n}!")
                with lock:
                    written.add(a.id)
        except BaseException as exc:  # surfaced by the assertion below
            errors.append(exc)

    latest: dict[int, str] = {}  # what the reader last saw of each activity
    seqs: list[int] = []

    def read() -> None:
        cursor = 0
        try:
            while True:
                finished = done.is_set()
                page = store.changes_after(cursor, limit=5)
                for item in page.items:
                    assert isinstance(item, Activity)
                    latest[item.id] = item.subject
                assert page.last_seq >= cursor
                seqs.append(page.last_seq)
                cursor = page.last_seq
                if finished and not page.more:
                    return
                # Let the writers have the GIL between polls, as any real poller does: a
                # reader spinning without pause on 2 cores keeps a writer that already
                # holds SQLite's write lock waiting for the GIL, and the other writers
                # then run out their 10 s busy timeout ("database is locked").
                time.sleep(0)
        except BaseException as exc:
            errors.append(exc)

    workers = [threading.Thread(target=write) for _ in range(threads)]
    reader = threading.Thread(target=read)
    reader.start()
    for t in workers:
        t.start()
    for t in workers:
        t.join()
    done.set()
    reader.join()
    assert not errors, errors
    assert len(written) == per_thread * threads
    assert set(latest) == written
    # Had the reader's cursor passed an edit that committed late, it would still hold the
    # subject from before that edit.
    assert all(subject.endswith("!") for subject in latest.values())
    assert seqs == sorted(seqs)
