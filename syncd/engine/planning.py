"""What the planner takes, and the small rules its parts share.

:class:`PlanInput` is everything one cycle of one account knows; :class:`PlanPolicy` the
account's settings for that cycle. The helpers below are pure and shared by
:mod:`syncd.engine.plan` (linked pairs) and :mod:`syncd.engine.plan_unpaired` (pairs
without a confirmed event, and events syncd did not create).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime, time
from functools import cached_property
from zoneinfo import ZoneInfo

from connectors.base import RemoteEvent, UpdateOp, Window
from syncd.engine.actions import PairPlan
from syncd.engine.echo import Echoes
from syncd.engine.guestmail import GuestRules
from syncd.engine.policy import ConflictPolicy, OnCalendarDelete
from syncd.model import (
    FIELDS,
    Activity,
    DoneStyle,
    Projection,
    Tombstone,
    When,
    field_to_json,
    project_activity,
)
from syncd.pairs import SyncPair


@dataclass(frozen=True)
class PlanPolicy:
    """The account's settings for one cycle, as the planner needs them: the
    :class:`~syncd.engine.policy.AccountPolicy` with its owner resolved and the cycle's
    window, capabilities and clock."""

    owner_id: int
    owner_tz: str = "UTC"
    conflict_policy: ConflictPolicy = ConflictPolicy.CRM_WINS
    on_calendar_delete: OnCalendarDelete = OnCalendarDelete.DELETE_ACTIVITY
    done_style: DoneStyle = DoneStyle.KEEP
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

    policy: PlanPolicy
    links: Mapping[int, SyncPair]
    crm: Mapping[int, Activity | Tombstone] = field(default_factory=dict)
    calendar: Sequence[RemoteEvent] = ()
    quarantined: Mapping[str, str | None] = field(default_factory=dict)  # key -> version
    window_entries: frozenset[int] = frozenset()  # activities that just entered the window
    # iCalendar UIDs of meetings another account already holds (failure mode 20)
    meetings_elsewhere: frozenset[str] = frozenset()
    moved_in: frozenset[int] = frozenset()  # activities just handed to this owner
    # every pair of the account, when something read could be an echo (syncd.engine.echo)
    all_links: Mapping[int, SyncPair] | None = None
    # pending creates whose lookup failed this cycle: planned in the next one
    unsettled: frozenset[int] = frozenset()

    @cached_property
    def echoes(self) -> Echoes:
        """The paired items by title and time, built once per plan (syncd.engine.echo)."""
        return Echoes(self.all_links if self.all_links is not None else self.links)


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


def crm_projection(item: Activity | Tombstone | None, policy: PlanPolicy) -> Projection | None:
    """The activity's projection for this account, or None when it left this calendar."""
    if not isinstance(item, Activity) or item.deleted or item.owner_id != policy.owner_id:
        return None
    return project_activity(item, policy.done_style)


def guest_rules(policy: PlanPolicy) -> GuestRules:
    return GuestRules(invite=policy.invite_guests, now=policy.now,
                      silent_writes=policy.silent_writes,
                      done_prefix=policy.done_style == DoneStyle.PREFIX)


def invited_now(policy: PlanPolicy, link: SyncPair | None, cal_now: Projection | None,
                attendees: frozenset[str] | None = None) -> frozenset[str]:
    """Who holds an invitation to the event now.

    Guests added in the calendar app count as invited by that app, and guests removed
    there hold none any more. A link from before syncd recorded invitations counts every
    attendee as invited: that never sends anyone a cancellation they were not due.

    Without ``invite_guests`` syncd invites nobody, but the owner may have, in the
    calendar app (a meeting made there and imported): on a provider that cannot write
    silently, those attendees hold an invitation all the same, so that rule 5 of
    :mod:`syncd.engine.guestmail` keeps syncd's writes from reaching them. They are the
    event's ``attendees`` when it was read this cycle (None: it was not), else what the
    link recorded.
    """
    if cal_now is None:
        return frozenset()
    if not policy.invite_guests:
        if policy.silent_writes:
            return frozenset()
        if attendees is not None:
            return attendees
        return link.invited or frozenset() if link is not None else frozenset()
    if link is None or link.invited is None:
        return cal_now.guests
    # What the calendar held when last in step; for our own create whose answer was lost
    # (pending, no calendar base yet), what it sent: guests it only described are not
    # "added in the calendar app" (the invite soak's finding, Outlook seed 1).
    base = link.cal_base if link.cal_base is not None else link.crm_base
    known = base.guests if base is not None else frozenset()
    return (link.invited | (cal_now.guests - known)) & cal_now.guests


def sent_fields(op: UpdateOp) -> dict[str, object]:
    """What an event update sends, as kept in the link's ``sent`` until its outcome is
    recorded: each written field's value as JSON."""
    return {name: field_to_json(name, op.projection.get(name)) for name in sorted(op.fields)}


def landed(link: SyncPair, cal_now: Projection | None) -> SyncPair:
    """The link with the fields of its unrecorded updates that the event holds taken as
    both sides' base.

    A cycle that died after sending an update, before recording it, left the link's bases
    as they were and the update's fields in ``sent``; so did a write that failed (a 503, a
    timeout, a lost answer) and may or may not have landed. Each later update is added
    after the earlier ones, never in their place. The rules:

    1. A field the event now holds as *any* of these updates sent it is our write, not the
       user's edit: its value becomes the base on both sides (it came from the CRM), so an
       edit the CRM made since, even back to the old base value, still reads as the CRM's
       change and is written to the event. Any, not only the last: the CRM went A -> B
       (written, landed, unrecorded) -> A again, and the write of A failed or died before
       its request; the event holds B, which is ours (the CI soak's S000050, busy).
    2. A field holding anything else was changed in the calendar, before or after our
       writes (a write over a user's edit meets its etag and is refused), and is merged as
       usual: a conflict when the CRM changed it too.
    3. The etag cannot tell the two apart: a write whose outcome is unrecorded has no
       known answer (the process died with it, or the answer was lost on the way), so the
       event's new etag is ours or the user's alike. Hence the cost of rule 1: a user who
       typed into the event a value we had sent since the last record (say B again, after
       our write of C landed) is taken as our echo and the CRM's value is written over it
       without a conflict on record. Rule 1's other reading would lose the CRM's edit
       instead, and the CRM is the record; a value we had sent is one the CRM held.
    """
    if not link.sent or cal_now is None or link.crm_base is None or link.cal_base is None:
        return link
    base = link.cal_base.to_json()
    ours: dict[str, object] = {}
    for update in link.sent:
        # Compared as values, not as JSON: one instant in two zones is the same time.
        sent = Projection.from_json({**base, **update})
        ours.update({name: cal_now.get(name) for name in update
                     if name in FIELDS and cal_now.get(name) == sent.get(name)})
    if not ours:
        return link
    return replace(link, crm_base=link.crm_base.replace(ours),
                   cal_base=link.cal_base.replace(ours))


def keep_described(policy: PlanPolicy, link: SyncPair, cal_now: Projection | None
                   ) -> Projection | None:
    """The event as read, with the guests it only *described* kept.

    With ``invite_guests`` the guests read back are the attendees and the ``Guests:``
    paragraph syncd writes for the others. That paragraph is our text at the end of the
    description: a user who rewrites the description drops it without meaning to remove
    anybody (the soak's finding: the CRM lost its guests). So a described guest missing
    from the event is not a removal; removing an attendee in the calendar app still is.
    """
    if (not policy.invite_guests or cal_now is None or link.cal_base is None
            or link.invited is None):
        return cal_now
    dropped = (link.cal_base.guests - link.invited) - cal_now.guests
    return cal_now.replace({"guests": cal_now.guests | dropped}) if dropped else cal_now


def quarantine_event(event: RemoteEvent, data: PlanInput, activity_id: int | None = None
                     ) -> PairPlan:
    """Set an unreadable event aside, unless this very version is set aside already."""
    key = cal_key(event.event_id)
    if key in data.quarantined and data.quarantined[key] == event.etag:
        return PairPlan(activity_id, event.event_id, skip="quarantined")
    return PairPlan(activity_id, event.event_id, quarantine=event.problem or "unreadable event",
                    item_version=event.etag)


def amend(plan: PairPlan, **changes: object) -> PairPlan:
    """A copy of ``plan`` with ``changes``."""
    return replace(plan, **changes)  # type: ignore[arg-type]
