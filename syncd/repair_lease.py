"""An account's lease for ``syncd verify --repair``: one writer per account, as for cycles.

A repair deletes events and rewrites pairs, so it must never run beside a cycle of the
same account (a daemon's, a replica's or ``syncd sync``'s). It takes the account's lease
with the same conditional UPDATE a cycle's ``begin_cycle`` uses
(:meth:`StateStore.acquire_lease`): free, expired (taken over and counted in
``takeovers``, as the work queue's claim does) or held by a dead process of this host;
a live holder's lease is waited for up to ``wait`` seconds, then the account is left
alone (:class:`LeaseHeld` says who holds it and until when). On PostgreSQL the expiry is
the database's clock, so replicas and the repair agree on it; on SQLite (one daemon) the
same row excludes a concurrent ``syncd sync`` and the daemon's own cycles.

Under the lease, :meth:`RepairLease.fence` renews and checks the fencing token before each
write batch (a repair whose lease was taken over stops there, :class:`LeaseLost`), and the
state writes are recorded with the token (fenced in their own transaction). The lease is
given back with the account's due time unchanged: a repair is not a cycle, so the next
cycle comes when it was due.

A repair's lease is short (:data:`REPAIR_LEASE_TTL`, 30 s, not a cycle's
``lease_seconds``) and a heartbeat thread renews it every third of that while the repair
lives, through long reads as through writes. A repair killed outright (SIGKILL, a lost
machine, where nothing can give the lease back) so holds its account for 30 s at most
before a replica takes it over, while a live one is never taken over: its lease is always
at least two renewals from lapsing. The fence before every delete batch stays: a
heartbeat that could not renew in time (a stalled process) must not let a batch go out
under a lease another holder took meanwhile.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from syncd.errors import LeaseLost
from syncd.store.state import StateStore

log = logging.getLogger("syncd.verify")

#: Seconds between two tries for a held lease while waiting for it.
POLL_SECONDS = 1.0
#: How long a repair's lease lasts unless renewed: how long a killed repair keeps its
#: account from the replicas.
REPAIR_LEASE_TTL = timedelta(seconds=30)
#: Heartbeats per TTL: a live repair's lease is renewed every third of it.
BEATS_PER_TTL = 3


@dataclass(frozen=True)
class LeaseHeld:
    """Another live holder has the account's lease (a cycle, or another repair):
    ``holder`` (host:pid, or a replica's name) and ``until`` when, unless renewed."""

    account: str
    holder: str | None
    until: datetime | None


class RepairLease:
    """The account's lease as a repair holds it (``token``: its fencing token;
    ``took_over``: the holder whose expired lease it took, if any), renewed by a
    heartbeat thread from :meth:`start` until :meth:`release`."""

    def __init__(self, state: StateStore, account: str, token: int, ttl: timedelta,
                 took_over: str | None = None) -> None:
        self.state = state
        self.account = account
        self.token = token
        self.ttl = ttl
        self.took_over = took_over
        self.lost = False  # a renewal found the lease taken by another holder
        self._stop = threading.Event()
        self._beat: threading.Thread | None = None

    def start(self) -> None:
        """Renew the lease every third of its TTL from a background thread."""
        self._beat = threading.Thread(target=self._heartbeat, daemon=True,
                                      name=f"repair-lease {self.account}")
        self._beat.start()

    def _heartbeat(self) -> None:
        every = self.ttl.total_seconds() / BEATS_PER_TTL
        while not self._stop.wait(every):
            try:
                renewed = self.state.renew_lease(self.account, self.token, self.ttl)
            except Exception:  # a database hiccup: the next beat (or the fence) tries again
                log.debug("verify --repair %s: a lease renewal failed", self.account,
                          exc_info=True)
                continue
            if not renewed:
                self.lost = True  # the next fence stops the repair
                return

    def fence(self) -> None:
        """Before a write batch: renew the lease, or raise LeaseLost (writing nothing)
        when another holder took it since."""
        if self.lost or not self.state.renew_lease(self.account, self.token, self.ttl):
            self.lost = True
            raise LeaseLost(account=self.account)

    def release(self) -> None:
        """Stop the heartbeat, then give the lease back (a no-op once another holder took
        it); the due time stays. The heartbeat ends first: a renewal after the release
        would leave a lease nobody holds in the way of the replicas until it lapsed."""
        self._stop.set()
        if self._beat is not None:
            self._beat.join()
        self.state.release_lease(self.account, self.token)


def take_lease(state: StateStore, account: str, owner: str, ttl: timedelta | None = None,
               *, wait: float = 0.0, sleep: Callable[[float], None] = time.sleep,
               clock: Callable[[], float] = time.monotonic,
               purpose: str = "verify --repair") -> RepairLease | LeaseHeld:
    """Take ``account``'s lease for ``owner`` as a cycle does, trying again for up to
    ``wait`` seconds while a live holder has it; a lease taken is kept alive by its
    heartbeat (``ttl``: each renewal's length, :data:`REPAIR_LEASE_TTL` by default)
    until :meth:`RepairLease.release`. ``purpose`` names the taker in the log line of a
    takeover (the daemon's scheduled audit takes leases too)."""
    ttl = ttl or REPAIR_LEASE_TTL
    deadline = clock() + max(0.0, wait)
    while True:
        before = state.account(account)
        token = state.acquire_lease(account, owner, ttl, holder=before.lease_owner)
        if token is not None:
            took = before.lease_owner if before.lease_owner not in (None, owner) else None
            if took is not None:
                log.info("%s took over %s from %s (its lease expired without being "
                         "released)", purpose, account, took)
            lease = RepairLease(state, account, token, ttl, took)
            lease.start()
            return lease
        left = deadline - clock()
        if left <= 0:
            return LeaseHeld(account, before.lease_owner, before.lease_until)
        sleep(min(POLL_SECONDS, left))
