"""An in-memory calendar: the shortest complete connector, and the engine tests' fake."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass, replace

from connectors.base import (
    Capabilities,
    ChangeSet,
    CreateOp,
    DeleteOp,
    RemoteEvent,
    UpdateOp,
    WriteOp,
    WriteResult,
)
from syncd.errors import CursorExpired, EtagMismatch, EventGone
from syncd.model import Projection


@dataclass
class _Stored:
    event: RemoteEvent
    seq: int


class MemoryCalendar:
    """Events in a dict; the cursor is a change number. ``user_*`` methods act as a person."""

    capabilities = Capabilities(max_batch=10, silent_writes=True)

    def __init__(self) -> None:
        self.store: dict[str, _Stored] = {}
        self._seq = itertools.count(1)
        self.head = 0
        self.oldest_cursor = 0  # cursors older than this are expired
        self.writes = 0

    def _put(self, event: RemoteEvent) -> RemoteEvent:
        self.head = next(self._seq)
        event = replace(event, etag=f"e{self.head}")
        self.store[event.event_id] = _Stored(event, self.head)
        return event

    # --- protocol -------------------------------------------------------------------------

    def changes(self, cursor: str | None) -> ChangeSet:
        if cursor is None:
            live = [s.event for s in self.store.values() if not s.event.deleted]
            return ChangeSet(live, str(self.head), full=True)
        since = int(cursor)
        if since < self.oldest_cursor:
            raise CursorExpired()
        changed = [s.event for s in self.store.values() if s.seq > since]
        return ChangeSet(changed, str(self.head), full=False)

    def get(self, event_id: str) -> RemoteEvent | None:
        stored = self.store.get(event_id)
        return None if stored is None or stored.event.deleted else stored.event

    def find(self, marker: str, generation: int) -> RemoteEvent | None:
        return self.get(f"{marker}-{generation}")

    def write(self, ops: Sequence[WriteOp]) -> list[WriteResult]:
        return [self._write(op) for op in ops]

    def close(self) -> None:
        return None

    def _write(self, op: WriteOp) -> WriteResult:
        self.writes += 1
        if isinstance(op, CreateOp):
            event_id = f"{op.marker}-{op.generation}"
            existing = self.get(event_id)
            if existing is not None:  # an earlier attempt got through: adopt it
                return WriteResult(op.key, existing)
            return WriteResult(op.key, self._put(RemoteEvent(
                event_id, marker=op.marker, projection=op.projection,
                ical_uid=f"{event_id}@memory")))
        current = self.get(op.event_id)
        if current is None:
            return WriteResult(op.key, error=EventGone(event_id=op.event_id))
        if op.etag != current.etag:
            return WriteResult(op.key, error=EtagMismatch(event_id=op.event_id))
        if isinstance(op, DeleteOp):
            self._put(RemoteEvent(op.event_id, deleted=True))
            return WriteResult(op.key)
        assert isinstance(op, UpdateOp) and current.projection is not None
        values = {f: op.projection.get(f) for f in op.fields}
        projection = current.projection.replace(values)
        return WriteResult(op.key, self._put(replace(current, projection=projection,
                                                     marker=op.marker)))

    # --- acting as the person using the calendar app ------------------------------------

    def user_create(self, event_id: str, projection: Projection, *, recurring: bool = False,
                    ical_uid: str | None = None) -> RemoteEvent:
        """An event made in the calendar app (``ical_uid``: a copy of someone's meeting)."""
        return self._put(RemoteEvent(event_id, projection=projection, recurring=recurring,
                                     ical_uid=ical_uid or f"{event_id}@memory"))

    def user_edit(self, event_id: str, **values: object) -> RemoteEvent:
        current = self.store[event_id].event
        assert current.projection is not None
        return self._put(replace(current, projection=current.projection.replace(values)))

    def user_delete(self, event_id: str) -> None:
        self._put(RemoteEvent(event_id, deleted=True))

    def live(self) -> list[RemoteEvent]:
        return [s.event for s in self.store.values() if not s.event.deleted]
