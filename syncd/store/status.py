"""The account status machine: which states an account can be in, and what moves it.

Pure: the state store reads the account's row, asks this module what comes next and
writes the answer in the same transaction. Nothing else writes the status columns.

======================  ===============================================  ==============
event                   condition                                        status after
======================  ===============================================  ==============
cycle ends ok           --                                               ok (failures 0,
                                                                         no cool-down,
                                                                         quota streak 0)
cycle ends partial      items to retry (``Note.RETRY_NEXT``)             unchanged,
                                                                         failures 0,
                                                                         quota streak 0
cycle ends partial      lease lost, deadline                             unchanged
cycle refused           guard ``guest-updates``                          paused
cycle refused           any other guard                                  flagged
cycle failed            ``AuthFailed``                                   needs_reauth
cycle failed            ``QuotaCooldown``                                cooldown until
                                                                         now + its rest,
                                                                         doubled per one
                                                                         in a row (1 h,
                                                                         2 h .. 24 h)
cycle failed            any other ``AccountCooldown``                    cooldown until
                                                                         now + seconds
cycle failed            anything else                                    failing, backs
                                                                         off 1 min..1 h
failed before cycle     ``AuthFailed`` / anything else (no back-off)     needs_reauth /
                                                                         failing
dry run, skip, busy     --                                               unchanged
state invariant broken  a pair breaks one (syncd.invariant_check)       paused
credentials changed     needs_reauth                                     ok
signed in again         needs_reauth, failing                            ok (failures 0)
resumed by an admin     any                                              ok (all reset)
======================  ===============================================  ==============

The quota streak (``quota_cooldowns``) counts the usage limits met in a row. It is stored
with the account, so a restart does not forget it and start over at an hour, and only a
cycle that got through the provider (ok, or partial with items to retry) resets it: a
failure of another kind in between (a network outage) says nothing about the limit.

A cycle may start unless the account is paused or needs re-authorisation, rests
(cooldown/failing before ``cooldown_until``), or is flagged without ``--force-delete``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, Protocol

from syncd.errors import (
    AccountCooldown,
    AccountUnavailable,
    AuthFailed,
    QuotaCooldown,
    SyncRefused,
)

MAX_BACKOFF = timedelta(hours=1)
#: The longest rest of a usage limit met again and again (failure mode 7: Google's
#: "Calendar usage limits exceeded" lock lasts hours; the reference caps the rest at a day).
MAX_QUOTA_REST = timedelta(hours=24)


class AccountStatus(StrEnum):
    """Where an account stands between cycles."""

    OK = "ok"
    NEEDS_REAUTH = "needs_reauth"  # its credentials were refused
    COOLDOWN = "cooldown"  # a provider's long usage limit; rests until cooldown_until
    PAUSED = "paused"  # the guest e-mail breaker tripped; waits for 'syncd resume'
    FLAGGED = "flagged"  # a deletion or scope guard refused; waits for --force-delete
    FAILING = "failing"  # cycles keep failing; backs off until cooldown_until


class Outcome(StrEnum):
    """How one cycle of one account ended."""

    OK = "ok"
    PARTIAL = "partial"  # something waits for the next cycle
    FAILED = "failed"  # an account-wide error (the cycle's ``error``)
    REFUSED = "refused"  # a guard refused the plan (a ``SyncRefused`` error)
    SKIPPED = "skipped"  # the account rests or waits for someone
    BUSY = "busy"  # another replica holds the account's lease
    DRY_RUN = "dry-run"


class Note(StrEnum):
    """Why a cycle that did not fail still stopped short."""

    RETRY_NEXT = "retry-next"  # some changes will be retried next cycle
    LEASE_LOST = "lease-lost"  # another replica took over the account
    DEADLINE = "deadline"  # the cycle reached its deadline; the next one goes on
    LEASE_BUSY = "lease-busy"  # another replica holds the lease right now


class Row(Protocol):
    """What the machine reads of an account's row."""

    @property
    def status(self) -> str: ...
    @property
    def status_reason(self) -> str | None: ...
    @property
    def cooldown_until(self) -> datetime | None: ...
    @property
    def failures(self) -> int: ...
    @property
    def quota_cooldowns(self) -> int: ...


@dataclass(frozen=True)
class CycleEnd:
    """How a cycle ended, as the status machine takes it.

    ``message`` is the sentence shown by ``syncd status`` and ``reason`` a refusal's
    short reason kept in the status, both worded by the caller. ``started`` is False
    for a failure before the cycle could start (a missing secret, a refused sign-in):
    nothing reached the provider, so there is no back-off.
    """

    outcome: Outcome
    counts: Mapping[str, int] = field(default_factory=dict)
    error: BaseException | None = None
    note: Note | None = None
    message: str | None = None
    reason: str | None = None
    started: bool = True


def unavailable(name: str, row: Row, now: datetime, *, force: bool = False
                ) -> AccountUnavailable | None:
    """Why the account may not start a cycle now, or None when it may."""
    status, until = row.status, row.cooldown_until
    resting = (status in (AccountStatus.COOLDOWN, AccountStatus.FAILING)
               and until is not None and until > now)
    if resting or status in (AccountStatus.NEEDS_REAUTH, AccountStatus.PAUSED) or (
            status == AccountStatus.FLAGGED and not force):
        return AccountUnavailable(account=name, status=status, reason=row.status_reason,
                                  until=until if resting else None)
    return None


def backoff(failures: int) -> timedelta:
    """How long an account rests after its ``failures``-th failure in a row."""
    return min(timedelta(seconds=60 * 2 ** (failures - 1)), MAX_BACKOFF)


def quota_rest(first: float, streak: int) -> timedelta:
    """How long an account rests after a usage limit (``first`` seconds the first time)
    when ``streak`` limits came right before it with no successful cycle between:
    doubled each time, never more than :data:`MAX_QUOTA_REST`."""
    first_rest = timedelta(seconds=max(0.0, first))
    if first_rest >= MAX_QUOTA_REST:
        return MAX_QUOTA_REST
    # (the exponent stops growing once the cap is reached: a streak of thousands is a day)
    doublings = min(max(0, streak), (MAX_QUOTA_REST // max(first_rest, timedelta(seconds=1)))
                    .bit_length())
    return min(first_rest * 2 ** doublings, MAX_QUOTA_REST)


def after_cycle(row: Row, end: CycleEnd, now: datetime) -> dict[str, Any]:
    """The columns to write when a cycle ends (empty: nothing to record)."""
    if end.outcome in (Outcome.DRY_RUN, Outcome.SKIPPED, Outcome.BUSY):
        return {}
    values: dict[str, Any] = {"last_run_at": now, "last_outcome": str(end.outcome),
                              "last_counts": dict(end.counts), "last_message": end.message}
    error = end.error
    if end.outcome == Outcome.OK:
        values.update(status=AccountStatus.OK, status_reason=None, failures=0,
                      cooldown_until=None, quota_cooldowns=0)
    elif end.outcome == Outcome.PARTIAL:
        if end.note == Note.RETRY_NEXT:
            values.update(failures=0, quota_cooldowns=0)
    elif end.outcome == Outcome.REFUSED:
        assert isinstance(error, SyncRefused)
        paused = error.guard == "guest-updates"
        values.update(status=AccountStatus.PAUSED if paused else AccountStatus.FLAGGED,
                      status_reason=end.reason)
    elif not end.started:
        auth = isinstance(error, AuthFailed)
        values.update(status=AccountStatus.NEEDS_REAUTH if auth else AccountStatus.FAILING,
                      status_reason=error.reason if isinstance(error, AuthFailed) else None,
                      failures=row.failures + 1, last_counts={})
    elif isinstance(error, AuthFailed):
        values.update(status=AccountStatus.NEEDS_REAUTH, status_reason=error.reason)
    elif isinstance(error, QuotaCooldown):
        values.update(status=AccountStatus.COOLDOWN, quota_cooldowns=row.quota_cooldowns + 1,
                      cooldown_until=now + quota_rest(error.seconds, row.quota_cooldowns))
    elif isinstance(error, AccountCooldown):
        values.update(status=AccountStatus.COOLDOWN,
                      cooldown_until=now + timedelta(seconds=error.seconds))
    else:  # any other failure: this account backs off, others go on
        failures = row.failures + 1
        values.update(status=AccountStatus.FAILING, failures=failures,
                      cooldown_until=now + backoff(failures))
    return values
