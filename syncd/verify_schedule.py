"""The daemon's own ``syncd verify``: each account audited read-only once per
``verify_hours`` (failure mode 12: a nightly reconciliation whose findings are a metric).

What it does with an account that is due, one at a time:

* Skips it, and looks again at the next tick, while the account may not sync
  (:func:`syncd.store.status.unavailable`: a usage limit, a back-off, a refused sign-in,
  a pause or a flag): an audit lists the whole window, and a resting account's provider
  must not be asked for that.
* Takes the account's lease as a cycle and ``verify --repair`` do
  (:func:`syncd.repair_lease.take_lease`, no waiting), so an audit never runs beside a
  cycle of the same account (whose half-done writes it would report as findings). A lease
  held by a cycle leaves the account due: the next tick tries again. Under the lease the
  account is checked to be still due, so two replicas do not audit it twice. The lease
  is the repair's short one renewed by a heartbeat (``REPAIR_LEASE_TTL``), so a daemon
  killed mid-audit keeps the account from the other replicas for seconds, not for a
  cycle's ``lease_seconds``, and a long audit's lease never lapses under it.
* Reads it through :func:`syncd.verify.read_audit` (a read-only connector: the same
  request path, budgets and pacing as a cycle's first listing), never repairs, gives
  the lease back (the account's due time is unchanged), and stores when it was read and
  its findings by kind in the account's row (:meth:`StateStore.verified`), where
  ``/metrics`` reads them, whichever replica audited. An account that could not be read
  is tried again after :data:`RETRY_AFTER` (by this process; a restart tries at once).

Spread: an account never audited is first due at the daemon's start plus a fraction of
:data:`FIRST_SPREAD` taken from its name, so the first audits after an upgrade do not all
start at once; afterwards each comes ``verify_hours`` after its own last one. Each tick
audits at most the share of the accounts that keeps every one within ``verify_hours``
(one at least), most overdue first.
"""

from __future__ import annotations

import logging
import math
import zlib
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum

from syncd.config import AccountConfig
from syncd.engine.audit import KINDS
from syncd.repair_lease import LeaseHeld, take_lease
from syncd.service import Service
from syncd.store.status import unavailable
from syncd.verify import read_audit

log = logging.getLogger("syncd.verify")

#: Seconds between two looks for accounts due an audit.
TICK_SECONDS = 60
#: Accounts never audited are first due within this long of the daemon's start.
FIRST_SPREAD = timedelta(hours=1)
#: An account whose audit could not read it is tried again this much later.
RETRY_AFTER = timedelta(hours=1)


class Result(StrEnum):
    """What a tick did with one account it found due."""

    AUDITED = "audited"  # read; its findings are stored
    UNREADABLE = "unreadable"  # the audit could not read it; tried again after RETRY_AFTER
    HELD = "held"  # a cycle (or a repair) holds its lease; tried again next tick
    RESTING = "resting"  # it may not sync now; tried again next tick
    DONE = "done"  # another replica audited it meanwhile


@dataclass(frozen=True)
class Ticked:
    """One account a tick looked at, and what came of it."""

    account: str
    result: Result


def first_due(name: str, started: datetime) -> datetime:
    """When an account never audited is first due: a fixed fraction of FIRST_SPREAD after
    ``started``, from its name (the same in every replica and after a restart)."""
    fraction = zlib.crc32(name.encode("utf-8")) / 2**32
    return started + FIRST_SPREAD * fraction


class VerifySchedule:
    """Audits the accounts of ``service`` once per ``every``, as :meth:`tick` is called.

    ``clock`` gives the time (aware, UTC); ``tick_seconds`` is how often the daemon calls
    :meth:`tick`, which sizes each tick's share of the accounts.
    """

    def __init__(self, service: Service, every: timedelta, *,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC),
                 tick_seconds: float = TICK_SECONDS) -> None:
        if every <= timedelta(0):
            raise ValueError("a verify schedule needs a positive interval")
        self.service, self.every, self.clock = service, every, clock
        self.tick_seconds = tick_seconds
        self.started = clock()
        self._unreadable: dict[str, datetime] = {}  # account -> when it may be tried again

    def due(self, accounts: list[AccountConfig], now: datetime) -> list[AccountConfig]:
        """The accounts due an audit at ``now``, most overdue first."""
        verified = {name: at for name, (at, _) in self.service.state.verify_results().items()}
        late: list[tuple[datetime, str, AccountConfig]] = []
        for account in accounts:
            last = verified.get(account.name)
            at = first_due(account.name, self.started) if last is None else last + self.every
            at = max(at, self._unreadable.get(account.name, at))
            if at <= now:
                late.append((at, account.name, account))
        return [account for _, _, account in sorted(late)]

    def share(self, accounts: int) -> int:
        """How many accounts one tick may audit: enough to go round within ``every``."""
        return max(1, math.ceil(accounts * self.tick_seconds / self.every.total_seconds()))

    def tick(self, stopping: Callable[[], bool] = lambda: False) -> list[Ticked]:
        """Audit the accounts due now, up to this tick's share; returns what was done
        with each account looked at. ``stopping``: checked before each account."""
        accounts = self.service.accounts()
        now = self.clock()
        ticked: list[Ticked] = []
        audits = 0
        for account in self.due(accounts, now):
            if stopping() or audits >= self.share(len(accounts)):
                break
            result = self._one(account, now)
            ticked.append(Ticked(account.name, result))
            audits += result in (Result.AUDITED, Result.UNREADABLE)
        return ticked

    def _one(self, account: AccountConfig, now: datetime) -> Result:
        state = self.service.state
        name = account.name
        if unavailable(name, state.account(name), now) is not None:
            return Result.RESTING
        # the repair's short lease and heartbeat, not a cycle's lease_seconds: a daemon
        # killed mid-audit frees the account for the replicas within REPAIR_LEASE_TTL
        lease = take_lease(state, name, self.service.replica, purpose="the scheduled audit")
        if isinstance(lease, LeaseHeld):
            log.debug("verify %s: its lease is held (%s); tried again at the next look",
                      name, lease.holder)
            return Result.HELD
        try:
            last = state.verify_results().get(name)
            if last is not None and last[0] + self.every > now:
                return Result.DONE
            audit, _ = read_audit(self.service, account, now)
        finally:
            lease.release()
        if audit.error is not None:
            self._unreadable[name] = now + RETRY_AFTER
            log.warning("verify %s: the scheduled audit could not read it (%s); it is tried "
                        "again in %d minutes", name, audit.error,
                        RETRY_AFTER.total_seconds() // 60)
            return Result.UNREADABLE
        self._unreadable.pop(name, None)
        found = Counter(f.kind for f in audit.findings)
        state.verified(name, now, {kind: found.get(kind, 0) for kind in KINDS})
        if found:
            log.warning("verify %s: %s (%d events, %d pairs); 'syncd verify --account %s' "
                        "lists them and what repairs each", name,
                        ", ".join(f"{found[k]} {k}" for k in KINDS if found.get(k)),
                        audit.events, audit.pairs, name)
        else:
            log.info("verify %s: clean (%d events, %d pairs)", name, audit.events, audit.pairs)
        return Result.AUDITED
