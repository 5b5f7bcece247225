"""One pair's writes: its CRM write, made at once, and its calendar write as an op.

The CRM write goes first (each source write is one op with one result; its error fails
only that pair). An import is linked the moment its activity exists, before the marker
is written to the event, so a crash in between never imports the event twice.
"""

from __future__ import annotations

from dataclasses import replace

from connectors.base import CreateOp, DeleteOp, UpdateOp, WriteOp
from syncd.crm.source import ApplyChanges, CrmSource, ImportActivity, RemoveActivity, SourceOp
from syncd.engine.actions import (
    CreateActivity,
    CreateEvent,
    DeleteActivity,
    DeleteEvent,
    PairPlan,
    UpdateActivity,
    UpdateEvent,
)
from syncd.engine.plan import PlanPolicy
from syncd.engine.settle import import_uid
from syncd.failpoints import failpoint
from syncd.model import Activity, project_activity
from syncd.pairs import SyncPair
from syncd.store.state import StateStore


def calendar_op(plan: PairPlan) -> WriteOp:
    """The connector op of the pair's calendar write (keyed by the activity id)."""
    key = str(plan.activity_id)
    write = plan.cal_write
    if isinstance(write, CreateEvent):
        return CreateOp(key, write.marker, write.generation, write.projection, write.notify,
                        write.retry, write.invited)
    if isinstance(write, UpdateEvent):
        marker = write.marker or plan.marker or ""
        return UpdateOp(key, write.event_id, write.etag, write.projection, write.fields,
                        marker, write.notify, write.invited, write.theirs)
    assert isinstance(write, DeleteEvent)
    return DeleteOp(key, write.event_id, write.etag, write.notify)


class CrmWriter:
    """Makes the CRM writes of one account's pairs."""

    def __init__(self, account: str, source: CrmSource, state: StateStore, *,
                 token: int | None = None) -> None:
        self.account = account
        self.token = token  # the cycle's lease: the links it saves are fenced by it
        self.source = source
        self.state = state

    def claim_import(self, plan: PairPlan) -> PairPlan:
        """Claim the meeting an import is made from; skip it if another account has it.

        The planner already skips meetings held elsewhere; this closes the race of two
        accounts importing copies of one meeting in the same moment.
        """
        write = plan.crm_write
        if not isinstance(write, CreateActivity) or write.ical_uid is None:
            return plan
        if self.state.claim_meeting(self.account, write.ical_uid,
                                    token=self.token) == self.account:
            return plan
        return PairPlan(None, plan.event_id, skip="meeting_elsewhere")

    def write(self, plan: PairPlan, policy: PlanPolicy) -> tuple[PairPlan, Activity | None]:
        """Make the pair's CRM write; returns the plan (an import's now names its
        activity) and the activity as written. Raises the write's error."""
        write = plan.crm_write
        if isinstance(write, UpdateActivity):
            return plan, self._one(ApplyChanges(write.activity_id, write.changes,
                                                base=write.base))
        if isinstance(write, DeleteActivity):
            self._one(RemoveActivity(write.activity_id))
            return plan, None
        if isinstance(write, CreateActivity):
            assert plan.event_id is not None
            uid = import_uid(self.account, plan.event_id)
            activity = self._one(ImportActivity(uid, write.owner_id, write.type, write.changes))
            assert activity is not None
            failpoint("after_crm_import")  # the activity made, its link not yet saved
            # SyncPair at once, before the marker write: if that fails the event is still
            # known as this activity's and is never imported a second time. No etag yet:
            # that tells the next cycle the marker still has to be written.
            if write.ical_uid is not None:
                self.state.claim_meeting(self.account, write.ical_uid, activity.id,
                                         token=self.token)
            plan = replace(plan, activity_id=activity.id, marker=uid)
            crm_now = project_activity(activity, policy.done_style)
            self.state.save_link(self.account, SyncPair(activity.id, uid, plan.event_id, None,
                                                    crm_now, plan.cal_now,
                                                    invited=plan.invited,
                                                    organizer=plan.organizer),
                                 self.token)
            return replace(plan, crm_now=crm_now), activity
        return plan, None

    def _one(self, op: SourceOp) -> Activity | None:
        """One CRM write; its error is raised, so the pair fails as an item."""
        result = self.source.write([op])[0]
        if result.error is not None:
            raise result.error
        return result.activity
