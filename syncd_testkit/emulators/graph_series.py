"""Occurrences of recurring events for the Graph emulator's ``calendarView`` and
``getSchedule``.

``calendarView`` "returns occurrences, exceptions, and single instances of events"
[doc: learn.microsoft.com/graph/api/user-list-calendarview, api-reference/v1.0/api/
user-list-calendarview.md]: a series master itself is never listed, each occurrence is,
with ``type: "occurrence"`` and the master's id in ``seriesMasterId``
[doc: resources/event.md, ``type`` and ``seriesMasterId``]. ``calendarView/delta``
returns the same kinds of events (the events of a calendar view "may include single
instances, or occurrences and exceptions of a recurring series" [doc: graph/
delta-query-events]), so :mod:`.graph_delta` expands series here too, and an occurrence
can be read by its id (:func:`occurrence_by_id`), as Graph's ``GET /events/{id}`` does.

The ``patternedRecurrence`` shapes read here [doc: resources/patternedrecurrence.md,
recurrencepattern.md, recurrencerange.md]: pattern ``daily``, ``weekly`` (``daysOfWeek``,
``firstDayOfWeek`` default sunday) and ``absoluteMonthly`` (``dayOfMonth``), each with an
``interval``; range ``endDate`` (inclusive), ``noEnd`` and ``numbered``
(``numberOfOccurrences``), from ``startDate``. Other patterns (relativeMonthly, yearly)
and exceptions (a moved or cancelled occurrence) are not emulated: such a series lists no
occurrences. Occurrences keep the master's wall-clock time in its zone.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from typing import Any

from .graph_model import EventTime, StoredEvent
from .graph_tz import resolve_zone

__all__ = ["expanded", "occurrence_by_id", "occurrences"]

_DAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
#: Days looked at per series at most: a daily series over 30 years, more than any window.
_MAX_DAYS = 11_000


def _dates(recurrence: dict[str, Any], first: date) -> Iterator[date]:
    """The dates of a series, in order, as its pattern and range say."""
    pattern, rng = recurrence.get("pattern") or {}, recurrence.get("range") or {}
    kind = pattern.get("type")
    interval = max(1, int(pattern.get("interval") or 1))
    start = date.fromisoformat(rng.get("startDate") or first.isoformat())
    last = date.fromisoformat(rng["endDate"]) if rng.get("type") == "endDate" else None
    count = int(rng.get("numberOfOccurrences") or 0) if rng.get("type") == "numbered" else None
    days = {_DAYS.index(d) for d in pattern.get("daysOfWeek") or [] if d in _DAYS}
    week_start = _DAYS.index(pattern.get("firstDayOfWeek") or "sunday")
    anchor = start - timedelta(days=(start.weekday() - week_start) % 7)
    made = 0
    for offset in range(_MAX_DAYS):
        day = start + timedelta(days=offset)
        if (last is not None and day > last) or (count is not None and made >= count):
            return
        if kind == "daily":
            hit = offset % interval == 0
        elif kind == "weekly":
            hit = day.weekday() in days and ((day - anchor).days // 7) % interval == 0
        elif kind == "absoluteMonthly":
            months = (day.year - start.year) * 12 + day.month - start.month
            hit = day.day == int(pattern.get("dayOfMonth") or 0) and months % interval == 0
        else:
            return
        if hit:
            made += 1
            yield day


def occurrences(ev: StoredEvent, start: datetime, end: datetime) -> list[StoredEvent]:
    """The occurrences of series ``ev`` overlapping [start, end), as events of their own
    (ids ``<master id>_<yyyymmdd>``; the master's props without ``recurrence``)."""
    recurrence = ev.props.get("recurrence")
    if not isinstance(recurrence, dict):
        return []
    zone = resolve_zone(ev.start.zone)
    length = ev.end.local - ev.start.local
    found = []
    for day in _dates(recurrence, ev.start.local.date()):
        local = datetime.combine(day, ev.start.local.time())
        utc = local.replace(tzinfo=zone).astimezone(UTC)
        utc_end = (local + length).replace(tzinfo=zone).astimezone(UTC)
        if utc >= end:
            break
        if utc_end <= start and utc != utc_end:
            continue
        suffix = f"_{day:%Y%m%d}"
        props = {k: v for k, v in ev.props.items() if k != "recurrence"}
        found.append(replace(
            ev, regular_id=ev.regular_id + suffix, immutable_id=ev.immutable_id + suffix,
            start=EventTime(local, ev.start.zone, utc),
            end=EventTime(local + length, ev.end.zone, utc_end), props=props))
    return found


def expanded(events: list[StoredEvent], start: datetime, end: datetime,
             in_window: Any) -> list[tuple[StoredEvent, StoredEvent | None]]:
    """Single events in the window and every occurrence of each series in it, each with
    its master (None for a single event), ordered by start."""
    found: list[tuple[StoredEvent, StoredEvent | None]] = []
    for ev in events:
        if ev.props.get("recurrence"):
            found.extend((occ, ev) for occ in occurrences(ev, start, end))
        elif in_window(ev, start, end):
            found.append((ev, None))
    found.sort(key=lambda pair: (pair[0].start.utc, pair[0].created))
    return found


def occurrence_by_id(master: StoredEvent, event_id: str) -> StoredEvent | None:
    """The occurrence of series ``master`` that ``event_id`` names (``<master id>_<yyyymmdd>``,
    either id form), or None when the series has none that day."""
    _, _, stamp = event_id.rpartition("_")
    try:
        day = datetime.strptime(stamp, "%Y%m%d").date() if len(stamp) == 8 else None
    except ValueError:
        day = None
    if day is None:
        return None
    # The day is the master's wall-clock date: a day either side covers every zone.
    start = datetime.combine(day - timedelta(days=1), datetime.min.time(), UTC)
    found = occurrences(master, start, start + timedelta(days=3))
    return next((o for o in found if event_id in (o.regular_id, o.immutable_id)), None)
