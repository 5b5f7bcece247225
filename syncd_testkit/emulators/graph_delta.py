"""``calendarView`` and ``calendarView/delta`` paging for the Graph emulator (must-have 17).

Delta semantics (providers.md B.4):

* The window (``startDateTime``/``endDateTime``) is fixed by the first request of a chain and
  carried inside every ``$skiptoken``/``$deltatoken``.
* Tokens are change-sequence based. A token holds ``since``: the highest change ``seq`` the
  client has been sent. A page returns the calendar's entries with ``seq > since`` in ``seq``
  order, so an event edited while the client pages moves to the end of the queue and is sent
  (again) later in the same round; nothing is lost.
* Deleted events, and events changed outside the window, come back as
  ``{"@odata.type": "#microsoft.graph.event", "id": ..., "@removed": {"reason": "deleted"}}``.
  That includes events that were never inside the window (microsoft-graph-docs #6599). The
  initial round does not report events that were deleted, or sat outside the window, before
  the round began.
* A series is sent as its occurrences in the window (``type: "occurrence"``, as
  ``calendarView`` lists them; :mod:`.graph_series`), all of them whenever the series
  changes, and one page carries them all. The master itself is never in the view, so
  (an emulator choice: the docs say nothing of masters in delta) it is named like any
  event changed outside it: ``@removed`` (after the initial round). A deleted series names
  its occurrences removed too, and an edited one the occurrences the edit took away.
  Exceptions (a moved or cancelled occurrence) are not emulated (:mod:`.graph_series`).
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import asdict, dataclass, replace
from datetime import datetime
from typing import Any, Literal

from .graph_model import GraphError, StoredEvent
from .graph_series import occurrences
from .graph_store import Calendar, GraphStore, Mailbox, Tombstone

__all__ = ["DeltaPage", "DeltaState", "Entry", "decode_token", "delta_page", "encode_token",
           "in_window"]


@dataclass(frozen=True)
class DeltaState:
    """Everything a delta token remembers."""

    mailbox: str  # lower-case UPN
    calendar_id: str
    start: str  # ISO 8601 UTC, as the window was given
    end: str
    since: int
    initial: bool
    round_start: int
    page: int
    epoch: int


Entry = tuple[Literal["event", "removed"], StoredEvent | Tombstone, StoredEvent | None]
"""What a page names, how, and the series master of an occurrence (None for others)."""


@dataclass
class DeltaPage:
    """One page: entries to render and the state for the next link."""

    entries: list[Entry]
    next_state: DeltaState
    done: bool  # True: the next link is a deltaLink; False: a nextLink


def encode_token(state: DeltaState) -> str:
    """Serialise a state into an opaque URL-safe token."""
    raw = json.dumps(asdict(state), separators=(",", ":")).encode("utf-8")
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def decode_token(token: str) -> DeltaState:
    """Parse a token produced by :func:`encode_token`; 400 if it is not one."""
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        return DeltaState(**json.loads(raw))
    except (binascii.Error, ValueError, TypeError) as exc:
        raise GraphError(400, "BadRequest", "The delta token is malformed.") from exc


def in_window(ev: StoredEvent, start: datetime, end: datetime) -> bool:
    """Whether an event overlaps ``[start, end)`` the way calendarView selects events."""
    if ev.start.utc == ev.end.utc:
        return start <= ev.start.utc < end
    return ev.start.utc < end and ev.end.utc > start


def replay_floor(mbx: Mailbox, cal: Calendar, since: int) -> int:
    """The ``since`` that makes the newest change at or before ``since`` be sent again."""
    seqs = [e.seq for e in mbx.events_in(cal.id) if e.seq <= since]
    seqs += [t.seq for t in cal.tombstones.values() if t.seq <= since]
    return max(seqs) - 1 if seqs else since


def delta_page(
    store: GraphStore,
    mbx: Mailbox,
    cal: Calendar,
    state: DeltaState,
    *,
    window: tuple[datetime, datetime],
    page_size: int,
    empty_pages: bool,
) -> DeltaPage:
    """Compute one delta page under the store lock."""
    with store.lock:
        if empty_pages and state.page % 2 == 0:
            # Graph may send an empty page that still carries a nextLink (B.4).
            return DeltaPage([], replace(state, page=state.page + 1), done=False)
        start, end = window
        candidates: list[tuple[int, StoredEvent | Tombstone]] = [
            (e.seq, e) for e in mbx.events_in(cal.id) if e.seq > state.since
        ]
        candidates += [(t.seq, t) for t in cal.tombstones.values() if t.seq > state.since]
        candidates += [(t.seq, t) for t in cal.former_series if t.seq > state.since]
        candidates.sort(key=lambda c: c[0])
        entries: list[Entry] = []
        last = state.since
        more = False
        for seq, obj in candidates:
            if len(entries) >= page_size:
                more = True
                break
            last = seq
            # In the initial round, history from before the round is not news to the client.
            reportable_removal = not state.initial or seq > state.round_start
            entries += _entries(mbx, obj, start, end, reportable_removal)
        if more:
            return DeltaPage(entries, replace(state, since=last, page=state.page + 1), done=False)
        # Every entry of this calendar up to the global seq has been examined under the lock.
        final = replace(state, since=max(last, store.seq), initial=False, page=0)
        return DeltaPage(entries, final, done=True)


def _entries(mbx: Mailbox, obj: StoredEvent | Tombstone, start: datetime, end: datetime,
             reportable_removal: bool) -> list[Entry]:
    """What one changed event (or tombstone) puts on a page."""
    if isinstance(obj, StoredEvent) and obj.props.get("recurrence"):
        found: list[Entry] = [("event", o, obj) for o in occurrences(obj, start, end)]
        return found + ([("removed", obj, None)] if reportable_removal else [])
    if isinstance(obj, StoredEvent) and in_window(obj, start, end):
        return [("event", obj, None)]
    if not reportable_removal:
        return []
    if not isinstance(obj, Tombstone) or obj.series is None:
        return [("removed", obj, None)]
    gone = occurrences(obj.series, start, end)
    if obj.replaced:  # an edit: only what the series no longer has is gone
        live = mbx.events.get(obj.immutable_id)
        kept = {o.immutable_id for o in occurrences(live, start, end)} if live else set()
        return [("removed", o, None) for o in gone if o.immutable_id not in kept]
    master: list[Entry] = [("removed", obj, None)]
    return master + [("removed", o, None) for o in gone]


def removed_entry(obj: StoredEvent | Tombstone, immutable: bool) -> dict[str, Any]:
    """The ``@removed`` stub for a deleted or out-of-window event."""
    event_id = obj.immutable_id if immutable else obj.regular_id
    return {
        "@odata.type": "#microsoft.graph.event",
        "id": event_id,
        "@removed": {"reason": "deleted"},
    }
