"""Event model of the Google Calendar v3 emulator: errors, time values, validation, patching.

Nothing in here does I/O or holds state; ``google_store`` keeps the calendars and
``google`` serves them over HTTP. The rules follow ``/work/shared/reference/providers.md``
section A; where that spec leaves a detail open (an error reason, a message) the choice is
marked "[emulator choice]" so a reader knows it is not a documented Google fact.
"""

from __future__ import annotations

import copy
import http
import json
import re
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta, timezone, tzinfo
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import googleapiclient

# dateutil (a dependency of icalendar) ships no type stubs; the second code keeps mypy quiet
# whether or not it is run with --ignore-missing-imports.
from dateutil.rrule import rruleset, rrulestr  # type: ignore[import-untyped, unused-ignore]

JsonDict = dict[str, Any]

# --------------------------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------------------------


@dataclass
class ApiError(Exception):
    """A Google API error, rendered in the exact shape ``googleapiclient.errors`` parses.

    ``HttpError.reason`` becomes ``message`` and ``HttpError.error_details`` the ``errors``
    list, so tests can assert on both as they would against production.
    """

    status: int
    reason: str
    message: str
    domain: str = "global"
    location_type: str | None = None
    location: str | None = None
    headers: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        super().__init__(f"{self.status} {self.reason}: {self.message}")

    def body(self) -> JsonDict:
        """Return the JSON error document Google sends for this error."""
        detail: JsonDict = {"domain": self.domain, "reason": self.reason, "message": self.message}
        if self.location_type is not None:
            detail["locationType"] = self.location_type
        if self.location is not None:
            detail["location"] = self.location
        return {"error": {"errors": [detail], "code": self.status, "message": self.message}}


def http_phrase(status: int) -> str:
    """Return the standard reason phrase for ``status`` ("OK", "Conflict", ...)."""
    try:
        return http.HTTPStatus(status).phrase
    except ValueError:
        return "Unknown"


def invalid(message: str, location: str | None = None) -> ApiError:
    """400 ``invalid`` (Google's catch-all for a bad field value)."""
    return ApiError(400, "invalid", message, location_type="parameter" if location else None,
                    location=location)


def required(message: str, location: str | None = None) -> ApiError:
    """400 ``required`` (a mandatory field or parameter is missing)."""
    return ApiError(400, "required", message, location_type="parameter" if location else None,
                    location=location)


def not_found() -> ApiError:
    """404 ``notFound`` as Google answers for unknown calendars and events."""
    return ApiError(404, "notFound", "Not Found")


def parse_error() -> ApiError:
    """400 ``parseError``: the request body is not JSON."""
    return ApiError(400, "parseError", "Parse Error")


# --------------------------------------------------------------------------------------------
# Time values
# --------------------------------------------------------------------------------------------

_RFC3339 = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(\.\d+)?([Zz]|[+-]\d{2}:\d{2})?$"
)
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def parse_rfc3339(value: object) -> datetime | None:
    """Parse an RFC 3339 timestamp; naive when it has no offset, ``None`` when malformed.

    Fractional seconds are dropped: Google ignores milliseconds in ``timeMin``/``timeMax``.
    """
    if not isinstance(value, str):
        return None
    m = _RFC3339.match(value)
    if not m:
        return None
    year, month, day, hour, minute, second = (int(m.group(i)) for i in range(1, 7))
    offset = m.group(8)
    tz: tzinfo | None = None
    if offset is not None:
        if offset in ("Z", "z"):
            tz = UTC
        else:
            sign = 1 if offset[0] == "+" else -1
            tz = timezone(timedelta(minutes=sign * (int(offset[1:3]) * 60 + int(offset[4:6]))))
    try:
        return datetime(year, month, day, hour, minute, second, tzinfo=tz)
    except ValueError:
        return None


def parse_date(value: object) -> date | None:
    """Parse ``yyyy-mm-dd``; ``None`` when malformed."""
    if not isinstance(value, str) or not _DATE.match(value):
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        return None


def zone(name: object) -> ZoneInfo | None:
    """Return the IANA zone ``name`` or ``None`` if it is not a known zone."""
    if not isinstance(name, str) or not name:
        return None
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return None


def format_timestamp(moment: datetime) -> str:
    """Format as Google formats ``created``/``updated``: UTC, milliseconds, ``Z``."""
    moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def format_local(moment: datetime) -> str:
    """Format an aware time as Google echoes ``dateTime``: whole seconds, offset, ``Z`` for 0."""
    text = moment.replace(microsecond=0).isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text


def format_utc_seconds(moment: datetime) -> str:
    """Format as freeBusy formats busy blocks: UTC, whole seconds, ``Z``."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def edt_instant(edt: JsonDict, calendar_tz: tzinfo) -> datetime:
    """Turn a *validated* ``EventDateTime`` into an aware UTC instant.

    All-day dates are read as midnight in the calendar's zone, which is how Google places
    them when filtering by ``timeMin``/``timeMax`` and computing free/busy.
    """
    if "date" in edt and edt["date"] is not None:
        d = date.fromisoformat(edt["date"])
        return datetime.combine(d, time(0), tzinfo=calendar_tz).astimezone(UTC)
    moment = parse_rfc3339(edt["dateTime"])
    assert moment is not None  # validated before it was stored
    if moment.tzinfo is None:
        tz = zone(edt.get("timeZone")) or calendar_tz
        moment = moment.replace(tzinfo=tz)
    return moment.astimezone(UTC)


def event_interval(event: JsonDict, calendar_tz: tzinfo) -> tuple[datetime, datetime]:
    """Return the ``[start, end)`` interval of a stored (single or instance) event."""
    return edt_instant(event["start"], calendar_tz), edt_instant(event["end"], calendar_tz)


# --------------------------------------------------------------------------------------------
# The Event schema and validation
# --------------------------------------------------------------------------------------------

_DISCOVERY = (
    Path(googleapiclient.__file__).parent / "discovery_cache" / "documents" / "calendar.v3.json"
)
# The bundled discovery document is the authority for which top-level fields exist; an unknown
# field is answered with 400 `invalid` [emulator choice: real Google ignores many unknown keys,
# but a typo in a connector is better caught in tests than silently dropped].
EVENT_FIELDS: frozenset[str] = frozenset(
    json.loads(_DISCOVERY.read_text(encoding="utf-8"))["schemas"]["Event"]["properties"]
)

# Fields the server owns. Clients often send them back after a read-modify-write, so they are
# accepted and ignored rather than rejected.
SERVER_FIELDS = frozenset(
    {"kind", "etag", "id", "created", "updated", "htmlLink", "iCalUID", "creator", "organizer",
     "hangoutLink", "privateCopy", "locked", "recurringEventId", "attendeesOmitted"}
)
# Changes to these fields e-mail attendees (when sendUpdates asks for it) and, with
# `sequence_autoincrement`, bump `sequence`.
SIGNIFICANT_FIELDS = frozenset(
    {"start", "end", "summary", "location", "description", "attendees", "status", "recurrence"}
)

EVENT_ID = re.compile(r"^[a-v0-9]{5,1024}$")
STATUSES = ("confirmed", "tentative", "cancelled")
TRANSPARENCIES = ("opaque", "transparent")
VISIBILITIES = ("default", "public", "private", "confidential")
EVENT_TYPES = ("default", "focusTime", "outOfOffice", "workingLocation", "birthday", "fromGmail")
RESPONSE_STATUSES = ("needsAction", "declined", "tentative", "accepted")
REMINDER_METHODS = ("email", "popup")
MAX_REMINDER_OVERRIDES = 5
MAX_REMINDER_MINUTES = 40320
EXT_KEY_MAX = 44
EXT_VALUE_MAX = 1024
EXT_MAX_PROPS = 300
EXT_MAX_BYTES = 32 * 1024
# Expanding an endless rule stops here; two years of a daily event.
MAX_INSTANCES = 730


def validate_event_id(event_id: object) -> str:
    """Check a client-supplied id against base32hex ``[a-v0-9]{5,1024}``."""
    if not isinstance(event_id, str) or not EVENT_ID.match(event_id):
        raise invalid("Invalid resource id value.")
    return event_id


def merge_patch(target: JsonDict, patch: JsonDict) -> JsonDict:
    """Apply Google patch semantics: objects merge, arrays are replaced, ``null`` deletes a key.

    ``null`` deleting a key is what lets a client drop one ``extendedProperties.private``
    entry without resending the others.
    """
    result = copy.deepcopy(target)
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        elif isinstance(value, dict) and isinstance(result.get(key), dict):
            result[key] = merge_patch(result[key], value)
        else:
            result[key] = copy.deepcopy(value)
    return result


def client_content(event: JsonDict) -> JsonDict:
    """Return the part of an event body the client controls (server fields removed)."""
    content = {k: copy.deepcopy(v) for k, v in event.items() if k not in SERVER_FIELDS}
    if isinstance(content.get("attendees"), list):
        for attendee in content["attendees"]:
            if isinstance(attendee, dict):
                # Read-only attendee flags are recomputed by the store.
                for flag in ("self", "organizer", "id"):
                    attendee.pop(flag, None)
    return content


def validate_content(content: JsonDict, calendar_tz: tzinfo) -> JsonDict:
    """Validate a complete client-side event (after any patch merge) and normalise it.

    :returns: a copy with extended properties trimmed to Google's limits.
    :raises ApiError: 400 with Google's reason for the first problem found.
    """
    for key in content:
        if key not in EVENT_FIELDS:
            raise invalid(f"Invalid field: {key}", location=key)
    out = copy.deepcopy(content)
    _check_times(out, calendar_tz)
    _check_enum(out, "status", STATUSES)
    _check_enum(out, "transparency", TRANSPARENCIES)
    _check_enum(out, "visibility", VISIBILITIES)
    _check_enum(out, "eventType", EVENT_TYPES)
    for text_field in ("summary", "description", "location", "colorId"):
        if text_field in out and not isinstance(out[text_field], str):
            raise invalid(f"Invalid value for: {text_field}", location=text_field)
    if "sequence" in out and (
        not isinstance(out["sequence"], int) or isinstance(out["sequence"], bool)
        or out["sequence"] < 0
    ):
        raise invalid("Invalid sequence value.", location="sequence")
    _check_attendees(out)
    _check_reminders(out)
    _check_source(out)
    _check_recurrence(out)
    if "extendedProperties" in out:
        out["extendedProperties"] = normalize_extended_properties(out["extendedProperties"])
    # Google answers with these defaults filled in and with every dateTime rewritten in the
    # event's (else the calendar's) zone: a client sending "10:00:00Z" reads back
    # "11:00:00+01:00", so it must compare instants, not strings.
    out.setdefault("reminders", {"useDefault": True})
    out.setdefault("eventType", "default")
    for key in ("start", "end"):
        out[key] = _normalize_edt(out[key], calendar_tz)
    return out


def _normalize_edt(edt: JsonDict, calendar_tz: tzinfo) -> JsonDict:
    out = {k: v for k, v in edt.items() if v is not None}
    if "dateTime" in out:
        out_zone = zone(out.get("timeZone")) or calendar_tz
        out["dateTime"] = format_local(edt_instant(out, calendar_tz).astimezone(out_zone))
    return out


def _check_enum(event: JsonDict, name: str, allowed: tuple[str, ...]) -> None:
    if name in event and event[name] not in allowed:
        raise invalid(f"Invalid value for: {name}", location=name)


def _check_edt(edt: object, which: str) -> tuple[str, date | datetime]:
    """Validate one ``EventDateTime``; return its kind ("date"/"dateTime") and value."""
    if not isinstance(edt, dict) or not (edt.get("date") or edt.get("dateTime")):
        raise required(f"Missing {which} time.")
    for key in edt:
        if key not in ("date", "dateTime", "timeZone"):
            raise invalid(f"Invalid field: {which}.{key}")
    if edt.get("timeZone") is not None and zone(edt["timeZone"]) is None:
        raise invalid(f"Invalid time zone definition for {which} time.")
    if edt.get("date") and edt.get("dateTime"):
        raise invalid(f"Invalid {which} time.")
    if edt.get("date"):
        day = parse_date(edt["date"])
        if day is None:
            raise invalid(f"Invalid {which} time.")
        return "date", day
    moment = parse_rfc3339(edt["dateTime"])
    if moment is None:
        raise invalid(f"Invalid {which} time.")
    if moment.tzinfo is None and not edt.get("timeZone"):
        raise required(f"Missing time zone definition for {which} time.")
    return "dateTime", moment


def _check_times(event: JsonDict, calendar_tz: tzinfo) -> None:
    start_kind, _ = _check_edt(event.get("start"), "start")
    end_kind, _ = _check_edt(event.get("end"), "end")
    if start_kind != end_kind:
        raise invalid("Start and end times must either both be date or both be dateTime.")
    start = edt_instant(event["start"], calendar_tz)
    end = edt_instant(event["end"], calendar_tz)
    # A timed event may last zero minutes; an all-day one must cover at least one day,
    # because the all-day end date is exclusive.
    if end < start or (start_kind == "date" and end == start):
        raise ApiError(400, "timeRangeEmpty", "The specified time range is empty.",
                       location_type="parameter", location="end")


def _check_attendees(event: JsonDict) -> None:
    attendees = event.get("attendees")
    if attendees is None:
        return
    if not isinstance(attendees, list):
        raise invalid("Invalid value for: attendees", location="attendees")
    for attendee in attendees:
        if not isinstance(attendee, dict):
            raise invalid("Invalid attendee.", location="attendees")
        email = attendee.get("email")
        if not email:
            raise required("Missing attendee email.")
        if not isinstance(email, str) or not re.match(r"^[^@\s]+@[^@\s]+$", email):
            raise invalid("Invalid attendee email.")
        status = attendee.get("responseStatus", "needsAction")
        if status not in RESPONSE_STATUSES:
            raise invalid("Invalid value for: attendees.responseStatus")


def _check_reminders(event: JsonDict) -> None:
    reminders = event.get("reminders")
    if reminders is None:
        return
    if not isinstance(reminders, dict):
        raise invalid("Invalid value for: reminders")
    overrides = reminders.get("overrides") or []
    if not isinstance(overrides, list):
        raise invalid("Invalid value for: reminders.overrides")
    if reminders.get("useDefault") and overrides:
        raise ApiError(400, "cannotUseDefaultRemindersAndSpecifyOverride",
                       "Cannot specify both default reminders and overrides at the same time.")
    if len(overrides) > MAX_REMINDER_OVERRIDES:
        # [emulator choice] of reason: the docs give the limit, not the error.
        raise invalid("The maximum number of override reminders is 5.")
    for override in overrides:
        if not isinstance(override, dict) or override.get("method") not in REMINDER_METHODS:
            raise invalid("Invalid reminder method.")
        minutes = override.get("minutes")
        if not isinstance(minutes, int) or isinstance(minutes, bool) or not (
            0 <= minutes <= MAX_REMINDER_MINUTES
        ):
            raise invalid("Invalid reminder minutes value.")


def _check_source(event: JsonDict) -> None:
    source = event.get("source")
    if source is None:
        return
    url = source.get("url") if isinstance(source, dict) else None
    if not isinstance(url, str) or not re.match(r"^https?://", url, re.IGNORECASE):
        raise invalid("Invalid source URL.", location="source.url")


def _check_recurrence(event: JsonDict) -> None:
    rules = event.get("recurrence")
    if rules is None:
        return
    if not isinstance(rules, list) or not all(isinstance(r, str) for r in rules):
        raise invalid("Invalid value for: recurrence")
    for rule in rules:
        if not re.match(r"^(RRULE|EXRULE|RDATE|EXDATE)[:;]", rule):
            raise invalid("Invalid recurrence rule.")
    if "dateTime" in event["start"] and not event["start"].get("timeZone"):
        # Google needs the zone to expand a timed series across DST changes.
        raise required("Missing time zone definition for start time.")
    try:
        build_rruleset(event, UTC)
    except (ValueError, TypeError) as exc:
        raise invalid("Invalid recurrence rule.") from exc


def normalize_extended_properties(props: object) -> JsonDict:
    """Apply Google's extended-property limits.

    Keys longer than 44 characters are dropped and values longer than 1024 characters are
    truncated, both silently (as the Calendar guide says); more than 300 properties or more
    than 32 kB in total is refused with 400 `invalid` [emulator choice of reason].
    """
    if not isinstance(props, dict):
        raise invalid("Invalid value for: extendedProperties")
    out: JsonDict = {}
    count = 0
    size = 0
    for scope, values in props.items():
        if scope not in ("private", "shared"):
            raise invalid(f"Invalid field: extendedProperties.{scope}")
        if not isinstance(values, dict):
            raise invalid(f"Invalid value for: extendedProperties.{scope}")
        kept: dict[str, str] = {}
        for key, value in values.items():
            if not isinstance(value, str):
                raise invalid(f"Invalid value for: extendedProperties.{scope}.{key}")
            if len(key) > EXT_KEY_MAX:
                continue
            kept[key] = value[:EXT_VALUE_MAX]
            count += 1
            size += len(key.encode()) + len(kept[key].encode())
        out[scope] = kept
    if count > EXT_MAX_PROPS:
        raise invalid("Too many extended properties (limit 300).")
    if size > EXT_MAX_BYTES:
        raise invalid("Extended properties exceed the 32 kB limit.")
    return out


# --------------------------------------------------------------------------------------------
# Recurrence
# --------------------------------------------------------------------------------------------


def _series_start(event: JsonDict, calendar_tz: tzinfo) -> datetime:
    """The first occurrence as the rule engine needs it: naive for all-day, zoned otherwise."""
    start = event["start"]
    if start.get("date"):
        return datetime.combine(date.fromisoformat(start["date"]), time(0))
    moment = parse_rfc3339(start["dateTime"])
    assert moment is not None
    tz = zone(start.get("timeZone")) or calendar_tz
    if moment.tzinfo is None:
        return moment.replace(tzinfo=tz)
    # Rules step in wall-clock time of the event's zone, so DST shifts are kept.
    return moment.astimezone(tz)


def build_rruleset(event: JsonDict, calendar_tz: tzinfo) -> rruleset:
    """Build the dateutil rule set of a recurring event (raises ValueError when invalid)."""
    text = "\n".join(event["recurrence"])
    rules = rrulestr(text, dtstart=_series_start(event, calendar_tz), forceset=True)
    assert isinstance(rules, rruleset)
    return rules


def expand_instances(event: JsonDict, calendar_tz: tzinfo) -> list[JsonDict]:
    """Expand a recurring event into its instances, as ``singleEvents=true`` returns them.

    Instance ids follow Google's ``<eventId>_<yyyymmdd>`` (all-day) and
    ``<eventId>_<yyyymmddThhmmssZ>`` (timed) form. At most ``MAX_INSTANCES`` are produced.
    """
    rules = build_rruleset(event, calendar_tz)
    first_start = _series_start(event, calendar_tz)
    all_day = bool(event["start"].get("date"))
    if all_day:
        length: timedelta = date.fromisoformat(event["end"]["date"]) - first_start.date()
    else:
        length = edt_instant(event["end"], calendar_tz) - edt_instant(event["start"], calendar_tz)
    instances: list[JsonDict] = []
    for occurrence in rules:
        if len(instances) >= MAX_INSTANCES:
            break
        instance = {k: copy.deepcopy(v) for k, v in event.items() if k != "recurrence"}
        instance["recurringEventId"] = event["id"]
        if all_day:
            day = occurrence.date()
            instance["id"] = f"{event['id']}_{day.strftime('%Y%m%d')}"
            instance["start"] = {"date": day.isoformat()}
            instance["end"] = {"date": (day + length).isoformat()}
            instance["originalStartTime"] = {"date": day.isoformat()}
        else:
            tz_name = event["start"].get("timeZone")
            stamp = occurrence.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
            instance["id"] = f"{event['id']}_{stamp}"
            start_edt = {"dateTime": format_local(occurrence), "timeZone": tz_name}
            end_edt = {"dateTime": format_local(occurrence + length),
                       "timeZone": event["end"].get("timeZone", tz_name)}
            instance["start"] = start_edt
            instance["end"] = end_edt
            instance["originalStartTime"] = dict(start_edt)
        instances.append(instance)
    return instances


# --------------------------------------------------------------------------------------------
# Partial responses (`fields=`)
# --------------------------------------------------------------------------------------------

FieldTree = dict[str, "FieldTree | None"]


def parse_fields(spec: str) -> FieldTree:
    """Parse a ``fields`` selector such as ``items(id,etag),nextPageToken,a/b``.

    :raises ApiError: 400 `invalidParameter` when the selector is malformed.
    """
    tree, pos = _parse_field_list(spec, 0)
    if pos != len(spec):
        raise ApiError(400, "invalidParameter", "Invalid field selection " + spec,
                       location_type="parameter", location="fields")
    return tree


def _parse_field_list(spec: str, pos: int) -> tuple[FieldTree, int]:
    tree: FieldTree = {}
    while pos < len(spec):
        m = re.match(r"\s*([A-Za-z0-9_*]+(?:/[A-Za-z0-9_*]+)*)\s*", spec[pos:])
        if not m:
            raise ApiError(400, "invalidParameter", "Invalid field selection " + spec,
                           location_type="parameter", location="fields")
        path = m.group(1).split("/")
        pos += m.end()
        sub: FieldTree | None = None
        if pos < len(spec) and spec[pos] == "(":
            sub, pos = _parse_field_list(spec, pos + 1)
            if pos >= len(spec) or spec[pos] != ")":
                raise ApiError(400, "invalidParameter", "Invalid field selection " + spec,
                               location_type="parameter", location="fields")
            pos += 1
        node = tree
        for part in path[:-1]:
            child = node.get(part)
            if child is None:
                child = {}
                node[part] = child
            node = child
        node[path[-1]] = sub
        if pos < len(spec) and spec[pos] == ",":
            pos += 1
            continue
        if pos < len(spec) and spec[pos] == ")":
            break
    return tree, pos


def apply_fields(value: Any, tree: FieldTree | None) -> Any:
    """Keep only the selected fields of a JSON value (lists are filtered element-wise)."""
    if tree is None or "*" in tree:
        return value
    if isinstance(value, list):
        return [apply_fields(item, tree) for item in value]
    if isinstance(value, dict):
        return {k: apply_fields(v, tree[k]) for k, v in value.items() if k in tree}
    return value
