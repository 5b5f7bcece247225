"""Projection <-> Google Calendar v3 ``Event`` resource. Pure: no I/O, no client library.

Outbound, only the projection's fields and our marker are ever written (an explicit
allowlist, failure mode 27), and a patch names only the fields asked for, so reminders,
colours and attendees' answers stay as the user left them. Inbound, every text goes
through :func:`syncd.text.untrusted_text` (Google descriptions may hold HTML, failure mode
26); times are compared as instants, so Google re-expressing a ``dateTime`` in the event's
zone is not an edit; an event we cannot map becomes a :class:`RemoteEvent` with a
``problem`` (quarantine) instead of breaking the listing.

Guests follow docs/guest-mail.md (failure modes 6 and 7): only guests holding an
invitation are real attendees; the others, and every guest of an account that invites
nobody, are *described* in a trailing ``Guests:`` paragraph of the description, which the
reader strips again (the same paragraph as the Outlook connector's,
:mod:`connectors.guests`). An account that invites nobody never writes ``attendees``, and
a meeting someone else organises never has its people written.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from connectors.base import RemoteEvent
from connectors.busy import BusyTally, parse_instant
from connectors.guests import body_text, split_guests
from connectors.json_limits import read_guarded
from syncd.errors import CalendarMissing, Transient
from syncd.model import (
    FIELDS,
    OutOfRange,
    Projection,
    When,
    check_start,
    checked_span,
    is_valid_email,
    normalize_email,
)
from syncd.safe_json import text_field
from syncd.text import untrusted_text

JsonDict = dict[str, Any]

#: ``extendedProperties.private`` key holding our marker. Google silently drops keys
#: longer than 44 characters, so this must stay short (a test pins it).
MARKER_KEY = "syncd"
#: Event id rules: base32hex (RFC 2938 3.1.2) lower case, 5 to 1024 characters.
EVENT_ID = re.compile(r"^[a-v0-9]{5,1024}$")
_HEX = re.compile(r"^[0-9a-f]+$")
#: Attendee keys a client may send back; ``id``, ``self`` and ``organizer`` are read-only.
_WRITABLE_ATTENDEE = ("email", "displayName", "optional", "responseStatus", "comment",
                      "additionalGuests", "resource")


class UnreadableEvent(ValueError):
    """The resource is not an event we can map; the message is the quarantine reason."""


# --- identity ------------------------------------------------------------------------------


def event_id_for(marker: str, generation: int) -> str:
    """The client-chosen event id of (marker, generation): deterministic and injective.

    A lower-case hex marker (every ``sync_uid`` is 32 hex digits) is already base32hex and
    is used as is; any other marker is hex-encoded behind an ``h``, which no hex marker
    starts with. The generation follows a ``g``, which hex never contains, so
    ("ab1", 2) and ("ab", 12) cannot collide. The same op therefore always targets the
    same id, which is what makes a retried insert safe (failure mode 1).

    Args:
        marker: the activity's ``sync_uid`` (any string; 32 hex digits in practice).
        generation: how many times the event was re-created (0 first).

    Returns:
        A valid Google event id (``[a-v0-9]{5,1024}``).
    """
    if generation < 0:
        raise ValueError("generation must not be negative")
    body = marker if len(marker) >= 4 and _HEX.match(marker) else "h" + marker.encode().hex()
    event_id = f"{body}g{generation}"
    if len(event_id) > 1024:
        # Only a hostile marker is this long; a digest keeps the id valid and stable.
        event_id = "s" + hashlib.sha256(marker.encode()).hexdigest() + f"g{generation}"
    assert EVENT_ID.match(event_id), event_id
    return event_id


# --- outbound --------------------------------------------------------------------------------


def _rfc3339(instant: datetime, tz: str) -> str:
    """The instant as wall time in ``tz`` with its offset, which fixes the instant even in
    the hour repeated when clocks go back. A local mean time offset (seconds, before a
    zone's first standard time) is not RFC 3339, so that instant is written in UTC."""
    local = instant.astimezone(ZoneInfo(tz))
    offset = local.utcoffset()
    if offset is None or offset % timedelta(minutes=1):
        local = instant.astimezone(UTC)
    return local.isoformat(timespec="seconds")


def _date_time(when: When, *, patch: bool) -> tuple[JsonDict, JsonDict]:
    """``start``/``end`` objects. In a patch the other form is nulled: objects merge."""
    if when.all_day:
        start: JsonDict = {"date": when.start.isoformat()}
        end: JsonDict = {"date": when.end.isoformat()}
        clear = {"dateTime": None, "timeZone": None}
    else:
        assert isinstance(when.start, datetime) and isinstance(when.end, datetime)
        start = {"dateTime": _rfc3339(when.start, when.tz), "timeZone": when.tz}
        end = {"dateTime": _rfc3339(when.end, when.tz), "timeZone": when.tz}
        clear = {"date": None}
    if patch:
        start, end = {**clear, **start}, {**clear, **end}
    return start, end


def attendees_for(projection: Projection,
                  current: Iterable[Mapping[str, Any]] = ()) -> list[JsonDict]:
    """The ``attendees`` array for the projection's guests.

    An array is replaced as a whole by a patch, so the entries of guests who stay are
    copied from ``current`` (their answers survive) and entries that are not guests at
    all (the organizer's own, resources) are kept as they were.
    """
    kept: dict[str, JsonDict] = {}
    others: list[JsonDict] = []
    for entry in current:
        email = normalize_email(str(entry.get("email", "")))
        clean = {k: entry[k] for k in _WRITABLE_ATTENDEE if k in entry}
        if entry.get("self") or entry.get("organizer") or entry.get("resource"):
            others.append(clean)
        elif email:
            kept[email] = clean
    out = list(others)
    for email in sorted(projection.guests):
        entry = kept.get(email) or {"email": email}
        name = projection.guest_names.get(email)
        if name:
            entry = {**entry, "displayName": name}
        out.append(entry)
    return out


def event_body(projection: Projection, fields: Iterable[str] = FIELDS, *,
               invited: frozenset[str] | None = None, theirs: bool = False,
               marker: str | None = None, patch: bool = False,
               current_attendees: Iterable[Mapping[str, Any]] = ()) -> JsonDict:
    """The request body writing ``fields`` of ``projection`` (plus the marker).

    With ``patch`` the body is for ``events.patch``: empty texts are sent as "" so that
    they clear, and the unused date form is nulled. Without it, the body is a complete
    new event and empty texts are left out.

    Args:
        projection: the values to write.
        fields: the projection fields to write (default: all).
        invited: the guests written as attendees, the others being described; None when
            the account invites nobody (``attendees`` is then never written).
        theirs: someone else organises the meeting: neither attendees nor a guests
            paragraph are written.
        marker: our marker, written into ``extendedProperties.private``.
        patch: build a patch body rather than a new event.
        current_attendees: the event's attendees now (a guests patch keeps their answers).

    Returns:
        The JSON body; it names no field outside the allowlist.

    Raises:
        ValueError: ``fields`` names something that is not a projection field.
    """
    wanted = frozenset(fields)
    unknown = wanted - set(FIELDS)
    if unknown:
        raise ValueError(f"unknown projection fields: {sorted(unknown)}")
    body: JsonDict = {}
    if "title" in wanted:
        body["summary"] = projection.title
    if "when" in wanted:
        body["start"], body["end"] = _date_time(projection.when, patch=patch)
    if "busy" in wanted:
        body["transparency"] = "opaque" if projection.busy else "transparent"
    if "location" in wanted and (patch or projection.location):
        body["location"] = projection.location
    text_fields = {"description"} if theirs else {"description", "guests"}
    description = (projection.description if theirs
                   else body_text(projection, invited=invited or frozenset()))
    if wanted & text_fields and (patch or description):
        body["description"] = description
    attending = projection.guests & (invited or frozenset())
    if "guests" in wanted and invited is not None and not theirs and (patch or attending):
        body["attendees"] = attendees_for(projection.replace({"guests": attending}),
                                          current_attendees)
    if marker is not None:
        # A patch merges extendedProperties key by key, so other private keys survive.
        body["extendedProperties"] = {"private": {MARKER_KEY: marker}}
    return body


# --- inbound ---------------------------------------------------------------------------------


def _zone(name: object, fallback: str) -> str:
    if isinstance(name, str) and name:
        try:
            ZoneInfo(name)
            return name
        except (ZoneInfoNotFoundError, ValueError):
            pass
    return fallback


def _instant(edt: Mapping[str, Any], fallback_tz: str) -> datetime:
    raw = edt.get("dateTime")
    try:
        value = datetime.fromisoformat(str(raw))
    except ValueError:
        raise UnreadableEvent("a dateTime is not RFC 3339") from None
    if value.tzinfo is None:  # no offset: the value is wall time in the given zone
        value = value.replace(tzinfo=ZoneInfo(_zone(edt.get("timeZone"), fallback_tz)))
    return value


def read_when(start: object, end: object, default_tz: str) -> When:
    """The time span of ``start``/``end`` (EventDateTime objects).

    A ``dateTime`` with an offset is that instant. One without is a wall time in its
    ``timeZone``, read as Google and RFC 5545 do: a repeated time is the first
    occurrence, a skipped one is moved forward by the gap. Dates outside the range syncd
    accepts (syncd.model) are an UnreadableEvent with the reason, never an overflow.
    """
    if not isinstance(start, Mapping) or not isinstance(end, Mapping):
        raise UnreadableEvent("the event has no start or end")
    try:
        return _span(start, end, default_tz)
    except OutOfRange as exc:
        raise UnreadableEvent(str(exc)) from None
    except OverflowError:  # past Python's own limits, wherever it happened
        raise UnreadableEvent("a date is outside the range syncd accepts") from None


def _span(start: Mapping[str, Any], end: Mapping[str, Any], default_tz: str) -> When:
    if "date" in start and "date" in end and not start.get("dateTime"):
        try:
            first, last = date.fromisoformat(str(start["date"])), date.fromisoformat(
                str(end["date"]))
        except ValueError:
            raise UnreadableEvent("a date is not yyyy-mm-dd") from None
        checked_span(first, max(first, last), default_tz)
        tz = _zone(start.get("timeZone"), default_tz)
        return When(first, max(last, first + timedelta(days=1)), tz)
    if not start.get("dateTime") or not end.get("dateTime"):
        raise UnreadableEvent("start and end mix a date and a dateTime")
    tz = _zone(start.get("timeZone"), default_tz)
    first_i, last_i = _instant(start, tz), _instant(end, tz)
    check_start(first_i, default_tz)
    if last_i < first_i:
        raise UnreadableEvent("the end is before the start")
    checked_span(first_i, last_i, default_tz)
    return When(first_i, last_i, tz)


def read_marker(resource: Mapping[str, Any]) -> str | None:
    """Our marker on the event, if any."""
    props = resource.get("extendedProperties")
    private = props.get("private") if isinstance(props, Mapping) else None
    value = private.get(MARKER_KEY) if isinstance(private, Mapping) else None
    return value if isinstance(value, str) and value else None


def _guests(resource: Mapping[str, Any], owner: str) -> tuple[frozenset[str], dict[str, str]]:
    """Guests are the attendees other than the organizer, the calendar's owner and rooms."""
    organizer = resource.get("organizer")
    organizer_email = normalize_email(str(organizer.get("email", ""))) if isinstance(
        organizer, Mapping) else ""
    skip = {organizer_email, normalize_email(owner)} - {""}
    guests: set[str] = set()
    names: dict[str, str] = {}
    attendees = resource.get("attendees") or []
    if not isinstance(attendees, list):
        raise UnreadableEvent("attendees is not a list")
    for entry in attendees:
        if not isinstance(entry, Mapping):
            continue
        email = normalize_email(str(entry.get("email", "")))
        if (not is_valid_email(email) or email in skip or entry.get("self")
                or entry.get("organizer") or entry.get("resource")):
            continue
        guests.add(email)
        name = untrusted_text(str(entry.get("displayName") or ""), single_line=True)
        if name:
            names[email] = name
    return frozenset(guests), names


def _updated(value: object) -> datetime | None:
    try:
        parsed = datetime.fromisoformat(str(value)) if value else None
    except ValueError:
        return None
    # Google always says UTC; a stamp without an offset must not meet aware ones naive.
    return parsed.replace(tzinfo=UTC) if parsed and parsed.tzinfo is None else parsed


def read_event(resource: Mapping[str, Any], *, owner: str, default_tz: str,
               describe_guests: bool) -> RemoteEvent:
    """Map one Event resource to a RemoteEvent; never raises.

    Whatever the resource holds (any JSON value, of any size or depth), the answer is a
    RemoteEvent: a hostile or broken event carries a ``problem`` (see
    :func:`connectors.json_limits.read_guarded`).
    """
    return read_guarded(resource, lambda r: _read_event(
        r, owner=owner, default_tz=default_tz, describe_guests=describe_guests),
        etag_keys=("etag",), marker_of=read_marker)


def _read_event(resource: Mapping[str, Any], *, owner: str, default_tz: str,
                describe_guests: bool) -> RemoteEvent:
    """Map one Event resource within the limits to a RemoteEvent.

    Args:
        resource: the event as Google returned it.
        owner: the calendar owner's address (not a guest of their own event).
        default_tz: the zone for times that carry none.
        describe_guests: the account invites nobody: guests are only the description's
            ``Guests:`` paragraph (stripped from it); otherwise the attendees count too.

    Returns:
        A deleted stub for a cancelled event, a ``recurring`` one for a series or an
        instance, one with a ``problem`` for what cannot be mapped, else the projection.
    """
    event_id = str(resource.get("id", ""))
    etag = resource.get("etag") if isinstance(resource.get("etag"), str) else None
    if resource.get("status") == "cancelled":
        # Cancelled stubs are only guaranteed to carry the id.
        return RemoteEvent(event_id, etag, deleted=True,
                           recurring=bool(resource.get("recurringEventId")))
    marker = read_marker(resource)
    updated = _updated(resource.get("updated"))
    if resource.get("recurrence") or resource.get("recurringEventId"):
        # A series (or one of its instances) syncs as a unit or not at all (failure
        # mode 19); the engine leaves it alone rather than expanding it.
        return RemoteEvent(event_id, etag, marker, recurring=True, updated=updated)
    try:
        description = untrusted_text(text_field(resource, "description"))
        # Guests without an invitation are described; with invite_guests, those holding
        # one are the attendees.
        description, guests, names = split_guests(description)
        if not describe_guests:
            attendees, attendee_names = _guests(resource, owner)
            guests, names = guests | attendees, {**names, **attendee_names}
        projection = Projection(
            title=untrusted_text(text_field(resource, "summary"), single_line=True),
            when=read_when(resource.get("start"), resource.get("end"), default_tz),
            busy=resource.get("transparency", "opaque") != "transparent",
            description=description,
            location=untrusted_text(text_field(resource, "location"), single_line=True),
            guests=guests,
            guest_names=names,
        )
    except UnreadableEvent as exc:
        return RemoteEvent(event_id, etag, marker, problem=str(exc), updated=updated)
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        return RemoteEvent(event_id, etag, marker, updated=updated,
                           problem=f"unreadable event: {type(exc).__name__}")
    ical_uid = resource.get("iCalUID")
    return RemoteEvent(event_id, etag, marker, projection, updated=updated,
                       ical_uid=str(ical_uid) if ical_uid else None,
                       organizer=foreign_organizer(resource, owner))


def foreign_organizer(resource: Mapping[str, Any], owner: str) -> str | None:
    """The organizer's address when it is not this calendar (an invitation received)."""
    organizer = resource.get("organizer")
    if not isinstance(organizer, Mapping) or organizer.get("self"):
        return None
    email = normalize_email(str(organizer.get("email") or ""))
    return email if email and email != normalize_email(owner) else None


# --- free/busy and window listings (read-only, for the agenda and availability) ----------


def read_occurrence(resource: Mapping[str, Any], *, owner: str, default_tz: str,
                    describe_guests: bool) -> RemoteEvent:
    """One item of a ``singleEvents=true`` listing (a single event, or one occurrence of a
    series) as a RemoteEvent with its projection; never raises.

    Unlike :func:`read_event`, an occurrence is read, not set aside: the agenda shows it.
    It keeps ``recurring=True`` so that nobody takes it for an event syncd could write.
    """
    def read(item: Mapping[str, Any]) -> RemoteEvent:
        series = bool(item.get("recurringEventId"))
        plain = {k: v for k, v in item.items() if k not in ("recurringEventId", "recurrence")}
        event = _read_event(plain, owner=owner, default_tz=default_tz,
                            describe_guests=describe_guests)
        return event if not series or event.deleted else replace(event, recurring=True)

    return read_guarded(resource, read, etag_keys=("etag",), marker_of=read_marker)


def read_free_busy(body: object, calendar_id: str, tally: BusyTally) -> None:
    """Add the busy blocks ``freeBusy.query`` reported for ``calendar_id`` to ``tally``.

    Google tells no kinds: every block is ``busy``. A block that is not a pair of RFC 3339
    instants is skipped with the reason.

    Raises:
        CalendarMissing: Google says ``notFound`` for the calendar (unknown, or its
            free/busy is not shared with this account).
        Transient: the answer has no entry for the calendar, or another per-calendar
            error (``internalError``, ``backendError``): nothing is known of its time.
    """
    calendars = body.get("calendars") if isinstance(body, Mapping) else None
    entry = calendars.get(calendar_id) if isinstance(calendars, Mapping) else None
    if not isinstance(entry, Mapping):
        raise Transient(reason="freeBusy answered without the calendar asked for", status=200)
    errors = entry.get("errors")
    if errors:
        reasons = [str(e.get("reason", ""))[:40] for e in errors if isinstance(e, Mapping)] \
            if isinstance(errors, list) else []
        if "notFound" in reasons:
            raise CalendarMissing(calendar=calendar_id, found=())
        raise Transient(reason=f"freeBusy: {', '.join(reasons[:3]) or 'error'}", status=200)
    for block in tally.each(entry.get("busy") or [], "busy block"):
        try:
            start, end = parse_instant(block.get("start")), parse_instant(block.get("end"))
        except (ValueError, OverflowError):
            tally.skip("a busy block without two RFC 3339 instants")
            continue
        tally.add(start, end, "busy")
