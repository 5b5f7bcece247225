"""Each event of a provider's JSON screened before it is mapped (Google, Graph).

The client libraries parse a listing page by page; every event of a page is then screened
here before any mapping code touches it (the limits are :mod:`syncd.safe_json`'s), so
that one hostile or broken event is set aside, quarantined with the reason, while the
rest of the page syncs. An event whose id cannot be a database key is quarantined under a
stand-in id.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from connectors.base import RemoteEvent
from syncd.safe_json import WrongType, oversize, stand_in_id, usable_id


def event_key(value: object) -> tuple[str, str | None]:
    """The event id to use for ``value`` and, if it is a stand-in, the problem to report."""
    if usable_id(value):
        assert isinstance(value, str)
        return value, None
    return stand_in_id(value), "the event id is not a usable identifier"


def read_guarded(resource: object, read: Callable[[Mapping[str, Any]], RemoteEvent], *,
                 etag_keys: tuple[str, ...],
                 marker_of: Callable[[Mapping[str, Any]], str | None]) -> RemoteEvent:
    """``read(resource)`` for an event within the limits; never raises.

    An event over a limit, one whose mapping raises anything at all (OverflowError from a
    date at the end of time, RecursionError, TypeError on a field of the wrong type, ...),
    and one whose identifiers cannot be stored, all become a :class:`RemoteEvent` with a
    ``problem``: the engine quarantines it and the rest of the listing syncs. The etag and
    marker are kept when they are usable, so the quarantine lifts once the event changes.

    Args:
        resource: one event as the provider sent it (any JSON value).
        read: the provider's mapper for one event.
        etag_keys: where the provider puts the version, first present wins.
        marker_of: the provider's reader of syncd's marker.
    """
    if not isinstance(resource, Mapping):
        return RemoteEvent(stand_in_id(resource, "item"),
                           problem="the event is not a JSON object")
    event_id, problem = event_key(resource.get("id"))
    problem = problem or oversize(resource)
    if problem is None:
        try:
            event = read(resource)
        except WrongType as exc:
            problem = str(exc)
        except Exception as exc:  # whatever one event raises stays with it
            problem = f"unreadable event: {type(exc).__name__}"
        else:
            problem = _identifier_problem(event)
            if problem is None:
                return event
    etag = next((resource[k] for k in etag_keys if resource.get(k)), None)
    try:
        marker = marker_of(resource)
    except Exception:  # a marker we cannot read is no marker
        marker = None
    return RemoteEvent(event_id, etag if usable_id(etag) else None,
                       marker if usable_id(marker) else None, problem=problem)


def as_asked(event: RemoteEvent, event_id: str) -> RemoteEvent:
    """``event`` if it is the event asked for by ``event_id``; else that id, set aside.

    A server that answers a GET with another event (or with something that has no usable
    id) must not make the engine link, update or quarantine a different event.
    """
    if event.event_id == event_id:
        return event
    return RemoteEvent(event_id, problem="the answer for this event id is another event")


def _identifier_problem(event: RemoteEvent) -> str | None:
    for name, value in (("etag", event.etag), ("syncd marker", event.marker),
                        ("iCalendar UID", event.ical_uid)):
        if value is not None and not usable_id(value):
            return f"the event's {name} is not a usable identifier"
    return None
