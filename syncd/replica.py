"""A replica's share of the work queue (``[syncd] replica = true``).

Several ``syncd run`` processes on one PostgreSQL share the accounts through the
database (:mod:`syncd.store.queue`): no account is configured on one replica only, and
none has an APScheduler job of its own. APScheduler stays the in-process timer: its one
``tick`` job claims as many due accounts as the replica has free slots (its cap on
accounts in flight, ``[syncd] workers``) and hands each to the worker pool; the work
gives the account back with its next due time when its cycle ends.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

from syncd.store.queue import Claim, WorkQueue

log = logging.getLogger("syncd.replica")

#: Seconds between claims: how long a due account (or one whose holder died, once its
#: lease expired) waits at most for a replica with room.
TICK_SECONDS = 1.0


class Dispatcher:
    """Claims due accounts each tick, up to ``cap`` in flight, and runs ``work`` on each.

    ``names`` lists the accounts this replica may sync (its configuration, read each
    tick so new ones are enrolled); ``work(claim)`` runs the account's cycle under the
    claim's token and gives the account back (``WorkQueue.finish``). Should it raise, the
    lease is released here so the account is due again at once.
    """

    def __init__(self, queue: WorkQueue, names: Callable[[], Iterable[str]],
                 work: Callable[[Claim], None], *, cap: int, ttl: timedelta,
                 on_free: Callable[[], None] | None = None) -> None:
        """``on_free``: called (on the worker thread) when cycles ended and freed a batch
        of slots while due accounts may be waiting; the daemon then calls :meth:`refill`
        at once instead of leaving the slots empty until the next tick."""
        self.queue = queue
        self.names = names
        self.work = work
        self.cap = cap
        self.ttl = ttl
        self.pool = ThreadPoolExecutor(cap, thread_name_prefix="syncd-cycle")
        self._lock = threading.Lock()
        self._in_flight = 0
        self._running: set[str] = set()  # the accounts of the cycles in flight
        self._enrolled: frozenset[str] = frozenset()
        self.on_free = on_free
        # Slots freed before asking for an early tick: claims come in batches, so the
        # claim's statements are shared by several cycles, not paid by each.
        self.batch = max(1, cap // 4)
        self._backlog = False  # the last claim got all it asked for: more may be due
        self.stopped = False

    @property
    def in_flight(self) -> int:
        with self._lock:
            return self._in_flight

    def tick(self) -> int:
        """Claim what there is room for and start it; returns how many were claimed."""
        if self.stopped:
            return 0
        names = frozenset(self.names())
        if names - self._enrolled:
            self.queue.enrol(names - self._enrolled)
        self._enrolled = names
        return self._claim(names)

    def refill(self) -> int:
        """Claim for the free slots among the accounts the last tick knew (no new ones
        enrolled): what ``on_free`` asks for, between ticks."""
        if self.stopped:
            return 0
        return self._claim(self._enrolled)

    def _claim(self, names: frozenset[str]) -> int:
        with self._lock:
            free = self.cap - self._in_flight
            if free <= 0:
                return 0
            # Counted before the claim: a tick never claims past the cap, even if a
            # previous one is somehow still running.
            self._in_flight += free
            # A cycle of ours that outlived its lease (a stalled process) is not claimed
            # again under its nose: another replica takes it, or we do once it ends.
            # (Passed apart from the names, which stay the same object from claim to
            # claim: the queue then sends them without going through them again.)
            busy = tuple(self._running)
        claims: list[Claim] = []
        try:
            claims = self.queue.claim(names, free, self.ttl, busy=busy)
        finally:
            with self._lock:
                self._in_flight -= free - len(claims)
                self._running.update(c.name for c in claims)
                self._backlog = len(claims) == free
        for claim in claims:
            if claim.took_over:
                log.info("took over %s (its lease expired without being released)",
                         claim.name)
            self.pool.submit(self._run, claim)
        return len(claims)

    def _run(self, claim: Claim) -> None:
        try:
            self.work(claim)
        except Exception:
            log.warning("the cycle of %s ended abnormally; it is due again", claim.name,
                        exc_info=True)
            try:
                self.queue.finish(claim.name, claim.token, 0)
            except Exception:  # its lease expires by itself
                log.debug("could not give %s back", claim.name, exc_info=True)
        finally:
            with self._lock:
                self._in_flight -= 1
                self._running.discard(claim.name)
                # One cycle ends a few milliseconds after another when idle cycles queue
                # up: waiting for the next tick would leave the slots empty most of the
                # second (a cap of 16 would mean 16 cycles a second at most).
                early = self._backlog and self.cap - self._in_flight >= self.batch
                if early:
                    self._backlog = False  # asked once; the tick that follows says again
            if early and self.on_free is not None and not self.stopped:
                self.on_free()

    def stop(self) -> None:
        """Claim nothing more; cycles in flight run to their end (the daemon waits)."""
        self.stopped = True
        self.pool.shutdown(wait=False)
