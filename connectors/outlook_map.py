"""Projection <-> Microsoft Graph event (v1.0), pure: no I/O, no clock.

Outbound, only the projection's fields are written (an allowlist, so nothing else of an
activity can leak), plus syncd's ownership marker as a single-value extended property.
Inbound, every text is untrusted: HTML bodies are reduced to text before comparison
(failure mode 26), so a server that wraps our plain text in HTML never reads as an edit.

Time (failure modes 17 and 18):

* timed events are written as wall-clock ``dateTime`` (no offset) plus the projection's
  IANA zone; a wall time that does not map back to the same instant (a DST fold) is
  written in UTC instead, so the instant always survives;
* responses come in UTC (the connector asks for it) or in any zone a server chooses;
  Windows zone names are mapped to IANA with the CLDR ``windowsZones`` table of
  :mod:`connectors.outlook_zones`, and an unknown name quarantines the item
  (``RemoteEvent.problem``), never a guess;
* all-day events are midnight-to-midnight dates with an exclusive end, read as dates
  straight from the ``dateTime`` text, never through any zone.

Guests follow docs/guest-mail.md: only guests holding an invitation are real attendees
(Graph e-mails every attendee it is given, there is no switch); the others, and every
guest of an account that invites nobody, are *described* in a trailing ``Guests:``
paragraph of the body that the reader strips again. A meeting someone else organises
never has its people written.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from connectors.base import RemoteEvent
from connectors.busy import BusyTally, instants
from connectors.guests import body_text, split_guests
from connectors.json_limits import read_guarded
from connectors.outlook_zones import UnknownZone, iana_zone
from syncd.errors import Transient
from syncd.model import (
    FIELDS,
    OutOfRange,
    Projection,
    When,
    checked_span,
    is_valid_email,
    normalize_email,
    unambiguous_local,
)
from syncd.safe_json import text_field
from syncd.text import html_to_text, untrusted_text

#: A GUID of ours: the property set of every extended property syncd writes.
PROPERTY_SET = "{6b1f3e0c-8a2d-4c57-9e31-5d7a0c2b9f48}"
MARKER_PROP = f"String {PROPERTY_SET} Name syncdMarker"
GENERATION_PROP = f"String {PROPERTY_SET} Name syncdGeneration"
#: transactionId = uuid5(TX_NAMESPACE, "marker/generation"): a retry sends the same one.
TX_NAMESPACE = uuid.UUID("0d3c5a7e-2b94-4f16-8c0e-71a9d4e3b5f2")
BUSY_SHOW_AS = frozenset({"busy", "oof", "tentative", "unknown"})

# --- identities ---------------------------------------------------------------------------


def transaction_id(marker: str, generation: int) -> str:
    """The create's idempotency key, from (marker, generation) and never from content."""
    return str(uuid.uuid5(TX_NAMESPACE, f"{marker}/{generation}"))


def _odata_quote(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def expand_properties() -> str:
    """``$expand`` value that returns our two extended properties with an event."""
    return (f"singleValueExtendedProperties($filter=id eq {_odata_quote(MARKER_PROP)} "
            f"or id eq {_odata_quote(GENERATION_PROP)})")


def marker_filter(marker: str) -> str:
    """``$filter`` value that finds the events carrying ``marker``."""
    return (f"singleValueExtendedProperties/Any(ep: ep/id eq {_odata_quote(MARKER_PROP)} "
            f"and ep/value eq {_odata_quote(marker)})")


def _prop_key(prop_id: str) -> str:
    # Type, GUID and the "Name" keyword are case-insensitive; the name itself is not.
    parts = prop_id.strip().split(None, 3)
    if len(parts) == 4:
        return f"{parts[0].lower()} {parts[1].lower()} {parts[2].lower()} {parts[3]}"
    return prop_id.strip().lower()


def extended_value(data: Mapping[str, Any], prop_id: str) -> str | None:
    """The value of one single-value extended property in a Graph event, if present."""
    wanted = _prop_key(prop_id)
    for prop in data.get("singleValueExtendedProperties") or ():
        if isinstance(prop, Mapping) and _prop_key(str(prop.get("id", ""))) == wanted:
            value = prop.get("value")
            return None if value is None else str(value)
    return None


# --- outbound -----------------------------------------------------------------------------


def _graph_time(instant: datetime, tz: str) -> dict[str, str]:
    # A server resolves a wall time in a DST fold to its first occurrence; when that is
    # not our instant, say it in UTC, which has no folds.
    aware = unambiguous_local(instant, tz)
    if aware is None:
        tz, aware = "UTC", instant.astimezone(UTC)
    local = aware.replace(tzinfo=None)
    spec = "microseconds" if local.microsecond else "seconds"
    return {"dateTime": local.isoformat(timespec=spec), "timeZone": tz}


def when_payload(when: When) -> dict[str, Any]:
    """``start``, ``end`` and ``isAllDay`` for a time span."""
    if when.all_day:
        return {
            "isAllDay": True,
            "start": {"dateTime": f"{when.start.isoformat()}T00:00:00", "timeZone": when.tz},
            "end": {"dateTime": f"{when.end.isoformat()}T00:00:00", "timeZone": when.tz},
        }
    assert isinstance(when.start, datetime) and isinstance(when.end, datetime)
    return {"isAllDay": False, "start": _graph_time(when.start, when.tz),
            "end": _graph_time(when.end, when.tz)}


def event_payload(projection: Projection, fields: Iterable[str], *,
                  invited: frozenset[str] | None, theirs: bool = False) -> dict[str, Any]:
    """The Graph properties for the named projection fields (an allowlist).

    ``invited`` guests are written as attendees and the others described in the body;
    None when the account invites nobody (``attendees`` is then never written). With
    ``theirs`` (someone else's meeting) neither attendees nor a guests paragraph are.
    """
    names = frozenset(fields)
    out: dict[str, Any] = {}
    if "title" in names:
        out["subject"] = projection.title
    if "when" in names:
        out.update(when_payload(projection.when))
    if "busy" in names:
        out["showAs"] = "busy" if projection.busy else "free"
    if "location" in names:
        out["location"] = {"displayName": projection.location}
    body_fields = {"description"} if theirs else {"description", "guests"}
    if names & body_fields:
        content = (projection.description if theirs
                   else body_text(projection, invited=invited or frozenset()))
        out["body"] = {"contentType": "text", "content": content}
    if "guests" in names and invited is not None and not theirs:
        out["attendees"] = [
            {"emailAddress": {"address": email, "name": projection.guest_names.get(email, email)},
             "type": "required"}
            for email in sorted(projection.guests & invited)
        ]
    return out


def create_payload(projection: Projection, marker: str, generation: int, *,
                   invited: frozenset[str] | None) -> dict[str, Any]:
    """A complete new event: every field, the marker, the generation, the transactionId.

    Deterministic for the same arguments, so a retried create is byte-identical and the
    server recognises the repeat.
    """
    payload = event_payload(projection, FIELDS, invited=invited)
    payload["transactionId"] = transaction_id(marker, generation)
    payload["singleValueExtendedProperties"] = [
        {"id": MARKER_PROP, "value": marker},
        {"id": GENERATION_PROP, "value": str(generation)},
    ]
    return payload


def update_payload(projection: Projection, fields: Iterable[str], marker: str, *,
                   invited: frozenset[str] | None, theirs: bool = False,
                   current: Mapping[str, Any] | None = None,
                   mailbox: str = "") -> dict[str, Any]:
    """A PATCH body: the named fields and the marker, nothing else.

    ``current`` is the event as it is now (its ``attendees`` and ``organizer``): with it a
    guests change keeps every attendee it does not add or remove as it is (see
    :func:`merge_attendees`), and leaves ``attendees`` out when the guests are the same.
    """
    payload = event_payload(projection, fields, invited=invited, theirs=theirs)
    if "attendees" in payload and current is not None:
        attending = projection.guests & (invited or frozenset())
        merged = merge_attendees(projection.replace({"guests": attending}), current, mailbox)
        if merged is None:
            del payload["attendees"]
        else:
            payload["attendees"] = merged
    payload["singleValueExtendedProperties"] = [{"id": MARKER_PROP, "value": marker}]
    return payload


def merge_attendees(projection: Projection, current: Mapping[str, Any],
                    mailbox: str) -> list[dict[str, Any]] | None:
    """The attendee list that makes the guests ``projection.guests``; None if they are.

    Graph mails every attendee when the list changes, so it is written only when a guest
    comes or goes. Attendees that stay keep their entry (an optional one stays optional);
    rooms and the organizer, which are never guests, stay untouched; new guests are
    required.
    """
    skip = _not_guests(current, mailbox)
    rooms = {normalize_email(str(_get(a, "emailAddress", "address") or ""))
             for a in current.get("attendees") or () if isinstance(a, Mapping) and _is_resource(a)}
    wanted = projection.guests - skip - rooms
    kept: list[dict[str, Any]] = []
    present: set[str] = set()
    leaving = False
    for attendee in current.get("attendees") or ():
        address = attendee.get("emailAddress") if isinstance(attendee, Mapping) else None
        if not isinstance(address, Mapping):
            continue
        email = normalize_email(str(address.get("address") or ""))
        guest = not _is_resource(attendee) and email not in skip
        if not email or (guest and email not in wanted):
            leaving = leaving or bool(email)  # a guest who goes
            continue
        entry = {"address": str(address.get("address"))}
        if address.get("name"):
            entry["name"] = str(address["name"])
        kept.append({"emailAddress": entry, "type": str(attendee.get("type") or "required")})
        if guest:
            present.add(email)
    if present == wanted and not leaving:
        return None
    return kept + [
        {"emailAddress": {"address": email, "name": projection.guest_names.get(email, email)},
         "type": "required"}
        for email in sorted(wanted - present)
    ]


# --- inbound ------------------------------------------------------------------------------


class _Unreadable(ValueError):
    """The event cannot be mapped; the message is the quarantine reason."""


def _parse_local(value: Any) -> datetime:
    if not isinstance(value, str) or not value.strip():
        raise _Unreadable("the event has no dateTime")
    try:
        return datetime.fromisoformat(value.strip())
    except ValueError:
        raise _Unreadable(f"unreadable dateTime {value[:40]!r}") from None


def _instant(part: Any, fold: int = 0) -> datetime:
    if not isinstance(part, Mapping):
        raise _Unreadable("the event has no start or end")
    parsed = _parse_local(part.get("dateTime"))
    if parsed.tzinfo is not None:  # an offset given: it is the instant, whatever the zone
        return parsed.astimezone(UTC)
    zone = part.get("timeZone")
    if not isinstance(zone, str) or not zone.strip():
        raise _Unreadable("the event's time has no time zone")
    try:
        tz = iana_zone(zone)
    except UnknownZone:
        raise _Unreadable(f"unknown time zone {zone[:60]!r}") from None
    return parsed.replace(tzinfo=ZoneInfo(tz), fold=fold).astimezone(UTC)


def _render_zone(data: Mapping[str, Any], fallback: str) -> str:
    original = data.get("originalStartTimeZone")
    if isinstance(original, str):
        try:
            return iana_zone(original)
        except UnknownZone:
            pass  # only the display zone: the instant came from start.timeZone
    return fallback


def read_when(data: Mapping[str, Any], fallback_tz: str) -> When:
    """The event's span; all-day dates are taken as written, never shifted by a zone.

    Dates outside the range syncd accepts (syncd.model) are unreadable with the reason,
    never an overflow.
    """
    try:
        return _span(data, fallback_tz)
    except OutOfRange as exc:
        raise _Unreadable(str(exc)) from None
    except OverflowError:  # past Python's own limits, wherever it happened
        raise _Unreadable("a date is outside the range syncd accepts") from None


def _span(data: Mapping[str, Any], fallback_tz: str) -> When:
    tz = _render_zone(data, fallback_tz)
    if data.get("isAllDay"):
        start = _parse_local(_get(data, "start", "dateTime")).date()
        end = _parse_local(_get(data, "end", "dateTime")).date()
        checked_span(start, max(start, end), fallback_tz)
        return When(start, max(end, start + timedelta(days=1)), tz)
    start_i, end_i = _instant(data.get("start")), _instant(data.get("end"))
    if end_i < start_i:
        # Wall-clock answers cannot say which of two repeated local times they mean. An
        # end inside a DST fold that reads as before the start can only be the second
        # occurrence; anything else is a broken event.
        end_i = _instant(data.get("end"), fold=1)
    if end_i < start_i:
        raise _Unreadable("the event ends before it starts")
    checked_span(start_i, end_i, fallback_tz)
    return When(start_i, end_i, tz)


def _get(data: Mapping[str, Any], key: str, sub: str) -> Any:
    part = data.get(key)
    return part.get(sub) if isinstance(part, Mapping) else None


def _description(data: Mapping[str, Any]) -> str:
    body = data.get("body")
    if not isinstance(body, Mapping):
        return ""
    content = text_field(body, "content")
    if str(body.get("contentType", "")).lower() == "html":
        return untrusted_text(html_to_text(content))
    return untrusted_text(content)


def _not_guests(data: Mapping[str, Any], mailbox: str) -> set[str]:
    """The mailbox and the organizer: attendees of the event that are never guests."""
    skip = {normalize_email(mailbox)}
    organizer = _get(data, "organizer", "emailAddress")
    if isinstance(organizer, Mapping):
        skip.add(normalize_email(str(organizer.get("address") or "")))
    return skip


def _is_resource(attendee: Mapping[str, Any]) -> bool:
    """A room or equipment: booked through the attendee list, but never a guest."""
    return str(attendee.get("type") or "").lower() == "resource"


def _attendees(data: Mapping[str, Any], mailbox: str) -> tuple[frozenset[str], dict[str, str]]:
    skip = _not_guests(data, mailbox)
    guests: set[str] = set()
    names: dict[str, str] = {}
    for attendee in data.get("attendees") or ():
        address = attendee.get("emailAddress") if isinstance(attendee, Mapping) else None
        if not isinstance(address, Mapping) or _is_resource(attendee):
            continue
        email = normalize_email(str(address.get("address") or ""))
        if not is_valid_email(email) or email in skip:
            continue
        guests.add(email)
        name = untrusted_text(str(address.get("name") or ""), single_line=True)
        if name and normalize_email(name) != email:
            names[email] = name
    return frozenset(guests), names


def _updated(data: Mapping[str, Any]) -> datetime | None:
    value = data.get("lastModifiedDateTime")
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def read_event(data: Mapping[str, Any], *, fallback_tz: str, mailbox: str,
               describe_guests: bool, marker: str | None = None) -> RemoteEvent:
    """Map one Graph event to a RemoteEvent; unreadable events carry a ``problem``.

    ``marker`` stands in when the response does not carry the extended property (the
    answer to our own write, whose marker we know). Never raises: whatever the event
    holds (any JSON value, of any size or depth), a hostile or broken one carries a
    ``problem`` (see :func:`connectors.json_limits.read_guarded`).
    """
    return read_guarded(data, lambda d: _read_event(
        d, fallback_tz=fallback_tz, mailbox=mailbox, describe_guests=describe_guests,
        marker=marker), etag_keys=("@odata.etag", "changeKey"),
        marker_of=lambda d: extended_value(d, MARKER_PROP) or marker)


def _read_event(data: Mapping[str, Any], *, fallback_tz: str, mailbox: str,
                describe_guests: bool, marker: str | None = None) -> RemoteEvent:
    """Map one Graph event within the limits (see :func:`read_event`)."""
    event_id = str(data.get("id") or "")
    etag = data.get("@odata.etag") or data.get("changeKey")
    etag = str(etag) if etag else None
    marker = extended_value(data, MARKER_PROP) or marker
    if str(data.get("type") or "singleInstance") != "singleInstance":
        return RemoteEvent(event_id, etag, marker, recurring=True)
    try:
        when = read_when(data, fallback_tz)
    except _Unreadable as exc:
        return RemoteEvent(event_id, etag, marker, problem=str(exc))
    # Guests without an invitation are described; with invite_guests, those holding one
    # are the attendees.
    description, guests, names = split_guests(_description(data))
    # Read in either mode: Graph mails them on any write (RemoteEvent.attendees).
    attendees, attendee_names = _attendees(data, mailbox)
    if not describe_guests:
        guests, names = guests | attendees, {**names, **attendee_names}
    location = data.get("location")
    projection = Projection(
        title=untrusted_text(text_field(data, "subject"), single_line=True),
        when=when,
        busy=str(data.get("showAs") or "busy") in BUSY_SHOW_AS,
        description=description,
        location=untrusted_text(text_field(location, "displayName"), single_line=True)
        if isinstance(location, Mapping) else "",
        guests=guests,
        guest_names=names,
    )
    ical_uid = data.get("iCalUId")
    return RemoteEvent(event_id, etag, marker, projection, updated=_updated(data),
                       ical_uid=str(ical_uid) if ical_uid else None,
                       organizer=foreign_organizer(data, mailbox), attendees=attendees)


def foreign_organizer(data: Mapping[str, Any], mailbox: str) -> str | None:
    """The organizer's address when it is not the mailbox (an invitation received)."""
    if data.get("isOrganizer") is True:
        return None
    address = _get(data, "organizer", "emailAddress")
    email = normalize_email(str(address.get("address") or "")) if isinstance(
        address, Mapping) else ""
    return email if email and email != normalize_email(mailbox) else None


def generation_of(data: Mapping[str, Any]) -> int | None:
    """The generation syncd wrote on create, if the property came back."""
    value = extended_value(data, GENERATION_PROP)
    return int(value) if value is not None and value.isdigit() else None


def overlaps(when: When, start: datetime, end: datetime) -> bool:
    """Whether a span overlaps [start, end); all-day dates are taken at UTC midnight."""
    if when.all_day:
        assert isinstance(when.start, date) and isinstance(when.end, date)
        first = datetime.combine(when.start, datetime.min.time(), UTC)
        last = datetime.combine(when.end, datetime.min.time(), UTC)
        return last > start and first < end
    assert isinstance(when.start, datetime) and isinstance(when.end, datetime)
    if when.start == when.end:
        return start <= when.start < end
    return when.end > start and when.start < end


# --- free/busy and window listings (read-only, for the agenda and availability) ----------

#: getSchedule ``status`` -> busy kind; ``free`` is not busy. ``unknown`` is counted as
#: plainly busy: availability must not offer time nobody could vouch for.
SCHEDULE_KINDS = {"busy": "busy", "tentative": "tentative", "oof": "oof",
                  "workingElsewhere": "elsewhere", "unknown": "busy"}


def read_occurrence(data: Mapping[str, Any], *, fallback_tz: str, mailbox: str,
                    describe_guests: bool) -> RemoteEvent:
    """One item of a ``calendarView`` listing (a single event, an occurrence or exception
    of a series) as a RemoteEvent with its projection; never raises.

    Unlike :func:`read_event`, an occurrence is read, not set aside: the agenda shows it.
    It keeps ``recurring=True`` so that nobody takes it for an event syncd could write.
    """
    def read(item: Mapping[str, Any]) -> RemoteEvent:
        kind = str(item.get("type") or "singleInstance")
        event = _read_event({**item, "type": "singleInstance"}, fallback_tz=fallback_tz,
                            mailbox=mailbox, describe_guests=describe_guests)
        return event if kind == "singleInstance" else replace(event, recurring=True)

    return read_guarded(data, read, etag_keys=("@odata.etag", "changeKey"),
                        marker_of=lambda d: extended_value(d, MARKER_PROP))


@dataclass(eq=False, kw_only=True)
class ScheduleUnanswered(Transient):
    """getSchedule answered, but not for the mailbox: no schedule for it, or its ``error``
    (an address Graph does not resolve, such as a user id configured as ``user``). The
    connector then reads the calendar's events instead."""


def read_schedule(body: object, mailbox: str, tally: BusyTally) -> None:
    """Add the busy items ``getSchedule`` reported for ``mailbox`` to ``tally``.

    Items whose ``status`` is ``free`` are not busy; an item with an unknown status, or
    without a readable start and end, is skipped with the reason.

    Raises:
        ScheduleUnanswered: the answer has no schedule for the mailbox, or carries its
            ``error`` (nothing is known of its time then).
        Transient: the answer is over its bound, or its items are not a list.
    """
    values = body.get("value") if isinstance(body, Mapping) else None
    schedule = next((v for v in values if isinstance(v, Mapping) and normalize_email(
        str(v.get("scheduleId") or "")) == normalize_email(mailbox)), None) \
        if isinstance(values, list) else None
    if schedule is None:
        raise ScheduleUnanswered(reason="getSchedule answered without the mailbox asked for",
                                 status=200)
    error = schedule.get("error")
    if error:
        code = str(error.get("responseCode") or "error")[:60] if isinstance(
            error, Mapping) else "error"
        raise ScheduleUnanswered(reason=f"getSchedule: {code}", status=200)
    for item in tally.each(schedule.get("scheduleItems") or [], "schedule item"):
        status = str(item.get("status") or "")
        if status == "free":
            continue
        if status not in SCHEDULE_KINDS:
            tally.skip(f"a schedule item of unknown status {status[:20]!r}")
            continue
        try:
            start, end = _instant(item.get("start")), _instant(item.get("end"))
        except (_Unreadable, OverflowError, ValueError) as exc:
            tally.skip(f"a schedule item without a readable time ({type(exc).__name__})")
            continue
        tally.add(start, end, SCHEDULE_KINDS[status])


def busy_of_event(data: Mapping[str, Any], fallback_tz: str, tally: BusyTally) -> None:
    """Add one ``calendarView`` event's busy time to ``tally`` (by its ``showAs``, as
    :func:`read_schedule` reads a schedule item's ``status``); a free or cancelled event
    adds nothing, an unreadable one is skipped. An all-day event lasts from midnight to
    midnight in its own zone."""
    tally.item()
    status = str(data.get("showAs") or "busy")
    if status == "free" or data.get("isCancelled") is True:
        return
    if status not in SCHEDULE_KINDS:
        tally.skip(f"an event of unknown showAs {status[:20]!r}")
        return
    try:
        when = read_when(data, fallback_tz)
    except (_Unreadable, OverflowError, ValueError) as exc:
        tally.skip(f"an event without a readable time ({type(exc).__name__})")
        return
    start, end = instants(when, when.tz)
    tally.add(start, end, SCHEDULE_KINDS[status])
