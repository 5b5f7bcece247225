"""The planner: links, CRM changes and calendar changes in, a list of pair plans out.

Pure: no I/O, no clock, no randomness. Everything it needs arrives in
:class:`PlanInput`, so it is tested with plain tables of (base, CRM side, calendar side)
cases. The rules, per pair:

* only one side changed: copy it across; both changed: :func:`~syncd.engine.merge.merge`;
* an activity deleted, purged, handed to another owner or stripped of its date deletes
  its event (an explicit CRM signal); calendar edits lost that way are kept as conflicts;
* an event deleted in the calendar (an explicit provider signal) follows
  ``on_calendar_delete``; if the activity was edited meanwhile, the event is re-created
  instead, because an acknowledged CRM edit must not vanish;
* absence from a listing is never a deletion; an event that left the window is untracked;
* events syncd did not create are imported only with ``import_events``, never recurring
  series, and never outside the window;
* copies made by another two-way sync of the same calendar (Pipedrive's own) are echoes,
  neither imported nor sent back (:mod:`syncd.engine.echo`);
* who each calendar write e-mails, and which guests hold an invitation afterwards, is
  decided by :mod:`syncd.engine.guestmail` (docs/guest-mail.md); a meeting someone else
  organises never has its guests written.
"""

from __future__ import annotations

from connectors.base import RemoteEvent
from syncd.engine.actions import (
    CreateEvent,
    DeleteActivity,
    DeleteEvent,
    PairPlan,
    UpdateActivity,
    UpdateEvent,
)
from syncd.engine.guestmail import DELETE, MATERIAL, Mail, delete_mail, write_mail
from syncd.engine.merge import merge
from syncd.engine.plan_unpaired import plan_foreign, plan_unlinked
from syncd.engine.planning import (
    PlanInput,
    PlanPolicy,
    amend,
    cal_key,
    crm_key,
    crm_projection,
    guest_rules,
    in_window,
    invited_now,
    keep_described,
    landed,
    quarantine_event,
)
from syncd.engine.policy import OnCalendarDelete
from syncd.model import Activity, Projection, Tombstone, activity_changes, field_to_json
from syncd.pairs import Conflict, SyncPair

__all__ = ["PlanInput", "PlanPolicy", "cal_key", "crm_key", "in_window", "plan_account"]


def plan_account(data: PlanInput) -> list[PairPlan]:
    """Plan one cycle: one :class:`PairPlan` per touched pair (no-op pairs omitted)."""
    by_event = {link.event_id: link for link in data.links.values() if link.event_id}
    by_marker = {link.sync_uid: link for link in data.links.values()}
    by_uid = {a.sync_uid: a for a in data.crm.values()}
    pairs: dict[int, RemoteEvent] = {}
    plans: list[PairPlan] = []

    for event in data.calendar:
        link = by_event.get(event.event_id)
        if link is None and event.marker:
            link = by_marker.get(event.marker)
            if link is not None and link.event_id and link.event_id != event.event_id:
                # Ours, but not the event this link tracks: a leftover copy. Never
                # deleted on a guess; counted so that reconciliation shows it.
                plans.append(PairPlan(link.activity_id, event.event_id, skip="duplicate_marker"))
                continue
        if link is not None:
            pairs[link.activity_id] = event
        elif event.marker and event.marker in by_uid:
            pairs[by_uid[event.marker].id] = event  # ours, link lost: adopt it
        elif not event.deleted and not event.left_window:
            plans.append(plan_foreign(event, data))

    touched = set(pairs) | set(data.crm) | {a for a, link in data.links.items() if link.pending}
    for activity_id in sorted(touched):
        plan = _plan_pair(
            data.crm.get(activity_id), pairs.get(activity_id), data.links.get(activity_id), data
        )
        if plan is not None and (not plan.is_noop or plan.skip):
            plans.append(plan)
    return plans


def _kept_conflict(mail: Mail) -> tuple[Conflict, ...]:
    """What a withheld delete leaves behind, said where a person will look."""
    if DELETE not in mail.withheld:
        return ()
    return (Conflict("event", None, f"kept in the calendar: deleting it would e-mail "
                     f"{len(mail.invited)} invited guest(s) a cancellation", "calendar",
                     "guest_mail"),)


def _plan_pair(
    item: Activity | Tombstone | None,
    event: RemoteEvent | None,
    link: SyncPair | None,
    data: PlanInput,
) -> PairPlan | None:
    policy = data.policy
    activity_id = item.id if item is not None else (link.activity_id if link else None)
    assert activity_id is not None
    if event is not None and event.left_window:
        event = None  # untracked: never a delete, and nothing to read
    if event is not None and not event.deleted and (event.problem or event.projection is None):
        return quarantine_event(event, data, activity_id)

    if item is not None:
        crm_now = crm_projection(item, policy)
    else:
        crm_now = link.crm_base if link else None
    crm_gone = item is not None and crm_now is None
    marker = item.sync_uid if item is not None else (link.sync_uid if link else "")

    if link is not None and not link.pending and link.event_id is None:
        # Unlinked after its event was deleted (on_calendar_delete = "unlink"): the
        # activity stays and is no longer synced, until it is deleted itself.
        return PairPlan(activity_id, None, link="drop") if crm_gone else None
    if link is not None and link.pending and event is None and activity_id in data.unsettled:
        return PairPlan(activity_id, None, skip="unsettled")  # looked up again next cycle
    if link is None or link.pending:
        return plan_unlinked(item, event, link, crm_now, crm_gone, marker, data)

    read = event.projection if event is not None and not event.deleted else link.cal_base
    if event is not None and not event.deleted:
        link = landed(link, read)
    cal_now = keep_described(policy, link, read)
    cal_gone = event is not None and event.deleted
    etag_now = event.etag if event is not None else link.etag
    organizer = event.organizer if event is not None and not event.deleted else link.organizer
    theirs = organizer is not None
    rules = guest_rules(policy)
    read_attendees = event.attendees if event is not None and not event.deleted else None
    invited = frozenset() if theirs else invited_now(policy, link, cal_now, read_attendees)
    base = PairPlan(activity_id, link.event_id, crm_now=crm_now, cal_now=cal_now,
                    etag_now=etag_now, generation=link.generation, marker=marker,
                    invited=invited, organizer=organizer)

    if crm_gone and cal_gone:
        return amend(base, link="drop")
    if crm_gone:
        assert link.event_id is not None
        lost = _calendar_edits_lost(cal_now, link.cal_base)
        # Handing the activity to another owner is bookkeeping: the guests keep the
        # invitation they hold, and the new owner's calendar gets the meeting silently.
        moved = isinstance(item, Activity) and not item.deleted and (
            item.owner_id != policy.owner_id)
        mail = delete_mail(rules, invited=invited, last=cal_now, bookkeeping=moved,
                           theirs=theirs)
        if DELETE in mail.withheld:
            return amend(base, link="drop", conflicts=lost + _kept_conflict(mail))
        return amend(base, cal_write=DeleteEvent(link.event_id, etag_now, mail.notify,
                                                 mail.recipients),
                     link="drop", conflicts=lost)
    if cal_gone:
        assert crm_now is not None
        crm_edited = link.crm_base is None or crm_now != link.crm_base
        if policy.on_calendar_delete == OnCalendarDelete.RECREATE or crm_edited:
            # A new event: nobody holds an invitation to it, and re-creating is ours.
            mail = write_mail(rules, invited=frozenset(), before=None, after=crm_now,
                              fields=MATERIAL, bookkeeping=True, theirs=theirs)
            return amend(base, cal_write=CreateEvent(marker, link.generation + 1, crm_now,
                                                     mail.notify, invited=mail.invited),
                         link="save", generation=link.generation + 1, event_id=None,
                         invited=mail.invited, organizer=None)
        if policy.on_calendar_delete == OnCalendarDelete.DELETE_ACTIVITY:
            return amend(base, crm_write=DeleteActivity(activity_id), link="drop")
        # unlink: remember the pair without an event, so a later edit does not re-create it
        return amend(base, link="save", event_id=None, etag_now=None, cal_now=None)

    if crm_now is None or cal_now is None:
        return amend(base, skip="unknown_state")  # a full listing will settle it
    crm_updated = item.updated_at if isinstance(item, Activity) else None
    result = merge(crm_now, cal_now, link.crm_base, link.cal_base,
                   policy=policy.conflict_policy, carried=policy.carried,
                   crm_updated=crm_updated, cal_updated=event.updated if event else None)
    crm_write = None
    if result.to_crm:
        changes = activity_changes(result.merged, result.to_crm, policy.owner_tz,
                                   policy.done_style)
        crm_write = UpdateActivity(activity_id, changes, result.to_crm,
                                   base=item if isinstance(item, Activity) else None)
    cal_write: UpdateEvent | None = None
    # Someone else's meeting: guest edits stay in the CRM (docs/guest-mail.md).
    to_calendar = result.to_calendar - {"guests"} if theirs else result.to_calendar
    mail = write_mail(rules, invited=invited, before=cal_now, after=result.merged,
                      fields=to_calendar, bookkeeping=policy.backfill, theirs=theirs)
    fields = to_calendar - mail.withheld
    if fields and mail.invited != invited:
        fields |= {"guests"}  # who is an attendee and who is only described changes
    if (read is not None and cal_now != read and not theirs and "description" not in
            mail.withheld and (rules.silent_writes or not mail.invited)):
        # The Guests: paragraph a description edit dropped (keep_described) is ours: it
        # goes back with the description, silently, or the event would drift from the CRM.
        fields |= {"description"}
    if fields:
        assert link.event_id is not None
        cal_write = UpdateEvent(link.event_id, etag_now, result.merged, fields, marker,
                                mail.notify, mail.invited, mail.recipients, theirs)
    elif event is not None and event.marker != link.sync_uid and event.etag != link.etag:
        # Our marker is missing (an import whose adoption failed, or an app that dropped
        # it): write it back. Never for the echo of our own write, whose etag we stored,
        # so a server that strips unknown properties cannot start a write loop.
        assert link.event_id is not None
        cal_write = UpdateEvent(link.event_id, etag_now, cal_now, frozenset(), marker, False,
                                invited, theirs=theirs)
    moved = (crm_now != link.crm_base or cal_now != link.cal_base or etag_now != link.etag
             or mail.invited != (link.invited or frozenset()) or organizer != link.organizer
             or bool(link.sent))
    return amend(base, crm_write=crm_write, cal_write=cal_write,
                 link="save" if (crm_write or cal_write or moved) else "keep",
                 conflicts=result.conflicts,
                 invited=mail.invited if cal_write is not None else invited)


def _calendar_edits_lost(cal_now: Projection | None, cal_base: Projection | None
                         ) -> tuple[Conflict, ...]:
    """Calendar edits that a CRM-side delete overrides, kept as conflicts."""
    if cal_now is None or cal_base is None:
        return ()
    return tuple(
        Conflict(name, None, field_to_json(name, cal_now.get(name)), "crm", "crm_delete")
        for name in sorted(cal_now.diff(cal_base))
    )


