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

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time
from functools import cached_property
from zoneinfo import ZoneInfo

from connectors.base import RemoteEvent, Window
from syncd.engine.actions import (
    CreateActivity,
    CreateEvent,
    DeleteActivity,
    DeleteEvent,
    PairPlan,
    UpdateActivity,
    UpdateEvent,
)
from syncd.engine.echo import Echoes
from syncd.engine.guestmail import (
    DELETE,
    MATERIAL,
    GuestRules,
    Mail,
    delete_mail,
    write_mail,
)
from syncd.engine.merge import merge
from syncd.model import (
    FIELDS,
    Activity,
    DoneStyle,
    Projection,
    Tombstone,
    When,
    activity_changes,
    field_to_json,
    project_activity,
    projection_version,
)
from syncd.pairs import Conflict, SyncPair


@dataclass(frozen=True)
class AccountPolicy:
    """The account's settings, as the planner needs them."""

    owner_id: int
    owner_tz: str = "UTC"
    conflict_policy: str = "crm_wins"
    on_calendar_delete: str = "delete_activity"
    done_style: DoneStyle = "keep"
    import_events: bool = False
    import_type: str = "meeting"
    invite_guests: bool = False
    carried: frozenset[str] = frozenset(FIELDS)
    window: Window | None = None
    backfill: bool = False  # the first cycle of an account: existing activities, no e-mails
    now: datetime | None = None  # what "past" means for guest mail (None: nothing is past)
    silent_writes: bool = True  # the provider can write to invited attendees without mail


@dataclass(frozen=True)
class PlanInput:
    """Everything one cycle of one account knows."""

    policy: AccountPolicy
    links: Mapping[int, SyncPair]
    crm: Mapping[int, Activity | Tombstone] = field(default_factory=dict)
    calendar: Sequence[RemoteEvent] = ()
    quarantined: Mapping[str, str | None] = field(default_factory=dict)  # key -> version
    window_entries: frozenset[int] = frozenset()  # activities that just entered the window
    # iCalendar UIDs of meetings another account already holds (failure mode 20)
    meetings_elsewhere: frozenset[str] = frozenset()
    moved_in: frozenset[int] = frozenset()  # activities just handed to this owner

    @cached_property
    def echoes(self) -> Echoes:
        """The paired items by title and time, built once per plan (syncd.engine.echo)."""
        return Echoes(self.links)


def cal_key(event_id: str) -> str:
    return f"calendar:{event_id}"


def crm_key(activity_id: int) -> str:
    return f"crm:{activity_id}"


def in_window(when: When, window: Window | None) -> bool:
    """Whether a time span overlaps the window (whole days taken in their own zone)."""
    if window is None:
        return True
    start, end = when.start, when.end
    if not isinstance(start, datetime):
        zone = ZoneInfo(when.tz)
        assert isinstance(start, date) and isinstance(end, date)
        start = datetime.combine(start, time(), zone)
        end = datetime.combine(end, time(), zone)
    return end > window.start and start < window.end


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
            plans.append(_plan_foreign(event, data))

    touched = set(pairs) | set(data.crm) | {a for a, link in data.links.items() if link.pending}
    for activity_id in sorted(touched):
        plan = _plan_pair(
            data.crm.get(activity_id), pairs.get(activity_id), data.links.get(activity_id), data
        )
        if plan is not None and (not plan.is_noop or plan.skip):
            plans.append(plan)
    return plans


def _crm_projection(item: Activity | Tombstone | None, policy: AccountPolicy) -> Projection | None:
    """The activity's projection for this account, or None when it left this calendar."""
    if not isinstance(item, Activity) or item.deleted or item.owner_id != policy.owner_id:
        return None
    return project_activity(item, policy.done_style)


def _rules(policy: AccountPolicy) -> GuestRules:
    return GuestRules(invite=policy.invite_guests, now=policy.now,
                      silent_writes=policy.silent_writes,
                      done_prefix=policy.done_style == "prefix")


def _invited(policy: AccountPolicy, link: SyncPair | None, cal_now: Projection | None
             ) -> frozenset[str]:
    """Who holds an invitation to the event now.

    Guests added in the calendar app count as invited by that app, and guests removed
    there hold none any more. A link from before syncd recorded invitations counts every
    attendee as invited: that never sends anyone a cancellation they were not due.
    """
    if not policy.invite_guests or cal_now is None:
        return frozenset()
    if link is None or link.invited is None:
        return cal_now.guests
    known = link.cal_base.guests if link.cal_base is not None else frozenset()
    return (link.invited | (cal_now.guests - known)) & cal_now.guests


def _kept_conflict(mail: Mail) -> tuple[Conflict, ...]:
    """What a withheld delete leaves behind, said where a person will look."""
    if DELETE not in mail.withheld:
        return ()
    return (Conflict("event", None, f"kept in the calendar: deleting it would e-mail "
                     f"{len(mail.invited)} invited guest(s) a cancellation", "calendar",
                     "guest_mail"),)


def _plan_foreign(event: RemoteEvent, data: PlanInput) -> PairPlan:
    """An event syncd did not create: import it, or leave it alone."""
    policy = data.policy
    if not policy.import_events:
        return PairPlan(None, event.event_id, skip="foreign")
    if event.recurring:
        return PairPlan(None, event.event_id, skip="recurring")
    if event.problem or event.projection is None:
        return _quarantine(event, data)
    if not in_window(event.projection.when, policy.window):
        return PairPlan(None, event.event_id, skip="outside_window")
    if data.echoes.of_event(event.projection) is not None:
        return PairPlan(None, event.event_id, skip="echo")
    if event.ical_uid is not None and event.ical_uid in data.meetings_elsewhere:
        # Another owner's copy of a meeting already in the CRM: one activity, not two.
        return PairPlan(None, event.event_id, skip="meeting_elsewhere")
    changes = activity_changes(event.projection, FIELDS, policy.owner_tz, policy.done_style)
    theirs = event.organizer is not None
    invited = frozenset() if theirs else _invited(policy, None, event.projection)
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


def _quarantine(event: RemoteEvent, data: PlanInput, activity_id: int | None = None) -> PairPlan:
    key = cal_key(event.event_id)
    if key in data.quarantined and data.quarantined[key] == event.etag:
        return PairPlan(activity_id, event.event_id, skip="quarantined")
    return PairPlan(activity_id, event.event_id, quarantine=event.problem or "unreadable event",
                    item_version=event.etag)


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
        return _quarantine(event, data, activity_id)

    if item is not None:
        crm_now = _crm_projection(item, policy)
    else:
        crm_now = link.crm_base if link else None
    crm_gone = item is not None and crm_now is None
    marker = item.sync_uid if item is not None else (link.sync_uid if link else "")

    if link is not None and not link.pending and link.event_id is None:
        # Unlinked after its event was deleted (on_calendar_delete = "unlink"): the
        # activity stays and is no longer synced, until it is deleted itself.
        return PairPlan(activity_id, None, link="drop") if crm_gone else None
    if link is None or link.pending:
        return _plan_unlinked(item, event, link, crm_now, crm_gone, marker, data)

    cal_now = event.projection if event is not None and not event.deleted else link.cal_base
    cal_gone = event is not None and event.deleted
    etag_now = event.etag if event is not None else link.etag
    organizer = event.organizer if event is not None and not event.deleted else link.organizer
    theirs = organizer is not None
    rules = _rules(policy)
    invited = frozenset() if theirs else _invited(policy, link, cal_now)
    base = PairPlan(activity_id, link.event_id, crm_now=crm_now, cal_now=cal_now,
                    etag_now=etag_now, generation=link.generation, marker=marker,
                    invited=invited, organizer=organizer)

    if crm_gone and cal_gone:
        return _with(base, link="drop")
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
            return _with(base, link="drop", conflicts=lost + _kept_conflict(mail))
        return _with(base, cal_write=DeleteEvent(link.event_id, etag_now, mail.notify,
                                                 mail.recipients),
                     link="drop", conflicts=lost)
    if cal_gone:
        assert crm_now is not None
        crm_edited = link.crm_base is None or crm_now != link.crm_base
        if policy.on_calendar_delete == "recreate" or crm_edited:
            # A new event: nobody holds an invitation to it, and re-creating is ours.
            mail = write_mail(rules, invited=frozenset(), before=None, after=crm_now,
                              fields=MATERIAL, bookkeeping=True, theirs=theirs)
            return _with(base, cal_write=CreateEvent(marker, link.generation + 1, crm_now,
                                                     mail.notify, invited=mail.invited),
                         link="save", generation=link.generation + 1, event_id=None,
                         invited=mail.invited, organizer=None)
        if policy.on_calendar_delete == "delete_activity":
            return _with(base, crm_write=DeleteActivity(activity_id), link="drop")
        # unlink: remember the pair without an event, so a later edit does not re-create it
        return _with(base, link="save", event_id=None, etag_now=None, cal_now=None)

    if crm_now is None or cal_now is None:
        return _with(base, skip="unknown_state")  # a full listing will settle it
    crm_updated = item.updated_at if isinstance(item, Activity) else None
    result = merge(crm_now, cal_now, link.crm_base, link.cal_base,
                   policy=policy.conflict_policy, carried=policy.carried,
                   crm_updated=crm_updated, cal_updated=event.updated if event else None)
    crm_write = None
    if result.to_crm:
        changes = activity_changes(result.merged, result.to_crm, policy.owner_tz,
                                   policy.done_style)
        crm_write = UpdateActivity(activity_id, changes, result.to_crm)
    cal_write: UpdateEvent | None = None
    # Someone else's meeting: guest edits stay in the CRM (docs/guest-mail.md).
    to_calendar = result.to_calendar - {"guests"} if theirs else result.to_calendar
    mail = write_mail(rules, invited=invited, before=cal_now, after=result.merged,
                      fields=to_calendar, bookkeeping=policy.backfill, theirs=theirs)
    fields = to_calendar - mail.withheld
    if fields and mail.invited != invited:
        fields |= {"guests"}  # who is an attendee and who is only described changes
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
             or mail.invited != (link.invited or frozenset()) or organizer != link.organizer)
    return _with(base, crm_write=crm_write, cal_write=cal_write,
                 link="save" if (crm_write or cal_write or moved) else "keep",
                 conflicts=result.conflicts,
                 invited=mail.invited if cal_write is not None else invited)


def _plan_unlinked(
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
        if not isinstance(item, Activity) or item.owner_id != policy.owner_id:
            # Our marker, but not this owner's activity: an invitation copy or an event
            # copied between calendars. Not ours to change, and never a delete signal.
            return PairPlan(activity_id, event.event_id, skip="foreign")
        if crm_gone or crm_now is None:
            return _with(base, cal_write=DeleteEvent(event.event_id, event.etag, False),
                         link="drop")
        theirs = event.organizer is not None
        invited = frozenset() if theirs else _invited(policy, link, event.projection)
        # A create that reached the server: what we sent is the CRM base and what the
        # server holds is the calendar base, so only later CRM edits flow.
        intended = link.crm_base if link is not None and link.pending else None
        result = merge(crm_now, event.projection, intended,
                       event.projection if intended is not None else None,
                       policy=policy.conflict_policy, carried=policy.carried)
        crm_write = cal_write = None
        if result.to_crm:
            changes = activity_changes(result.merged, result.to_crm, policy.owner_tz,
                                       policy.done_style)
            crm_write = UpdateActivity(activity_id, changes, result.to_crm)
        to_calendar = result.to_calendar - {"guests"} if theirs else result.to_calendar
        # Adopting what a lost answer or a lost database left behind is ours: silent.
        mail = write_mail(_rules(policy), invited=invited, before=event.projection,
                          after=result.merged, fields=to_calendar, bookkeeping=True,
                          theirs=theirs)
        if to_calendar - mail.withheld:
            cal_write = UpdateEvent(event.event_id, event.etag, result.merged,
                                    to_calendar - mail.withheld, marker, notify=False,
                                    invited=mail.invited, theirs=theirs)
        return _with(base, crm_write=crm_write, cal_write=cal_write, link="save",
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
    mail = write_mail(_rules(policy), invited=frozenset(), before=None, after=crm_now,
                      fields=MATERIAL, bookkeeping=bookkeeping)
    generation = link.generation if link is not None else 0
    return PairPlan(
        activity_id, None,
        cal_write=CreateEvent(marker, generation, crm_now, mail.notify, retry=link is not None,
                              invited=mail.invited, recipients=mail.recipients),
        link="save", crm_now=crm_now, generation=generation, marker=marker,
        invited=mail.invited,
    )


def _calendar_edits_lost(cal_now: Projection | None, cal_base: Projection | None
                         ) -> tuple[Conflict, ...]:
    """Calendar edits that a CRM-side delete overrides, kept as conflicts."""
    if cal_now is None or cal_base is None:
        return ()
    return tuple(
        Conflict(name, None, field_to_json(name, cal_now.get(name)), "crm", "crm_delete")
        for name in sorted(cal_now.diff(cal_base))
    )


def _with(plan: PairPlan, **changes: object) -> PairPlan:
    from dataclasses import replace

    return replace(plan, **changes)  # type: ignore[arg-type]
