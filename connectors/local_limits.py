"""Provider limits counted in this process alone: :class:`connectors.base.SharedLimits` in
memory, with the arithmetic of the database's (:class:`syncd.store.limits.LimitStore`).

A single process (``[syncd] replica = false``, the default, and the only mode on SQLite)
is Graph's only client of its mailboxes, so it needs no database to share a count with;
but it must still count what the replicas count. Rather than a second algorithm, it
spends from the same kind of send lines and concurrency slots, kept in a dictionary: a
connector drives both through one code path (:class:`connectors.outlook_http.MailboxSlots`),
and ``tests/replicas/test_limits_alike.py`` plays one script against both and compares
every answer.

* **a send line** (:meth:`LocalLimits.pace`): a scope's next free send time. A
  reservation begins where the last one ended, or now if that is past, and the request
  may go ``burst`` seconds ahead of it (the generic cell rate algorithm). A request
  under two limits (a Graph mailbox's 10 minutes and its app registration's second, a
  Google user's minute and its project's) reserves on both lines in one take.
* **a pause** (:meth:`LocalLimits.hold`): the line moved past a Retry-After (its burst
  spent).
* **concurrency slots** (:meth:`LocalLimits.take_slots`): ``limit`` slots per scope,
  taken all or none, free again when given back or at their expiry.

Times are seconds of the clock given (the connector's, so a test's fake clock drives the
line as it drives the connector's sleeps); :func:`local_limits` keeps one instance per
clock for the whole process, since a connector lives for a cycle and the line must not.
Lines idle for :data:`KEPT_SECONDS` are dropped (an absent line paces as one idle that
long), so the dictionary holds only the scopes of the last hour.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable, Sequence

from syncd.errors import bounded_pause

#: How long an idle line or a free slot stays (seconds), as the database's rows do.
KEPT_SECONDS = 3600.0
#: The least time between two sweeps of idle lines (seconds).
PRUNE_EVERY = 60.0


class LocalLimits:
    """Send lines and concurrency slots of this process (see the module docstring)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._lines: dict[str, float] = {}  # scope -> where its last reservation ends
        # scope -> per slot, (the ticket holding it, until when), or None: free
        self._slots: dict[str, list[tuple[str, float] | None]] = {}
        self._tickets = itertools.count(1)
        self._lock = threading.Lock()
        self._pruned = clock()

    def pace(self, scope: str, seconds: float, *, burst: float = 0.0,
             also: Sequence[tuple[str, float]] = ()) -> float:
        """Reserve ``seconds`` of ``scope``'s send line (and of each line of ``also``,
        which have no burst); returns how long to wait before sending (0.0: at once)."""
        lines = {scope: seconds}
        for other, other_seconds in also:
            lines[other] = max(lines.get(other, 0.0), other_seconds)
        with self._lock:
            now = self.clock()
            self._prune(now)
            wait = 0.0
            for key in sorted(lines):  # the database's lock order; no matter here
                begins = max(self._lines.get(key, now), now)
                self._lines[key] = begins + lines[key]
                wait = max(wait, begins - now - (burst if key == scope else 0.0))
            return wait

    def hold(self, scope: str, seconds: float, *, burst: float = 0.0) -> None:
        """Let no reservation of ``scope``'s line begin within ``seconds`` (bounded) from
        now; its burst is spent."""
        with self._lock:
            until = self.clock() + bounded_pause(seconds) + max(burst, 0.0)
            self._lines[scope] = max(self._lines.get(scope, until), until)

    def take_slots(self, scope: str, limit: int, permits: int, hold: float) -> str | None:
        """Take ``permits`` of ``scope``'s ``limit`` slots until ``hold`` seconds from now,
        all or none; the ticket that gives them back, or None."""
        permits = max(1, min(permits, limit))
        with self._lock:
            now = self.clock()
            slots = self._slots.setdefault(scope, [])
            slots.extend([None] * (limit - len(slots)))
            free = [i for i, held in enumerate(slots[:limit])
                    if held is None or held[1] < now]
            if len(free) < permits:
                return None
            ticket = str(next(self._tickets))
            for i in free[:permits]:
                slots[i] = (ticket, now + hold)
            return ticket

    def give_back(self, scope: str, ticket: str) -> None:
        """Free the slots taken with ``ticket`` (none if they expired and were taken)."""
        with self._lock:
            slots = self._slots.get(scope, [])
            for i, held in enumerate(slots):
                if held is not None and held[0] == ticket:
                    slots[i] = None
            if all(held is None for held in slots):
                del self._slots[scope]  # all free: as good as never made

    def _prune(self, now: float) -> None:
        """Drop the lines whose last reservation ended :data:`KEPT_SECONDS` ago (under
        the lock, at most once per :data:`PRUNE_EVERY` seconds)."""
        if now - self._pruned < PRUNE_EVERY:
            return
        self._pruned = now
        for scope in [s for s, at in self._lines.items() if at < now - KEPT_SECONDS]:
            del self._lines[scope]

    def lines(self) -> int:
        """How many send lines are kept (for tests)."""
        with self._lock:
            return len(self._lines)


_instances: dict[Callable[[], float], LocalLimits] = {}
_instances_lock = threading.Lock()


def local_limits(clock: Callable[[], float] = time.monotonic) -> LocalLimits:
    """This process's limits on ``clock`` (one instance per clock, for the process's
    life: every connector of a mailbox, in every cycle, spends from the same line)."""
    with _instances_lock:
        found = _instances.get(clock)
        if found is None:
            found = _instances[clock] = LocalLimits(clock)
        return found
