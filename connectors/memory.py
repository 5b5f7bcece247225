"""An in-memory calendar: the shortest complete connector, and the engine tests' fake.

It can also be watched (:class:`~connectors.base.Watchable`): each change, ours or a
person's, is POSTed to every open channel's address (``push_kind`` "memory"), with the
channel id, the token and a message number in headers, the way a provider would. The
tests mount a hook for it (``syncd_testkit.memory_hook``), so the push machinery can be
tested end to end without a provider.
"""

from __future__ import annotations

import itertools
import logging
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime

from connectors.base import (
    BusyInterval,
    Capabilities,
    ChangeSet,
    Channel,
    CreateOp,
    DeleteOp,
    RemoteEvent,
    UpdateOp,
    WriteOp,
    WriteResult,
)
from connectors.busy import check_span, instants, overlaps
from syncd.errors import CursorExpired, EtagMismatch, EventGone, PushRefused, Transient
from syncd.model import Projection

log = logging.getLogger("connectors.memory")

#: The headers a memory channel's notification carries.
CHANNEL_HEADER, TOKEN_HEADER, NUMBER_HEADER = (
    "X-Memory-Channel", "X-Memory-Token", "X-Memory-Message-Number")


@dataclass
class _Stored:
    event: RemoteEvent
    seq: int


@dataclass
class Watch:
    """One open channel of a :class:`MemoryCalendar`."""

    channel: Channel
    address: str
    token: str
    numbers: itertools.count[int] = field(default_factory=lambda: itertools.count(1))


class MemoryCalendar:
    """Events in a dict; the cursor is a change number. ``user_*`` methods act as a person.

    Push, for the tests: ``refuse_push`` (a reason) makes :meth:`watch` raise
    :class:`PushRefused`; ``fail_push`` makes it raise :class:`Transient`;
    ``deliver = False`` keeps channels open but silent (a provider that accepted a channel
    and never delivers); ``renews_in_place`` makes :meth:`renew` extend the channel
    (Graph) instead of opening a new one (Google).
    """

    capabilities = Capabilities(max_batch=10, silent_writes=True)
    push_kind = "memory"
    notifies_own_writes = True

    def __init__(self) -> None:
        self.store: dict[str, _Stored] = {}
        self._seq = itertools.count(1)
        self.head = 0
        self.oldest_cursor = 0  # cursors older than this are expired
        self.writes = 0
        self.watches: dict[str, Watch] = {}
        self.refuse_push: str | None = None
        self.fail_push = False
        self.deliver = True
        self.renews_in_place = False
        self.push_calls: list[str] = []  # "watch", "renew", "unwatch", in order
        self.delivered = 0

    def _put(self, event: RemoteEvent) -> RemoteEvent:
        self.head = next(self._seq)
        event = replace(event, etag=f"e{self.head}")
        self.store[event.event_id] = _Stored(event, self.head)
        self._notify()
        return event

    # --- push ---------------------------------------------------------------------------

    def watch(self, address: str, channel_id: str, token: str,
              expires_at: datetime) -> Channel:
        self.push_calls.append("watch")
        if self.refuse_push is not None:
            raise PushRefused(provider="memory", reason=self.refuse_push, status=403)
        if self.fail_push:
            raise Transient(reason="HTTP 503")
        channel = Channel(channel_id, expires_at, resource_id=f"resource-{channel_id}",
                          details={"calendar": "memory"})
        self.watches[channel_id] = Watch(channel, address, token)
        return channel

    def renew(self, channel: Channel, address: str, channel_id: str, token: str,
              expires_at: datetime) -> Channel:
        if not self.renews_in_place:
            return self.watch(address, channel_id, token, expires_at)
        self.push_calls.append("renew")
        if self.fail_push:
            raise Transient(reason="HTTP 503")
        watch = self.watches.get(channel.id)
        if watch is None:
            raise EventGone(event_id=channel.id)
        watch.channel = replace(watch.channel, expires_at=expires_at)
        return watch.channel

    def unwatch(self, channel: Channel) -> None:
        self.push_calls.append("unwatch")
        self.watches.pop(channel.id, None)

    def _notify(self) -> None:
        """Tell every channel the calendar changed (a failed delivery is lost, as a
        provider's can be: the backstop poll catches it)."""
        if not self.deliver:
            return
        for watch in list(self.watches.values()):
            request = urllib.request.Request(watch.address, data=b"", method="POST", headers={
                CHANNEL_HEADER: watch.channel.id, TOKEN_HEADER: watch.token,
                NUMBER_HEADER: str(next(watch.numbers))})
            try:
                with urllib.request.urlopen(request, timeout=10) as answer:
                    answer.read()
                self.delivered += 1
            except OSError as exc:
                log.debug("a memory notification to %s failed: %s", watch.address, exc)

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

    # --- free/busy and the agenda (FreeBusyReadable, WindowReadable) -------------------

    def events_between(self, start: datetime, end: datetime) -> list[RemoteEvent]:
        """The live events overlapping [start, end) (an all-day one from midnight to
        midnight in its own zone), by start."""
        start, end = check_span(start, end)
        found = [(instants(e.projection.when, e.projection.when.tz), e) for e in self.live()
                 if e.projection is not None]
        return [e for span, e in sorted(found, key=lambda p: (p[0], p[1].event_id))
                if overlaps(span, start, end)]

    def busy_between(self, start: datetime, end: datetime) -> list[BusyInterval]:
        """The busy events overlapping [start, end), whole, by start; free ones are not."""
        spans = [instants(e.projection.when, e.projection.when.tz)
                 for e in self.events_between(start, end)
                 if e.projection is not None and e.projection.busy]
        return [BusyInterval(first, last) for first, last in spans if first < last]
