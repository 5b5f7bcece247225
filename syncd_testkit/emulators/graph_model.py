"""The Graph emulator's event model: validation of request bodies and rendering of responses.

Everything here is pure (no locks, no HTTP); :mod:`.graph_store` owns the state.
Rules follow providers.md B.2/B.3: server-owned attendee status, ``location`` replacing
``locations``, HTML-wrapped text bodies, all-day validation, weak ``@odata.etag`` built from the
``changeKey``, ``originalStartTimeZone`` kept from create time.
"""

from __future__ import annotations

import base64
import html
import re
import secrets
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import quote

from .graph_tz import (
    UnknownTimeZone,
    format_graph_datetime,
    format_utc_timestamp,
    parse_graph_datetime,
    resolve_zone,
)

__all__ = [
    "EventTime",
    "GraphError",
    "StoredEvent",
    "apply_payload",
    "ext_prop_key",
    "html_to_text",
    "new_change_key",
    "new_ical_uid",
    "new_immutable_id",
    "new_regular_id",
    "render_event",
    "wrap_text_as_html",
]

ZERO_TIME = "0001-01-01T00:00:00Z"
MAX_ATTENDEES = 500

_ENUMS: dict[str, tuple[str, ...]] = {
    "showAs": ("free", "tentative", "busy", "oof", "workingElsewhere", "unknown"),
    "sensitivity": ("normal", "personal", "private", "confidential"),
    "importance": ("low", "normal", "high"),
    "onlineMeetingProvider": (
        "unknown",
        "teamsForBusiness",
        "skypeForBusiness",
        "skypeForConsumer",
    ),
}
_ENUM_TYPES = {
    "showAs": "microsoft.graph.freeBusyStatus",
    "sensitivity": "microsoft.graph.sensitivity",
    "importance": "microsoft.graph.importance",
    "onlineMeetingProvider": "microsoft.graph.onlineMeetingProviderType",
}
_BOOLS = (
    "isAllDay",
    "isReminderOn",
    "responseRequested",
    "allowNewTimeProposals",
    "hideAttendees",
    "isOnlineMeeting",
)
# Server-owned properties a client may echo back (e.g. PATCHing a fetched event); Graph ignores
# most of them, and so does the emulator, rather than failing the whole write.
_READ_ONLY = frozenset(
    {
        "id",
        "changeKey",
        "createdDateTime",
        "lastModifiedDateTime",
        "iCalUId",
        "uid",
        "type",
        "seriesMasterId",
        "isOrganizer",
        "organizer",
        "responseStatus",
        "webLink",
        "hasAttachments",
        "bodyPreview",
        "isCancelled",
        "originalStartTimeZone",
        "originalEndTimeZone",
        "originalStart",
        "onlineMeetingUrl",
        "onlineMeeting",
        "isDraft",
        "cancelledOccurrences",
        "exceptionOccurrences",
        "occurrenceId",
    }
)
_WRITABLE = frozenset(
    {
        "subject",
        "body",
        "start",
        "end",
        "location",
        "locations",
        "attendees",
        "categories",
        "reminderMinutesBeforeStart",
        "recurrence",
        "transactionId",
        "singleValueExtendedProperties",
        *_ENUMS,
        *_BOOLS,
    }
)
# Changing any of these on an event with attendees makes Exchange send an update (B.2).
MEETING_FIELDS = frozenset(
    {"subject", "body", "start", "end", "isAllDay", "location", "locations", "attendees"}
)

_HTML_HEAD = (
    '<html><head>\r\n<meta http-equiv="Content-Type" content="text/html; charset=utf-8">'
    "\r\n</head>\r\n<body>\r\n"
)
_HTML_TAIL = "\r\n</body>\r\n</html>\r\n"


class GraphError(Exception):
    """An error response in Graph's ``{"error": {"code", "message", "innerError"}}`` shape."""

    def __init__(
        self, status: int, code: str, message: str, *, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.headers = dict(headers or {})


def bad_body(message: str) -> GraphError:
    """The 400 Graph gives for a body that does not match the event schema."""
    return GraphError(400, "RequestBodyRead", message)


@dataclass(frozen=True)
class EventTime:
    """One side of an event's span: wall-clock time in the zone given, and the UTC instant."""

    local: datetime
    zone: str
    utc: datetime


@dataclass
class StoredEvent:
    """An event as the emulator keeps it. ``props`` holds the JSON-valued writable properties."""

    regular_id: str
    immutable_id: str
    calendar_id: str
    ical_uid: str
    organizer: dict[str, str]
    created: datetime
    modified: datetime
    change_key: str
    start: EventTime
    end: EventTime
    original_start_tz: str
    original_end_tz: str
    seq: int = 0
    transaction_id: str | None = None
    props: dict[str, Any] = field(default_factory=dict)
    ext_props: dict[str, dict[str, str]] = field(default_factory=dict)

    @property
    def etag(self) -> str:
        """The weak ETag Graph puts in ``@odata.etag``."""
        return f'W/"{self.change_key}"'

    def attendee_addresses(self) -> list[str]:
        """Lower-cased attendee addresses, in order."""
        return [a["emailAddress"]["address"].lower() for a in self.props.get("attendees", [])]


def _token(nbytes: int) -> str:
    return base64.urlsafe_b64encode(secrets.token_bytes(nbytes)).decode("ascii").rstrip("=")


def new_regular_id() -> str:
    """A fresh "regular" (EWS-style) id; these change when the item moves."""
    return f"AAMkAG{_token(60)}AAA="


def new_immutable_id() -> str:
    """A fresh immutable id (``Prefer: IdType="ImmutableId"``); it survives moves."""
    return f"AAkALg{_token(54)}AAA="


def new_change_key() -> str:
    """A fresh changeKey (standard base64, so it can contain ``+`` and ``/`` like Exchange's)."""
    return base64.b64encode(secrets.token_bytes(21)).decode("ascii")


def new_ical_uid() -> str:
    """An Exchange-style global object id in hex."""
    return "040000008200E00074C5B7101A82E00800000000" + secrets.token_hex(28).upper()


def ext_prop_key(prop_id: str) -> str:
    """Normalise an extended-property id for matching.

    ``String {GUID} Name crmId``: the type, the GUID and the ``Name``/``Id`` keyword are
    case-insensitive; the name itself is case-sensitive (providers.md B.6).
    """
    parts = prop_id.strip().split(None, 3)
    if len(parts) == 4 and parts[2].lower() in ("name", "id"):
        return f"{parts[0].lower()} {parts[1].lower()} {parts[2].lower()} {parts[3]}"
    return " ".join(p.lower() for p in parts)


def wrap_text_as_html(text: str) -> str:
    """Wrap a text body the way Exchange stores it: escaped, ``<br>`` for line breaks."""
    if text == "":
        return ""
    escaped = html.escape(text, quote=False)
    escaped = escaped.replace("\r\n", "<br>").replace("\n", "<br>").replace("\r", "<br>")
    return _HTML_HEAD + escaped + _HTML_TAIL


def _wrap_html(content: str) -> str:
    if content == "" or "<html" in content[:200].lower():
        return content
    return _HTML_HEAD + content + _HTML_TAIL


_TAG = re.compile(r"<[^>]*>")
_BR = re.compile(r"<br\s*/?>", re.IGNORECASE)
_BLOCK_END = re.compile(r"</(p|div|li|tr|h[1-6])\s*>", re.IGNORECASE)


def html_to_text(content: str) -> str:
    """Reduce an HTML body to text, as ``Prefer: outlook.body-content-type="text"`` does."""
    body = re.search(r"<body[^>]*>(.*)</body>", content, re.IGNORECASE | re.DOTALL)
    inner = body.group(1) if body else content
    if inner.startswith("\r\n"):
        inner = inner[2:]
    if inner.endswith("\r\n"):
        inner = inner[:-2]
    inner = _BR.sub("\n", inner)
    inner = _BLOCK_END.sub("\n", inner)
    return html.unescape(_TAG.sub("", inner)).rstrip("\r\n")


# -- validation --------------------------------------------------------------------------------


def _enum(prop: str, value: Any) -> str:
    if isinstance(value, str):
        for allowed in _ENUMS[prop]:
            if allowed.lower() == value.lower():
                return allowed
    raise bad_body(
        f"Cannot convert the literal '{value}' to the expected type '{_ENUM_TYPES[prop]}'."
    )


def _time(prop: str, value: Any) -> EventTime:
    if not isinstance(value, dict) or not isinstance(value.get("dateTime"), str):
        raise bad_body(f"The property '{prop}' must be a dateTimeTimeZone with a dateTime.")
    zone = value.get("timeZone") or "UTC"
    try:
        local, utc = parse_graph_datetime(value["dateTime"], zone)
    except UnknownTimeZone as exc:
        raise GraphError(
            400,
            "TimeZoneNotSupportedException",
            f"A valid TimeZone value must be specified. The following TimeZone value is not "
            f"supported: '{exc.name}'.",
        ) from exc
    except ValueError as exc:
        raise bad_body(f"Cannot convert the literal '{value['dateTime']}' to a date-time.") from exc
    return EventTime(local, zone, utc)


def _location(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise bad_body("The property 'location' must be an object.")
    loc: dict[str, Any] = dict(value)
    loc["displayName"] = str(loc.get("displayName") or "")
    loc.setdefault("locationType", "default")
    if loc["displayName"] and "uniqueId" not in loc:
        loc["uniqueId"] = loc["displayName"]
        loc.setdefault("uniqueIdType", "private")
    loc.setdefault("uniqueIdType", "unknown")
    return loc


def _attendees(value: Any, previous: list[dict[str, Any]]) -> list[dict[str, Any]]:
    if not isinstance(value, list):
        raise bad_body("The property 'attendees' must be a collection.")
    if len(value) > MAX_ATTENDEES:
        raise GraphError(400, "ErrorInvalidRequest", "An event can have at most 500 attendees.")
    known = {a["emailAddress"]["address"].lower(): a["status"] for a in previous}
    result = []
    for item in value:
        email = item.get("emailAddress") if isinstance(item, dict) else None
        address = email.get("address") if isinstance(email, dict) else None
        if not isinstance(email, dict) or not isinstance(address, str) or "@" not in address:
            raise GraphError(400, "ErrorInvalidRecipients", "At least one recipient isn't valid.")
        kind = str(item.get("type") or "required")
        if kind not in ("required", "optional", "resource"):
            raise bad_body(
                f"Cannot convert the literal '{kind}' to the expected type "
                "'microsoft.graph.attendeeType'."
            )
        # The response status belongs to the attendee, never to the writer (B.2).
        status = known.get(address.lower(), {"response": "none", "time": ZERO_TIME})
        result.append(
            {
                "type": kind,
                "status": dict(status),
                "emailAddress": {"name": email.get("name") or address, "address": address},
            }
        )
    return result


def _ext_props(value: Any) -> list[dict[str, str]]:
    if not isinstance(value, list):
        raise bad_body("The property 'singleValueExtendedProperties' must be a collection.")
    result = []
    for item in value:
        if not isinstance(item, dict) or not isinstance(item.get("id"), str):
            raise bad_body("Each singleValueLegacyExtendedProperty needs an 'id'.")
        result.append({"id": item["id"], "value": str(item.get("value", ""))})
    return result


def _body(value: Any) -> dict[str, str]:
    if not isinstance(value, dict):
        raise bad_body("The property 'body' must be an itemBody.")
    kind = str(value.get("contentType") or "text").lower()
    if kind not in ("text", "html"):
        raise bad_body(
            f"Cannot convert the literal '{kind}' to the expected type 'microsoft.graph.bodyType'."
        )
    return {"contentType": kind, "content": str(value.get("content") or "")}


def apply_payload(ev: StoredEvent, payload: dict[str, Any], *, creating: bool) -> set[str]:
    """Validate a POST/PATCH body and apply it to ``ev`` in place.

    The caller passes a copy and keeps the original if this raises, so a rejected write
    changes nothing.

    Returns:
        The names of the properties whose value actually changed.

    Raises:
        GraphError: 400 for unknown properties, bad values or an invalid all-day span.
    """
    changed: set[str] = set()

    def put(name: str, value: Any) -> None:
        if ev.props.get(name) != value:
            changed.add(name)
        ev.props[name] = value

    for name in payload:
        if name.startswith("@odata.") or name in _READ_ONLY:
            continue
        if name not in _WRITABLE:
            raise bad_body(
                f"The property '{name}' does not exist on type 'microsoft.graph.event'. Make "
                "sure to only use property names that are defined by the type or mark the type "
                "as open type."
            )
    for name in ("start", "end"):
        if name in payload:
            new = _time(name, payload[name])
            if getattr(ev, name) != new:
                changed.add(name)
            setattr(ev, name, new)
    if "transactionId" in payload:
        tid = payload["transactionId"]
        if not creating and tid != ev.transaction_id:
            raise GraphError(
                400, "ErrorInvalidRequest", "The transactionId of an event cannot be changed."
            )
        ev.transaction_id = None if tid is None else str(tid)
    if "subject" in payload:
        put("subject", str(payload["subject"] or ""))
    if "body" in payload:
        put("body", _body(payload["body"]))
    for name in _ENUMS:
        if name in payload:
            put(name, _enum(name, payload[name]))
    for name in _BOOLS:
        if name in payload:
            if not isinstance(payload[name], bool):
                raise bad_body(f"Cannot convert the literal '{payload[name]}' to Edm.Boolean.")
            put(name, payload[name])
    if "categories" in payload:
        cats = payload["categories"]
        if not isinstance(cats, list) or not all(isinstance(c, str) for c in cats):
            raise bad_body("The property 'categories' must be a collection of strings.")
        put("categories", list(cats))
    if "reminderMinutesBeforeStart" in payload:
        minutes = payload["reminderMinutesBeforeStart"]
        if not isinstance(minutes, int) or isinstance(minutes, bool) or minutes < 0:
            raise bad_body("The property 'reminderMinutesBeforeStart' must be a whole number.")
        put("reminderMinutesBeforeStart", minutes)
    if "recurrence" in payload:
        put("recurrence", payload["recurrence"])
    if "attendees" in payload:
        put("attendees", _attendees(payload["attendees"], ev.props.get("attendees", [])))
    if "location" in payload:
        loc = _location(payload["location"] or {})
        put("location", loc)
        # location and locations always correspond: writing location replaces every entry.
        put("locations", [loc] if loc["displayName"] else [])
    elif "locations" in payload:
        raw = payload["locations"]
        if not isinstance(raw, list):
            raise bad_body("The property 'locations' must be a collection.")
        locs = [_location(x) for x in raw]
        put("locations", locs)
        names = "; ".join(x["displayName"] for x in locs if x["displayName"])
        put("location", _location({"displayName": names}))
    if "singleValueExtendedProperties" in payload:
        for prop in _ext_props(payload["singleValueExtendedProperties"]):
            ev.ext_props[ext_prop_key(prop["id"])] = prop
        changed.add("singleValueExtendedProperties")
    _check_span(ev)
    return changed


def _check_span(ev: StoredEvent) -> None:
    if ev.end.utc < ev.start.utc:
        raise GraphError(
            400,
            "ErrorInvalidRequest",
            "Your request can't be completed. The end time of the event must be after its "
            "start time.",
        )
    if not ev.props.get("isAllDay"):
        return
    midnight = ev.start.local.time() == ev.end.local.time() == datetime.min.time()
    same_zone = resolve_zone(ev.start.zone) == resolve_zone(ev.end.zone)
    if not (midnight and same_zone):
        # Message invented: the real one is not documented (see "Choices" in graph.py).
        raise GraphError(
            400,
            "ErrorInvalidRequest",
            "Your request can't be completed. The start and end of an event marked as All day "
            "must be at midnight in the same time zone.",
        )
    # Compared on the wall clock: a DST-change day is still one day.
    if ev.end.local - ev.start.local < timedelta(days=1):
        raise GraphError(
            400,
            "ErrorInvalidRequest",
            "Your request can't be completed. The duration of an event marked as All day must "
            "be at least 24 hours.",
        )


# -- rendering ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class RenderOptions:
    """How a response should look, from the request's Prefer header and query options."""

    out_zone: str = "UTC"
    text_body: bool = False
    immutable_ids: bool = False
    expand_ext_ids: tuple[str, ...] | None = None  # None: not expanded; (): expand all
    select: frozenset[str] | None = None


def _render_time(t: EventTime, all_day: bool, out_zone: str) -> dict[str, str]:
    if all_day:
        # All-day events come back midnight-to-midnight in their own zone whatever the Prefer
        # zone is, yet labelled with the output zone (microsoft-graph-docs #1802).
        return {"dateTime": format_graph_datetime(t.local), "timeZone": out_zone}
    local = t.utc.astimezone(resolve_zone(out_zone)).replace(tzinfo=None)
    return {"dateTime": format_graph_datetime(local), "timeZone": out_zone}


def _render_body(body: dict[str, str], text: bool) -> dict[str, str]:
    if body["contentType"] == "text":
        content = body["content"] if text else wrap_text_as_html(body["content"])
    else:
        content = html_to_text(body["content"]) if text else _wrap_html(body["content"])
    return {"contentType": "text" if text else "html", "content": content}


def render_event(ev: StoredEvent, opts: RenderOptions) -> dict[str, Any]:
    """Build the JSON Graph returns for ``ev`` (a fresh dict, safe to hand out)."""
    p = ev.props
    event_id = ev.immutable_id if opts.immutable_ids else ev.regular_id
    body = p.get("body", {"contentType": "text", "content": ""})
    preview = (
        " ".join(html_to_text(body["content"]).split())
        if body["contentType"] == "html"
        else " ".join(body["content"].split())
    )
    all_day = bool(p.get("isAllDay", False))
    out: dict[str, Any] = {
        "@odata.etag": ev.etag,
        "id": event_id,
        "createdDateTime": format_utc_timestamp(ev.created),
        "lastModifiedDateTime": format_utc_timestamp(ev.modified),
        "changeKey": ev.change_key,
        "categories": list(p.get("categories", [])),
        "transactionId": ev.transaction_id,
        "originalStartTimeZone": ev.original_start_tz,
        "originalEndTimeZone": ev.original_end_tz,
        "iCalUId": ev.ical_uid,
        "uid": ev.ical_uid,
        "reminderMinutesBeforeStart": p.get("reminderMinutesBeforeStart", 15),
        "isReminderOn": p.get("isReminderOn", True),
        "hasAttachments": False,
        "subject": p.get("subject", ""),
        "bodyPreview": preview[:255],
        "importance": p.get("importance", "normal"),
        "sensitivity": p.get("sensitivity", "normal"),
        "isAllDay": all_day,
        "isCancelled": False,
        "isOrganizer": True,
        "responseRequested": p.get("responseRequested", True),
        "seriesMasterId": None,
        "showAs": p.get("showAs", "busy"),
        "type": "seriesMaster" if p.get("recurrence") else "singleInstance",
        "webLink": "https://outlook.office365.com/owa/?itemid="
        + quote(event_id, safe="")
        + "&exvsurl=1&path=/calendar/item",
        "onlineMeetingUrl": None,
        "isOnlineMeeting": p.get("isOnlineMeeting", False),
        "onlineMeetingProvider": p.get("onlineMeetingProvider", "unknown"),
        "allowNewTimeProposals": p.get("allowNewTimeProposals", True),
        "isDraft": False,
        "hideAttendees": p.get("hideAttendees", False),
        "responseStatus": {"response": "organizer", "time": ZERO_TIME},
        "body": _render_body(body, opts.text_body),
        "start": _render_time(ev.start, all_day, opts.out_zone),
        "end": _render_time(ev.end, all_day, opts.out_zone),
        "location": dict(p.get("location", _location({}))),
        "locations": [dict(x) for x in p.get("locations", [])],
        "recurrence": p.get("recurrence"),
        "attendees": [
            {**a, "status": dict(a["status"]), "emailAddress": dict(a["emailAddress"])}
            for a in p.get("attendees", [])
        ],
        "organizer": {"emailAddress": dict(ev.organizer)},
        "onlineMeeting": None,
    }
    if ev.transaction_id is None:
        # transactionId is returned only if the app set it (B.2).
        del out["transactionId"]
    if opts.expand_ext_ids is not None:
        wanted = {ext_prop_key(i) for i in opts.expand_ext_ids}
        props = [dict(v) for k, v in ev.ext_props.items() if not wanted or k in wanted]
        if props:
            out["singleValueExtendedProperties"] = props
    if opts.select is not None:
        keep = {"@odata.etag", "id", "singleValueExtendedProperties"} | opts.select
        out = {k: v for k, v in out.items() if k in keep}
    return out
