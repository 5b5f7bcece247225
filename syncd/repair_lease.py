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
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from syncd.errors import LeaseLost
from syncd.store.state import StateStore

log = logging.getLogger("syncd.verify")

#: Seconds between two tries for a held lease while waiting for it.
POLL_SECONDS = 1.0


@dataclass(frozen=True)
class LeaseHeld:
    """Another live holder has the account's lease (a cycle, or another repair):
    ``holder`` (host:pid, or a replica's name) and ``until`` when, unless renewed."""

    account: str
    holder: str | None
    until: datetime | None


@dataclass(frozen=True)
class RepairLease:
    """The account's lease as a repair holds it (``token``: its fencing token;
    ``took_over``: the holder whose expired lease it took, if any)."""

    state: StateStore
    account: str
    token: int
    ttl: timedelta
    took_over: str | None = None

    def fence(self) -> None:
        """Before a write batch: renew the lease, or raise LeaseLost (writing nothing)
        when another holder took it since."""
        if not self.state.renew_lease(self.account, self.token, self.ttl):
            raise LeaseLost(account=self.account)

    def release(self) -> None:
        """Give the lease back (a no-op once another holder took it); the due time stays."""
        self.state.release_lease(self.account, self.token)


def take_lease(state: StateStore, account: str, owner: str, ttl: timedelta, *,
               wait: float = 0.0, sleep: Callable[[float], None] = time.sleep,
               clock: Callable[[], float] = time.monotonic) -> RepairLease | LeaseHeld:
    """Take ``account``'s lease for ``owner`` as a cycle does, trying again for up to
    ``wait`` seconds while a live holder has it."""
    deadline = clock() + max(0.0, wait)
    while True:
        before = state.account(account)
        token = state.acquire_lease(account, owner, ttl, holder=before.lease_owner)
        if token is not None:
            took = before.lease_owner if before.lease_owner not in (None, owner) else None
            if took is not None:
                log.info("verify --repair took over %s from %s (its lease expired without "
                         "being released)", account, took)
            return RepairLease(state, account, token, ttl, took)
        left = deadline - clock()
        if left <= 0:
            return LeaseHeld(account, before.lease_owner, before.lease_until)
        sleep(min(POLL_SECONDS, left))
