"""Vocabulary of the Pipedrive emulator: its clock, errors, wire formats and activity checks.

Facts come from ``/work/shared/reference/providers.md`` section D and
``pipedrive-push-scale.md`` section 1. Where the reference is silent the choice is marked
``[emulator choice]`` so a connector author knows which behaviour is guessed.

Wire formats (v2): ids are integers; ``add_time``/``update_time`` are RFC 3339 UTC strings with
seconds precision (``2026-03-02T09:00:00Z``); ``due_date`` is ``YYYY-MM-DD`` and ``due_time``
``HH:MM`` (UTC, absent = all-day); ``duration`` is ``HH:MM``. v1 endpoints (users, activity
types, webhooks) use ``YYYY-MM-DD HH:MM:SS``.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

JsonDict = dict[str, Any]

ERROR_INFO = "Please check developers.pipedrive.com for more information about Pipedrive API."


class PipedriveClock:
    """The emulator's notion of now, which tests can move forward without waiting.

    ``frozen=True`` stands still except for :meth:`advance` (deterministic tests); otherwise it
    follows real time from ``start`` plus every advance. Waiters (webhook retries) are woken on
    each advance.
    """

    def __init__(self, start: datetime | None = None, *, frozen: bool = False) -> None:
        self._start = (start or datetime.now(UTC)).timestamp()
        self._real0 = time.monotonic()
        self._offset = 0.0
        self.frozen = frozen
        self._cond = threading.Condition()
        self.listeners: list[Callable[[], None]] = []

    def now(self) -> float:
        """Seconds since the epoch on the emulator's clock."""
        with self._cond:
            real = 0.0 if self.frozen else time.monotonic() - self._real0
            return self._start + self._offset + real

    def now_dt(self) -> datetime:
        """:meth:`now` as an aware UTC datetime."""
        return datetime.fromtimestamp(self.now(), UTC)

    def advance(self, seconds: float) -> None:
        """Move the clock forward by ``seconds`` (a day, a burst window, a retry delay)."""
        if seconds < 0:
            raise ValueError("the clock only moves forward")
        with self._cond:
            self._offset += seconds
            self._cond.notify_all()
        for listener in list(self.listeners):
            listener()

    def wait(self, real_timeout: float) -> None:
        """Sleep up to ``real_timeout`` real seconds, or until the clock is advanced."""
        with self._cond:
            self._cond.wait(real_timeout)


class PipedriveError(Exception):
    """An error answer: a status and the documented ``{success: false, error, ...}`` body."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = dict(headers or {})

    def body(self) -> JsonDict:
        """The JSON body Pipedrive sends with this status."""
        return {"success": False, "error": self.message, "errorCode": self.status,
                "error_info": ERROR_INFO, "data": None, "additional_data": None}


def bad_request(message: str) -> PipedriveError:
    """400: a parameter or body field failed validation."""
    return PipedriveError(400, message)


def not_found(what: str = "Activity") -> PipedriveError:
    """404 for an unknown (or, [emulator choice], invisible) object."""
    return PipedriveError(404, f"{what} not found")


def unauthorized() -> PipedriveError:
    """401 for a missing or wrong API token or OAuth access token."""
    return PipedriveError(401, "unauthorized access")


def forbidden(message: str = "You do not have permission to perform this action") -> PipedriveError:
    """403 (permission) with a JSON body; the rate-limit 403 is an HTML page instead."""
    return PipedriveError(403, message)


# ---- time formats ---------------------------------------------------------------------------

_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_HHMM = re.compile(r"^(\d{2}):(\d{2})$")


def v2_time(epoch: float) -> str:
    """RFC 3339 UTC with seconds precision, as v2 sends ``add_time``/``update_time``."""
    return datetime.fromtimestamp(int(epoch), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def v1_time(epoch: float) -> str:
    """``YYYY-MM-DD HH:MM:SS`` UTC, as v1 endpoints send times."""
    return datetime.fromtimestamp(int(epoch), UTC).strftime("%Y-%m-%d %H:%M:%S")


def parse_rfc3339(value: str, name: str) -> float:
    """Parse ``updated_since``/``updated_until``; a zone is required (400 otherwise)."""
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError as exc:
        raise bad_request(f"Invalid {name}: expected an RFC 3339 date-time") from exc
    if "T" not in value.upper() or parsed.tzinfo is None:
        raise bad_request(f"Invalid {name}: expected an RFC 3339 date-time with a zone")
    return parsed.timestamp()


def check_date(value: Any, name: str) -> str | None:
    """``YYYY-MM-DD`` or null."""
    if value is None:
        return None
    if not isinstance(value, str) or not _DATE.match(value):
        raise bad_request(f"{name} must be a date in YYYY-MM-DD format")
    try:
        date.fromisoformat(value)
    except ValueError as exc:
        raise bad_request(f"{name} is not a valid date") from exc
    return value


def check_hhmm(value: Any, name: str, *, max_hours: int = 23) -> str | None:
    """``HH:MM`` or null (``due_time`` 00:00-23:59; ``duration`` hours up to 99)."""
    if value is None:
        return None
    match = _HHMM.match(value) if isinstance(value, str) else None
    if match is None or int(match.group(1)) > max_hours or int(match.group(2)) > 59:
        raise bad_request(f"{name} must be in HH:MM format")
    return str(value)


# ---- cursors -------------------------------------------------------------------------------

@dataclass(frozen=True)
class Cursor:
    """Where a list page ended: the sort it belongs to and the last item's sort key and id.

    Keyset paging means an item edited while a client pages through ``sort_by=update_time``
    moves behind the cursor and is met again later rather than skipped.
    """

    sort_by: str
    direction: str
    key: Any
    last_id: int

    def encode(self) -> str:
        """An opaque string (base64 of JSON; clients must not look inside)."""
        raw = json.dumps([self.sort_by, self.direction, self.key, self.last_id])
        return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")

    @classmethod
    def decode(cls, text: str) -> Cursor:
        """Parse a cursor; anything not issued by :meth:`encode` is a 400."""
        try:
            raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
            sort_by, direction, key, last_id = json.loads(raw)
        except (ValueError, binascii.Error, TypeError) as exc:
            raise bad_request("Invalid cursor") from exc
        if not isinstance(last_id, int) or not isinstance(sort_by, str):
            raise bad_request("Invalid cursor")
        return cls(sort_by, str(direction), key, last_id)


# ---- the people and things activities point at ----------------------------------------------

@dataclass
class User:
    """A Pipedrive user (a seat). ``sees`` lists the owners whose items this user may see
    besides their own (visibility groups, simplified); admins see everything."""

    id: int
    name: str
    email: str
    timezone_name: str = "Europe/Berlin"
    is_admin: bool = False
    active_flag: bool = True
    sees: set[int] = field(default_factory=set)

    def may_see(self, owner_id: int) -> bool:
        """Whether this user may see an item owned by ``owner_id``."""
        return self.is_admin or owner_id == self.id or owner_id in self.sees

    def v1(self, created: float, now: float, me: bool = False) -> JsonDict:
        """The ``/v1/users`` representation (``timezone_offset`` as of ``now``)."""
        try:
            zone = ZoneInfo(self.timezone_name)
        except (ZoneInfoNotFoundError, ValueError):  # a test's user with no or a bad zone
            zone = ZoneInfo("UTC")
        offset = datetime.fromtimestamp(now, UTC).astimezone(zone).utcoffset()
        hours = int((offset or timedelta(0)).total_seconds() // 60)
        sign = "+" if hours >= 0 else "-"
        body: JsonDict = {
            "id": self.id, "name": self.name, "email": self.email,
            "default_currency": "EUR", "locale": "en_US", "lang": 1,
            "timezone_name": self.timezone_name,
            "timezone_offset": f"{sign}{abs(hours) // 60:02d}:{abs(hours) % 60:02d}",
            "active_flag": self.active_flag, "is_admin": 1 if self.is_admin else 0,
            "role_id": 1, "icon_url": None, "is_you": me, "has_created_company": False,
            "created": v1_time(created), "modified": v1_time(created), "last_login": None,
            "access": [{"app": "sales", "admin": self.is_admin, "permission_set_id": "1"}],
        }
        return body


@dataclass
class ActivityType:
    """An activity type; activities name it by ``key_string``."""

    id: int
    name: str
    key_string: str
    icon_key: str = "task"
    active_flag: bool = True

    def v1(self, created: float) -> JsonDict:
        """The ``/v1/activityTypes`` representation."""
        return {"id": self.id, "name": self.name, "icon_key": self.icon_key, "color": None,
                "order_nr": self.id, "key_string": self.key_string,
                "active_flag": self.active_flag, "is_custom_flag": False,
                "add_time": v1_time(created), "update_time": v1_time(created)}


DEFAULT_TYPES = (("Call", "call", "call"), ("Meeting", "meeting", "meeting"),
                 ("Task", "task", "task"), ("Deadline", "deadline", "deadline"),
                 ("Email", "email", "email"), ("Lunch", "lunch", "lunch"))

# ---- activities ----------------------------------------------------------------------------

LOCATION_KEYS = ("value", "country", "admin_area_level_1", "admin_area_level_2", "locality",
                 "sublocality", "route", "street_number", "subpremise", "postal_code")
ATTENDEE_KEYS = ("email", "name", "status", "is_organizer", "person_id", "user_id")
# Fields a client may send in POST/PATCH; anything else is a 400 [emulator choice: strict, so
# a connector sending a v1 name such as ``user_id`` or ``busy_flag`` finds out].
WRITABLE = ("subject", "type", "owner_id", "deal_id", "lead_id", "person_id", "org_id",
            "project_id", "due_date", "due_time", "duration", "busy", "done", "location",
            "participants", "attendees", "public_description", "note", "priority")
# Every field of a v2 ActivityItem, in the order the API lists them.
ITEM_FIELDS = ("id", "subject", "type", "owner_id", "creator_user_id", "is_deleted", "add_time",
               "update_time", "deal_id", "lead_id", "person_id", "org_id", "project_id",
               "due_date", "due_time", "duration", "busy", "done", "marked_as_done_time",
               "location", "participants", "attendees", "conference_meeting_client",
               "conference_meeting_url", "conference_meeting_id", "public_description",
               "priority", "note")


def _int_or_none(body: JsonDict, key: str) -> int | None:
    value = body[key]
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise bad_request(f"{key} must be a positive integer")
    return value


def _bool(body: JsonDict, key: str) -> bool:
    value = body[key]
    if not isinstance(value, bool):
        raise bad_request(f"{key} must be a boolean")
    return value


def _text(body: JsonDict, key: str) -> str | None:
    value = body[key]
    if value is not None and not isinstance(value, str):
        raise bad_request(f"{key} must be a string")
    return value


def _location(value: Any) -> JsonDict | None:
    if value is None:
        return None
    if not isinstance(value, dict) or any(k not in LOCATION_KEYS for k in value):
        raise bad_request("location must be an object with the documented address keys")
    if any(v is not None and not isinstance(v, str) for v in value.values()):
        raise bad_request("location parts must be strings")
    return {k: value.get(k) for k in LOCATION_KEYS}


def _participants(value: Any) -> list[JsonDict]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise bad_request("participants must be an array")
    result = []
    for item in value:
        if not isinstance(item, dict) or not isinstance(item.get("person_id"), int):
            raise bad_request("each participant needs an integer person_id")
        result.append({"person_id": item["person_id"], "primary": bool(item.get("primary"))})
    if result and not any(p["primary"] for p in result):
        result[0]["primary"] = True
    return result


def _attendees(value: Any) -> list[JsonDict]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise bad_request("attendees must be an array")
    result = []
    for item in value:
        if not isinstance(item, dict) or any(k not in ATTENDEE_KEYS for k in item):
            raise bad_request("each attendee must be an object with the documented keys")
        email = item.get("email")
        if item.get("person_id") is None and item.get("user_id") is None and (
                not isinstance(email, str) or "@" not in email):
            raise bad_request("each attendee needs an email, person_id or user_id")
        result.append({"email": email, "name": item.get("name"),
                       "status": item.get("status", "noreply"),
                       "is_organizer": bool(item.get("is_organizer", False)),
                       "person_id": item.get("person_id"), "user_id": item.get("user_id")})
    return result


def validate_fields(body: JsonDict) -> JsonDict:
    """Check the fields of a POST/PATCH body and return them normalised (400 on the first bad
    one). Existence of referenced users, types, persons and deals is the store's job."""
    unknown = sorted(k for k in body if k not in WRITABLE)
    if unknown:
        raise bad_request(f"Unknown field(s): {', '.join(unknown)}")
    out: JsonDict = {}
    for key in body:
        if key in ("owner_id", "deal_id", "person_id", "org_id", "project_id"):
            out[key] = _int_or_none(body, key)
        elif key in ("busy", "done"):
            out[key] = _bool(body, key)
        elif key == "due_date":
            out[key] = check_date(body[key], key)
        elif key == "due_time":
            out[key] = check_hhmm(body[key], key)
        elif key == "duration":
            out[key] = check_hhmm(body[key], key, max_hours=99)
        elif key == "location":
            out[key] = _location(body[key])
        elif key == "participants":
            out[key] = _participants(body[key])
        elif key == "attendees":
            out[key] = _attendees(body[key])
        elif key == "priority":
            value = body[key]
            if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
                raise bad_request("priority must be an integer")
            out[key] = value
        else:
            out[key] = _text(body, key)
    if out.get("type", "x") is None:
        raise bad_request("type cannot be null")
    if out.get("due_time") is not None and "due_date" in out and out["due_date"] is None:
        raise bad_request("due_time needs a due_date")
    return out


def new_activity(activity_id: int, fields: JsonDict, creator: int, now: float) -> JsonDict:
    """A stored activity with every v2 field, from validated POST fields."""
    item: JsonDict = {k: None for k in ITEM_FIELDS}
    item.update({"id": activity_id, "owner_id": creator, "creator_user_id": creator,
                 "is_deleted": False, "add_time": v2_time(now), "update_time": v2_time(now),
                 "busy": False, "done": False, "participants": [], "attendees": [],
                 "public_description": None, "note": None})
    item.update(fields)
    if "busy" not in fields:
        # [emulator choice] following v1's null busy_flag: busy when timed, free when all-day.
        item["busy"] = item["due_time"] is not None
    if item["done"]:
        item["marked_as_done_time"] = v2_time(now)
    return item


def present(item: JsonDict, include_attendees: bool) -> JsonDict:
    """The activity as the API returns it (attendees only when asked for)."""
    out = {k: _copy(item[k]) for k in ITEM_FIELDS}
    if not include_attendees:
        del out["attendees"]
    return out


def _copy(value: Any) -> Any:
    return json.loads(json.dumps(value)) if isinstance(value, dict | list) else value
