"""Planning what has no confirmed event yet, and events syncd did not create.

Pure, like :mod:`syncd.engine.plan`. The rules:

* an activity without an event gets one (silently when it is not news: a first sync, an
  activity time carried into the window, one handed over by another owner);
* our marker on an event we have no link for (a lost state DB, a create whose answer
  never arrived) adopts that event; without a base the conflict policy decides;
* our marker on another owner's activity (an invitation copy) is not ours to change;
* an event syncd did not create is imported only with ``import_events``: never a
  recurring series, never outside the window, never a meeting another account holds;
* a copy made by another two-way sync of the same calendar is an echo
  (:mod:`syncd.engine.echo`): neither imported nor sent back.
"""

from __future__ import annotations

from connectors.base import RemoteEvent
from syncd.engine.actions import (
    CreateActivity,
    CreateEvent,
    DeleteEvent,
    PairPlan,
    UpdateActivity,
    UpdateEvent,
)
from syncd.engine.guestmail import MATERIAL, write_mail
from syncd.engine.merge import merge
from syncd.engine.planning import (
    PlanInput,
    amend,
    crm_key,
    guest_rules,
    in_window,
    invited_now,
    quarantine_event,
)
from syncd.model import (
    FIELDS,
    Activity,
    Projection,
    Tombstone,
    activity_changes,
    projection_version,
)
from syncd.pairs import SyncPair


def plan_foreign(event: RemoteEvent, data: PlanInput) -> PairPlan:
    """An event syncd did not create: import it, or leave it alone."""
    policy = data.policy
    if not policy.import_events:
        return PairPlan(None, event.event_id, skip="foreign")
    if event.recurring:
        return PairPlan(None, event.event_id, skip="recurring")
    if event.problem or event.projection is None:
        return quarantine_event(event, data)
    if not in_window(event.projection.when, policy.window):
        return PairPlan(None, event.event_id, skip="outside_window")
    if data.echoes.of_event(event.projection) is not None:
        return PairPlan(None, event.event_id, skip="echo")
    if event.ical_uid is not None and event.ical_uid in data.meetings_elsewhere:
        # Another owner's copy of a meeting already in the CRM: one activity, not two.
        return PairPlan(None, event.event_id, skip="meeting_elsewhere")
    changes = activity_changes(event.projection, FIELDS, policy.owner_tz, policy.done_style)
    theirs = event.organizer is not None
    invited = frozenset() if theirs else invited_now(policy, None, event.projection,
                                                     event.attendees)
    return PairPlan(
        None,
        event.event_id,
        crm_write=CreateActivity(policy.owner_id, policy.import_type, changes, event.ical_uid),
        # Writing our marker adopts the event, so later CRM edits may update it.
        cal_write=UpdateEvent(event.event_id, event.etag, event.projection, frozenset(), None,
                              notify=False, invited=invited, theirs=theirs),
        link="save",
        cal_now=event.projection,
        etag_now=event.etag,
        invited=invited,
        organizer=event.organizer,
    )


def plan_unlinked(
    item: Activity | Tombstone | None,
    event: RemoteEvent | None,
    link: SyncPair | None,
    crm_now: Projection | None,
    crm_gone: bool,
    marker: str,
    data: PlanInput,
) -> PairPlan | None:
    """No confirmed event yet: create one, adopt the one we find, or forget the link."""
    policy = data.policy
    activity_id = item.id if item is not None else (link.activity_id if link else None)
    assert activity_id is not None
    if event is not None and not event.deleted:
        # Our marker on an event we have no link for: a lost state DB or a create whose
        # answer never arrived. Adopt it; without a base the policy decides differences.
        assert event.projection is not None
        base = PairPlan(activity_id, event.event_id, crm_now=crm_now, cal_now=event.projection,
                        etag_now=event.etag, generation=link.generation if link else 0,
                        marker=marker)
        if (isinstance(item, Activity) and not item.deleted and item.owner_id != policy.owner_id
                and link is not None and link.pending and not link.invited):
            # This account's own create, whose answer was lost, of an activity handed to
            # another owner since: removed as a moved event is (silently; nobody holds an
            # invitation to it), or it would stay in this calendar for good.
            return amend(base, cal_write=DeleteEvent(event.event_id, event.etag, False),
                         link="drop")
        if not isinstance(item, Activity) or item.owner_id != policy.owner_id:
            # Our marker, but not this owner's activity: an invitation copy or an event
            # copied between calendars. Not ours to change, and never a delete signal.
            return PairPlan(activity_id, event.event_id, skip="foreign")
        if crm_gone or crm_now is None:
            return amend(base, cal_write=DeleteEvent(event.event_id, event.etag, False),
                         link="drop")
        theirs = event.organizer is not None
        invited = frozenset() if theirs else invited_now(policy, link, event.projection,
                                                         event.attendees)
        # A create that reached the server: what we sent is the base of both sides, so
        # an edit made on either side since flows. The owner may have changed the event
        # before a cycle found it (the answer was lost, the cycles failed meanwhile);
        # taking the found event as the calendar base would keep that edit from the CRM.
        intended = link.crm_base if link is not None and link.pending else None
        result = merge(crm_now, event.projection, intended, intended,
                       policy=policy.conflict_policy, carried=policy.carried)
        crm_write = cal_write = None
        if result.to_crm:
            changes = activity_changes(result.merged, result.to_crm, policy.owner_tz,
                                       policy.done_style)
            crm_write = UpdateActivity(activity_id, changes, result.to_crm, base=item)
        to_calendar = result.to_calendar - {"guests"} if theirs else result.to_calendar
        # Adopting what a lost answer or a lost database left behind is ours: silent.
        mail = write_mail(guest_rules(policy), invited=invited, before=event.projection,
                          after=result.merged, fields=to_calendar, bookkeeping=True,
                          theirs=theirs)
        if to_calendar - mail.withheld:
            cal_write = UpdateEvent(event.event_id, event.etag, result.merged,
                                    to_calendar - mail.withheld, marker, notify=False,
                                    invited=mail.invited, theirs=theirs)
        return amend(base, crm_write=crm_write, cal_write=cal_write, link="save",
                     conflicts=result.conflicts, invited=mail.invited,
                     organizer=event.organizer)
    if crm_gone or crm_now is None:
        return PairPlan(activity_id, None, link="drop") if link is not None else None
    if link is None and not in_window(crm_now.when, policy.window):
        return None  # outside the window: picked up when it enters
    key = crm_key(activity_id)
    if key in data.quarantined and data.quarantined[key] == projection_version(crm_now):
        return PairPlan(activity_id, None, skip="quarantined")
    if link is None and isinstance(item, Activity) and (
            data.echoes.of_activity(item, crm_now) is not None):
        return PairPlan(activity_id, None, skip="echo")
    # The first sync, an activity time carried into the window and one handed over by
    # another owner are not news to anyone: created without e-mail.
    bookkeeping = (policy.backfill or activity_id in data.window_entries
                   or activity_id in data.moved_in)
    mail = write_mail(guest_rules(policy), invited=frozenset(), before=None, after=crm_now,
                      fields=MATERIAL, bookkeeping=bookkeeping)
    generation = link.generation if link is not None else 0
    return PairPlan(
        activity_id, None,
        cal_write=CreateEvent(marker, generation, crm_now, mail.notify, retry=link is not None,
                              invited=mail.invited, recipients=mail.recipients),
        link="save", crm_now=crm_now, generation=generation, marker=marker,
        invited=mail.invited,
    )


