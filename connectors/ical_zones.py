"""Time zones of untrusted iCalendar objects, resolved without expanding their rules.

A VTIMEZONE is code a server sends us: a rule of ``FREQ=SECONDLY`` from 1601 makes a
general evaluator (dateutil, through icalendar) walk every second up to the event, and the
cost lands wherever the datetime's ``utcoffset`` is first asked for (failure mode 24).
So a date-time with a TZID is resolved here, in this order:

1. The TZID names a zone of the IANA database, directly, as a Windows name (Exchange
   serves those) or behind a vendor prefix (``/mozilla.org/20050126_1/Europe/Berlin``):
   that zone, whatever the object's VTIMEZONE says. The database is right more often than
   a copy of it, and it costs nothing to evaluate.
2. Otherwise the object's own VTIMEZONE of that TZID, evaluated by :func:`custom_offset`,
   which only accepts the yearly rules real zones use and computes the onsets of at most
   four years directly: no rule is ever iterated.
3. Otherwise the object is unreadable: an unknown TZID is never guessed at, nor read in
   the owner's zone (failure mode 17).

The result is always a datetime whose tzinfo is a ``ZoneInfo`` or a fixed offset, so no
server-defined zone object ever leaves this module.
"""

from __future__ import annotations

import calendar as _calendar
from collections.abc import Mapping
from datetime import UTC, date, datetime, time, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from connectors.outlook_zones import UnknownZone, iana_zone

#: RDATE onsets one observance may list; real zones list a handful.
MAX_RDATES = 400
_WEEKDAYS = ("MO", "TU", "WE", "TH", "FR", "SA", "SU")
_RULE_PARTS = frozenset({"FREQ", "INTERVAL", "BYMONTH", "BYDAY", "BYMONTHDAY", "UNTIL",
                         "COUNT", "WKST"})


class ZoneError(ValueError):
    """A time zone that cannot be resolved safely; the message is the quarantine reason."""


def zone_by_name(tzid: str) -> ZoneInfo | None:
    """The IANA zone a TZID names (directly, as a Windows name, or behind a prefix)."""
    candidates = [tzid.strip()]
    parts = [p for p in tzid.strip().strip("/").split("/") if p]
    candidates += ["/".join(parts[-n:]) for n in (3, 2) if len(parts) > n]
    for name in candidates:
        try:
            return ZoneInfo(iana_zone(name))
        except (UnknownZone, ZoneInfoNotFoundError, ValueError):
            continue
    return None


def zoned(prop: Any, zones: Mapping[str, Any], default_tz: str
          ) -> tuple[date | datetime, str | None]:
    """A DTSTART/DTEND/RECURRENCE-ID value as a date or an aware datetime, with the IANA
    zone it was written in (None for UTC, floating or a custom zone).

    ``zones`` maps TZIDs to the object's VTIMEZONE components. Floating times are the
    owner's wall clock (``default_tz``).
    """
    value = prop.dt
    if not isinstance(value, datetime):
        if not isinstance(value, date):
            raise ZoneError(f"{type(value).__name__} is not a date or a date-time")
        return value, None
    tzid = prop.params.get("TZID")
    wall = value.replace(tzinfo=None)  # replace() never asks the zone for an offset
    if tzid is None:
        if value.tzinfo is None:
            return wall.replace(tzinfo=ZoneInfo(default_tz)), None
        return wall.replace(tzinfo=UTC), None  # no TZID and not floating: a "Z" time
    tzid = str(tzid)
    if (zone := zone_by_name(tzid)) is not None:
        return wall.replace(tzinfo=zone), zone.key
    if (component := zones.get(tzid)) is not None:
        return wall.replace(tzinfo=timezone(custom_offset(component, wall))), None
    raise ZoneError(f"unknown time zone {tzid[:60]!r}")


def zones_of(cal: Any) -> dict[str, Any]:
    """The VTIMEZONE components of a calendar, by TZID."""
    return {str(tz["TZID"]): tz for tz in cal.walk("VTIMEZONE") if "TZID" in tz}


# --- a custom VTIMEZONE, evaluated in closed form ----------------------------------------


def custom_offset(component: Any, wall: datetime) -> timedelta:
    """The UTC offset a VTIMEZONE gives the local time ``wall``.

    The observance (STANDARD or DAYLIGHT) with the latest onset at or before ``wall``
    decides; before the first onset, the first observance's TZOFFSETFROM applies
    (RFC 5545 3.6.5). Onsets are compared in local time, which is exact except within the
    hour a transition repeats or skips.
    """
    latest: tuple[datetime, timedelta] | None = None
    first: tuple[datetime, timedelta] | None = None
    for observance in component.subcomponents:
        if observance.name not in ("STANDARD", "DAYLIGHT"):
            continue
        try:
            start = _naive(observance["DTSTART"].dt, observance)
            offset_to = observance["TZOFFSETTO"].td
            offset_from = observance["TZOFFSETFROM"].td
        except (KeyError, AttributeError, TypeError) as exc:
            raise ZoneError(f"time zone observance lacks {exc}") from None
        if abs(offset_to) > timedelta(hours=26) or abs(offset_from) > timedelta(hours=26):
            raise ZoneError("time zone offset beyond 26 hours")
        if first is None or start < first[0]:
            first = (start, offset_from)
        for onset in _onsets_before(observance, start, wall):
            if latest is None or onset > latest[0]:
                latest = (onset, offset_to)
    if latest is not None:
        return latest[1]
    if first is not None:
        return first[1]
    raise ZoneError("time zone has no STANDARD or DAYLIGHT observance")


def _naive(value: Any, observance: Any) -> datetime:
    if isinstance(value, datetime):
        if value.tzinfo is not None:  # a UTC onset: move it to the local time before it
            return (value.astimezone(UTC) + observance["TZOFFSETFROM"].td).replace(tzinfo=None)
        return value
    if isinstance(value, date):
        return datetime.combine(value, time())
    raise ZoneError("time zone onset is not a date-time")


def _onsets_before(observance: Any, start: datetime, wall: datetime) -> list[datetime]:
    """The observance's onsets at or before ``wall``: at most one per rule, and its RDATEs."""
    found = [start] if start <= wall else []
    if "RRULE" in observance:
        rules = observance["RRULE"]
        for rule in rules if isinstance(rules, list) else [rules]:
            if (onset := _last_yearly_onset(rule, start, wall, observance)) is not None:
                found.append(onset)
    if "RDATE" in observance:
        rdates = observance["RDATE"]
        values = [v for r in (rdates if isinstance(rdates, list) else [rdates]) for v in r.dts]
        if len(values) > MAX_RDATES:
            raise ZoneError(f"time zone lists more than {MAX_RDATES} onsets")
        found += [d for d in (_naive(v.dt, observance) for v in values) if d <= wall]
    return found


def _last_yearly_onset(rule: Mapping[str, list[Any]], start: datetime, wall: datetime,
                       observance: Any) -> datetime | None:
    """The last onset of a yearly rule at or before ``wall``, computed, never iterated."""
    parts = {str(k).upper(): v for k, v in rule.items()}
    freq = [str(f).upper() for f in parts.get("FREQ", [])]
    if freq != ["YEARLY"]:
        raise ZoneError(f"time zone rule FREQ={','.join(freq) or 'none'} is not yearly")
    if unknown := set(parts) - _RULE_PARTS:
        raise ZoneError(f"time zone rule uses {', '.join(sorted(unknown))}")
    if [int(i) for i in parts.get("INTERVAL", [1])] != [1]:
        raise ZoneError("time zone rule has an INTERVAL")
    months = [int(m) for m in parts.get("BYMONTH", [start.month])]
    if len(months) != 1 or not 1 <= months[0] <= 12:
        raise ZoneError("time zone rule must name one month")
    last_year = wall.year
    if "COUNT" in parts:
        last_year = min(last_year, start.year + int(parts["COUNT"][0]) - 1)
    until = None
    if "UNTIL" in parts:
        until = _naive(parts["UNTIL"][0], observance)
        last_year = min(last_year, until.year)
    onsets = []
    for year in {last_year, last_year - 1}:
        if year < start.year:
            continue
        day = _rule_day(parts, year, months[0], start)
        if day is None:
            continue
        onset = datetime.combine(day, start.time())
        if start <= onset <= wall and (until is None or onset <= until):
            onsets.append(onset)
    return max(onsets, default=None)


def _rule_day(parts: Mapping[str, list[Any]], year: int, month: int, start: datetime
              ) -> date | None:
    """The day a yearly rule picks in ``month`` of ``year`` (BYDAY, BYMONTHDAY or both)."""
    days_in_month = _calendar.monthrange(year, month)[1]
    monthdays = [int(d) for d in parts.get("BYMONTHDAY", [])]
    if any(not 1 <= abs(d) <= 31 for d in monthdays):
        raise ZoneError("time zone rule has an impossible BYMONTHDAY")
    monthdays = [d if d > 0 else days_in_month + 1 + d for d in monthdays]
    bydays = parts.get("BYDAY", [])
    if len(bydays) > 1:
        raise ZoneError("time zone rule must name one weekday")
    if not bydays:
        candidates = monthdays or [start.day]
        days = [d for d in candidates if 1 <= d <= days_in_month]
        return date(year, month, days[0]) if len(days) == 1 else None
    text = str(bydays[0])
    weekday_name, ordinal_text = text[-2:].upper(), text[:-2]
    if weekday_name not in _WEEKDAYS:
        raise ZoneError("time zone rule has an unknown weekday")
    weekday = _WEEKDAYS.index(weekday_name)
    matching = [d for d in range(1, days_in_month + 1)
                if date(year, month, d).weekday() == weekday
                and (not monthdays or d in monthdays)]
    if ordinal_text.strip("+-"):
        ordinal = int(ordinal_text)
        if not 1 <= abs(ordinal) <= 5:
            raise ZoneError("time zone rule has an impossible weekday ordinal")
        index = ordinal - 1 if ordinal > 0 else ordinal
        if not -len(matching) <= index < len(matching):
            return None
        return date(year, month, matching[index])
    return date(year, month, matching[0]) if matching else None

