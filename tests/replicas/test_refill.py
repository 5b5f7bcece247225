"""A replica keeps its slots busy between ticks (issue 16 item 4): cycles that end free
their slots, and due accounts are claimed then, in batches, not a second later."""

from __future__ import annotations

import threading
import time
from datetime import timedelta

from syncd.replica import Dispatcher
from syncd.store.db import Database
from syncd.store.queue import Claim, WorkQueue

TTL = timedelta(minutes=10)


def test_freed_slots_are_refilled_in_batches_without_waiting_for_a_tick(
        any_db: Database) -> None:
    names = [f"acc{i:02}" for i in range(24)]
    queue = WorkQueue(any_db, "a:1")
    done: list[str] = []
    claims_asked: list[int] = []
    all_done = threading.Event()
    lock = threading.Lock()

    def work(claim: Claim) -> None:
        time.sleep(0.01)  # the cycle's wait on the network
        queue.finish(claim.name, claim.token, 3600)  # due again in an hour
        with lock:
            done.append(claim.name)
            if len(done) == len(names):
                all_done.set()

    claim = queue.claim

    def counted(wanted: object, limit: int, ttl: timedelta, now: object = None, *,
                busy: tuple[str, ...] = ()) -> list[Claim]:
        claims_asked.append(limit)
        return claim(wanted, limit, ttl, busy=busy)  # type: ignore[arg-type]

    queue.claim = counted  # type: ignore[method-assign]
    dispatcher = Dispatcher(queue, lambda: names, work, cap=8, ttl=TTL)
    dispatcher.on_free = dispatcher.refill
    try:
        assert dispatcher.tick() == 8  # the cap; the only tick of this test
        assert all_done.wait(60), f"only {len(done)} cycles ran without a second tick"
    finally:
        dispatcher.stop()
        dispatcher.pool.shutdown(wait=True)
    assert sorted(done) == names  # each account once: it is due again only in an hour
    # claims came for at least a quarter of the cap each (the last may find nothing)
    assert all(n >= 2 for n in claims_asked), claims_asked
    assert len(claims_asked) <= 1 + (len(names) - 8) // 2 + 1, claims_asked


def test_without_a_backlog_a_freed_slot_asks_for_nothing(any_db: Database) -> None:
    queue = WorkQueue(any_db, "a:1")
    asked: list[str] = []
    dispatcher = Dispatcher(queue, lambda: ["only"], lambda c: queue.finish(c.name, c.token,
                                                                            3600),
                            cap=8, ttl=TTL, on_free=lambda: asked.append("refill"))
    try:
        assert dispatcher.tick() == 1  # fewer due than the room: no backlog
        deadline = time.monotonic() + 30
        while dispatcher.in_flight and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        dispatcher.stop()
        dispatcher.pool.shutdown(wait=True)
    assert asked == []
