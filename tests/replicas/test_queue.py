"""The work queue: claims, caps, due times, takeovers and the fence on a stale holder."""

from __future__ import annotations

import cProfile
import pstats
import threading
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from syncd.errors import LeaseLost
from syncd.pairs import SyncPair
from syncd.replica import Dispatcher
from syncd.store.db import Database
from syncd.store.queue import Claim, WorkQueue
from syncd.store.state import StateStore
from syncd.store.state_tables import SyncAccount
from syncd.store.status import CycleEnd, Outcome

TTL = timedelta(minutes=10)
NAMES = [f"acc{i}" for i in range(5)]


def _now(db: Database) -> datetime | None:
    """SQLite runs on the caller's clock; PostgreSQL ignores it for its own."""
    return datetime.now(UTC) if db.dialect == "sqlite" else None


def test_a_claim_takes_due_accounts_up_to_its_limit_and_none_held(any_db: Database) -> None:
    queue = WorkQueue(any_db, "a:1")
    queue.enrol(NAMES)
    first = queue.claim(NAMES, 2, TTL)
    rest = queue.claim(NAMES, 10, TTL)
    assert len(first) == 2 and len(rest) == 3
    assert {c.name for c in first} | {c.name for c in rest} == set(NAMES)
    assert queue.claim(NAMES, 10, TTL) == []  # every lease is live
    later, now = rest[0], rest[1]
    assert queue.finish(later.name, later.token, 3600)
    assert queue.finish(now.name, now.token, 0)
    assert [c.name for c in queue.claim(NAMES, 10, TTL)] == [now.name]


def test_a_claim_takes_only_the_accounts_it_is_given(any_db: Database) -> None:
    queue = WorkQueue(any_db, "a:1")
    queue.enrol(NAMES)
    assert {c.name for c in queue.claim(["acc1", "acc3", "gone"], 10, TTL)} == {"acc1", "acc3"}


def test_a_lapsed_lease_is_taken_over_counted_and_its_old_holder_fenced(
        any_db: Database) -> None:
    state = StateStore(any_db)
    a, b = WorkQueue(any_db, "host-a:1"), WorkQueue(any_db, "host-b:2")
    a.enrol(["acc"])
    start = datetime.now(UTC)
    [old] = a.claim(["acc"], 1, timedelta(0), now=start)  # expires at once
    [new] = b.claim(["acc"], 1, TTL, now=start + timedelta(seconds=1))
    assert new.took_over and new.token > old.token
    assert b.counts["takeovers"] == 1 and b.takeovers() == 1
    # The old holder wakes up: every write of its cycle is refused, and nothing it does
    # moves the account.
    assert not state.renew_lease("acc", old.token, TTL, _now(any_db))
    assert not state.commit_cursors("acc", old.token, crm_cursor="stale")
    link = SyncPair(1, "m1", "e1", None, None, None, 0)
    with pytest.raises(LeaseLost):
        state.record("acc", saves=[link], token=old.token)
    before = state.account("acc")
    state.finish_cycle("acc", old.token, CycleEnd(Outcome.OK), datetime.now(UTC), before)
    assert not a.finish("acc", old.token, 0)
    after = state.account("acc")
    assert (after.lease_owner, after.lease_token, after.crm_cursor) == ("host-b:2", new.token,
                                                                        None)
    assert state.links("acc") == {}
    # The holder's writes go through.
    state.record("acc", saves=[link], token=new.token)
    assert state.commit_cursors("acc", new.token, crm_cursor="7")
    assert list(state.links("acc")) == [1]


def test_a_released_lease_is_not_counted_as_a_takeover(any_db: Database) -> None:
    a, b = WorkQueue(any_db, "host-a:1"), WorkQueue(any_db, "host-b:2")
    a.enrol(["acc"])
    [claim] = a.claim(["acc"], 1, TTL)
    a.finish("acc", claim.token, 0)
    [again] = b.claim(["acc"], 1, TTL)
    assert not again.took_over and b.takeovers() == 0


@pytest.mark.postgres
def test_a_replica_whose_clock_is_ahead_cannot_take_a_live_lease(pg: Database) -> None:
    state = StateStore(pg)
    a, b = WorkQueue(pg, "host-a:1"), WorkQueue(pg, "host-b:2")
    a.enrol(["acc"])
    assert a.claim(["acc"], 1, TTL)
    ahead = datetime.now(UTC) + timedelta(hours=1)  # b's clock is an hour fast
    assert b.claim(["acc"], 1, TTL, now=ahead) == []
    assert state.acquire_lease("acc", "host-b:2", TTL, ahead) is None


@pytest.mark.postgres
def test_replicas_skip_a_row_another_is_claiming_instead_of_waiting(pg_url: str,
                                                                     pg: Database) -> None:
    other = Database(pg_url, run_migrations=False)
    try:
        queue = WorkQueue(pg, "host-a:1")
        queue.enrol(NAMES)
        with other.session() as s:  # another replica, in the middle of its claim
            s.execute(select(SyncAccount).where(SyncAccount.name == "acc0").with_for_update())
            claims = queue.claim(NAMES, 10, TTL)
        assert sorted(c.name for c in claims) == NAMES[1:]
    finally:
        other.close()


@pytest.mark.postgres
def test_replicas_claiming_at_once_never_share_an_account(pg_url: str, pg: Database) -> None:
    names = [f"acc{i:03}" for i in range(120)]
    WorkQueue(pg, "setup").enrol(names)
    got: dict[str, list[Claim]] = {}
    handles = [Database(pg_url, run_migrations=False) for _ in range(4)]

    def replica(i: int) -> None:
        queue = WorkQueue(handles[i], f"host-{i}:1")
        got[queue.owner] = []
        while claims := queue.claim(names, 7, TTL):
            got[queue.owner] += claims

    threads = [threading.Thread(target=replica, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for h in handles:
        h.close()
    claimed = [c.name for claims in got.values() for c in claims]
    assert sorted(claimed) == names  # each exactly once


def test_a_push_makes_an_account_due_at_once_and_never_later(any_db: Database) -> None:
    queue = WorkQueue(any_db, "a:1")
    queue.enrol(["acc"])
    [claim] = queue.claim(["acc"], 1, TTL)
    queue.finish("acc", claim.token, 3600)
    assert queue.claim(["acc"], 1, TTL) == []
    queue.due_by("acc", datetime.now(UTC) + timedelta(days=1))  # later: the due time stays
    assert queue.claim(["acc"], 1, TTL) == []
    queue.due_by("acc", datetime.now(UTC) - timedelta(seconds=1))
    assert [c.name for c in queue.claim(["acc"], 1, TTL)] == ["acc"]


def test_a_replica_never_has_more_accounts_in_flight_than_its_cap(any_db: Database) -> None:
    queue = WorkQueue(any_db, "a:1")
    release = threading.Semaphore(0)
    running: list[str] = []

    def work(claim: Claim) -> None:
        running.append(claim.name)
        release.acquire()
        queue.finish(claim.name, claim.token, 3600)

    dispatcher = Dispatcher(queue, lambda: NAMES, work, cap=3, ttl=TTL)
    try:
        assert dispatcher.tick() == 3
        assert dispatcher.tick() == 0  # full
        release.release()
        while dispatcher.in_flight == 3:
            threading.Event().wait(0.01)
        assert dispatcher.tick() == 1
        assert dispatcher.in_flight == 3
    finally:
        for _ in range(5):
            release.release()
        dispatcher.stop()
        dispatcher.pool.shutdown(wait=True)
    assert len(set(running)) == 4


def test_a_cycle_that_raises_gives_its_account_back_due_at_once(any_db: Database) -> None:
    queue = WorkQueue(any_db, "a:1")
    calls: list[str] = []

    def work(claim: Claim) -> None:
        calls.append(claim.name)
        raise RuntimeError("bug")

    dispatcher = Dispatcher(queue, lambda: ["acc"], work, cap=1, ttl=TTL)
    dispatcher.tick()
    dispatcher.pool.shutdown(wait=True)
    row = StateStore(any_db).account("acc")
    assert calls == ["acc"] and row.lease_owner is None
    assert [c.name for c in queue.claim(["acc"], 1, TTL)] == ["acc"]


def test_names_with_quotes_commas_and_braces_are_claimed_as_themselves(any_db: Database
                                                                       ) -> None:
    names = ['a"b', "c\\d", "e,f", "{g}", "h i", "NULL", "", "ø\\\"", 'x"},{"y']
    queue = WorkQueue(any_db, "a:1")
    queue.enrol(names)
    queue.enrol(["other"])
    claims = queue.claim(frozenset(names), 20, TTL, _now(any_db))
    assert sorted(c.name for c in claims) == sorted(names)


def test_a_claim_leaves_out_the_accounts_in_flight(any_db: Database) -> None:
    queue = WorkQueue(any_db, "a:1")
    queue.enrol(NAMES)
    held = queue.claim(["acc0"], 1, timedelta(0), _now(any_db))  # its lease lapses at once
    assert [c.name for c in held] == ["acc0"]
    later = _now(any_db)
    rest = queue.claim(NAMES, 10, TTL, later and later + timedelta(seconds=1),
                       busy=("acc0", "acc9"))
    assert sorted(c.name for c in rest) == NAMES[1:]


@pytest.mark.postgres
def test_a_claims_work_does_not_grow_with_the_accounts_of_the_replica(pg: Database) -> None:
    def calls_per_claim(count: int) -> float:
        queue = WorkQueue(pg, f"n:{count}")
        names = frozenset(f"acc{i}" for i in range(count))
        queue.enrol(names)
        queue.claim(names, 1, TTL)  # the names' literal is made here, once
        profile = cProfile.Profile()
        profile.enable()
        for _ in range(5):
            [claim] = queue.claim(names, 1, TTL, busy=("acc0",))
            queue.finish(claim.name, claim.token, 3600)
        profile.disable()
        return pstats.Stats(profile).total_calls / 5  # type: ignore[attr-defined]

    few = calls_per_claim(10)
    many = calls_per_claim(2000)
    # Sent as a list, 2,000 names cost psycopg 8,000 calls a claim (a regex and two appends
    # each); their literal, made once, costs none.
    assert many < few + 100
