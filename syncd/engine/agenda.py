"""The owner's agenda: CRM activities and calendar events merged, day by day (pure; C1).

The rules:

1. **Days** are the owner's: an item is on every day of ``days`` whose wall-clock span in
   the owner's zone it overlaps (a 23:00-01:00 meeting is on two days). An all-day item
   is on the dates it names (end exclusive); a zero-length timed item on the day of its
   start.
2. **One entry per activity**: an event paired with an activity (the sync state's pair,
   or failing that the event's marker, the activity's ``sync_uid``) is not shown again;
   the entry is the activity's, marked ``synced`` and naming the calendars it is on. An
   activity on no calendar is ``crm``; an event paired with none is ``calendar``. One
   meeting on two of the owner's calendars (copies of one invitation: the same
   iCalendar UID at the same time) is one entry naming both, busy if either says so;
   a copy of a synced activity's meeting joins the activity's entry.
3. **Busy or free** as each side says (A4): an activity's busy flag; an event's
   transparency or show-as, as the connector projected it.
4. **Double bookings**: two busy entries whose spans overlap (for a positive length of
   time) name each other in ``clashes`` (at most :data:`MAX_CLASHES` each). A free entry
   never clashes. An all-day busy item spans its whole local days, so it clashes with
   every busy entry on them.
5. Activities without a due date, deleted ones, and events that are deleted or could
   not be read are left out. Done activities are shown (``done``).

Entries are sorted per day: all-day first, then by start, then by title.
"""

from __future__ import annotations

import heapq
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from connectors.base import RemoteEvent
from syncd.engine.availability import Busy, busy_span
from syncd.model import Activity, When, activity_when

CRM, SYNCED, CALENDAR = "crm", "synced", "calendar"
#: The most other entries one entry's ``clashes`` names: a calendar full of overlapping
#: invitations must not make the agenda quadratic in size.
MAX_CLASHES = 20


@dataclass(frozen=True)
class AgendaItem:
    """One entry of one day.

    ``key`` names the entry across days (``activity:<id>`` or
    ``event:<calendar>:<event id>``); ``clashes`` holds the keys of the busy entries it
    overlaps. ``start``/``end`` are wall-clock datetimes in the owner's zone with their
    offset, or dates (end exclusive) for an all-day entry.
    """

    day: date
    key: str
    title: str
    start: date | datetime
    end: date | datetime
    all_day: bool
    busy: bool
    source: str  # CRM, SYNCED or CALENDAR
    activity_id: int | None = None
    calendars: tuple[str, ...] = ()
    done: bool = False
    clashes: tuple[str, ...] = ()

    @property
    def double_booked(self) -> bool:
        return bool(self.clashes)


@dataclass(frozen=True)
class _Entry:
    key: str
    title: str
    when: When
    busy: bool
    source: str
    activity_id: int | None
    calendars: tuple[str, ...]
    done: bool


def agenda(
    activities: Sequence[Activity],
    events: Mapping[str, Sequence[RemoteEvent]],
    pairs: Mapping[tuple[str, str], int],
    zone: str,
    days: Sequence[date],
) -> list[AgendaItem]:
    """The entries of ``days`` (rules in the module docstring).

    Args:
        activities: the owner's activities (any range; those off ``days`` are dropped).
        events: calendar name -> the events read from it.
        pairs: (calendar name, event id) -> activity id, from the sync state.
        zone: the owner's IANA zone.
        days: the days wanted, in the owner's zone.
    """
    by_id = {a.id: a for a in activities if not a.deleted}
    by_marker = {a.sync_uid: a.id for a in by_id.values()}
    on_calendars: dict[int, list[str]] = {}
    unpaired: list[tuple[str, RemoteEvent]] = []
    # (iCalendar UID, when) -> the activity a paired event shows, or the index of the
    # entry of a calendar-only one: a copy on another calendar joins it (rule 2)
    activity_copies: dict[tuple[str, When], int] = {}
    entry_copies: dict[tuple[str, When], int] = {}
    for calendar in sorted(events):
        for event in events[calendar]:
            if event.deleted or event.projection is None:
                continue
            paired = pairs.get((calendar, event.event_id))
            if paired is None and event.marker is not None:
                paired = by_marker.get(event.marker)
            if paired is not None and paired in by_id:
                on_calendars.setdefault(paired, []).append(calendar)
                if event.ical_uid:
                    activity_copies[(event.ical_uid, event.projection.when)] = paired
            else:
                unpaired.append((calendar, event))
    entries: list[_Entry] = []
    for calendar, event in unpaired:
        p = event.projection
        assert p is not None
        copy = (event.ical_uid, p.when) if event.ical_uid else None
        if copy is not None and copy in activity_copies:
            on_calendars[activity_copies[copy]].append(calendar)
        elif copy is not None and copy in entry_copies:
            i = entry_copies[copy]
            entries[i] = replace(entries[i], busy=entries[i].busy or p.busy,
                                 calendars=(*entries[i].calendars, calendar))
        else:
            if copy is not None:
                entry_copies[copy] = len(entries)
            entries.append(_Entry(f"event:{calendar}:{event.event_id}", p.title, p.when,
                                  p.busy, CALENDAR, None, (calendar,), False))
    for a in by_id.values():
        when = activity_when(a)
        if when is None:
            continue
        cals = tuple(sorted(set(on_calendars.get(a.id, ()))))
        entries.append(_Entry(f"activity:{a.id}", a.subject, when, a.busy,
                              SYNCED if cals else CRM, a.id, cals, a.done))

    wanted = set(days)
    spans = {e.key: _spans(e, zone) for e in entries}
    clashes = _clashes(entries, spans)
    tz = ZoneInfo(zone)
    out: list[AgendaItem] = []
    for e in entries:
        for day in sorted(_days_of(e, zone) & wanted):
            start: date | datetime = e.when.start
            end: date | datetime = e.when.end
            if isinstance(start, datetime) and isinstance(end, datetime):
                start, end = start.astimezone(tz), end.astimezone(tz)
            out.append(AgendaItem(day, e.key, e.title, start, end, e.when.all_day, e.busy,
                                  e.source, e.activity_id, e.calendars, e.done,
                                  tuple(sorted(clashes.get(e.key, ())))))
    out.sort(key=_order)
    return out


def _order(item: AgendaItem) -> tuple[date, bool, datetime, str, str]:
    start = item.start if isinstance(item.start, datetime) else datetime.combine(
        item.start, time(), tzinfo=UTC)
    return item.day, not item.all_day, start.astimezone(UTC), item.title, item.key


def _spans(entry: _Entry, zone: str) -> list[tuple[datetime, datetime]]:
    """The instants the entry takes (a zero-length timed one takes none: it cannot
    overlap, rule 4)."""
    if not entry.busy:
        return []
    if not entry.when.all_day and entry.when.start == entry.when.end:
        return []
    return busy_span(Busy(entry.when.start, entry.when.end), zone)


def _clashes(entries: Sequence[_Entry], spans: Mapping[str, list[tuple[datetime, datetime]]]
             ) -> dict[str, set[str]]:
    """Busy entries that overlap, by a sweep over their spans in start order; each entry
    names at most :data:`MAX_CLASHES` others (every entry that clashes names one)."""
    marks = sorted((s, e, key) for key, ss in spans.items() for s, e in ss)
    out: dict[str, set[str]] = {}
    open_: list[tuple[datetime, str]] = []  # a heap of (end, key) of the spans started
    for s, e, key in marks:
        while open_ and open_[0][0] <= s:
            heapq.heappop(open_)
        mine = out.setdefault(key, set())
        for _, other in open_:
            if other == key:
                continue
            theirs = out.setdefault(other, set())
            if len(mine) < MAX_CLASHES:
                mine.add(other)
            if len(theirs) < MAX_CLASHES:
                theirs.add(key)
        heapq.heappush(open_, (e, key))
    return {k: v for k, v in out.items() if v}


def _days_of(entry: _Entry, zone: str) -> set[date]:
    """The owner's days the entry is on (rule 1)."""
    when = entry.when
    if when.all_day:
        assert isinstance(when.start, date) and isinstance(when.end, date)
        n = max(1, (when.end - when.start).days)
        return {when.start + timedelta(days=i) for i in range(n)}
    assert isinstance(when.start, datetime) and isinstance(when.end, datetime)
    tz = ZoneInfo(zone)
    first = when.start.astimezone(tz).date()
    if when.end == when.start:
        return {first}
    last = (when.end - timedelta(microseconds=1)).astimezone(tz).date()
    return {first + timedelta(days=i) for i in range((last - first).days + 1)}

