"""Outlook / Microsoft 365 calendar connector on Microsoft Graph v1.0.

Structure follows the CalDAV connector: the protocol methods here, the mapping in
:mod:`connectors.outlook_map`, HTTP, limits and the error taxonomy in
:mod:`connectors.outlook_http`, tokens in :mod:`connectors.outlook_auth`.

Reading (providers.md B.4, failure modes 11 and 12):

* Changes come from ``calendarView/delta`` over a window fixed per delta chain. The cursor
  keeps the ``@odata.deltaLink`` verbatim, plus the chain's window. Once the current
  window has moved more than :data:`ROLL_AFTER` away from the chain's, a new chain starts:
  a full listing, which the engine reconciles by id and marker (no writes if nothing
  changed). A 410 or ``syncStateNotFound`` raises :class:`CursorExpired`.
* Delta cannot ``$expand`` our marker, so every id a round names is read again with
  ``$expand`` (batched GETs; a ``calendarView`` listing when there are many). That read
  also classifies ``@removed``, which Graph sends both for deletions and for events that
  left the window: 404 is a deletion, an event found outside the window has
  ``left_window`` (untracked, never deleted), and one found inside is simply current.
* Full listings are ``calendarView`` with ``$expand``, after a fresh delta round whose
  deltaLink becomes the cursor; anything changed in between arrives with the next delta.

Writing (failure modes 1, 3, 6, 10):

* creates carry ``transactionId`` = uuid5(marker, generation), the marker and the
  generation as single-value extended properties; ``ErrorDuplicateTransactionId`` (400 or
  409) reads the event back by marker and adopts it;
* PATCH writes only ``op.fields`` and the marker; PATCH and DELETE carry ``If-Match``;
* writes go out as ``$batch`` of up to 20 in four ``dependsOn`` chains.

Event ids are immutable ids, and per-event requests use the calendar-scoped path, so an
event moved to another calendar reads as gone from this one.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any, cast
from urllib.parse import quote

import requests

from connectors.base import (
    BusyInterval,
    Capabilities,
    ChangeSet,
    Channel,
    CreateOp,
    DeleteOp,
    RemoteEvent,
    UpdateOp,
    Window,
    WriteOp,
    WriteResult,
)
from connectors.busy import BusyTally, check_span, pieces
from connectors.http_pool import ApiSession, process_session
from connectors.json_limits import as_asked, event_key
from connectors.outlook_auth import mailbox_of, token_source
from connectors.outlook_http import (
    ACCESS_DENIED,
    MAX_BATCH,
    BatchItem,
    GraphResponse,
    GraphTransport,
    TokenSource,
    with_query,
)
from connectors.outlook_map import (
    ScheduleUnanswered,
    busy_of_event,
    create_payload,
    expand_properties,
    generation_of,
    marker_filter,
    overlaps,
    read_event,
    read_occurrence,
    read_schedule,
    transaction_id,
    update_payload,
)
from connectors.outlook_push import PUSH_KIND, OutlookSubscriptions
from syncd.config_types import AccountConfig
from syncd.errors import (
    AccountWide,
    AuthFailed,
    ConnectorError,
    CursorExpired,
    EtagMismatch,
    EventGone,
    ItemRejected,
    RateLimited,
    Retriable,
    Transient,
)
from syncd.http_env import read_environment_once
from syncd.model import FIELDS
from syncd.network import same_origin_redirects
from syncd.safe_json import STAND_IN_PREFIX

log = logging.getLogger("syncd.outlook")

DEFAULT_GRAPH_URL = "https://graph.microsoft.com/v1.0"
PREFER = 'IdType="ImmutableId", outlook.timezone="{zone}", outlook.body-content-type="text"'
PAGE_SIZE = 100
ROLL_AFTER = timedelta(days=7)
LIST_ABOVE = 40  # more changed ids than this: one calendarView listing beats many GETs
MAX_PAGES = 10_000
_GONE = (404, 410)
#: The longest span one ``getSchedule`` may cover: Graph answers 400
#: ``ErrorTimeIntervalTooBig`` past 62 days (calendar-getschedule; microsoft-graph-docs#19703).
SCHEDULE_SPAN = timedelta(days=62)
#: What Graph answers where getSchedule is not offered: read the events instead.
SCHEDULE_REFUSED = frozenset({400, 403, 404, 405, 501})


class _NoSchedule(Exception):
    """Graph will not answer getSchedule for this mailbox; ``args[0]`` says how it refused."""


@dataclass(frozen=True)
class DeltaCursor:
    """A delta chain: its fixed window and the deltaLink, kept verbatim."""

    start: datetime
    end: datetime
    link: str

    def dump(self) -> str:
        """The cursor string stored by the engine (JSON, versioned)."""
        return json.dumps({"v": 1, "start": _iso(self.start), "end": _iso(self.end),
                           "delta": self.link})

    @classmethod
    def load(cls, text: str) -> DeltaCursor:
        """Parse a stored cursor; one we cannot read is as good as expired."""
        try:
            data = json.loads(text)
            if data.get("v") != 1:
                raise ValueError("unknown cursor version")
            return cls(_parse_iso(data["start"]), _parse_iso(data["end"]), str(data["delta"]))
        except (ValueError, KeyError, TypeError, AttributeError):
            raise CursorExpired() from None


def _iso(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _naive_utc(value: datetime) -> str:
    """A dateTimeTimeZone ``dateTime`` for zone ``UTC``: no offset, as Graph wants it."""
    return value.astimezone(UTC).replace(tzinfo=None).isoformat(timespec="seconds")


def _parse_iso(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def chain_window(window: Window) -> tuple[datetime, datetime]:
    """The window widened to whole UTC days, so a chain's bounds are stable and readable."""
    start = window.start.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    end = window.end.astimezone(UTC)
    day_end = end.replace(hour=0, minute=0, second=0, microsecond=0)
    return start, day_end if day_end == end else day_end + timedelta(days=1)


def _read_failure(response: GraphResponse, *, in_delta: bool = False) -> ConnectorError:
    """A failed read: account-wide errors as they are, item-shaped ones as Transient."""
    error = response.error(in_delta=in_delta)
    if isinstance(error, AccountWide | Retriable | CursorExpired):
        return error
    # A read has no item to blame (a missing calendar, a query Graph refused): back off.
    return Transient(reason=f"HTTP {response.status} {response.code or ''}".strip(),
                     status=response.status)


def _item_read(event_id: str, answer: GraphResponse) -> Mapping[str, Any] | RemoteEvent | None:
    """One answer of a batched GET: data, None (gone), or a problem for this id alone."""
    if answer.ok and isinstance(answer.body, Mapping):
        return answer.body
    if answer.failure is not None:
        raise answer.failure  # the batch failed as a whole
    cls = answer.error_class
    if cls is AuthFailed and (answer.code or "").lower() != ACCESS_DENIED:
        raise answer.error(event_id)  # the token or the mailbox, not this item
    if answer.ok:  # a 2xx whose body is not an object: this event's answer, no other's
        return RemoteEvent(event_id, problem="Graph's answer for the event is not readable")
    if cls is RateLimited or (cls is Transient and not 400 <= answer.status < 500):
        raise _read_failure(answer)
    if answer.status in _GONE:
        return None
    # 400/403/418/...: Graph will not show us this one event; the rest of the round goes on.
    return RemoteEvent(event_id, problem=f"HTTP {answer.status} {answer.code or ''}".strip())


class OutlookCalendar:
    """One calendar of one Microsoft 365 mailbox.

    Args:
        account: an ``outlook`` account.
        context: owner's zone, sync window and the credential store.
        session: the HTTP session for Graph *and* msal (tests inject a routing session);
            by default the process's (``context.shared``: every account of the process
            on one connection pool per host, :mod:`connectors.http_pool`), or without
            ``shared`` one of its own, closed by :meth:`close`.
        clock: monotonic seconds, for throttling pauses and token expiry.
        sleep: how to wait out a pause (tests pass a fake that advances ``clock``).
        max_wait: the longest pause waited inline; longer ones raise RateLimited.
        timeout: (connect, read) seconds per request.
        response_zone: the zone Graph is asked to answer in (UTC; tests vary it).
        tokens: a token source to use instead of msal.

    It is :class:`~connectors.base.Watchable` through Graph subscriptions
    (:mod:`connectors.outlook_push`).
    """

    push_kind = PUSH_KIND
    notifies_own_writes = True  # Graph notifies the changes an app makes itself

    def __init__(self, account: AccountConfig, context: Any, *,
                 session: requests.Session | None = None,
                 clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep, max_wait: float = 60.0,
                 timeout: tuple[float, float] = (10.0, 30.0), response_zone: str = "UTC",
                 tokens: TokenSource | None = None) -> None:
        self.account = account
        self.owner_tz: str = context.owner_tz
        self.window: Window = context.window
        self.describe_guests = not account.invite_guests
        carried = FIELDS if account.invite_guests else tuple(f for f in FIELDS if f != "guests")
        # Graph e-mails every attendee of a changed meeting: no silent writes to them.
        self.capabilities = Capabilities(max_batch=MAX_BATCH, fields=frozenset(carried),
                                         silent_writes=False)
        shared = getattr(context, "shared", None)
        self._own_session = session is None and shared is None
        if session is None:
            # Every account of the process on one session: one pool per host, the token
            # on each request (connectors.http_pool); alone, a session of its own.
            session = ApiSession() if shared is None else process_session(shared)
        # (requests would read the proxy variables again for every request)
        self.session = same_origin_redirects(read_environment_once(session))
        self.mailbox = mailbox_of(account)
        base = str(account.auth.get("graph_url") or DEFAULT_GRAPH_URL)
        self.http = GraphTransport(
            self.session, base,
            tokens or token_source(account, context.credentials, self.session, clock=clock,
                                   timeout=timeout, shared=shared),
            mailbox=self.mailbox, prefer=PREFER.format(zone=response_zone), clock=clock,
            sleep=sleep, max_wait=max_wait, timeout=timeout,
            limits=getattr(context, "limits", None),
            app=str(account.auth.get("client_id") or ""))
        self._user = f"/users/{quote(self.mailbox, safe='@')}"
        self._calendar_id: str | None = account.calendar
        self._writable: bool | None = None  # the calendar's canEdit, read on a 403
        self._get_schedule = True  # False once Graph refused it: busy time from events
        self._subscriptions = OutlookSubscriptions(
            self.http, lambda: f"{self._user}/calendars/{quote(self._calendar(), safe='')}"
                               "/events")

    # --- paths ----------------------------------------------------------------------------

    def _collection(self) -> str:
        """The calendar, by id, or by the default-calendar alias (no lookup needed)."""
        if self.account.calendar:
            return f"{self._user}/calendars/{quote(self.account.calendar, safe='')}"
        return f"{self._user}/calendar"

    def _calendar(self) -> str:
        """The calendar's id (the default calendar's is read once)."""
        if self._calendar_id is None:
            response = self.http.request("GET", with_query(self._collection(),
                                                           {"$select": "id"}))
            if not response.ok or not isinstance(response.body, Mapping):
                raise _read_failure(response)
            self._calendar_id = str(response.body["id"])
        return self._calendar_id

    def _event(self, event_id: str) -> str:
        return (f"{self._user}/calendars/{quote(self._calendar(), safe='')}"
                f"/events/{quote(event_id, safe='')}")

    def _read(self, data: Mapping[str, Any], marker: str | None = None) -> RemoteEvent:
        return read_event(data, fallback_tz=self.owner_tz, mailbox=self.mailbox,
                          describe_guests=self.describe_guests, marker=marker)

    # --- protocol -------------------------------------------------------------------------

    def changes(self, cursor: str | None) -> ChangeSet:
        """Delta since ``cursor``; a full listing without one or when the window rolls.

        Raises:
            CursorExpired: Graph answered 410 or ``syncStateNotFound``, or the stored
                cursor is unreadable.
        """
        start, end = chain_window(self.window)
        chain = DeltaCursor.load(cursor) if cursor else None
        if chain is None:
            return self._full(start, end)
        if abs(chain.start - start) > ROLL_AFTER or abs(chain.end - end) > ROLL_AFTER:
            log.info("account %s: the delta window is rolled forward", self.account.name)
            return self._full(start, end)
        items, link = self._delta_round(chain.link)
        ids = list(dict.fromkeys(event_id for event_id, _ in items))
        events = self._resolve(ids, chain.start, chain.end)
        return ChangeSet(events, replace(chain, link=link).dump(), full=False)

    def get(self, event_id: str) -> RemoteEvent | None:
        """The event with our marker expanded; None if this calendar no longer holds it."""
        response = self.http.request(
            "GET", with_query(self._event(event_id), {"$expand": expand_properties()}))
        if response.status in _GONE:
            return None
        if not response.ok:
            raise _read_failure(response)
        return as_asked(self._read(response.body), event_id)

    def find(self, marker: str, generation: int) -> RemoteEvent | None:
        """Our event for (marker, generation), by extended-property ``$filter``.

        The generation is checked against the ``syncdGeneration`` property (or, failing
        that, the transactionId), so an older generation's event is never returned.
        """
        url = with_query(f"{self._collection()}/events",
                         {"$filter": marker_filter(marker), "$expand": expand_properties(),
                          "$top": str(PAGE_SIZE)})
        tx = transaction_id(marker, generation)
        for data in self._pages(url):
            found = generation_of(data)
            if found == generation or (found is None and data.get("transactionId") == tx):
                return self._read(data)
        return None

    def write(self, ops: Sequence[WriteOp]) -> list[WriteResult]:
        """Send the ops as ``$batch`` requests; one result per op, in order.

        Raises:
            AuthFailed: the token was refused or the mailbox is unusable (account-wide).
        """
        results: list[WriteResult] = []
        for i in range(0, len(ops), MAX_BATCH):  # the engine sends at most max_batch
            chunk = ops[i:i + MAX_BATCH]
            try:
                before = self._attendees_now(chunk)
                items = [self._item(op, now) for op, now in zip(chunk, before, strict=True)
                         if not isinstance(now, ConnectorError)]
            except Retriable as exc:  # the calendar's id could not be read
                results.extend(WriteResult(op.key, error=exc) for op in chunk)
                continue
            answers = iter(self.http.batch(items) if items else ())
            for op, now in zip(chunk, before, strict=True):
                if isinstance(now, ConnectorError):
                    results.append(WriteResult(op.key, error=now))  # never sent
                else:
                    results.append(self._result(op, next(answers)))
        return results

    # --- push (Watchable) ------------------------------------------------------------------

    def watch(self, address: str, channel_id: str, token: str,
              expires_at: datetime) -> Channel:
        """Subscribe to the calendar's events (Graph names the subscription itself, so
        ``channel_id`` is unused); see :mod:`connectors.outlook_push`."""
        return self._subscriptions.watch(address, token, expires_at)

    def renew(self, channel: Channel, address: str, channel_id: str, token: str,
              expires_at: datetime) -> Channel:
        """Extend the subscription (same id); a new one, with ``token``, if Graph lost it."""
        return self._subscriptions.renew(channel, address, token, expires_at)

    def unwatch(self, channel: Channel) -> None:
        self._subscriptions.unwatch(channel)

    def close(self) -> None:
        """Close the session, unless it was handed in or is the process's (then its owner
        closes it)."""
        if self._own_session:
            self.session.close()

    # --- free/busy and the agenda (FreeBusyReadable, WindowReadable) -----------------------

    def busy_between(self, start: datetime, end: datetime) -> list[BusyInterval]:
        """``getSchedule`` for the mailbox: one request per :data:`SCHEDULE_SPAN`.

        It reports the mailbox's free/busy as colleagues see it (its default calendar),
        whichever calendar the account syncs. Where Graph refuses getSchedule (personal
        Microsoft accounts: "Not supported"), busy time is read from the calendar's
        ``calendarView`` instead (``showAs``), and getSchedule is not asked again by this
        connector. Where it answers without the mailbox's schedule (an address it does not
        resolve), the events are read for this call.

        Raises:
            Transient: Graph failed.
            AuthFailed, RateLimited: as for any read.
        """
        start, end = check_span(start, end)
        if self._get_schedule:
            try:
                return self._schedule(start, end)
            except _NoSchedule as exc:
                log.info("account %s: no getSchedule (%s); reading the events instead",
                         self.account.name, exc.args[0])
                self._get_schedule = False
            except ScheduleUnanswered as exc:
                log.info("account %s: getSchedule did not answer for the mailbox (%s); "
                         "reading the events instead", self.account.name, exc.reason)
        tally = BusyTally(f"outlook {self.mailbox}")
        for data in self._pages(self._view_url(start, end)):
            busy_of_event(data, self.owner_tz, tally)
        return tally.result(log)

    def _schedule(self, start: datetime, end: datetime) -> list[BusyInterval]:
        tally = BusyTally(f"outlook {self.mailbox}")
        for piece_start, piece_end in pieces(start, end, SCHEDULE_SPAN):
            body = {"schedules": [self.mailbox],
                    "startTime": {"dateTime": _naive_utc(piece_start), "timeZone": "UTC"},
                    "endTime": {"dateTime": _naive_utc(piece_end), "timeZone": "UTC"},
                    # The view is not read: its coarsest slot keeps the answer small.
                    "availabilityViewInterval": 1440}
            response = self.http.request("POST", f"{self._user}/calendar/getSchedule",
                                         json=body, idempotent=True)
            if response.status in SCHEDULE_REFUSED:
                raise _NoSchedule(f"HTTP {response.status} {response.code or ''}".strip())
            if not response.ok:
                raise _read_failure(response)
            read_schedule(response.body, self.mailbox, tally)
        return tally.result(log)

    def events_between(self, start: datetime, end: datetime) -> list[RemoteEvent]:
        """Every event of the calendar overlapping [start, end): ``calendarView``, which
        lists occurrences and never series masters, every nextLink followed; cancelled
        meetings left out."""
        start, end = check_span(start, end)
        return [read_occurrence(data, fallback_tz=self.owner_tz, mailbox=self.mailbox,
                                describe_guests=self.describe_guests)
                for data in self._pages(self._view_url(start, end))
                if data.get("isCancelled") is not True]

    def _view_url(self, start: datetime, end: datetime) -> str:
        return with_query(f"{self._collection()}/calendarView",
                          {"startDateTime": _iso(start), "endDateTime": _iso(end),
                           "$top": str(PAGE_SIZE), "$expand": expand_properties()})

    # --- reading --------------------------------------------------------------------------

    def _pages(self, url: str, prefer: str | None = None) -> Iterator[Mapping[str, Any]]:
        """Every item of a paged collection (nextLinks followed verbatim), page by page.

        A generator, so that callers keep what they need of a page and Graph's JSON is
        dropped with it: a listing costs one page of raw JSON, not the whole calendar's.
        """
        headers = {"Prefer": prefer} if prefer else None
        for _ in range(MAX_PAGES):
            response = self.http.request("GET", url, headers=headers)
            if not response.ok or not isinstance(response.body, Mapping):
                raise _read_failure(response)
            yield from (v for v in response.body.get("value", []) if isinstance(v, Mapping))
            next_link = response.body.get("@odata.nextLink")
            if not next_link:
                return
            url = str(next_link)
        raise Transient(reason="a listing did not end")

    def _delta_round(self, link: str) -> tuple[list[tuple[str, bool]], str]:
        """Follow one delta round, empty pages included, to its deltaLink.

        Returns (id, removed) of every item named, in order, and the new deltaLink. Only
        that is kept of each page: the events themselves are read afterwards.
        """
        prefer = f"{self.http.prefer}, odata.maxpagesize={PAGE_SIZE}"
        items: list[tuple[str, bool]] = []
        url = link
        for _ in range(MAX_PAGES):
            response = self.http.request("GET", url, headers={"Prefer": prefer})
            if not response.ok or not isinstance(response.body, Mapping):
                raise _read_failure(response, in_delta=True)
            items.extend((event_key(v["id"])[0], "@removed" in v)
                         for v in response.body.get("value", [])
                         if isinstance(v, Mapping) and v.get("id"))
            if delta := response.body.get("@odata.deltaLink"):
                return items, str(delta)
            if not (next_link := response.body.get("@odata.nextLink")):
                raise Transient(reason="a delta page had neither a nextLink nor a deltaLink")
            url = str(next_link)
        raise Transient(reason="a delta round did not end")

    def _full(self, start: datetime, end: datetime) -> ChangeSet:
        """A new delta chain plus a listing of the window (``full=True``)."""
        first = with_query(f"{self._collection()}/calendarView/delta",
                           {"startDateTime": _iso(start), "endDateTime": _iso(end)})
        try:
            items, link = self._delta_round(first)
        except CursorExpired:
            items, link = self._delta_round(first)  # our brand-new chain expired: once more
        live = any(not removed for _, removed in items)
        # An empty first round means an empty window: the listing would be empty too.
        events = [self._read(data) for data in self._list(start, end)] if live else []
        return ChangeSet(events, DeltaCursor(start, end, link).dump(), full=True)

    def _list(self, start: datetime, end: datetime) -> Iterator[Mapping[str, Any]]:
        url = with_query(f"{self._collection()}/calendarView",
                         {"startDateTime": _iso(start), "endDateTime": _iso(end),
                          "$top": str(PAGE_SIZE), "$expand": expand_properties()})
        return self._pages(url)

    def _resolve(self, ids: Sequence[str], start: datetime, end: datetime) -> list[RemoteEvent]:
        """The current state of every id a delta round named (see the module docstring)."""
        # An id no key can hold was named by a stand-in: it cannot be fetched, only set aside.
        found = {i: RemoteEvent(i, problem="the event id is not a usable identifier")
                 for i in ids if i.startswith(STAND_IN_PREFIX)}
        if len(ids) > LIST_ABOVE:
            wanted = set(ids)
            for data in self._list(start, end):
                if (event_id := str(data.get("id"))) in wanted:
                    found[event_id] = self._windowed(data, start, end)
        for event_id, got in self._get_many([i for i in ids if i not in found]):
            if got is None:
                found[event_id] = RemoteEvent(event_id, deleted=True)
            elif isinstance(got, RemoteEvent):
                found[event_id] = got
            else:
                found[event_id] = self._windowed(got, start, end)
        return [found[event_id] for event_id in ids]

    def _windowed(self, data: Mapping[str, Any], start: datetime, end: datetime) -> RemoteEvent:
        """The event read from ``data``, marked ``left_window`` if it is now outside."""
        event = self._read(data)
        if event.projection is not None and not overlaps(event.projection.when, start, end):
            event = replace(event, left_window=True)
        return event

    def _get_many(self, ids: Sequence[str]
                  ) -> Iterator[tuple[str, Mapping[str, Any] | RemoteEvent | None]]:
        """GET each id (batched): its data, None if the calendar no longer holds it, or a
        RemoteEvent with a ``problem`` if Graph refuses that one id (quarantined alone).

        Raises:
            AuthFailed, RateLimited, Transient: what stands in the way of every id.
        """
        query = {"$expand": expand_properties()}
        for i in range(0, len(ids), MAX_BATCH):
            chunk = ids[i:i + MAX_BATCH]
            answers = self.http.batch([BatchItem("GET", with_query(self._event(e), query))
                                       for e in chunk])
            for event_id, answer in zip(chunk, answers, strict=True):
                yield event_id, _item_read(event_id, answer)

    # --- writing --------------------------------------------------------------------------

    def _attendees_now(self, ops: Sequence[WriteOp]
                       ) -> list[Mapping[str, Any] | ConnectorError | None]:
        """For each update that changes attendees, the event's attendees as they are now.

        A guests change must keep rooms and attendee types (and not touch the list at all
        when the guests are the same), so it starts from the current list. An op whose
        event cannot be read gets the error instead and is not sent.

        Raises:
            AuthFailed: the token or the mailbox is unusable.
        """
        wanted = [i for i, op in enumerate(ops) if isinstance(op, UpdateOp)
                  and "guests" in op.fields and not self.describe_guests and not op.theirs]
        out: list[Mapping[str, Any] | ConnectorError | None] = [None] * len(ops)
        query = {"$select": "attendees,organizer"}
        ids = [cast(UpdateOp, ops[i]).event_id for i in wanted]
        answers = self.http.batch([BatchItem("GET", with_query(self._event(e), query))
                                   for e in ids]) if ids else []
        for i, event_id, answer in zip(wanted, ids, answers, strict=True):
            try:
                data = _item_read(event_id, answer)
            except Retriable as exc:  # a read: nothing was applied
                out[i] = exc
                continue
            if isinstance(data, RemoteEvent):
                out[i] = ItemRejected(event_id=event_id, reason=str(data.problem))
            else:
                out[i] = EventGone(event_id=event_id) if data is None else data
        return out

    def _invited(self, invited: frozenset[str]) -> frozenset[str] | None:
        """The attendees to write; None when the account invites nobody (never any)."""
        return None if self.describe_guests else invited

    def _item(self, op: WriteOp, now: Mapping[str, Any] | None = None) -> BatchItem:
        if isinstance(op, CreateOp):
            body = create_payload(op.projection, op.marker, op.generation,
                                  invited=self._invited(op.invited))
            return BatchItem("POST", f"{self._collection()}/events", body)
        headers = {"If-Match": op.etag} if op.etag else {}
        if isinstance(op, UpdateOp):
            body = update_payload(op.projection, op.fields, op.marker,
                                  invited=self._invited(op.invited), theirs=op.theirs,
                                  current=now, mailbox=self.mailbox)
            return BatchItem("PATCH", self._event(op.event_id), body, headers)
        return BatchItem("DELETE", self._event(op.event_id), None, headers)

    def _result(self, op: WriteOp, answer: GraphResponse) -> WriteResult:
        if answer.ok:
            if isinstance(op, DeleteOp):
                return WriteResult(op.key)
            marker = op.marker if isinstance(op, CreateOp | UpdateOp) else None
            event = self._read(answer.body, marker=marker)
            if event.event_id.startswith(STAND_IN_PREFIX) or (
                    isinstance(op, UpdateOp) and event.event_id != op.event_id):
                # The answer is not the event written (a broken reply): read it back later.
                return WriteResult(op.key, error=Transient(
                    reason="Graph's answer to a write is not the event"))
            return WriteResult(op.key, event)
        event_id = "" if isinstance(op, CreateOp) else op.event_id
        error = answer.error(event_id)
        if isinstance(error, AuthFailed) and self._denied_item(answer):
            # A read-only event in a writable calendar (an attendee's copy, a locked item).
            error = ItemRejected(event_id=event_id, reason=f"Graph refused it (HTTP "
                                 f"{answer.status} {answer.code}); the calendar is writable")
        if isinstance(error, AuthFailed):
            raise error  # account-wide: the engine marks the account, others carry on
        if (isinstance(op, CreateOp) and answer.failure is None
                and isinstance(error, EtagMismatch) and answer.status != 412):
            # Our transactionId was used already (409, ErrorDuplicateTransactionId).
            try:
                return self._adopt(op)
            except Retriable as exc:
                # Unknown whether the event exists: the pending create is looked for
                # (find) before it is sent again.
                return WriteResult(op.key, error=Transient(reason=exc.reason))
        return WriteResult(op.key, error=error)

    def _denied_item(self, answer: GraphResponse) -> bool:
        """Whether a 403 ``ErrorAccessDenied`` on a write refuses that item, not the account.

        Graph answers the same code for a read-only calendar (every write fails: the account
        needs an admin) and for one event this mailbox may not change. The calendar's
        ``canEdit`` tells them apart; it is read once per connector, and an answer that
        cannot be had counts as account-wide, as before.
        """
        if answer.failure is not None or answer.status != 403 or (
                (answer.code or "").lower() != ACCESS_DENIED):
            return False
        if self._writable is None:
            try:
                response = self.http.request("GET", with_query(self._collection(),
                                                               {"$select": "canEdit"}))
            except Retriable:
                return False
            body = response.body if response.ok else None
            self._writable = isinstance(body, Mapping) and body.get("canEdit") is True
        return self._writable

    def _adopt(self, op: CreateOp) -> WriteResult:
        """Our transactionId was used already: find that event and make it match ``op``."""
        found = self.find(op.marker, op.generation)
        if found is None:
            return WriteResult(op.key, error=ItemRejected(
                event_id="", reason="Graph knows the transactionId, but no event of ours"))
        if found.projection is None:
            return WriteResult(op.key, found)
        differs = found.projection.diff(op.projection)
        if not differs:
            return WriteResult(op.key, found)
        # The first attempt carried older content; nothing else remembers it, so bring
        # the event up to date now rather than link a stale copy.
        [fixed] = self.write([UpdateOp(op.key, found.event_id, found.etag, op.projection,
                                       differs, op.marker, op.notify, op.invited)])
        if fixed.error is not None:
            return WriteResult(op.key, error=Transient(reason="adopting a retried create"))
        return fixed


def open_calendar(account: AccountConfig, context: Any) -> OutlookCalendar:
    """Registry entry point (see ``connectors.REGISTRY``)."""
    read = float(getattr(context, "timeout", 30.0))
    return OutlookCalendar(account, context, timeout=(min(10.0, read), read))
