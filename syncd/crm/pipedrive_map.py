"""Pipedrive v2 activities <-> syncd's :class:`~syncd.model.Activity`: pure functions.

Nothing here does I/O; the source (:mod:`syncd.crm.pipedrive`) hands in what it looked up
(the owner's zone, person e-mails, the marker) and sends what comes out.

Facts (``providers.md`` D, ``pipedrive-push-scale.md`` 1):

* ``due_date``/``due_time`` are **UTC** when a time is set; syncd's activity holds a wall
  time in the owner's zone, so a timed activity is converted both ways through the zone
  (the fold of a repeated hour survives). No ``due_time`` is an all-day activity on
  ``due_date`` in the owner's zone.
* ``duration`` is ``HH:MM`` (Pipedrive accepts up to 99:59).
* ``busy`` is a boolean; a missing one follows v1's rule (busy when timed).
* ``public_description`` is what guests see and becomes the description; ``note`` is the
  private note and is **dropped at the boundary** (:func:`without_note`), before anything
  else sees the item: no Activity, cursor, log line or table ever holds it.
* ``location.value`` is the location text.
* ``attendees`` (with ``include_fields=attendees``) and ``participants`` become guests.
* The deal, person and organization become links back to their Pipedrive pages at the
  end of the description; only the ids travel, never their names or content.
"""

from __future__ import annotations

import hashlib
import html
import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from syncd.errors import InvalidInput
from syncd.model import Activity, Guest, day_in_range, is_valid_email, normalize_email, wall_time
from syncd.safe_json import WrongType, text_field
from syncd.text import clean_text

JsonDict = dict[str, Any]

#: The private field no part of syncd may hold.
NOTE = "note"
#: The longest duration Pipedrive takes (``HH:MM`` with two-digit hours).
MAX_DURATION_MINUTES = 99 * 60 + 59
#: The linked records shown as links back to Pipedrive, in this order, with their page path.
LINKED = (("deal_id", "deal"), ("person_id", "person"), ("org_id", "organization"))
_LINK_LINE = re.compile(r"^Pipedrive (?:deal|person|organization): \S+$")
_HHMM = re.compile(r"^(\d{1,2}):(\d{2})(?::\d{2})?$")


def without_note(item: Any) -> Any:
    """The activity JSON without its private note (anything else is passed through).

    Called by the HTTP layer on every activity it parses, so the note goes no further
    than the bytes of the response.
    """
    if isinstance(item, dict):
        item.pop(NOTE, None)
    return item


#: The most of one note the privacy audit compares (a longer note is cut, not refused).
MAX_NOTE_CHARS = 64 * 1024
_TAG = re.compile(r"<[^<>]*>")


def notes_of(data: Any) -> dict[int, str]:
    """``syncd verify``'s privacy audit only: activity id -> the text of its note, for the
    items of an activities answer that have a non-empty one.

    Pipedrive keeps notes as HTML; the audit searches calendar text for the note as a
    person would have pasted it, so tags become spaces and entities characters. Nothing
    else of the item is kept.
    """
    items = data if isinstance(data, list) else [data]
    found: dict[int, str] = {}
    for item in items:
        if not isinstance(item, Mapping):
            continue
        activity_id, note = item.get("id"), item.get(NOTE)
        if type(activity_id) is int and isinstance(note, str) and note.strip():
            found[activity_id] = html.unescape(_TAG.sub(" ", note[:MAX_NOTE_CHARS]))
    return found


def digest(item: Mapping[str, Any]) -> str:
    """A short digest of one activity version (note already dropped): tells two versions
    with the same ``update_time`` second apart in a cursor."""
    data = json.dumps(item, sort_keys=True, default=str, ensure_ascii=True).encode()
    return hashlib.sha256(data).hexdigest()[:12]


def parse_stamp(value: Any) -> datetime:
    """An RFC 3339 ``add_time``/``update_time`` as an aware UTC datetime.

    Raises:
        WrongType: not a date-time.
    """
    if not isinstance(value, str):
        raise WrongType(f"the time stamp is {type(value).__name__}, not text")
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    try:
        parsed = datetime.fromisoformat(text.replace(" ", "T"))
    except ValueError as exc:
        raise WrongType("the time stamp is not RFC 3339") from exc
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).astimezone(UTC)


def stamp(value: datetime) -> str:
    """``updated_since`` as Pipedrive takes it: RFC 3339 UTC, whole seconds."""
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def minutes_of(duration: Any) -> int:
    """``HH:MM`` as minutes (0 when absent)."""
    if duration in (None, ""):
        return 0
    match = _HHMM.match(duration) if isinstance(duration, str) else None
    if match is None:
        raise WrongType("duration is not HH:MM")
    return int(match.group(1)) * 60 + int(match.group(2))


def hhmm(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


# --- reading ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Lookups:
    """What the mapper needs from outside: all already fetched by the source.

    Attributes:
        company_url: the company's web address (``https://acme.pipedrive.com``).
        zone_of: an owner's IANA zone (the source's users, with a default).
        email_of_person: a person's primary e-mail, if known.
        email_of_user: a Pipedrive user's e-mail, if known.
    """

    company_url: str
    zone_of: Callable[[int], str]
    email_of_person: Callable[[int], str | None]
    email_of_user: Callable[[int], str | None]


def _int_or_none(item: Mapping[str, Any], key: str) -> int | None:
    value = item.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise WrongType(f"{key} is {type(value).__name__}, not an integer")
    return value


def user_zone(name: Any, default: str) -> str:
    """A Pipedrive user's ``timezone_name`` when it is an IANA zone this machine knows,
    else ``default`` (``[syncd] default_time_zone``): a user with no zone set, or one
    Pipedrive names in a way the zone database does not, is read in the default zone
    rather than failing every activity of theirs."""
    if not isinstance(name, str) or not name or len(name) > 64:
        return default
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):  # ValueError: not a zone key at all
        return default
    return name


def local_due(due_date: Any, due_time: Any, zone: str) -> tuple[date | None, time | None]:
    """Pipedrive's UTC ``due_date``/``due_time`` as a wall date and time in ``zone``.

    No time: the date itself, all day. A timed activity's wall time keeps ``fold=1`` when
    it falls in the second occurrence of a repeated hour.
    """
    if due_date in (None, ""):
        return None, None
    if not isinstance(due_date, str):
        raise WrongType("due_date is not text")
    day = date.fromisoformat(due_date)
    if due_time in (None, ""):
        return day, None
    match = _HHMM.match(due_time) if isinstance(due_time, str) else None
    if match is None or int(match.group(1)) > 23 or int(match.group(2)) > 59:
        raise WrongType("due_time is not HH:MM")
    utc = datetime.combine(day, time(int(match.group(1)), int(match.group(2))), tzinfo=UTC)
    local = utc.astimezone(ZoneInfo(zone))
    return local.date(), local.time()  # .time() keeps the fold


def links_text(item: Mapping[str, Any], company_url: str) -> list[str]:
    """One line per linked deal, person and organization: its Pipedrive page."""
    lines = []
    for key, page in LINKED:
        linked = _int_or_none(item, key)
        if linked is not None:
            lines.append(f"Pipedrive {page}: {company_url}/{page}/{linked}")
    return lines


def description_of(item: Mapping[str, Any], company_url: str) -> str:
    """The public description, then the links back to Pipedrive."""
    public = clean_text(text_field(item, "public_description"))
    lines = links_text(item, company_url)
    if not lines:
        return public
    return (public + "\n\n" if public else "") + "\n".join(lines)


def public_part(description: str) -> str:
    """The description without the links :func:`description_of` added (for writing)."""
    lines = description.replace("\r\n", "\n").split("\n")
    while lines and (not lines[-1].strip() or _LINK_LINE.match(lines[-1].strip())):
        lines.pop()
    return "\n".join(lines).strip()


def guests_of(item: Mapping[str, Any], owner_id: int, lookups: Lookups) -> tuple[Guest, ...]:
    """Attendees and participants as guests, the owner left out, one per address."""
    found: dict[str, Guest] = {}
    owner_email = lookups.email_of_user(owner_id)
    for attendee in item.get("attendees") or []:
        if not isinstance(attendee, Mapping):
            raise WrongType("an attendee is not an object")
        person_id = _int_or_none(attendee, "person_id")
        user_id = _int_or_none(attendee, "user_id")
        if user_id == owner_id:
            continue
        email = text_field(attendee, "email") or (
            lookups.email_of_person(person_id) if person_id is not None else None) or (
            lookups.email_of_user(user_id) if user_id is not None else None)
        if email and is_valid_email(email.strip()):
            key = normalize_email(email)
            name = clean_text(text_field(attendee, "name"), single_line=True) or None
            found.setdefault(key, Guest(email=key, name=name, person_id=person_id))
    for participant in item.get("participants") or []:
        if not isinstance(participant, Mapping):
            raise WrongType("a participant is not an object")
        person_id = _int_or_none(participant, "person_id")
        email = lookups.email_of_person(person_id) if person_id is not None else None
        if email and is_valid_email(email.strip()):
            key = normalize_email(email)
            found.setdefault(key, Guest(email=key, person_id=person_id))
    if owner_email:
        found.pop(normalize_email(owner_email), None)
    return tuple(found[k] for k in sorted(found))


def persons_wanted(items: Sequence[Mapping[str, Any]]) -> set[int]:
    """The person ids whose e-mail the guests of ``items`` need."""
    wanted: set[int] = set()
    for item in items:
        for member in [*(item.get("attendees") or []), *(item.get("participants") or [])]:
            if isinstance(member, Mapping) and not (isinstance(member.get("email"), str)
                                                    and member.get("email")):
                person_id = member.get("person_id")
                if isinstance(person_id, int) and not isinstance(person_id, bool):
                    wanted.add(person_id)
    return wanted


def to_activity(item: Mapping[str, Any], sync_uid: str, lookups: Lookups) -> Activity:
    """One v2 ActivityItem (note already dropped) as syncd's activity.

    Raises:
        WrongType: a field holds a value of the wrong type (the item is set aside).
        ValueError: a date or time that is not one.
    """
    activity_id = _int_or_none(item, "id")
    owner_id = _int_or_none(item, "owner_id")
    if activity_id is None or owner_id is None:
        raise WrongType("the activity has no id or owner")
    zone = lookups.zone_of(owner_id)
    due_date, due_time = local_due(item.get("due_date"), item.get("due_time"), zone)
    busy = item.get("busy")
    marked = item.get("marked_as_done_time")
    location = item.get("location")
    if location is not None and not isinstance(location, Mapping):
        raise WrongType("location is not an object")
    return Activity(
        id=activity_id,
        sync_uid=sync_uid,
        owner_id=owner_id,
        owner_tz=zone,
        type=text_field(item, "type") or "task",
        subject=clean_text(text_field(item, "subject"), single_line=True),
        due_date=due_date,
        due_time=due_time,
        duration_minutes=minutes_of(item.get("duration")),
        busy=bool(busy) if busy is not None else due_time is not None,
        description=description_of(item, lookups.company_url),
        location=clean_text(text_field(location or {}, "value"), single_line=True),
        guests=guests_of(item, owner_id, lookups),
        done=bool(item.get("done")),
        marked_done_at=parse_stamp(marked) if marked else None,
        deleted=bool(item.get("is_deleted")),
        updated_at=parse_stamp(item.get("update_time")),
        deal_id=_int_or_none(item, "deal_id"),
        person_id=_int_or_none(item, "person_id"),
        org_id=_int_or_none(item, "org_id"),
        lead_id=text_field(item, "lead_id") or None,
        project_id=_int_or_none(item, "project_id"),
    )


# --- writing ------------------------------------------------------------------------------

#: The activity fields a calendar edit may change, i.e. what a PATCH may carry.
MANAGED = frozenset({"subject", "done", "due_date", "due_time", "duration_minutes", "busy",
                     "description", "location", "guests"})


def _bad(field: str, value: Any, reason: str) -> InvalidInput:
    return InvalidInput(field=field, value=value, reason=reason)


def utc_due(due_date: date | None, due_time: time | None, zone: str
            ) -> tuple[str | None, str | None]:
    """A wall date and time in ``zone`` as Pipedrive's UTC ``due_date``/``due_time``."""
    if due_date is None:
        return None, None
    if not day_in_range(due_date):
        raise _bad("due_date", due_date, "is outside the range syncd accepts")
    if due_time is None:
        return due_date.isoformat(), None
    clock = wall_time(due_date, due_time, zone)
    utc = datetime.combine(due_date, clock, tzinfo=ZoneInfo(zone)).astimezone(UTC)
    return utc.date().isoformat(), utc.strftime("%H:%M")


def write_body(fields: Mapping[str, Any], zone: str, *,
               current_date: date | None = None, current_time: time | None = None
               ) -> JsonDict:
    """The v2 body for ``fields`` (activity field names, as the engine plans them).

    Only the fields given are in it (a PATCH changes nothing else); the note never is.
    A date without a time (or a time without a date) is completed from the activity as
    it is (``current_date``/``current_time``, wall values in ``zone``), because Pipedrive's
    UTC date depends on both.

    Raises:
        InvalidInput: a value Pipedrive cannot take; nothing is to be sent.
    """
    unknown = sorted(set(fields) - MANAGED - {"type", "owner_id"})
    if unknown:
        raise _bad(unknown[0], fields[unknown[0]], "is not a field syncd writes to Pipedrive")
    body: JsonDict = {}
    if "subject" in fields:
        subject = clean_text(str(fields["subject"] or ""), single_line=True)
        if not subject:
            raise _bad("subject", fields["subject"], "must not be empty")
        body["subject"] = subject
    if "done" in fields:
        body["done"] = bool(fields["done"])
    if "busy" in fields:
        body["busy"] = bool(fields["busy"])
    if "type" in fields:
        body["type"] = str(fields["type"])
    if "owner_id" in fields:
        body["owner_id"] = int(fields["owner_id"])
    if "due_date" in fields or "due_time" in fields:
        day = fields.get("due_date", current_date)
        clock = fields.get("due_time", current_time) if day is not None else None
        if day is not None and not isinstance(day, date):
            raise _bad("due_date", day, "is not a date")
        if clock is not None and not isinstance(clock, time):
            raise _bad("due_time", clock, "is not a time of day")
        body["due_date"], body["due_time"] = utc_due(day, clock, zone)
    if "duration_minutes" in fields:
        minutes = fields["duration_minutes"]
        if isinstance(minutes, bool) or not isinstance(minutes, int) or minutes < 0:
            raise _bad("duration_minutes", minutes, "must be a whole number of minutes, "
                                                    "zero or more")
        if minutes > MAX_DURATION_MINUTES:
            raise _bad("duration_minutes", minutes, "is longer than Pipedrive's 99:59")
        body["duration"] = hhmm(minutes) if minutes else None
    if "description" in fields:
        body["public_description"] = public_part(clean_text(str(fields["description"] or "")))
    if "location" in fields:
        text = clean_text(str(fields["location"] or ""), single_line=True)
        body["location"] = {"value": text} if text else None
    if "guests" in fields:
        body["attendees"] = attendees_of(fields["guests"])
    return body


def attendees_of(guests: Any) -> list[JsonDict]:
    """Guests as v2 ``attendees`` (e-mail, name, and the person when known)."""
    out = []
    for guest in guests or ():
        if not isinstance(guest, Guest) or not is_valid_email(guest.email):
            raise _bad("guests", getattr(guest, "email", guest), "is not a guest's e-mail")
        entry: JsonDict = {"email": normalize_email(guest.email)}
        if guest.name:
            entry["name"] = guest.name
        if guest.person_id is not None:
            entry["person_id"] = guest.person_id
        out.append(entry)
    return out


def import_fingerprint(body: Mapping[str, Any], owner_id: int) -> str:
    """What an imported activity looks like in fields Pipedrive keeps as sent: found again
    by it after a crash between the POST and recording its id."""
    kept = {k: body.get(k) for k in ("subject", "type", "due_date", "due_time", "duration")}
    kept["owner_id"] = owner_id
    return digest(kept)


def item_fingerprint(item: Mapping[str, Any]) -> str:
    """:func:`import_fingerprint` of an activity as Pipedrive returns it."""
    owner = item.get("owner_id")
    return import_fingerprint(item, owner if isinstance(owner, int) else -1)
