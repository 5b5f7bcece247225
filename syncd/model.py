"""The CRM's activity as syncd sees it, and the projection both sides are reduced to.

Nothing in this module does I/O. Two types matter:

* :class:`Activity` is a frozen, read-only view of one CRM activity (seed rules A1-A10).
  It deliberately has **no note field**: the private note (A5) lives in its own table and
  is read only through ``ActivityStore.get_note``, so no code that holds an ``Activity``
  (the engine, every connector) can send it anywhere. The privacy canary tests rely on
  this being true by construction.
* :class:`Projection` is the set of fields that sync (DESIGN section 1). Both the activity
  and the calendar event are reduced to a projection; the engine compares projections,
  never provider payloads.
"""

from __future__ import annotations

import dataclasses
import enum
import hashlib
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum
from typing import Any
from zoneinfo import ZoneInfo

from syncd.text import clean_text

#: The six activity types every company starts with (seed rule A2).
DEFAULT_TYPES: tuple[tuple[str, str, str], ...] = (
    ("call", "Call", "#4a90d9"),
    ("meeting", "Meeting", "#7b61ff"),
    ("task", "Task", "#50b83c"),
    ("deadline", "Deadline", "#de3618"),
    ("email", "Email", "#f49342"),
    ("lunch", "Lunch", "#eec200"),
)

# A pragmatic RFC 5322 "addr-spec" check: one @, a dotted domain, no spaces or controls.
_EMAIL_RE = re.compile(r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
                       r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)+$")


def is_valid_email(value: str) -> bool:
    """True when ``value`` looks like a deliverable address (local@domain.tld)."""
    return len(value) <= 254 and _EMAIL_RE.match(value) is not None


def normalize_email(value: str) -> str:
    """Compare e-mail addresses case-insensitively, as every provider does."""
    return value.strip().lower()


@dataclass(frozen=True)
class Guest:
    """An invited person (seed rule A6): a CRM person, or any external e-mail address."""

    email: str
    name: str | None = None
    person_id: int | None = None


@dataclass(frozen=True)
class Activity:
    """A read-only view of one CRM activity. There is no note here, by design (A5)."""

    id: int
    sync_uid: str  # opaque, random; the only thing the ownership marker on an event holds
    owner_id: int
    owner_tz: str  # IANA name; due_date/due_time are wall-clock values in this zone
    type: str
    subject: str
    due_date: date | None
    # None: a whole-day activity (A3). ``fold=1`` is the second of two repeated wall times
    # on the night clocks go back (see :func:`wall_time`); naive times compare equal
    # whatever their fold, so code that needs the instant goes through activity_when.
    due_time: time | None
    duration_minutes: int
    busy: bool
    description: str  # public, shown to guests (A8)
    location: str
    guests: tuple[Guest, ...]
    done: bool
    marked_done_at: datetime | None
    deleted: bool
    updated_at: datetime
    deal_id: int | None = None
    person_id: int | None = None
    org_id: int | None = None
    lead_id: str | None = None
    project_id: int | None = None


# ---------------------------------------------------------------------------------------
# The activity's fields, declared once
#
# ACTIVITY_FIELDS is the one list of what a CRM user can set on an activity. The built-in
# store's checks, defaults, reader and writer, the ``syncd activity add/edit/show``
# options, ``syncd import`` and the projection's plain fields (FIELDS, MATERIAL, to_json,
# from_json, project_activity, activity_changes) all derive from it. A plain projection
# field (text or a flag a calendar shows as it is, like ``location``) takes:
#   1. the model (this file): an attribute on Activity and on Projection, one row below;
#   2. the three calendar mappers: connectors/google_map.py, outlook_map.py, ical.py;
#   3. each CRM source: the built-in store's column (crm/builtin/tables.py) with its
#      Alembic revision (store/migrations/versions/); Pipedrive's mapping
#      (crm/pipedrive_map.py).
# tests/store/test_field_table.py fails while the built-in store, the CLI or the import
# does not handle a declared field.


class Kind(enum.StrEnum):
    """What kind of value a field holds: how it is checked, parsed and shown."""

    LINE = "line"  # single-line text, trimmed
    TEXT = "text"  # multi-line public text
    NOTE = "note"  # the private note (A5): kept exactly as written, never on a view
    FLAG = "flag"  # true or false
    DATE = "date"  # a wall-clock day in the owner's zone
    TIME = "time"  # a wall-clock time in the owner's zone
    MINUTES = "minutes"  # a length in whole minutes
    GUESTS = "guests"  # e-mail addresses or person ids (A6)
    TYPE = "type"  # an activity type key (A2)
    USER = "user"  # a CRM user id (the owner)
    ITEM = "item"  # the id of a linked deal, person, organization or project
    LEAD = "lead"  # the id of a linked lead (text, as in Pipedrive)


#: The kinds stored as one plain column of the activity row and copied as they are.
PLAIN_KINDS = frozenset({Kind.LINE, Kind.TEXT, Kind.FLAG, Kind.DATE, Kind.TIME,
                         Kind.MINUTES, Kind.TYPE})


@dataclass(frozen=True)
class ActivityField:
    """One field a CRM user (or a calendar) can set on an activity.

    Attributes:
        name: the Activity attribute, the store's column and keyword argument.
        kind: how the value is checked, parsed and shown.
        default: what a new activity gets when the field is not given.
        label: the word ``syncd activity show`` prints before it.
        help: the ``syncd activity add/edit`` option's help text.
        flag: that option (None: no option); for a FLAG, the option that sets it true.
        off_flag: for a FLAG, the option that sets it false (None: the field can only be
            set when adding).
        off_help: that option's help text.
        words: for a FLAG, how ``syncd activity show`` says true and false.
        column: the CSV column / JSON key of ``syncd import`` (None: not importable).
        limit: for text, the most characters the store keeps.
        projection: the projection field it syncs as, value for value (None: the field
            is not synced, or through custom code: title, when, guests, done).
        calendar: whether a calendar edit may change it.
        on_view: whether it is an attribute of :class:`Activity` (the note is not, A5).
        required: whether a new activity must name it (text must then not be empty).
        material: for a projected field, whether guests see it, so that a change to it
            is worth an e-mail to them (docs/guest-mail.md, rule 2).
    """

    name: str
    kind: Kind
    default: Any = None
    label: str = ""
    help: str = ""
    flag: str | None = None
    off_flag: str | None = None
    off_help: str = ""
    words: tuple[str, str] = ("yes", "no")
    column: str | None = None
    limit: int | None = None
    projection: str | None = None
    calendar: bool = False
    on_view: bool = True
    required: bool = False
    material: bool = False

    @property
    def plain(self) -> bool:
        """Stored as one column and copied as it is by the store's reader and writer."""
        return self.kind in PLAIN_KINDS


ACTIVITY_FIELDS: tuple[ActivityField, ...] = (
    ActivityField("owner_id", Kind.USER, flag="--owner", column="owner", required=True,
                  help="the user it is assigned to (default: the only user)"),
    ActivityField("subject", Kind.LINE, flag="--subject", column="subject", limit=255,
                  calendar=True, required=True, label="Subject", help="a new title"),
    ActivityField("type", Kind.TYPE, "task", flag="--type", column="type", calendar=True,
                  label="Type", help="activity type key: call, meeting, task (default), "
                                     "deadline, email, lunch, or a custom one"),
    ActivityField("due_date", Kind.DATE, flag="--due", column="due", calendar=True,
                  help="due date; without --time the activity takes the whole day"),
    ActivityField("due_time", Kind.TIME, flag="--time", column="time", calendar=True,
                  help="start time, in the owner's time zone; needs --due"),
    ActivityField("duration_minutes", Kind.MINUTES, 0, flag="--duration", column="duration",
                  calendar=True, help="length in minutes, or like 1h30m, 45m, 2h, 1d"),
    ActivityField("busy", Kind.FLAG, False, flag="--busy", off_flag="--free", column="busy",
                  projection="busy", calendar=True, label="Busy",
                  help="block the time slot in the calendar",
                  off_help="leave the slot free (the default for new activities)",
                  words=("yes (blocks the slot)", "no (free)")),
    ActivityField("description", Kind.TEXT, "", flag="--description", column="description",
                  limit=100_000, projection="description", calendar=True, material=True,
                  label="Description",
                  help="public text: synced to the calendar and visible to every guest"),
    ActivityField("location", Kind.LINE, "", flag="--location", column="location",
                  limit=500, projection="location", calendar=True, material=True,
                  label="Location",
                  help="the address"),
    ActivityField("guests", Kind.GUESTS, (), flag="--guest", column="guests", calendar=True,
                  help="invite a guest (repeat for several)"),
    ActivityField("note", Kind.NOTE, "", flag="--note", column="note", limit=100_000,
                  on_view=False,
                  help="private note: stays in the CRM, never sent to a calendar or a guest"),
    ActivityField("deal_id", Kind.ITEM, flag="--deal", column="deal",
                  help="link to a deal (also links its person and organization)"),
    ActivityField("person_id", Kind.ITEM, flag="--person", column="person",
                  help="link to a person (also links their organization)"),
    ActivityField("org_id", Kind.ITEM, flag="--org", column="org",
                  help="link to an organization"),
    ActivityField("lead_id", Kind.LEAD),
    ActivityField("project_id", Kind.ITEM),
    ActivityField("done", Kind.FLAG, False, flag="--done", column="done", calendar=True,
                  help="record it as already done"),
)
FIELD_BY_NAME: Mapping[str, ActivityField] = {f.name: f for f in ACTIVITY_FIELDS}

#: Activity attributes that are not fields anyone sets: identity and bookkeeping.
VIEW_ONLY: frozenset[str] = frozenset({"id", "sync_uid", "owner_tz", "marked_done_at",
                                       "deleted", "updated_at"})


@dataclass(frozen=True)
class Tombstone:
    """An activity that was purged from the store; only its identity is left."""

    id: int
    sync_uid: str


# ---------------------------------------------------------------------------------------
# Ranges and wall-clock times
#
# The one place that says which dates syncd accepts. Both sides check against it: the
# activity store refuses a due date outside it (InvalidInput, so the CLI, the import and
# every other writer are covered), and every connector's reader quarantines an event that
# starts outside it or lasts longer than MAX_SPAN, before any arithmetic on its dates can
# overflow. An event is judged by its start's day in the owner's zone, which is the day
# the activity would get, so whatever a reader accepts the store accepts too.

#: The first and last due date syncd accepts: far wider than any CRM's history or plans,
#: far enough from Python's year 1 and 9999 that no zone or span arithmetic overflows.
FIRST_DAY = date(1900, 1, 1)
LAST_DAY = date(2199, 12, 31)
#: The longest an activity or event may last: a year-long all-day span fits, a unit
#: mistake (minutes given as seconds) does not.
MAX_SPAN = timedelta(days=366)
MAX_DURATION_MINUTES = MAX_SPAN // timedelta(minutes=1)


class OutOfRange(ValueError):
    """A date or span outside what syncd accepts; the message is the reason, for a user."""


def day_in_range(day: date) -> bool:
    """True when ``day`` is between :data:`FIRST_DAY` and :data:`LAST_DAY`."""
    return FIRST_DAY <= day <= LAST_DAY


def check_start(start: date | datetime, zone: str) -> None:
    """Refuse a start whose day, in ``zone`` (the owner's), is outside the range.

    A floating (naive) datetime is a wall-clock time in ``zone`` already.

    Raises:
        OutOfRange: with the reason; never OverflowError.
    """
    day: date = start
    if isinstance(start, datetime):
        try:
            day = (start.astimezone(ZoneInfo(zone)) if start.tzinfo else start).date()
        except OverflowError:
            day = start.date()  # at Python's own limits: out of range anyway
    if not day_in_range(day):
        raise OutOfRange(f"the date {day.isoformat()} is outside the range syncd accepts "
                         f"({FIRST_DAY.isoformat()} to {LAST_DAY.isoformat()})")


def check_length(length: timedelta) -> None:
    """Refuse a span longer than :data:`MAX_SPAN` (negative spans are the caller's error).

    Raises:
        OutOfRange: with the reason.
    """
    if length > MAX_SPAN:
        raise OutOfRange(f"the event lasts longer than the {MAX_SPAN.days} days "
                         "syncd accepts")


def checked_span(start: date | datetime, end: date | datetime, zone: str) -> None:
    """Both checks for a start and an end already known (no arithmetic can overflow).

    Raises:
        OutOfRange: with the reason.
    """
    check_start(start, zone)
    try:
        length = end - start  # type: ignore[operator]  # same kind: readers check
    except OverflowError:
        length = timedelta.max
    check_length(length)


def end_after(start: date | datetime, length: timedelta, zone: str) -> date | datetime:
    """``start + length`` for a start and a duration from outside (DURATION, say).

    Checked first, so a huge duration is a reason, not an OverflowError.

    Raises:
        OutOfRange: with the reason.
    """
    check_start(start, zone)
    check_length(length)
    return start + length


def wall_time(day: date, clock: time, zone: str) -> time:
    """``clock`` with the fold that is meaningful on ``day`` in ``zone``.

    Only a wall time that happens twice (the hour repeated when clocks go back) keeps
    ``fold=1``, its second occurrence. A wall time that does not exist (the hour skipped
    when clocks go forward) always gets ``fold=0``, which zoneinfo (PEP 495) reads with
    the offset from before the gap: 02:30 on a night that jumps from 02:00 to 03:00 is
    03:30. That is the rule of RFC 5545 (3.3.5) and what Google Calendar does with such a
    time, so the CRM, CalDAV and Google agree on it.
    """
    tz = ZoneInfo(zone)
    first = datetime.combine(day, clock.replace(fold=0), tzinfo=tz)
    second = first.replace(fold=1)
    first_offset, second_offset = first.utcoffset(), second.utcoffset()
    assert first_offset is not None and second_offset is not None
    repeated = first_offset > second_offset
    return clock.replace(fold=clock.fold if repeated else 0)


def unambiguous_local(instant: datetime, zone: str) -> datetime | None:
    """The instant as a wall-clock time in ``zone``, or None when a wall time cannot say it.

    Every calendar format reads a wall time that happens twice as its first occurrence
    (RFC 5545 3.3.5; Graph and Google alike), so the second occurrence has to be written
    another way (in UTC, or with an offset).
    """
    local = instant.astimezone(ZoneInfo(zone))
    return None if local.fold else local


# ---------------------------------------------------------------------------------------
# Projection


#: Activity field -> the projection field it syncs as, value for value (busy,
#: description, location, ...), from ACTIVITY_FIELDS.
PROJECTED: Mapping[str, str] = {f.name: f.projection for f in ACTIVITY_FIELDS
                                if f.projection is not None}
_PROJECTED_FROM: Mapping[str, str] = {proj: name for name, proj in PROJECTED.items()}
#: The projection fields, in a fixed order (used for merging, storage and reports): the
#: three with code of their own, and the plain ones before the guests.
FIELDS: tuple[str, ...] = ("title", "when", *PROJECTED.values(), "guests")
#: The projection fields guests see: a change to one is worth an e-mail to them.
MATERIAL: frozenset[str] = frozenset({"title", "when", "guests", *(
    f.projection for f in ACTIVITY_FIELDS if f.projection and f.material)})


@dataclass(frozen=True, order=True)
class When:
    """When an activity happens.

    Timed: ``start``/``end`` are aware datetimes, compared as instants (so a calendar that
    re-expresses the same instant in another zone is not an edit). Whole-day: ``start``
    and ``end`` are dates and ``end`` is exclusive, as in iCalendar, Google and Graph.
    ``tz`` is the zone to render in; it does not take part in comparisons.
    """

    start: date | datetime
    end: date | datetime
    tz: str = field(default="UTC", compare=False)

    def __post_init__(self) -> None:
        if isinstance(self.start, datetime) != isinstance(self.end, datetime):
            raise ValueError("start and end must both be dates or both be datetimes")
        if isinstance(self.start, datetime):
            assert isinstance(self.end, datetime)
            if self.start.tzinfo is None or self.end.tzinfo is None:
                raise ValueError("timed start and end must carry a time zone")
            # Normalise to UTC so that equality and hashing are about the instant, and to
            # whole seconds, the finest precision every calendar format keeps.
            object.__setattr__(self, "start", self.start.astimezone(UTC).replace(microsecond=0))
            object.__setattr__(self, "end", self.end.astimezone(UTC).replace(microsecond=0))
        if self.end < self.start:
            raise ValueError("end is before start")

    @property
    def all_day(self) -> bool:
        return not isinstance(self.start, datetime)

    def local_start(self) -> datetime:
        """The start as a wall-clock time in :attr:`tz` (timed events only)."""
        assert isinstance(self.start, datetime)
        return self.start.astimezone(ZoneInfo(self.tz))

    def local_end(self) -> datetime:
        assert isinstance(self.end, datetime)
        return self.end.astimezone(ZoneInfo(self.tz))

    def to_json(self) -> dict[str, str]:
        return {"start": self.start.isoformat(), "end": self.end.isoformat(), "tz": self.tz}

    @classmethod
    def from_json(cls, data: Mapping[str, str]) -> When:
        parse = datetime.fromisoformat if "T" in data["start"] else date.fromisoformat
        return cls(parse(data["start"]), parse(data["end"]), data.get("tz", "UTC"))


@dataclass(frozen=True)
class Projection:
    """The fields that sync, in one normalised form for both sides.

    Text is cleaned on construction (control characters removed, line endings unified,
    outer white space trimmed) so that a server rewriting ``\\r\\n`` or trailing blanks
    never looks like an edit. Guests are compared as a set of lower-case addresses;
    ``guest_names`` only helps rendering and is not compared.
    """

    title: str
    when: When
    busy: bool = False
    description: str = ""
    location: str = ""
    guests: frozenset[str] = frozenset()
    guest_names: Mapping[str, str] = field(default_factory=dict, compare=False, hash=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "title", clean_text(self.title, single_line=True))
        object.__setattr__(self, "description", clean_text(self.description))
        object.__setattr__(self, "location", clean_text(self.location, single_line=True))
        object.__setattr__(self, "guests", frozenset(normalize_email(g) for g in self.guests))
        # Names are text too: a control character in one would make a writer's ATTENDEE
        # line unreadable (the guest then reads back as removed) or split it.
        names = {normalize_email(email): clean_text(name, single_line=True)
                 for email, name in self.guest_names.items()}
        object.__setattr__(self, "guest_names", {e: n for e, n in names.items() if n})

    def get(self, name: str) -> Any:
        return getattr(self, name)

    def replace(self, values: Mapping[str, Any]) -> Projection:
        return dataclasses.replace(self, **dict(values))

    def diff(self, other: Projection) -> frozenset[str]:
        """Names of the fields whose values differ between ``self`` and ``other``."""
        return frozenset(f for f in FIELDS if self.get(f) != other.get(f))

    def to_json(self) -> dict[str, Any]:
        """A JSON-able dict, stored as the merge base of a link."""
        return {
            "title": self.title,
            "when": self.when.to_json(),
            **{name: self.get(name) for name in PROJECTED.values()},
            "guests": sorted(self.guests),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Projection:
        # A base stored before a field existed reads as that field's default.
        return cls(
            title=data["title"],
            when=When.from_json(data["when"]),
            guests=frozenset(data.get("guests", ())),
            **{proj: data.get(proj, FIELD_BY_NAME[name].default)
               for name, proj in PROJECTED.items()},
        )


def projection_version(projection: Projection | None) -> str | None:
    """A short digest of a projection: what "this item changed" means for quarantine."""
    if projection is None:
        return None
    data = json.dumps(projection.to_json(), sort_keys=True).encode()
    return hashlib.sha256(data).hexdigest()[:16]


def field_to_json(name: str, value: Any) -> Any:
    """One projection field as JSON (for the conflicts table)."""
    if isinstance(value, When):
        return value.to_json()
    if isinstance(value, frozenset):
        return sorted(value)
    return value


# ---------------------------------------------------------------------------------------
# Activity <-> projection


class DoneStyle(StrEnum):
    """How an event shows that its activity is done (``done_style``)."""

    KEEP = "keep"  # the title stays as it is; the done flag does not sync
    PREFIX = "prefix"  # a check mark in front of the title carries the done flag


UNTITLED = "(no title)"  # an event without a title still needs a subject in the CRM
DONE_PREFIX = "\u2713 "  # "✓ ": what done_style = "prefix" puts in front of the title


def activity_when(activity: Activity) -> When | None:
    """The activity's time span in its owner's zone, or None when it has no due date.

    A due date outside the range (a row written before the store checked it) cannot be on
    a calendar either: None, rather than an overflow that would fail the owner's cycles.
    """
    if activity.due_date is None or not day_in_range(activity.due_date):
        return None
    tz = ZoneInfo(activity.owner_tz)
    if activity.due_time is None:
        days = max(1, activity.duration_minutes // 1440)
        return When(activity.due_date, activity.due_date + timedelta(days=days), activity.owner_tz)
    # The time's fold picks the occurrence of a repeated wall time; a skipped one is read
    # forward (wall_time). The arithmetic is in UTC, so the duration is elapsed time.
    clock = wall_time(activity.due_date, activity.due_time, activity.owner_tz)
    start = datetime.combine(activity.due_date, clock, tzinfo=tz)
    start_utc = start.astimezone(UTC)
    end_utc = start_utc + timedelta(minutes=activity.duration_minutes)
    return When(start_utc, end_utc, activity.owner_tz)


def project_activity(
    activity: Activity, done_style: DoneStyle = DoneStyle.KEEP
) -> Projection | None:
    """Reduce an activity to its projection; None when it cannot be on a calendar."""
    when = activity_when(activity)
    if when is None:
        return None
    title = activity.subject
    if done_style == DoneStyle.PREFIX and activity.done:
        title = DONE_PREFIX + title
    return Projection(
        title=title,
        when=when,
        **{proj: getattr(activity, name) for name, proj in PROJECTED.items()},
        guests=frozenset(g.email for g in activity.guests),
        guest_names={normalize_email(g.email): g.name for g in activity.guests if g.name},
    )


def activity_changes(
    projection: Projection, fields: Iterable[str], owner_tz: str, done_style: DoneStyle
) -> dict[str, Any]:
    """Translate changed projection fields into activity field values.

    The inverse of :func:`project_activity` for the fields named; the result is the
    keyword set accepted by ``ActivityStore.edit_activity``. With ``done_style =
    "prefix"`` the title's check mark carries the done flag both ways.
    """
    out: dict[str, Any] = {}
    for name in fields:
        if name == "title":
            title = projection.title
            if done_style == DoneStyle.PREFIX:
                out["done"] = title.startswith(DONE_PREFIX.strip())
                title = title.removeprefix(DONE_PREFIX.strip()).lstrip()
            out["subject"] = title or UNTITLED
        elif name == "when":
            out.update(when_to_activity_fields(projection.when, owner_tz))
        elif name == "guests":
            # Calendars accept attendees the CRM cannot hold (rooms without a domain,
            # urn: addresses); those stay in the calendar rather than block the edit.
            names = projection.guest_names
            out["guests"] = tuple(Guest(email=e, name=names.get(e))
                                  for e in sorted(projection.guests) if is_valid_email(e))
        else:
            out[_PROJECTED_FROM[name]] = projection.get(name)
    return out


def when_to_activity_fields(when: When, owner_tz: str) -> dict[str, Any]:
    """due_date, due_time and duration_minutes for a time span, in the owner's zone.

    The instant survives: a start in the second occurrence of a repeated hour comes out
    with ``due_time.fold == 1``, which the store keeps.
    """
    if when.all_day:
        assert isinstance(when.start, date) and isinstance(when.end, date)
        days = (when.end - when.start).days
        return {
            "due_date": when.start,
            "due_time": None,
            "duration_minutes": days * 1440 if days > 1 else 0,
        }
    assert isinstance(when.start, datetime) and isinstance(when.end, datetime)
    local = when.start.astimezone(ZoneInfo(owner_tz))
    minutes = int((when.end - when.start).total_seconds() // 60)
    return {
        "due_date": local.date(),
        "due_time": local.time(),  # keeps the fold; tzinfo is dropped by time()
        "duration_minutes": minutes,
    }
