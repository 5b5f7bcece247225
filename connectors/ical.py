"""Projection <-> iCalendar VEVENT (RFC 5545), for CalDAV.

Outbound, iCalendar is only ever built through the ``icalendar`` serializer, from a
projection whose text is already cleaned, so a title with CR/LF cannot inject a property
(failure mode 25). Inbound, text is untrusted and reduced to plain text before it is
compared (failure mode 26); recurrence rules are detected, never expanded (failure mode
24); an object we cannot read becomes a :class:`RemoteEvent` with a ``problem``.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from datetime import UTC, date, datetime, timedelta
from typing import Any, cast

import icalendar
from icalendar.parser import Parameters

from connectors.base import RemoteEvent
from connectors.ical_zones import ZoneError, zoned, zones_of
from syncd.model import (
    OutOfRange,
    Projection,
    When,
    check_start,
    checked_span,
    end_after,
    is_valid_email,
    normalize_email,
    unambiguous_local,
)
from syncd.text import untrusted_text

PRODID = "-//syncd//syncd calendar sync//EN"
MARKER_PROP = "X-SYNCD-ID"
MAX_OBJECT_BYTES = 1024 * 1024  # an activity's event is a few kB; anything this big is hostile
MANAGED = ("SUMMARY", "DTSTART", "DTEND", "DURATION", "TRANSP", "DESCRIPTION", "LOCATION",
           "ATTENDEE", "ORGANIZER", MARKER_PROP)


class UnreadableEvent(ValueError):
    """The object is not an event we can map; the message is the quarantine reason."""


def _set_when(vevent: icalendar.Event, when: When) -> None:
    for prop in ("DTSTART", "DTEND", "DURATION"):
        vevent.pop(prop, None)
    if when.all_day:
        vevent.add("DTSTART", when.start)
        vevent.add("DTEND", when.end)
    else:
        assert isinstance(when.start, datetime) and isinstance(when.end, datetime)
        for prop, instant in (("DTSTART", when.start), ("DTEND", when.end)):
            # RFC 5545 reads a TZID time that happens twice as its first occurrence, so
            # the second one (an end in the hour repeated when clocks go back) is written
            # in UTC, which has no folds; anything else keeps the zone for other clients.
            local = unambiguous_local(instant, when.tz)
            vevent.add(prop, local if local is not None else instant.astimezone(UTC))


def _address(prop: Any) -> str:
    return normalize_email(str(prop).split(":", 1)[-1])


def _set_people(vevent: icalendar.Event, projection: Projection, organizer: str,
                invited: frozenset[str]) -> None:
    """ORGANIZER and ATTENDEEs of our own meeting (docs/guest-mail.md).

    ``SCHEDULE-AGENT=CLIENT`` tells an RFC 6638 server not to e-mail that attendee
    (failure mode 6): every guest without an invitation carries it. Guests holding one
    are left to the server, so its messages reach exactly them. An attendee who stays
    keeps their property as it was (PARTSTAT and all); only the scheduling agent follows
    the invitation.
    """
    current = vevent.get("ATTENDEE", [])
    kept = {_address(p): p for p in (current if isinstance(current, list) else [current])}
    for prop in ("ATTENDEE", "ORGANIZER"):
        vevent.pop(prop, None)
    if not projection.guests:
        return
    scheduled = projection.guests & invited
    vevent.add("ORGANIZER", f"mailto:{organizer}",
               parameters={} if scheduled else {"SCHEDULE-AGENT": "CLIENT"})
    for email in sorted(projection.guests):
        old = kept.get(email)
        params: dict[str, Any] = dict(getattr(old, "params", None) or {
            "CUTYPE": "INDIVIDUAL", "ROLE": "REQ-PARTICIPANT", "PARTSTAT": "NEEDS-ACTION"})
        params.pop("SCHEDULE-AGENT", None)
        if email not in scheduled:
            params["SCHEDULE-AGENT"] = "CLIENT"
        if name := projection.guest_names.get(email):
            params["CN"] = name
        vevent.add("ATTENDEE", _attendee(email, params))


def _attendee(email: str, params: dict[str, Any]) -> icalendar.vCalAddress:
    """An ATTENDEE whose CN is quoted when it holds a backslash.

    RFC 5545 gives a backslash no meaning in a parameter, but icalendar's reader (syncd's
    own, and any server built on it) takes ``\\;`` in a bare value for an escaped
    semicolon: a name ending in one would swallow the next parameter, SCHEDULE-AGENT
    among them. Quoted, the value ends at its closing quote.
    """
    address = icalendar.vCalAddress(f"mailto:{email}")
    address.params = Parameters(params)
    address.params.quote_also = {**Parameters.quote_also, "CN": " '\\"}
    return address


def apply_fields(vevent: icalendar.Event, projection: Projection, fields: frozenset[str],
                 *, organizer: str, invited: frozenset[str] = frozenset(),
                 theirs: bool = False) -> None:
    """Write the named projection fields into an existing VEVENT, leaving the rest alone.

    ``invited`` guests are server-scheduled attendees, the others client-scheduled. With
    ``theirs`` (someone else organises the meeting) ORGANIZER and every ATTENDEE are
    never touched, whatever ``fields`` says.
    """
    if "title" in fields:
        vevent.pop("SUMMARY", None)
        vevent.add("SUMMARY", projection.title)
    if "when" in fields:
        _set_when(vevent, projection.when)
    if "busy" in fields:
        vevent.pop("TRANSP", None)
        vevent.add("TRANSP", "OPAQUE" if projection.busy else "TRANSPARENT")
    for name, prop in (("description", "DESCRIPTION"), ("location", "LOCATION")):
        if name in fields:
            vevent.pop(prop, None)
            if projection.get(name):
                vevent.add(prop, projection.get(name))
    if "guests" in fields and not theirs:
        _set_people(vevent, projection, organizer, invited)


def build_calendar(projection: Projection, *, uid: str, marker: str, organizer: str,
                   invited: frozenset[str] = frozenset(), now: datetime | None = None) -> bytes:
    """A complete VCALENDAR with one VEVENT for a new event."""
    cal = icalendar.Calendar()
    cal.add("PRODID", PRODID)
    cal.add("VERSION", "2.0")
    vevent = icalendar.Event()
    vevent.add("UID", uid)
    vevent.add("DTSTAMP", (now or datetime.now(UTC)).replace(microsecond=0))
    vevent.add("SEQUENCE", 0)
    vevent.add(MARKER_PROP, marker)
    apply_fields(vevent, projection, frozenset(("title", "when", "busy", "description",
                                                "location", "guests")),
                 organizer=organizer, invited=invited)
    cal.add_component(vevent)
    _add_timezones(cal)
    return bytes(cal.to_ical())


def update_calendar(data: bytes | str, projection: Projection, fields: frozenset[str], *,
                    marker: str, organizer: str, invited: frozenset[str] = frozenset(),
                    theirs: bool = False) -> bytes:
    """The stored object with ``fields`` rewritten and the marker set.

    SEQUENCE is raised only when the time or the guests change: it tells attendees'
    clients that a meaningful revision arrived, and bumping it on every save is how
    update storms start (failure mode 8). It is the organizer's to raise: never on a
    meeting someone else organises (``theirs``).
    """
    cal = parse_calendar(data)
    vevent = _main_event(cal)
    apply_fields(vevent, projection, fields, organizer=organizer, invited=invited,
                 theirs=theirs)
    vevent.pop(MARKER_PROP, None)
    vevent.add(MARKER_PROP, marker)
    if fields & {"when", "guests"} and not theirs:
        sequence = int(vevent.get("SEQUENCE", 0)) + 1
        vevent.pop("SEQUENCE", None)
        vevent.add("SEQUENCE", sequence)
    vevent.pop("DTSTAMP", None)
    vevent.add("DTSTAMP", datetime.now(UTC).replace(microsecond=0))
    _add_timezones(cal)
    return bytes(cal.to_ical())


@functools.lru_cache(maxsize=256)
def _vtimezone(tzid: str, first_year: int, last_year: int) -> icalendar.Timezone:
    """The VTIMEZONE of an IANA zone for the years an event spans, built once per zone
    and span. icalendar's default spans 1970-2038, every transition listed: ~10 ms of CPU
    to build and as much again for every reader to parse, for one event in one year.
    The component is only ever serialised, never changed, so it can be shared."""
    return icalendar.Timezone.from_tzid(tzid, first_date=date(first_year, 1, 1),
                                        last_date=date(last_year + 1, 1, 1))


def _add_timezones(cal: icalendar.Calendar) -> None:
    """Add a VTIMEZONE for every TZID the events use and the calendar lacks (RFC 5545)."""
    present = {str(tz.get("TZID")) for tz in cal.walk("VTIMEZONE")}
    years: dict[str, set[int]] = {}
    for vevent in cal.walk("VEVENT"):
        for prop in ("DTSTART", "DTEND"):
            if prop in vevent and (tzid := vevent[prop].params.get("TZID")):
                years.setdefault(str(tzid), set()).add(vevent.decoded(prop).year)
    for tzid in sorted(years.keys() - present):
        try:
            cal.add_component(_vtimezone(tzid, min(years[tzid]) - 1, max(years[tzid])))
        except (ValueError, KeyError):  # not an IANA zone we can describe: leave it out
            continue


# Whole lines only: text that merely contains "BEGIN:VTIMEZONE" sits on a property line
# or, folded, on a continuation line that starts with a space.
_VTIMEZONE_BLOCK = re.compile(rb"(?<=\r\n)BEGIN:VTIMEZONE\r\n.*?\r\nEND:VTIMEZONE\r\n",
                              re.S)


def without_timezones(own: bytes) -> bytes:
    """An object syncd built, without its VTIMEZONE blocks, for reading it back.

    Its TZIDs are IANA names, which reading resolves on its own; the blocks are only for
    other clients, and three quarters of the time it takes to parse the object. Never
    for objects from a server: a foreign TZID may be defined only by its VTIMEZONE.
    """
    return _VTIMEZONE_BLOCK.sub(b"", own)


def parse_calendar(data: bytes | str) -> icalendar.Calendar:
    size = len(data.encode() if isinstance(data, str) else data)
    if size > MAX_OBJECT_BYTES:
        raise UnreadableEvent(f"object is {size} bytes, over the {MAX_OBJECT_BYTES} byte cap")
    try:
        return icalendar.Calendar.from_ical(data)
    except (ValueError, IndexError, KeyError) as exc:
        raise UnreadableEvent(f"not valid iCalendar: {str(exc)[:120]}") from None


def _main_event(cal: icalendar.Calendar) -> icalendar.Event:
    events = [c for c in cal.walk("VEVENT") if "RECURRENCE-ID" not in c]
    if not events:
        raise UnreadableEvent("no VEVENT in the object")
    return cast(icalendar.Event, events[0])


def read_when(vevent: icalendar.Event, default_tz: str,
              zones: Mapping[str, Any] | None = None) -> When:
    """The event's time; ``zones`` are the object's VTIMEZONEs by TZID (see ical_zones).

    Dates outside the range syncd accepts (syncd.model.FIRST_DAY to LAST_DAY, at most
    MAX_SPAN long) are an UnreadableEvent with the reason, checked before any arithmetic,
    so a hostile DTSTART or DURATION cannot overflow. A TZID time is read as RFC 5545
    (3.3.5) says: a repeated wall time is its first occurrence, a skipped one is read
    with the offset from before the gap.
    """
    if "DTSTART" not in vevent:
        raise UnreadableEvent("event has no DTSTART")
    try:
        return _span(vevent, default_tz, zones or {})
    except OutOfRange as exc:
        raise UnreadableEvent(str(exc)) from None
    except OverflowError:  # past Python's own limits, wherever it happened
        raise UnreadableEvent("a date is outside the range syncd accepts") from None


def _span(vevent: icalendar.Event, default_tz: str, zones: Mapping[str, Any]) -> When:
    start, zone = zoned(vevent["DTSTART"], zones, default_tz)
    check_start(start, default_tz)
    if "DTEND" in vevent:
        end, _ = zoned(vevent["DTEND"], zones, default_tz)
    elif "DURATION" in vevent:
        end = end_after(start, vevent.decoded("DURATION"), default_tz)
    else:
        end = start + timedelta(days=1) if not isinstance(start, datetime) else start
    if isinstance(start, datetime) and isinstance(end, datetime):
        if end < start:
            raise UnreadableEvent("DTEND is before DTSTART")
        checked_span(start, end, default_tz)
        return When(start, end, zone or default_tz)
    if isinstance(start, datetime) or isinstance(end, datetime):
        raise UnreadableEvent("DTSTART and DTEND mix a date and a date-time")
    checked_span(start, max(end, start), default_tz)
    return When(start, max(end, start + timedelta(days=1)), default_tz)


def _read_vevent(event_id: str, etag: str | None, cal: icalendar.Calendar,
                 vevent: icalendar.Event, *, default_tz: str, owner: str,
                 recurring: bool = False) -> RemoteEvent:
    """One VEVENT of ``cal`` as a RemoteEvent with its projection (raises when unreadable)."""
    marker = str(vevent.get(MARKER_PROP)) if MARKER_PROP in vevent else None
    organizer = normalize_email(str(vevent.get("ORGANIZER", "")).removeprefix("mailto:")
                                .removeprefix("MAILTO:"))
    attendees = vevent.get("ATTENDEE", [])
    if not isinstance(attendees, list):
        attendees = [attendees]
    guests: set[str] = set()
    names: dict[str, str] = {}
    for att in attendees:
        email = normalize_email(str(att).split(":", 1)[-1])
        if not is_valid_email(email) or email in (organizer, normalize_email(owner)):
            continue
        guests.add(email)
        if cn := getattr(att, "params", {}).get("CN"):
            names[email] = untrusted_text(str(cn), single_line=True)
    projection = Projection(
        title=untrusted_text(str(vevent.get("SUMMARY", "")), single_line=True),
        when=read_when(vevent, default_tz, zones_of(cal)),
        busy=str(vevent.get("TRANSP", "OPAQUE")).upper() != "TRANSPARENT",
        description=untrusted_text(str(vevent.get("DESCRIPTION", ""))),
        location=untrusted_text(str(vevent.get("LOCATION", "")), single_line=True),
        guests=frozenset(guests),
        guest_names=names,
    )
    updated = vevent.decoded("LAST-MODIFIED") if "LAST-MODIFIED" in vevent else None
    return RemoteEvent(event_id, etag, marker, projection, recurring=recurring,
                       updated=updated if isinstance(updated, datetime) else None,
                       ical_uid=str(vevent["UID"]) if "UID" in vevent else None,
                       organizer=organizer if organizer not in ("", normalize_email(owner))
                       else None)


def read_event(event_id: str, etag: str | None, data: bytes | str, *, default_tz: str,
               owner: str) -> RemoteEvent:
    """Map one stored calendar object to a RemoteEvent (quarantine reasons included)."""
    try:
        cal = parse_calendar(data)
        vevent = _main_event(cal)
        marker = str(vevent.get(MARKER_PROP)) if MARKER_PROP in vevent else None
        if any(p in vevent for p in ("RRULE", "RDATE")) or len(list(cal.walk("VEVENT"))) > 1:
            return RemoteEvent(event_id, etag, marker, recurring=True)
        return _read_vevent(event_id, etag, cal, vevent, default_tz=default_tz, owner=owner)
    except (UnreadableEvent, ZoneError) as exc:
        return RemoteEvent(event_id, etag, problem=str(exc))
    except Exception as exc:  # whatever one object raises (overflow, recursion) is its own
        return RemoteEvent(event_id, etag, problem=f"unreadable event: {type(exc).__name__}")


#: Occurrences read from one expanded object at most (a daily event over a 62-day span
#: has 62); past that the object is hostile and read as one problem.
MAX_INSTANCES = 2000


def read_instances(event_id: str, etag: str | None, data: bytes | str, *, default_tz: str,
                   owner: str) -> list[tuple[RemoteEvent, str | None]]:
    """Every VEVENT of an object a server expanded (RFC 4791 9.6.5: each occurrence its own
    VEVENT with a RECURRENCE-ID), each with how busy it makes the owner; never raises.

    The busy kind follows RFC 5545: ``STATUS:CANCELLED`` events are left out altogether,
    ``TRANSP:TRANSPARENT`` ones are listed but free (None), ``STATUS:TENTATIVE`` ones are
    ``tentative``, the rest ``busy``. An occurrence's id is the object's, ``#`` and its
    RECURRENCE-ID. A VEVENT that still carries an RRULE (a server that did not expand) is
    listed with a problem: its occurrences are unknown, and are not guessed.
    """
    try:
        cal = parse_calendar(data)
        vevents = [cast(icalendar.Event, c) for c in cal.walk("VEVENT")]
        if len(vevents) > MAX_INSTANCES:
            return [(RemoteEvent(event_id, etag, problem=(
                f"the object holds over {MAX_INSTANCES} occurrences")), None)]
        series = len(vevents) > 1
        found: list[tuple[RemoteEvent, str | None]] = []
        for vevent in vevents:
            status = str(vevent.get("STATUS", "CONFIRMED")).upper()
            if status == "CANCELLED":
                continue
            rid = vevent.get("RECURRENCE-ID")
            own_id = f"{event_id}#{rid.to_ical().decode()[:40]}" if rid is not None \
                else event_id
            if any(p in vevent for p in ("RRULE", "RDATE")):
                found.append((RemoteEvent(own_id, etag, recurring=True, problem=(
                    "a recurring event the server did not expand")), None))
                continue
            try:
                event = _read_vevent(own_id, etag, cal, vevent, default_tz=default_tz,
                                     owner=owner, recurring=series or rid is not None)
            except (UnreadableEvent, ZoneError) as exc:
                found.append((RemoteEvent(own_id, etag, problem=str(exc)), None))
                continue
            busy = event.projection is not None and event.projection.busy
            found.append((event, ("tentative" if status == "TENTATIVE" else "busy")
                          if busy else None))
        return found
    except (UnreadableEvent, ZoneError) as exc:
        return [(RemoteEvent(event_id, etag, problem=str(exc)), None)]
    except Exception as exc:  # whatever one object raises (overflow, recursion) is its own
        return [(RemoteEvent(event_id, etag,
                             problem=f"unreadable event: {type(exc).__name__}"), None)]
