"""Reading calendars: ``events.list`` (full, ``syncToken``, ``updatedMin``), calendarList,
calendars.get and freeBusy, over a :class:`~syncd_testkit.emulators.google_store.GoogleStore`.

Sync tokens are change-sequence numbers: a token says "every change after N" of one
calendar. A listing fixes its high-water mark on the first page and hands it out as
``nextSyncToken`` on the last one, so a change made while a client pages is delivered by the
next incremental sync at the latest, never lost. Page tokens continue after the last *key*
served rather than at an offset, so an insert during paging cannot shift an unserved event
past the cursor. Tokens are base64 JSON; clients must treat them as opaque.
"""

from __future__ import annotations

import base64
import binascii
import copy
import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from .google_model import (
    ApiError,
    JsonDict,
    edt_instant,
    event_interval,
    expand_instances,
    format_timestamp,
    format_utc_seconds,
    invalid,
    parse_rfc3339,
    required,
)
from .google_store import GoogleStore, Params, StoredCalendar, first

SortKey = tuple[str, int, str]
EVENTS_PAGE_DEFAULT, EVENTS_PAGE_MAX = 250, 2500
CALENDAR_LIST_PAGE_DEFAULT, CALENDAR_LIST_PAGE_MAX = 100, 250
# Parameters Google refuses together with syncToken (discovery doc, events.list).
SYNC_TOKEN_RESTRICTED = ("timeMin", "timeMax", "q", "orderBy", "iCalUID", "updatedMin",
                         "privateExtendedProperty", "sharedExtendedProperty")


def _flag(params: Params, name: str) -> bool | None:
    value = first(params, name)
    if value is None:
        return None
    if value.lower() in ("true", "1"):
        return True
    if value.lower() in ("false", "0"):
        return False
    raise invalid(f"Invalid boolean value for parameter {name}.", location=name)


def _encode_token(payload: JsonDict) -> str:
    raw = json.dumps(payload, separators=(",", ":"), sort_keys=True).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_token(token: str, kind: str, location: str) -> JsonDict:
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        payload = json.loads(raw)
    except (binascii.Error, ValueError) as exc:
        raise invalid(f"Invalid {kind} value.", location=location) from exc
    if not isinstance(payload, dict):
        raise invalid(f"Invalid {kind} value.", location=location)
    return payload


def full_sync_required() -> ApiError:
    """410 ``fullSyncRequired``, the answer to an expired or invalidated sync token."""
    return ApiError(410, "fullSyncRequired",
                    "Sync token is no longer valid, a full sync is required.",
                    location_type="parameter", location="syncToken")


@dataclass
class _ListQuery:
    """Validated ``events.list`` parameters."""

    max_results: int
    show_deleted: bool
    single_events: bool
    order_by: str | None
    time_min: datetime | None
    time_max: datetime | None
    text: str | None
    ical_uid: str | None
    private_props: list[tuple[str, str]]
    shared_props: list[tuple[str, str]]
    event_types: list[str]


@dataclass
class _Position:
    """Where a listing stands: its mode, the change numbers it covers and its cursor."""

    mode: str  # "full", "sync" (syncToken) or "updated" (updatedMin)
    base: int  # changes after this number are listed (sync mode)
    high: int  # the calendar's change number when the listing began: the next sync token
    page: int = 0
    cursor: SortKey | None = None
    updated_min: str | None = None


def list_events(store: GoogleStore, calendar_id: str, user: str | None,
                params: Params) -> JsonDict:
    """events.list with full, ``syncToken`` and ``updatedMin`` modes and paging."""
    with store.lock:
        cal = store.calendar(calendar_id, user)
        query = _list_query(params)
        pos = _position(store, cal, params)
        if pos.mode == "full":
            candidates = _full_candidates(cal, query)
        else:
            candidates = _change_candidates(cal, query, pos.base, pos.updated_min)
        candidates.sort(key=lambda c: c[0])
        remaining = [c for c in candidates if pos.cursor is None or c[0] > pos.cursor]
        limit = query.max_results
        if store.short_pages:
            # Every other page is empty, the rest half-full: exposes clients that stop on
            # an empty page or assume a full page means more follow.
            limit = 0 if pos.page % 2 == 0 else max(1, limit // 2)
        served = remaining[:limit]
        result: JsonDict = {
            "kind": "calendar#events", "etag": cal.etag, "summary": cal.summary,
            "description": "", "updated": cal.updated, "timeZone": cal.time_zone,
            "accessRole": "owner", "defaultReminders": [],
            "items": [item for _, item in served],
        }
        if len(served) < len(remaining):
            # ("", -1, "") sorts before every real key: an empty first page restarts from
            # the beginning.
            last = list(served[-1][0]) if served else list(pos.cursor or ("", -1, ""))
            result["nextPageToken"] = _encode_token({
                "t": "page", "c": cal.id, "g": cal.token_generation, "m": pos.mode,
                "b": pos.base, "h": pos.high, "p": pos.page + 1, "k": last,
                "u": pos.updated_min})
        else:
            result["nextSyncToken"] = _encode_token(
                {"t": "sync", "c": cal.id, "g": cal.token_generation, "s": pos.high})
        return copy.deepcopy(result)


def _position(store: GoogleStore, cal: StoredCalendar, params: Params) -> _Position:
    """Decode pageToken / syncToken / updatedMin into where this listing stands."""
    page_token, sync_token = first(params, "pageToken"), first(params, "syncToken")
    if sync_token is not None:
        _check_sync_token_params(params)
    if page_token is not None:
        state = _decode_token(page_token, "page token", "pageToken")
        if state.get("c") != cal.id or state.get("t") != "page":
            raise invalid("Invalid page token value.", location="pageToken")
        if state["m"] == "sync" and state["g"] != cal.token_generation:
            raise full_sync_required()
        return _Position(state["m"], int(state["b"]), int(state["h"]), page=int(state["p"]),
                         cursor=(str(state["k"][0]), int(state["k"][1]), str(state["k"][2])),
                         updated_min=state.get("u"))
    if sync_token is not None:
        return _Position("sync", _sync_token_seq(cal, sync_token), cal.change_seq)
    raw_updated_min = first(params, "updatedMin")
    if raw_updated_min is not None:
        return _Position("updated", 0, cal.change_seq,
                         updated_min=_updated_min(store, raw_updated_min))
    return _Position("full", 0, cal.change_seq)


def _list_query(params: Params) -> _ListQuery:
    raw_max = first(params, "maxResults")
    max_results = EVENTS_PAGE_DEFAULT
    if raw_max is not None:
        if not raw_max.isdigit() or int(raw_max) < 1:
            raise invalid("Invalid value for parameter maxResults.", location="maxResults")
        max_results = min(int(raw_max), EVENTS_PAGE_MAX)
    time_min = _time_param(params, "timeMin")
    time_max = _time_param(params, "timeMax")
    if time_min and time_max and time_min >= time_max:
        raise ApiError(400, "timeRangeEmpty", "The specified time range is empty.",
                       location_type="parameter", location="timeMax")
    single = bool(_flag(params, "singleEvents"))
    order_by = first(params, "orderBy")
    if order_by not in (None, "startTime", "updated"):
        raise invalid(f"Invalid value for parameter orderBy: {order_by}", location="orderBy")
    if order_by == "startTime" and not single:
        raise invalid("The requested ordering is not available for the particular query.",
                      location="orderBy")
    return _ListQuery(
        max_results=max_results, show_deleted=bool(_flag(params, "showDeleted")),
        single_events=single, order_by=order_by, time_min=time_min, time_max=time_max,
        text=first(params, "q"), ical_uid=first(params, "iCalUID"),
        private_props=_prop_filters(params, "privateExtendedProperty"),
        shared_props=_prop_filters(params, "sharedExtendedProperty"),
        event_types=params.get("eventTypes", []))


def _time_param(params: Params, name: str) -> datetime | None:
    raw = first(params, name)
    if raw is None:
        return None
    moment = parse_rfc3339(raw)
    if moment is None or moment.tzinfo is None:
        # Google wants an explicit offset here even though RFC 3339 always has one.
        raise invalid(f"Invalid value for parameter {name}: {raw}", location=name)
    return moment.astimezone(UTC)


def _prop_filters(params: Params, name: str) -> list[tuple[str, str]]:
    filters = []
    for raw in params.get(name, []):
        key, sep, value = raw.partition("=")
        if not sep:
            raise invalid(f"Invalid value for parameter {name}: {raw}", location=name)
        filters.append((key, value))
    return filters


def _check_sync_token_params(params: Params) -> None:
    clashing = [name for name in SYNC_TOKEN_RESTRICTED if name in params]
    if clashing:
        # Reason as reported by a third party; the docs only say "not allowed".
        raise ApiError(400, "syncTokenWithRequestRestrictions",
                       f"Sync token cannot be used with request restrictions: "
                       f"{', '.join(clashing)}.", location_type="parameter",
                       location="syncToken")
    if _flag(params, "showDeleted") is False:
        raise invalid("showDeleted=false is not allowed together with syncToken.",
                      location="showDeleted")


def _sync_token_seq(cal: StoredCalendar, token: str) -> int:
    state = _decode_token(token, "sync token", "syncToken")
    if state.get("t") != "sync" or not isinstance(state.get("s"), int):
        raise invalid("Invalid sync token value.", location="syncToken")
    if state.get("c") != cal.id or state.get("g") != cal.token_generation:
        raise full_sync_required()
    return int(state["s"])


def _updated_min(store: GoogleStore, raw: str) -> str:
    moment = parse_rfc3339(raw)
    if moment is None or moment.tzinfo is None:
        raise invalid(f"Invalid value for parameter updatedMin: {raw}", location="updatedMin")
    if moment < store.now() - store.updated_min_horizon:
        raise ApiError(410, "updatedMinTooLongAgo",
                       "The requested minimum modification time lies too far in the past.",
                       location_type="parameter", location="updatedMin")
    return format_timestamp(moment)


def _matches(event: JsonDict, query: _ListQuery) -> bool:
    """The non-time filters: iCalUID, extended properties, text, event types."""
    if query.ical_uid is not None and event["iCalUID"] != query.ical_uid:
        return False
    props = event.get("extendedProperties", {})
    # Repeated constraints must all hold (the discovery doc's wording; the older guide
    # says OR - syncd should send one constraint, so either reading passes its tests).
    for scope, filters in (("private", query.private_props), ("shared", query.shared_props)):
        if any(props.get(scope, {}).get(k) != v for k, v in filters):
            return False
    if query.event_types and event.get("eventType", "default") not in query.event_types:
        return False
    if query.text:
        haystack = " ".join(
            [str(event.get(f, "")) for f in ("summary", "description", "location")]
            + [a["email"] for a in event.get("attendees", [])]).lower()
        if not all(word in haystack for word in query.text.lower().split()):
            return False
    return True


def _overlaps(query: _ListQuery, interval: tuple[datetime, datetime]) -> bool:
    # timeMin bounds the end and timeMax the start, both exclusively.
    start, end = interval
    return (query.time_min is None or end > query.time_min) and (
        query.time_max is None or start < query.time_max)


def _full_candidates(cal: StoredCalendar,
                     query: _ListQuery) -> list[tuple[SortKey, JsonDict]]:
    out: list[tuple[SortKey, JsonDict]] = []
    for event_id, event in cal.events.items():
        cancelled = event["status"] == "cancelled"
        if (cancelled and not query.show_deleted) or not _matches(event, query):
            continue
        order = cal.event_order[event_id]
        if "recurrence" in event:
            instances = [i for i in expand_instances(event, cal.tz)
                         if _overlaps(query, event_interval(i, cal.tz))]
            if not instances:
                continue
            if query.single_events and not cancelled:
                out.extend((_full_key(query, i, order, cal), i) for i in instances)
                continue
        elif not _overlaps(query, event_interval(event, cal.tz)):
            continue
        out.append((_full_key(query, event, order, cal), _render(event)))
    return out


def _full_key(query: _ListQuery, event: JsonDict, order: int,
              cal: StoredCalendar) -> SortKey:
    if query.order_by == "startTime":
        return (format_timestamp(edt_instant(event["start"], cal.tz)), order, event["id"])
    if query.order_by == "updated":
        return (event["updated"], order, event["id"])
    return ("", order, event["id"])


def _change_candidates(cal: StoredCalendar, query: _ListQuery, base: int,
                       updated_min: str | None) -> list[tuple[SortKey, JsonDict]]:
    """Events changed after sequence ``base`` (or since ``updated_min``), deletions too."""
    out: list[tuple[SortKey, JsonDict]] = []
    for event_id, event in cal.events.items():
        seq = cal.event_seq[event_id]
        if seq <= base or (updated_min is not None and event["updated"] < updated_min):
            continue
        cancelled = event["status"] == "cancelled"
        if not cancelled and not _matches(event, query):
            continue
        if (not cancelled and "recurrence" not in event
                and not _overlaps(query, event_interval(event, cal.tz))):
            continue  # only updatedMin listings can carry a time window
        if query.single_events and "recurrence" in event and not cancelled:
            out.extend((("", seq, i["id"]), i) for i in expand_instances(event, cal.tz))
        else:
            out.append((("", seq, event_id), _render(event)))
    return out


def _render(event: JsonDict) -> JsonDict:
    """A list item: the full event, or for a deleted one the stub Google guarantees."""
    if event["status"] != "cancelled":
        return event
    stub = {k: event[k] for k in ("kind", "etag", "id", "status", "updated")}
    for key in ("recurringEventId", "originalStartTime"):
        if key in event:
            stub[key] = event[key]
    return stub


# ---- calendarList, calendars.get, freeBusy ------------------------------------------------


def _list_entry(cal: StoredCalendar) -> JsonDict:
    entry: JsonDict = {
        "kind": "calendar#calendarListEntry", "etag": cal.etag, "id": cal.id,
        "summary": cal.summary, "timeZone": cal.time_zone, "accessRole": "owner",
        "defaultReminders": [], "selected": True,
    }
    if cal.primary:
        entry["primary"] = True
    if cal.deleted:
        entry = {"kind": entry["kind"], "etag": cal.etag, "id": cal.id, "deleted": True}
    return entry


def calendar_list(store: GoogleStore, params: Params) -> JsonDict:
    """calendarList.list with paging and sync tokens."""
    with store.lock:
        raw_max = first(params, "maxResults")
        limit = CALENDAR_LIST_PAGE_DEFAULT
        if raw_max is not None:
            if not raw_max.isdigit() or int(raw_max) < 1:
                raise invalid("Invalid value for parameter maxResults.",
                              location="maxResults")
            limit = min(int(raw_max), CALENDAR_LIST_PAGE_MAX)
        page_token, sync_token = first(params, "pageToken"), first(params, "syncToken")
        page, after, base = 0, 0, None
        if page_token is not None:
            state = _decode_token(page_token, "page token", "pageToken")
            if state.get("t") != "clpage":
                raise invalid("Invalid page token value.", location="pageToken")
            page, after, base, high = int(state["p"]), int(state["a"]), state["b"], state["h"]
        elif sync_token is not None:
            for name in ("minAccessRole", "showOwnOrganizationOnly"):
                if name in params:
                    raise invalid(f"{name} is not allowed together with syncToken.",
                                  location=name)
            state = _decode_token(sync_token, "sync token", "syncToken")
            if state.get("t") != "clsync":
                raise invalid("Invalid sync token value.", location="syncToken")
            if state.get("g") != store.list_generation:
                raise full_sync_required()
            base, high = int(state["s"]), store.list_seq
        else:
            high = store.list_seq
        show_deleted = base is not None or bool(_flag(params, "showDeleted"))
        entries = sorted(
            (c for c in store.calendars.values()
             if (show_deleted or not c.deleted) and (base is None or c.list_seq > base)),
            key=lambda c: c.order)
        remaining = [c for c in entries if c.order > after]
        if store.short_pages:
            limit = 0 if page % 2 == 0 else max(1, limit // 2)
        served = remaining[:limit]
        result: JsonDict = {"kind": "calendar#calendarList", "etag": f'"{store.list_seq}"',
                            "items": [_list_entry(c) for c in served]}
        if len(served) < len(remaining):
            result["nextPageToken"] = _encode_token({
                "t": "clpage", "p": page + 1, "b": base, "h": high,
                "a": served[-1].order if served else after})
        else:
            result["nextSyncToken"] = _encode_token(
                {"t": "clsync", "g": store.list_generation, "s": high})
        return result


def calendar_list_entry(store: GoogleStore, calendar_id: str, user: str | None) -> JsonDict:
    """calendarList.get."""
    with store.lock:
        return _list_entry(store.calendar(calendar_id, user, create=False))


def calendar_resource(store: GoogleStore, calendar_id: str, user: str | None) -> JsonDict:
    """calendars.get."""
    with store.lock:
        cal = store.calendar(calendar_id, user, create=False)
        return {"kind": "calendar#calendar", "etag": cal.etag, "id": cal.id,
                "summary": cal.summary, "timeZone": cal.time_zone}


#: freeBusy limits. ``calendarExpansionMax`` at most 50 and ``groupExpansionMax`` at most
#: 100 [doc: FreeBusyRequest in the discovery document / API reference]; more than 50
#: calendars in ``items`` answers 400 ``tooManyCalendarsRequested`` [doc: freebusy.query,
#: "Errors" of the Calendar API guide]. A span over 90 days answers 400 ``timeRangeTooLong``
#: "The requested time range is too long." [obs: calcom/cal.diy#11696 and #11962; Google's
#: reference names no limit].
FREEBUSY_MAX_CALENDARS = 50
FREEBUSY_MAX_GROUP = 100
FREEBUSY_MAX_SPAN = timedelta(days=90)


def free_busy(store: GoogleStore, body: JsonDict, user: str | None) -> JsonDict:
    """freeBusy.query [doc: developers.google.com/calendar/api/v3/reference/freebusy/query].

    Request ``{timeMin, timeMax, timeZone?, groupExpansionMax?, calendarExpansionMax?,
    items: [{id}]}``; answer ``{kind: "calendar#freeBusy", timeMin, timeMax, calendars:
    {<id as asked>: {busy: [{start, end}], errors?: [{domain, reason}]}}}``. Busy blocks
    come from opaque events that are not cancelled and not declined by the calendar's
    owner (tentative ones count), series expanded, merged where they overlap or touch,
    clipped to the span, in ``timeZone`` (default UTC). A calendar that is unknown, or
    whose free/busy the caller may not see, is ``notFound`` in its own ``errors`` while
    the others are answered (the request as a whole succeeds).
    """
    with store.lock:
        window = []
        for name in ("timeMin", "timeMax"):
            if name not in body:
                raise required(f"Missing {name} parameter.", location=name)
            moment = parse_rfc3339(body[name])
            if moment is None or moment.tzinfo is None:
                raise invalid(f"Invalid value for: {name}", location=name)
            window.append(moment.astimezone(UTC))
        time_min, time_max = window
        if time_min >= time_max:
            raise ApiError(400, "timeRangeEmpty", "The specified time range is empty.",
                           location_type="parameter", location="timeMax")
        if time_max - time_min > FREEBUSY_MAX_SPAN:
            raise ApiError(400, "timeRangeTooLong", "The requested time range is too long.",
                           location_type="parameter", location="timeMax")
        for name, most in (("calendarExpansionMax", FREEBUSY_MAX_CALENDARS),
                           ("groupExpansionMax", FREEBUSY_MAX_GROUP)):
            value = body.get(name)
            if value is not None and (not isinstance(value, int) or not 0 < value <= most):
                raise invalid(f"Invalid value for: {name}", location=name)
        zone = _response_zone(body.get("timeZone"))
        items = body.get("items") or []
        if not isinstance(items, list):
            raise invalid("Invalid value for: items", location="items")
        if len(items) > FREEBUSY_MAX_CALENDARS:
            raise ApiError(400, "tooManyCalendarsRequested",
                           "The number of calendars requested exceeds the limit.")
        calendars: JsonDict = {}
        for item in items:
            requested = str(item.get("id", "")) if isinstance(item, dict) else ""
            try:
                cal = store.calendar(requested, user, create=False)
            except ApiError:
                calendars[requested] = {
                    "errors": [{"domain": "global", "reason": "notFound"}], "busy": []}
                continue
            blocks = _busy_blocks(cal, time_min, time_max)
            calendars[requested] = {"busy": [
                {"start": _in_zone(s, zone), "end": _in_zone(e, zone)} for s, e in blocks]}
        return {"kind": "calendar#freeBusy", "timeMin": format_timestamp(time_min),
                "timeMax": format_timestamp(time_max), "calendars": calendars}


def _response_zone(name: object) -> tzinfo:
    if name is None or name == "UTC":
        return UTC
    try:
        return ZoneInfo(str(name))
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise invalid("Invalid value for: timeZone", location="timeZone") from exc


def _in_zone(moment: datetime, zone: tzinfo) -> str:
    """A busy block's edge as Google writes it: whole seconds, ``Z`` in UTC, else the
    offset of ``timeZone``."""
    if zone is UTC:
        return format_utc_seconds(moment)
    return moment.astimezone(zone).replace(microsecond=0).isoformat()


def _busy_blocks(cal: StoredCalendar, time_min: datetime,
                 time_max: datetime) -> list[tuple[datetime, datetime]]:
    intervals: list[tuple[datetime, datetime]] = []
    for event in _busy_events(cal):
        start, end = event_interval(event, cal.tz)
        if end > time_min and start < time_max:
            intervals.append((max(start, time_min), min(end, time_max)))
    merged: list[tuple[datetime, datetime]] = []
    for start, end in sorted(intervals):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


def _busy_events(cal: StoredCalendar) -> Iterable[JsonDict]:
    for event in cal.events.values():
        if event["status"] == "cancelled" or event.get("transparency") == "transparent":
            continue
        declined = any(a.get("self") and a.get("responseStatus") == "declined"
                       for a in event.get("attendees", []))
        if declined:
            continue
        if "recurrence" in event:
            yield from expand_instances(event, cal.tz)
        else:
            yield event
