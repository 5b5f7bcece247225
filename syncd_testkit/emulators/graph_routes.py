"""URL routing for the Graph emulator: which mailbox, calendar and event a path addresses.

Supported shapes (segments are case-insensitive, as in Graph), with ``{who}`` either ``me`` or
``users/{id|userPrincipalName}``::

    /{who}                                   GET: the user
    /{who}/events[/{id}]                     the default calendar's events
    /{who}/calendar[/events[/{id}]]          the default calendar
    /{who}/calendars[/{cid}[/events[/{id}]]] calendars (GET list, POST create)
    /{who}[/calendar|/calendars/{cid}]/calendarView[/delta]
    /{who}[/calendar|/calendars/{cid}]/getSchedule   POST: free/busy (graph_schedule)
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import unquote

from .graph_model import GraphError

__all__ = ["Route", "parse_route"]


@dataclass(frozen=True)
class Route:
    """What a request path addresses.

    ``kind`` is one of ``user``, ``events``, ``event``, ``calendars``, ``calendar``,
    ``calendarView``, ``delta`` and ``getSchedule``. ``mailbox_ref`` is ``None`` for
    ``/me``. ``calendar_id`` is ``None`` for the default calendar.
    """

    kind: str
    mailbox_ref: str | None
    calendar_id: str | None = None
    event_id: str | None = None


def _no_segment(segment: str) -> GraphError:
    # Graph answers unknown path segments with 400, not 404.
    return GraphError(400, "BadRequest", f"Resource not found for the segment '{segment}'.")


def parse_route(path: str) -> Route:
    """Parse a path relative to ``/v1.0`` (still percent-encoded)."""
    segs = [unquote(s) for s in path.strip("/").split("/") if s != ""]
    if not segs:
        raise GraphError(400, "BadRequest", "Invalid request.")
    head = segs[0].lower()
    if head == "me":
        ref: str | None = None
        rest = segs[1:]
    elif head == "users" and len(segs) >= 2:
        ref, rest = segs[1], segs[2:]
    else:
        raise _no_segment(segs[0])
    if not rest:
        return Route("user", ref)
    first = rest[0].lower()
    if first == "events":
        return _events(ref, None, rest[1:])
    if first == "calendarview":
        return _view(ref, None, rest[1:])
    if first == "calendar":
        return _calendar_sub(ref, None, rest[1:])
    if first == "calendars":
        if len(rest) == 1:
            return Route("calendars", ref)
        return _calendar_sub(ref, rest[1], rest[2:])
    raise _no_segment(rest[0])


def _calendar_sub(ref: str | None, cal: str | None, sub: list[str]) -> Route:
    if not sub:
        return Route("calendar", ref, cal)
    first = sub[0].lower()
    if first == "events":
        return _events(ref, cal, sub[1:])
    if first == "calendarview":
        return _view(ref, cal, sub[1:])
    if first == "getschedule" and len(sub) == 1:
        return Route("getSchedule", ref, cal)
    raise _no_segment(sub[0])


def _events(ref: str | None, cal: str | None, sub: list[str]) -> Route:
    if not sub:
        return Route("events", ref, cal)
    if len(sub) == 1:
        return Route("event", ref, cal, sub[0])
    raise _no_segment(sub[1])


def _view(ref: str | None, cal: str | None, sub: list[str]) -> Route:
    if not sub:
        return Route("calendarView", ref, cal)
    if len(sub) == 1 and sub[0].lower() == "delta":
        return Route("delta", ref, cal)
    raise _no_segment(sub[0])
