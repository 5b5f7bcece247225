"""The calendar connector protocol: what the engine asks of every provider.

Vocabulary:

* EVENT ID: the provider's identifier of an event in one calendar (Google event id, Graph
  immutable id, CalDAV href). Opaque to the engine.
* ETAG: a version of one event; it changes whenever the event changes. Every update and
  delete is conditional on it.
* MARKER: syncd's ownership marker, the activity's opaque ``sync_uid``, stored on every
  event syncd writes (Google private extended property, Graph single-value extended
  property, iCalendar ``X-SYNCD-ID``). syncd only updates or deletes events carrying it.
* GENERATION: how many times the event of one (activity, calendar) was re-created; it is
  part of every idempotent create identity, so a re-create never collides with a deleted
  event the provider still remembers.
* CURSOR: an opaque resume point for :meth:`CalendarConnector.changes` (sync token,
  delta link, sync-collection token).
* CHANNEL: a provider's promise to notify syncd when the calendar changes (Google watch
  channel, Graph subscription, WebDAV-Push subscription); see :class:`Watchable`. A
  notification is only a hint: the next :meth:`CalendarConnector.changes` reads what
  changed.
* BUSY INTERVAL: a span in which the calendar's owner cannot be booked, as the provider's
  free/busy answer gives it (Google ``freeBusy``, Graph ``getSchedule``, CalDAV
  ``free-busy-query``) or as computed from the events when a server offers none. It has no
  title or other detail: only when, and how busy (:data:`BUSY_KINDS`). Free time is never
  reported; events marked free (transparent, ``showAs: free``) and cancelled ones are not
  busy. See :class:`FreeBusyReadable`.
* WINDOW LISTING: every event of the calendar in a span of time, recurrences expanded into
  their occurrences, read for the agenda and never stored nor written back (syncd does not
  import most of them). See :class:`WindowReadable`.

Connectors see :class:`~syncd.model.Projection` values only. A projection has no note, so
no connector can send one.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol, runtime_checkable

from syncd.errors import ConnectorError
from syncd.model import FIELDS, Projection


@dataclass(frozen=True)
class Window:
    """The span of time a sync covers: events ending after ``start``, starting before ``end``."""

    start: datetime
    end: datetime


@dataclass(frozen=True)
class RemoteEvent:
    """One event as read from a calendar, already reduced to a projection.

    ``projection`` is None when the event is deleted or could not be read; in the latter
    case ``problem`` says why and the engine quarantines it while the rest syncs.
    ``left_window`` means the provider stopped tracking it because it moved out of the
    sync window (Graph ``@removed``): that is never read as a deletion.
    ``ical_uid`` is the meeting's iCalendar UID, which every attendee's copy shares: it is
    how an imported meeting is recognised in another owner's calendar (failure mode 20).
    ``organizer`` is set when someone other than the calendar's owner organises the
    meeting (an invitation the owner received): syncd never rewrites its people.
    ``attendees`` are the people the event invites as the calendar holds it, read whatever
    the account's guest mode: on a provider that e-mails attendees on every write (Graph),
    they are who a write would reach, even when syncd itself invites nobody.
    """

    event_id: str
    etag: str | None = None
    marker: str | None = None
    projection: Projection | None = None
    deleted: bool = False
    recurring: bool = False
    problem: str | None = None
    updated: datetime | None = None
    left_window: bool = False
    ical_uid: str | None = None
    organizer: str | None = None
    attendees: frozenset[str] = frozenset()


@dataclass(frozen=True)
class ChangeSet:
    """What :meth:`CalendarConnector.changes` found.

    ``full`` is True when this is a complete listing of the window (the first sync, or
    after an expired cursor) rather than the changes since a cursor. A full listing never
    reports deletions: absence from a listing is not a delete signal. ``outside`` counts
    what the provider named outside the calendar (CalDAV hrefs elsewhere), ignored.
    """

    events: Sequence[RemoteEvent]
    cursor: str | None
    full: bool
    outside: int = 0


@dataclass(frozen=True)
class Capabilities:
    """What a connector can do, as data the engine reads.

    ``fields`` are the projection fields the calendar carries back faithfully; edits of
    other fields in the calendar app are not read (for example guests written into the
    description when the account may not invite). ``max_batch`` is how many writes one
    :meth:`CalendarConnector.write` call should carry. ``silent_writes`` says whether a
    write to an event with invited attendees can be made without e-mailing them (Google's
    ``sendUpdates=none``); where it cannot (Graph always mails, CalDAV attendees stay
    server-scheduled), the planner withholds such writes (docs/guest-mail.md).
    """

    max_batch: int = 1
    fields: frozenset[str] = frozenset(FIELDS)
    silent_writes: bool = False


#: How busy a :class:`BusyInterval` is. ``busy``: plainly busy; ``tentative``: a meeting
#: not yet accepted (Graph ``tentative``, iCalendar ``BUSY-TENTATIVE``); ``oof``: out of office
#: (Graph ``oof``, iCalendar ``BUSY-UNAVAILABLE``); ``elsewhere``: working elsewhere (Graph
#: ``workingElsewhere``). Google's ``freeBusy`` tells no kinds: all its intervals are ``busy``.
#: Which kinds block a booking is the availability core's rule (issue 17: tentative and
#: out of office do), not the connector's.
BUSY_KINDS = ("busy", "tentative", "oof", "elsewhere")


@dataclass(frozen=True)
class BusyInterval:
    """One busy span of a calendar, ``start`` < ``end``, both aware and in UTC.

    Intervals of one answer may overlap or touch (two meetings at once, a provider that
    reports each event apart); the reader merges them. An interval may reach past the span
    that was asked for: a provider reports the whole event.
    """

    start: datetime
    end: datetime
    kind: str = "busy"

    def __post_init__(self) -> None:
        if self.start.tzinfo is None or self.end.tzinfo is None:
            raise ValueError("a busy interval's start and end must be aware datetimes")
        if not self.start < self.end:
            raise ValueError("a busy interval must end after it starts")
        if self.kind not in BUSY_KINDS:
            raise ValueError(f"a busy interval's kind is one of {BUSY_KINDS}")


@dataclass(frozen=True)
class CreateOp:
    """Create the event of an activity, idempotently.

    Retrying the same (``marker``, ``generation``) must never produce a second event: the
    connector uses an identity derived from both (Google event id, Graph transactionId,
    CalDAV href + ``If-None-Match: *``) and, when the provider says the identity exists,
    returns that event instead. ``retry`` is set when an earlier attempt may have reached
    the server.

    Guests (docs/guest-mail.md): those in ``invited`` are written as real attendees
    (scheduled by the provider); the other guests of the projection are only described
    (Google, Graph: the ``Guests:`` paragraph) or client-scheduled (CalDAV
    ``SCHEDULE-AGENT=CLIENT``). ``notify`` asks the provider to e-mail the attendees.
    """

    key: str
    marker: str
    generation: int
    projection: Projection
    notify: bool = False
    retry: bool = False
    invited: frozenset[str] = frozenset()


@dataclass(frozen=True)
class UpdateOp:
    """Change ``fields`` of an event to the values in ``projection``, if ``etag`` still matches.

    Only the named fields (and the marker) are written; anything else on the event, such
    as reminders or attendees' answers, is left alone. An empty ``fields`` only writes the
    marker (adopting an imported event). ``invited`` and ``notify`` as for
    :class:`CreateOp`; with ``theirs`` the meeting is organised by someone else, and its
    organizer, attendees and their scheduling parameters are left exactly as they are.
    """

    key: str
    event_id: str
    etag: str | None
    projection: Projection
    fields: frozenset[str]
    marker: str
    notify: bool = False
    invited: frozenset[str] = frozenset()
    theirs: bool = False


@dataclass(frozen=True)
class DeleteOp:
    """Delete an event if ``etag`` still matches."""

    key: str
    event_id: str
    etag: str | None
    notify: bool = False


WriteOp = CreateOp | UpdateOp | DeleteOp


@dataclass(frozen=True)
class WriteResult:
    """The outcome of one write: the event as the server now holds it, or an error.

    For a delete, ``event`` is None on success. ``error`` is one of the
    :class:`~syncd.errors.ConnectorError` subclasses, which tell the engine what to do.
    """

    key: str
    event: RemoteEvent | None = None
    error: ConnectorError | None = None


@runtime_checkable
class CalendarConnector(Protocol):
    """One owner's calendar on one provider."""

    capabilities: Capabilities

    def changes(self, cursor: str | None) -> ChangeSet:
        """Events changed since ``cursor``; with None, a full listing of the sync window.

        Follows every page before returning. Raises :class:`~syncd.errors.CursorExpired`
        when the provider no longer accepts the cursor; the engine then calls again with
        None. Deleted events appear with ``deleted=True`` (incremental listings only).
        """

    def get(self, event_id: str) -> RemoteEvent | None:
        """The current state of one event; None when the provider does not know it."""

    def find(self, marker: str, generation: int) -> RemoteEvent | None:
        """Our event for (marker, generation), if a create reached the server.

        Used after a crash or an ambiguous failure to read before writing again.
        """

    def write(self, ops: Sequence[WriteOp]) -> list[WriteResult]:
        """Apply writes (at most ``capabilities.max_batch``); one result per op, in order.

        Per-item failures are reported in :class:`WriteResult`, never raised. Account-wide
        failures (:class:`~syncd.errors.AuthFailed`, :class:`~syncd.errors.AccountCooldown`)
        may be raised.
        """

    def close(self) -> None:
        """Release connections."""


class KeptDiscovery(Protocol):
    """What a connector found out about its server in an earlier run (a CalDAV principal,
    calendar home and collection URL), kept in the sync state so that a short-lived
    process (``syncd sync`` from cron) need not find it again. Given to the connector as
    ``ConnectorContext.discovery``; the store behind it knows the account and its
    identity, so what :meth:`recall` returns belongs to this account as configured now."""

    def recall(self) -> Mapping[str, str] | None:
        """What was kept, or None."""
        ...

    def keep(self, found: Mapping[str, str]) -> None:
        """Replace what is kept (URLs and such, never a secret)."""
        ...

    def forget(self) -> None:
        """Drop what is kept: it led somewhere wrong (a 404, a redirect, a refused login)."""
        ...


class SharedLimits(Protocol):
    """Provider limits counted for every replica of syncd together (``[syncd] replica``):
    a Google user's and project's requests a minute, a mailbox's requests in 10 minutes
    and in flight, and the pauses a provider asked for. Given to connectors as
    ``ConnectorContext.limits`` (the database behind it is the service's to choose,
    :class:`syncd.store.limits.LimitStore`); None there means this process is the only
    client and counts on its own. Each call is one short database statement. A single
    process may keep the same lines and slots in memory
    (:class:`connectors.local_limits.LocalLimits`, the same arithmetic), as the Graph
    transport does.
    """

    def pace(self, scope: str, seconds: float, *, burst: float = 0.0,
             also: Sequence[tuple[str, float]] = ()) -> float:
        """Reserve ``seconds`` of ``scope``'s send line (and of each ``(scope, seconds)``
        line in ``also``, in the same statement); returns how long to wait before sending
        (0.0: at once). ``burst``: how far ahead of its reservation ``scope``'s request
        may go (a line idle that long lets that many seconds' worth go out at once)."""
        ...

    def hold(self, scope: str, seconds: float, *, burst: float = 0.0) -> None:
        """Let no reservation of ``scope``'s line begin within ``seconds`` from now (a
        provider's Retry-After; bounded by :data:`syncd.errors.MAX_PAUSE_SECONDS`).
        ``burst``: the line's, as :meth:`pace` is given it."""
        ...

    def take_slots(self, scope: str, limit: int, permits: int, hold: float) -> str | None:
        """Take ``permits`` of ``scope``'s ``limit`` concurrency slots for at most ``hold``
        seconds (a holder that dies frees them then); a ticket for :meth:`give_back`, or
        None, having taken nothing, when fewer are free."""
        ...

    def give_back(self, scope: str, ticket: str) -> None:
        """Free the slots taken with ``ticket`` (at once, or a moment later together with
        others: it returns without waiting)."""
        ...


@dataclass(frozen=True)
class Channel:
    """A push channel as the provider made it.

    ``id`` is what the provider's notifications name the channel by (Google's
    ``X-Goog-Channel-ID``, Graph's ``subscriptionId``, the segment before the token in the
    address a WebDAV-Push server posts to). ``resource_id`` is what stopping it needs (Google's
    ``resourceId``, the WebDAV-Push subscription URL; Graph needs only ``id``).
    ``details`` is non-secret provider data the connector needs again (kept in the sync
    state with the channel).
    """

    id: str
    expires_at: datetime
    resource_id: str = ""
    details: Mapping[str, Any] = field(default_factory=dict)


@runtime_checkable
class Watchable(Protocol):
    """A connector whose provider can notify syncd of changes to the calendar.

    ``push_kind`` names the hook the provider posts to: ``{public_url}/hooks/{push_kind}``
    is the ``address`` handed to :meth:`watch` (a connector may append to it, e.g. Graph's
    ``/lifecycle`` or a WebDAV-Push channel's own path). ``token`` is a fresh random secret
    the provider must echo with every notification (Google's channel token, Graph's
    ``clientState``, a WebDAV-Push address's last segment); syncd keeps only its hash.

    A connector may also have ``resume(channel)``: after each cycle that keeps the stored
    channel, the keeper hands it over, so a connector made after a restart (or on the
    replica that took the account over) knows it (CalDAV names it in Push-Dont-Notify).
    """

    push_kind: str
    #: Whether the provider notifies changes syncd made itself. When it does, a write of
    #: ours that brings no notification within ``[push] liveness_seconds`` shows the
    #: channel is dead (Google, Graph). WebDAV-Push does not: syncd sends its writes with
    #: ``Push-Dont-Notify``, so silence after them proves nothing.
    notifies_own_writes: bool

    def watch(self, address: str, channel_id: str, token: str,
              expires_at: datetime) -> Channel:
        """Open a channel for the calendar, asking it to last until ``expires_at`` (the
        provider may shorten it: the returned channel says). ``channel_id`` is a fresh
        id a provider that lets the client name channels uses (Google, WebDAV-Push).

        Raises :class:`~syncd.errors.PushRefused` when the provider, tenant or server will
        not notify this calendar (syncd then polls), other connector errors when it could
        not be asked now (tried again at the next cycle).
        """

    def renew(self, channel: Channel, address: str, channel_id: str, token: str,
              expires_at: datetime) -> Channel:
        """Keep notifications coming past ``channel.expires_at``. A provider that can
        extend a channel returns it with the new expiry and the same id (Graph); one that
        cannot opens a new one (Google), and the caller stops the old one."""

    def unwatch(self, channel: Channel) -> None:
        """Stop the channel. One the provider no longer knows is not an error."""


@runtime_checkable
class FreeBusyReadable(Protocol):
    """A connector that can tell when its calendar's owner is busy, without the events.

    Read-only: nothing is stored or written. Reads are bounded (size and item count);
    a malformed item in the provider's answer is skipped and logged with the reason, the
    rest is returned.
    """

    def busy_between(self, start: datetime, end: datetime) -> list[BusyInterval]:
        """The busy intervals overlapping [``start``, ``end``) (aware datetimes), sorted by
        start. One request per calendar for a span within the provider's limit; a longer
        span is asked in pieces.

        Raises a :class:`~syncd.errors.ConnectorError` when the provider could not answer for
        this calendar (Google's per-calendar ``errors``, a Graph schedule ``error``): an
        empty list always means "free throughout", never "unknown".
        """
        ...


@runtime_checkable
class WindowReadable(Protocol):
    """A connector that can list every event of its calendar in a span, for the agenda.

    Read-only: nothing is stored or written, and events syncd does not import are listed
    too (``marker`` None). Recurring events come as their occurrences.
    """

    def events_between(self, start: datetime, end: datetime) -> list[RemoteEvent]:
        """Events overlapping [``start``, ``end``) (aware datetimes), recurrences expanded,
        cancelled occurrences left out, every page followed. An event that cannot be read
        comes with ``projection`` None and ``problem`` set, as in :meth:`CalendarConnector.changes`.
        """
        ...
