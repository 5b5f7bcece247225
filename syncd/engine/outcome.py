"""What a cycle and each of its pairs came to: outcomes, results and their counts.

Plain data, no prose: the engine says *what* happened (an ``Outcome`` and a ``Note``
saying why a cycle stopped early, both from the state store's status machine, and the
error object itself); the service words it through ``syncd.report``. Every count in a
report comes from here, so a dry run, a real run and a replanned pair are counted by
the same rules.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import StrEnum

from syncd.engine.actions import (
    CreateActivity,
    CreateEvent,
    DeleteActivity,
    DeleteEvent,
    PairPlan,
    UpdateActivity,
    UpdateEvent,
)
from syncd.engine.guards import count_guest_emails
from syncd.errors import LeaseLost
from syncd.store.status import Note, Outcome

__all__ = ["CALENDAR_WRITES", "CycleReport", "LeaseLost", "Note", "Outcome", "PairResult",
           "PairStatus", "tally", "tally_plans", "write_name"]


#: The counts of writes that reached the calendar.
CALENDAR_WRITES = ("events_created", "events_updated", "events_deleted")


@dataclass
class CycleReport:
    """What one cycle did, for the CLI, the status table and the tests.

    ``error`` is the object that failed, refused (``SyncRefused``) or skipped
    (``AccountUnavailable``) the cycle; ``note`` says why a cycle that did not fail
    stopped short; ``message`` is their sentence, set by the caller that words them.
    """

    account: str
    outcome: Outcome = Outcome.OK
    counts: Counter[str] = field(default_factory=Counter)
    message: str | None = None
    plans: list[PairPlan] = field(default_factory=list)  # only when the cycle keeps them
    error: BaseException | None = None
    note: Note | None = None

    @property
    def wrote_calendar(self) -> bool:
        """Whether a write of this cycle reached the calendar (its provider may notify
        syncd of it: the push channel's liveness check)."""
        return any(self.counts[name] for name in CALENDAR_WRITES)

    def end(self, outcome: Outcome, note: Note | None = None, *,
            error: BaseException | None = None) -> None:
        self.outcome, self.note, self.error = outcome, note, error

    def line(self) -> str:
        counts = ", ".join(f"{k} {v}" for k, v in sorted(self.counts.items()) if v)
        if not counts and self.outcome in (Outcome.OK, Outcome.DRY_RUN):
            counts = "no changes"
        text = f"{self.account}: {self.outcome}"
        text += f": {counts}" if counts else ""
        return text + (f" ({self.message})" if self.message else "")


class PairStatus(StrEnum):
    """Where one pair stands after the executor has been at it."""

    DONE = "done"  # every write succeeded (or the goal was met); bases recorded
    SKIPPED = "skipped"  # the plan says why nothing is done (``plan.skip``)
    HELD = "held"  # waits for the hourly guest e-mail cap
    DELETION_HELD = "deletion-held"  # a deletion waits for an admin (the daily budget)
    QUARANTINED = "quarantined"  # set aside until it changes or an admin retries it
    FAILED = "failed"  # a write failed; retried next cycle
    STALE = "stale"  # the event changed under us: read and planned again
    STALE_ACTIVITY = "stale-activity"  # the activity changed under a read-check-write source
    UNSENT = "unsent"  # its batch was not sent (deadline, rate limit): next cycle


@dataclass(frozen=True)
class PairResult:
    """One pair's result. ``crm_written``: its CRM write succeeded (counted even when the
    calendar write then failed); ``notified``: its calendar write e-mailed its guests."""

    plan: PairPlan
    status: PairStatus
    crm_written: bool = False
    notified: bool = False
    error: BaseException | None = None


def write_name(write: object) -> str:
    """The count a write adds to."""
    return {
        UpdateActivity: "activities_updated", CreateActivity: "activities_imported",
        DeleteActivity: "activities_deleted", CreateEvent: "events_created",
        UpdateEvent: "events_updated", DeleteEvent: "events_deleted",
    }[type(write)]


def tally(counts: Counter[str], result: PairResult) -> None:
    """Add one pair's result to a cycle's counts: what was done, not what was planned."""
    plan = result.plan
    if result.crm_written and plan.crm_write is not None:
        counts[write_name(plan.crm_write)] += 1
    if result.notified:
        counts["notifying_writes"] += 1
        counts["guest_emails"] += count_guest_emails([plan])
    match result.status:
        case PairStatus.DONE:
            if plan.cal_write is not None:
                counts[write_name(plan.cal_write)] += 1
            counts["conflicts"] += len(plan.conflicts)
        case PairStatus.SKIPPED:
            counts[f"skipped_{plan.skip}"] += 1
        case PairStatus.HELD:
            counts["held_by_guest_cap"] += 1
        case PairStatus.DELETION_HELD:
            counts["deletions_held"] += 1
        case PairStatus.QUARANTINED:
            counts["quarantined"] += 1
        case PairStatus.FAILED:
            counts["failed"] += 1
        case PairStatus.STALE:
            counts["stale_etag"] += 1
        case PairStatus.STALE_ACTIVITY:
            counts["stale_activity"] += 1


def tally_plans(counts: Counter[str], plans: Iterable[PairPlan]) -> None:
    """What a dry run would do (a real run counts each write as it succeeds)."""
    for plan in plans:
        if plan.skip:
            counts[f"skipped_{plan.skip}"] += 1
        if plan.quarantine:
            counts["quarantined"] += 1
        for write in (plan.crm_write, plan.cal_write):
            if write is not None:
                counts[write_name(write)] += 1
        counts["conflicts"] += len(plan.conflicts)
