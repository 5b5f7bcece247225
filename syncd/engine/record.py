"""Bookkeeping: the new merge bases of finished pairs, recorded a batch at a time.

A pair's bases move only once every write of the pair has succeeded. Finished pairs are
collected and written to the state store in one transaction per batch (with SQLite's
synchronous=FULL every commit is an fsync); until then a create stays pending, which a
crash turns into a read-before-write, never a duplicate.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from connectors.base import CreateOp, DeleteOp, RemoteEvent, WriteOp
from syncd.engine.actions import CreateEvent, PairPlan, UpdateActivity
from syncd.engine.guards import count_deletions
from syncd.engine.plan import cal_key, crm_key
from syncd.model import Activity, DoneStyle, Projection, project_activity
from syncd.pairs import Conflict, SyncPair
from syncd.store.base import utcnow
from syncd.store.state import StateStore


@dataclass
class Finished:
    """Finished pairs waiting to be recorded together."""

    saves: list[SyncPair] = field(default_factory=list)
    drops: list[int] = field(default_factory=list)
    conflicts: list[tuple[int | None, str | None, Conflict]] = field(default_factory=list)
    cleared: list[str] = field(default_factory=list)
    meetings: list[tuple[str, int]] = field(default_factory=list)  # (ical_uid, activity)
    writes: list[tuple[str, str | None, str]] = field(default_factory=list)  # the write log
    deletions: int = 0  # propagated deletions done (the daily deletion budget counts them)

    def __bool__(self) -> bool:
        return bool(self.saves or self.drops or self.conflicts or self.cleared
                    or self.meetings or self.writes or self.deletions)


class Bookkeeper:
    """Collects finished pairs of one account and records them in batches."""

    def __init__(self, account: str, state: StateStore, done_style: DoneStyle, *,
                 token: int | None = None, now: datetime | None = None) -> None:
        """``now``: the cycle's time, which the deletions it records are counted at."""
        self.account = account
        self.now = now
        self.token = token  # the cycle's lease: every record is fenced by it
        self.state = state
        self.done_style = done_style
        self._failing: set[str] | None = None  # read when a pair first finishes
        self._done = Finished()

    @property
    def failing(self) -> set[str]:
        """Items with a failure on record (read once, when first needed: an idle cycle
        finishes no pair and so never asks)."""
        if self._failing is None:
            self._failing = self.state.failing_keys(self.account)
        return self._failing

    def finish(self, plan: PairPlan, crm_after: Activity | None, event: RemoteEvent | None
               ) -> None:
        """Note the new merge bases of a pair whose writes all succeeded."""
        done = self._done
        done.deletions += count_deletions([plan])
        done.conflicts.extend((plan.activity_id, plan.event_id, c) for c in plan.conflicts)
        if plan.link == "drop" and plan.activity_id is not None:
            done.drops.append(plan.activity_id)
        elif plan.link == "save" and plan.activity_id is not None:
            crm_base = (project_activity(crm_after, self.done_style) if crm_after
                        else plan.crm_now)
            crm_base = kept_as_sent(crm_base, plan) if crm_after else crm_base
            cal_base = (event.projection if event is not None and event.projection is not None
                        else plan.cal_now)
            done.saves.append(SyncPair(
                plan.activity_id, plan.marker or (crm_after.sync_uid if crm_after else ""),
                event.event_id if event is not None else plan.event_id,
                event.etag if event is not None else plan.etag_now,
                crm_base, cal_base, plan.generation, pending=False, invited=plan.invited,
                organizer=plan.organizer))
        if (isinstance(plan.cal_write, CreateEvent) and event is not None and event.ical_uid
                and plan.activity_id is not None):
            # Our event's meeting: attendees' copies of it are never imported elsewhere.
            done.meetings.append((event.ical_uid, plan.activity_id))
        keys = [cal_key(plan.event_id)] if plan.event_id else []
        keys += [crm_key(plan.activity_id)] if plan.activity_id is not None else []
        done.cleared.extend(k for k in keys if k in self.failing)

    def keep_conflicts(self, plan: PairPlan) -> None:
        """Record the pair's conflicts now, before its writes (recording them again when
        the pair finishes adds nothing: the store keeps one row per open conflict)."""
        if plan.conflicts:
            self.state.record(self.account, token=self.token, conflicts=[
                (plan.activity_id, plan.event_id, c) for c in plan.conflicts])

    def wrote(self, op: WriteOp, event: RemoteEvent | None) -> None:
        """Log a calendar write that succeeded (``syncd verify`` checks that no event
        without our marker is among them)."""
        kind = "create" if isinstance(op, CreateOp) else \
            "delete" if isinstance(op, DeleteOp) else "update"
        event_id = event.event_id if event is not None else getattr(op, "event_id", None)
        if event_id:
            self._done.writes.append((event_id, event.etag if event is not None else None,
                                      kind))

    def flush(self) -> None:
        """Record everything finished since the last flush, in one transaction."""
        done, self._done = self._done, Finished()
        if done:
            self.state.record(self.account, saves=done.saves, drops=done.drops,
                              conflicts=done.conflicts, cleared=done.cleared,
                              meetings=done.meetings, writes=done.writes,
                              deletions=(self.now or utcnow(), done.deletions),
                              token=self.token)
            self.failing.difference_update(done.cleared)


def kept_as_sent(crm_base: Projection | None, plan: PairPlan) -> Projection | None:
    """The CRM's base after a calendar edit was written to it: in the fields written, the
    value sent, not the CRM's own form of it.

    A CRM may hold what it was sent in a form of its own (Pipedrive keeps the public text
    and syncd shows it with the links back to the linked deal, person and organization;
    a store may trim or cut). Taking that form as the base would make both sides look
    unchanged while they differ, for good (``syncd verify``: drift). With the value sent
    as the base, the next cycle sees the CRM's form as a change and writes it to the
    event: the activity is the record. Guests are left out: a calendar keeps the
    attendees a CRM cannot hold (rooms, ``urn:`` addresses) by design.
    """
    write = plan.crm_write
    if crm_base is None or plan.cal_now is None or not isinstance(write, UpdateActivity):
        return crm_base
    sent = plan.cal_now
    kept = {name: sent.get(name) for name in write.fields - {"guests"}
            if crm_base.get(name) != sent.get(name)}
    return crm_base.replace(kept) if kept else crm_base
