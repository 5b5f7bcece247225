"""The Graph emulator's operations: what each routed request does to the store.

Called with the store lock held, after authentication, routing, throttling and fault
injection have been dealt with by :mod:`syncd_testkit.emulators.graph`.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlencode

from .graph_delta import (
    DeltaState,
    decode_token,
    delta_page,
    encode_token,
    in_window,
    removed_entry,
    replay_floor,
)
from .graph_model import GraphError, RenderOptions, StoredEvent, render_event
from .graph_query import parse_filter
from .graph_routes import Route
from .graph_schedule import get_schedule
from .graph_series import expanded, occurrence_by_id
from .graph_store import Mailbox
from .graph_tz import parse_query_datetime
from .graph_wire import JSON_CONTENT_TYPE, ApiRequest, ApiResponse

if TYPE_CHECKING:
    from syncd_testkit.emulators.graph import GraphEmulator

__all__ = ["RequestContext", "perform"]

_DELTA_UNSUPPORTED = ("$select", "$filter", "$expand", "$orderby", "$search", "$top")


@dataclass(frozen=True)
class RequestContext:
    """A routed, authenticated request: where it goes and how to render the answer."""

    route: Route
    mailbox: Mailbox
    opts: RenderOptions
    page_size: int | None  # from Prefer: odata.maxpagesize
    applied: tuple[str, ...]  # Preference-Applied entries


def _json(status: int, body: Any, ctx: RequestContext) -> ApiResponse:
    headers = {"Content-Type": JSON_CONTENT_TYPE}
    if ctx.applied:
        headers["Preference-Applied"] = ", ".join(ctx.applied)
    return ApiResponse(status, body, headers)


def _not_allowed(req: ApiRequest) -> GraphError:
    return GraphError(
        405, "MethodNotAllowed", f"The HTTP method '{req.method}' is not allowed for this resource."
    )


def perform(emu: GraphEmulator, req: ApiRequest, ctx: RequestContext) -> ApiResponse:
    """Execute a routed request; raises :class:`GraphError` for error answers."""
    kind = ctx.route.kind
    if kind == "user":
        if req.method != "GET":
            raise _not_allowed(req)
        mbx = ctx.mailbox
        return _json(
            200,
            {
                "@odata.context": f"{emu.base_url}/$metadata#users/$entity",
                "id": mbx.user_id,
                "userPrincipalName": mbx.upn,
                "mail": mbx.upn,
                "displayName": mbx.display_name,
            },
            ctx,
        )
    if kind in ("calendars", "calendar"):
        return _calendars(emu, req, ctx)
    if kind == "events":
        if req.method == "GET":
            return _list_events(emu, req, ctx)
        if req.method == "POST":
            return _create(emu, req, ctx)
        raise _not_allowed(req)
    if kind == "event":
        return _one_event(emu, req, ctx)
    if kind == "getSchedule":
        if req.method != "POST":
            raise _not_allowed(req)
        if emu.schedule_refused:
            raise GraphError(403, "ErrorAccessDenied",
                             "Access is denied. Check credentials and try again.")
        return _json(200, get_schedule(emu.store, req.json(), ctx.opts.out_zone), ctx)
    if kind == "calendarView":
        if req.method != "GET":
            raise _not_allowed(req)
        return _calendar_view(emu, req, ctx)
    if req.method != "GET":
        raise _not_allowed(req)
    return _delta(emu, req, ctx)


def _calendar_json(emu: GraphEmulator, mbx: Mailbox, cal_id: str) -> dict[str, Any]:
    cal = mbx.calendars[cal_id]
    return {
        "id": cal.id,
        "name": cal.name,
        "color": "auto",
        "isDefaultCalendar": cal.id == mbx.default_calendar_id,
        "canShare": True,
        "canViewPrivateItems": True,
        "canEdit": cal.can_edit,
        "isRemovable": cal.id != mbx.default_calendar_id,
        "owner": {"name": mbx.display_name, "address": mbx.upn},
    }


def _calendars(emu: GraphEmulator, req: ApiRequest, ctx: RequestContext) -> ApiResponse:
    mbx = ctx.mailbox
    if ctx.route.kind == "calendar":
        if req.method != "GET":
            raise _not_allowed(req)
        return _json(200, _calendar_json(emu, mbx, mbx.calendar(ctx.route.calendar_id).id), ctx)
    if req.method == "GET":
        values = [_calendar_json(emu, mbx, cid) for cid in mbx.calendars]
        return _json(
            200, {"@odata.context": f"{emu.base_url}/$metadata#calendars", "value": values}, ctx
        )
    if req.method == "POST":
        payload = req.json()
        if not isinstance(payload, dict) or not payload.get("name"):
            raise GraphError(400, "ErrorInvalidRequest", "A calendar needs a 'name'.")
        cal = emu.store.add_calendar(mbx, str(payload["name"]))
        return _json(201, _calendar_json(emu, mbx, cal.id), ctx)
    raise _not_allowed(req)


def _payload(req: ApiRequest) -> dict[str, Any]:
    payload = req.json()
    if not isinstance(payload, dict):
        raise GraphError(400, "BadRequest", "Empty Payload. JSON content expected.")
    return payload


def _rendered(emu: GraphEmulator, ev: StoredEvent, ctx: RequestContext,
              master: StoredEvent | None = None) -> Any:
    """The event as JSON, or the placeholder of its planted text (``raw_json``); an
    occurrence of ``master`` is typed as one and names its series."""
    planted = emu.planted.placeholder(ev.immutable_id)
    if planted or master is None:
        return planted or render_event(ev, ctx.opts)
    body = render_event(ev, ctx.opts)
    body["type"] = "occurrence"
    body["seriesMasterId"] = (master.immutable_id if ctx.opts.immutable_ids
                              else master.regular_id)
    return body


def _entity(emu: GraphEmulator, ev: StoredEvent, ctx: RequestContext,
            master: StoredEvent | None = None) -> Any:
    if planted := emu.planted.placeholder(ev.immutable_id):
        return planted
    body = _rendered(emu, ev, ctx, master)
    context = f"{emu.base_url}/$metadata#users('{ctx.mailbox.upn}')/events/$entity"
    return {"@odata.context": context, **body}


def _find(emu: GraphEmulator, ctx: RequestContext, method: str
          ) -> tuple[StoredEvent, StoredEvent | None]:
    """The event the route names, and its series master when it is an occurrence (which
    can only be read here: its writes are not emulated)."""
    event_id = ctx.route.event_id or ""
    try:
        return emu.store.find_event(ctx.mailbox, event_id), None
    except GraphError:
        base = event_id.rpartition("_")[0]
        if method != "GET" or not base:
            raise
        with emu.store.lock:
            master = ctx.mailbox.events.get(base) or ctx.mailbox.events.get(
                ctx.mailbox.regular_index.get(base, ""))
            found = occurrence_by_id(master, event_id) if master is not None else None
        if master is None or found is None:
            raise
        return found, master


def _check_writable(mbx: Mailbox, calendar_id: str | None) -> None:
    if not mbx.calendar(calendar_id).can_edit:
        raise GraphError(403, "ErrorAccessDenied",
                         "Access is denied. Check credentials and try again.")


def _create(emu: GraphEmulator, req: ApiRequest, ctx: RequestContext) -> ApiResponse:
    _check_writable(ctx.mailbox, ctx.route.calendar_id)
    ev, _created = emu.store.create_event(
        ctx.mailbox, ctx.route.calendar_id, _payload(req), via_api=True
    )
    # A deduplicated repeat (same transactionId and body) also answers 201 with the original.
    return _json(201, _entity(emu, ev, ctx), ctx)


def _one_event(emu: GraphEmulator, req: ApiRequest, ctx: RequestContext) -> ApiResponse:
    if req.method not in ("GET", "PATCH", "DELETE"):
        raise _not_allowed(req)
    store, mbx = emu.store, ctx.mailbox
    ev, master = _find(emu, ctx, req.method)
    if (
        ctx.route.calendar_id is not None
        and mbx.calendar(ctx.route.calendar_id).id != ev.calendar_id
    ):
        raise GraphError(
            404, "ErrorItemNotFound", "The specified object was not found in the store."
        )
    if req.method == "GET":
        return _json(200, _entity(emu, ev, ctx, master), ctx)
    _check_writable(mbx, ev.calendar_id)
    if_match = req.headers.get("if-match")
    if req.method == "PATCH":
        store.update_event(mbx, ev, _payload(req), via_api=True, if_match=if_match)
        return _json(200, _entity(emu, ev, ctx), ctx)
    if req.method == "DELETE":
        store.delete_event(mbx, ev, via_api=True, if_match=if_match)
        return ApiResponse(204)
    raise _not_allowed(req)


def _int_option(req: ApiRequest, name: str) -> int | None:
    raw = req.q(name)
    if raw is None:
        return None
    try:
        value = int(raw)
    except ValueError as exc:
        raise GraphError(400, "BadRequest", f"Invalid value '{raw}' for {name}.") from exc
    if value < 0:
        raise GraphError(400, "BadRequest", f"Invalid value '{raw}' for {name}.")
    return value


def _paged(
    emu: GraphEmulator, req: ApiRequest, ctx: RequestContext, events: list[StoredEvent],
    masters: dict[str, StoredEvent] | None = None,
) -> ApiResponse:
    """Offset paging for lists and calendarView: ``$top``/``Prefer`` size, ``$skip`` offset."""
    filter_text = req.q("$filter")
    if filter_text:
        predicate = parse_filter(filter_text)
        events = [e for e in events if predicate(e)]
    size = _int_option(req, "$top") or ctx.page_size or emu.default_page_size
    skip = _int_option(req, "$skip") or 0
    page = events[skip : skip + size]
    body: dict[str, Any] = {
        "@odata.context": f"{emu.base_url}/$metadata#Collection(event)",
        "value": [_rendered(emu, e, ctx, (masters or {}).get(e.immutable_id)) for e in page],
    }
    if skip + size < len(events):
        query = {k: v for k, v in req.query.items() if k.lower() != "$skip"}
        query["$skip"] = str(skip + size)
        # Keep "$" and OData punctuation readable in the link, as Graph's own links do.
        link_query = urlencode(query, safe="$'(),:/", quote_via=quote)
        body["@odata.nextLink"] = f"{emu.base_url}{req.path}?{link_query}"
    return _json(200, body, ctx)


def _list_events(emu: GraphEmulator, req: ApiRequest, ctx: RequestContext) -> ApiResponse:
    cal = ctx.mailbox.calendar(ctx.route.calendar_id)
    return _paged(emu, req, ctx, ctx.mailbox.events_in(cal.id))


def _window(req: ApiRequest) -> tuple[datetime, datetime]:
    start, end = req.q("startDateTime"), req.q("endDateTime")
    if not start or not end:
        raise GraphError(
            400,
            "ErrorInvalidParameter",
            "This request requires a time window specified by the query string parameters "
            "StartDateTime and EndDateTime.",
        )
    try:
        return parse_query_datetime(start), parse_query_datetime(end)
    except ValueError as exc:
        raise GraphError(
            400, "ErrorInvalidParameter", "The value of StartDateTime or EndDateTime is invalid."
        ) from exc


def _calendar_view(emu: GraphEmulator, req: ApiRequest, ctx: RequestContext) -> ApiResponse:
    start, end = _window(req)
    cal = ctx.mailbox.calendar(ctx.route.calendar_id)
    # Occurrences, exceptions and single instances; never a series master (graph_series).
    found = expanded(ctx.mailbox.events_in(cal.id), start, end, in_window)
    masters = {ev.immutable_id: master for ev, master in found if master is not None}
    return _paged(emu, req, ctx, [ev for ev, _ in found], masters)


def _iso(value: datetime) -> str:
    return value.isoformat().replace("+00:00", "Z")


def _delta(emu: GraphEmulator, req: ApiRequest, ctx: RequestContext) -> ApiResponse:
    present = [name for name in _DELTA_UNSUPPORTED if req.q(name) is not None]
    if present:
        raise GraphError(
            400,
            "ErrorInvalidUrlQuery",
            "The following parameters are not supported with change tracking over the "
            f"'CalendarView' resource: '{', '.join(present)}'.",
        )
    mbx = ctx.mailbox
    cal = mbx.calendar(ctx.route.calendar_id)
    skip_token, delta_token = req.q("$skiptoken"), req.q("$deltatoken")
    token = skip_token or delta_token
    if token:
        state = decode_token(token)
        if state.mailbox != mbx.upn.lower() or state.calendar_id != cal.id:
            raise GraphError(400, "BadRequest", "The delta token does not belong to this resource.")
        if state.epoch < mbx.delta_epoch:
            raise _expired(emu, req, mbx, state)
        if delta_token and emu.replay_duplicates:
            state = replace(state, since=replay_floor(mbx, cal, state.since))
        window = (parse_query_datetime(state.start), parse_query_datetime(state.end))
    else:
        window = _window(req)
        state = DeltaState(
            mailbox=mbx.upn.lower(),
            calendar_id=cal.id,
            start=_iso(window[0]),
            end=_iso(window[1]),
            since=0,
            initial=True,
            round_start=emu.store.seq,
            page=0,
            epoch=mbx.delta_epoch,
        )
    page = delta_page(
        emu.store,
        mbx,
        cal,
        state,
        window=window,
        page_size=ctx.page_size or emu.default_page_size,
        empty_pages=emu.empty_pages,
    )
    values = [
        _rendered(emu, obj, ctx, master)
        if kind == "event" and isinstance(obj, StoredEvent)
        else removed_entry(obj, ctx.opts.immutable_ids)
        for kind, obj, master in page.entries
    ]
    link_name = "@odata.deltaLink" if page.done else "@odata.nextLink"
    param = "$deltatoken" if page.done else "$skiptoken"
    body = {
        "@odata.context": f"{emu.base_url}/$metadata#Collection(event)",
        "value": values,
        link_name: f"{emu.base_url}{req.path}?{param}={encode_token(page.next_state)}",
    }
    return _json(200, body, ctx)


def _expired(emu: GraphEmulator, req: ApiRequest, mbx: Mailbox, state: DeltaState) -> GraphError:
    if mbx.delta_expiry_mode == "410":
        query = urlencode({"startDateTime": state.start, "endDateTime": state.end})
        # The Location header holds the initial request URL with an empty $deltatoken.
        location = f"{emu.base_url}{req.path}?{query}&$deltatoken="
        return GraphError(
            410,
            "resyncRequired",
            "The delta token is no longer valid; restart synchronisation with the URL in the "
            "Location header.",
            headers={"Location": location},
        )
    return GraphError(
        mbx.delta_expiry_status,
        "SyncStateNotFound",
        f"The sync state generation is not found; generation={state.since};"
        f"[highest={emu.store.seq}].",
    )
