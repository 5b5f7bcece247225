"""Google Calendar v3 connector on ``google-api-python-client``.

Reads: a full listing of the sync window (``timeMin``/``timeMax``, no deleted events,
every page followed, short and empty pages included, until ``nextSyncToken``), then
incremental listings with ``syncToken`` alone. A 410 ``fullSyncRequired`` means
:class:`~syncd.errors.CursorExpired`; the engine then lists the window again and reconciles
by id and marker (failure mode 11).

Writes go out in batches of up to 50, each part judged on its own status:

* insert with a client-chosen id derived from (marker, generation), so a retried create
  can only answer 409 ``duplicate``; then the event is read: ours and live is adopted, ours
  and cancelled is restored by a conditional patch, anything else is refused (failure
  modes 1 and 2);
* patch with only the named fields plus the marker, never a full update, and delete, both
  with ``If-Match`` (412 -> :class:`~syncd.errors.EtagMismatch`, failure mode 10);
* ``sendUpdates`` on every insert, patch and delete: ``all`` only when the op notifies
  guests, else ``none`` (failure mode 6; docs/guest-mail.md);
* only guests holding an invitation (the op's ``invited``) are attendees, the others are
  described in the description; without ``invite_guests`` no guest address is ever
  written as an attendee, and guest edits made in Google are not read
  (``capabilities.fields`` leaves "guests" out).

A 409 on a retried insert whose event holds older content (the first answer was lost and
the activity was edited since) is settled by a conditional patch of the differing fields,
so the edit is not lost to the adopted copy.

Every answer is read at most to :data:`connectors.answer_caps.MAX_ANSWER_BYTES`
(:class:`~connectors.answer_caps.CappedHttp` under the credentials), a token endpoint's to
:data:`~connectors.answer_caps.MAX_TOKEN_ANSWER_BYTES`; past it the request fails as
:class:`~syncd.errors.AnswerTooLarge`. Retries, pacing and the status -> error
table live in :mod:`connectors.google_http`,
credentials in :mod:`connectors.google_auth`, the field mapping in
:mod:`connectors.google_map`, the client (built once per process) in
:mod:`connectors.google_client`.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import google_auth_httplib2  # type: ignore[import-untyped]
import httplib2

from connectors.answer_caps import CappedHttp
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
from connectors.google_auth import load_credentials, project_of
from connectors.google_client import AccountResource, account_resources
from connectors.google_http import (
    Call,
    Pacer,
    Reply,
    RequestBudget,
    RetryPolicy,
    Transport,
    budget_for,
    error_for,
)
from connectors.google_map import (
    event_body,
    event_id_for,
    read_event,
    read_free_busy,
    read_marker,
    read_occurrence,
)
from connectors.google_options import PROJECT_REQUESTS_PER_MINUTE
from connectors.google_watch import read_channel, refusal, watch_body
from connectors.json_limits import as_asked
from syncd.config_types import AccountConfig
from syncd.errors import (
    AccountWide,
    AuthFailed,
    CursorExpired,
    EtagMismatch,
    EventGone,
    ItemRejected,
    Retriable,
    Transient,
)
from syncd.model import FIELDS

log = logging.getLogger("syncd.google")

JsonDict = dict[str, Any]
DEFAULT_BATCH_URI = "https://www.googleapis.com/batch/calendar/v3"
PAGE_SIZE = 2500  # Google's maximum for events.list
MAX_PAGES = 1000  # a listing longer than 2.5 million events is a server bug, not a calendar
FULL_LISTING_TRIES = 3
#: The longest span one ``freeBusy.query`` may cover. Google documents none, but answers
#: 400 "The requested time range is too long" past 90 days [obs: calcom/cal.diy#11962];
#: a longer span is asked in pieces.
FREEBUSY_SPAN = timedelta(days=90)


def _rfc3339_utc(instant: datetime) -> str:
    return instant.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def batch_uri_for(api_endpoint: str | None) -> str:
    """``<root>/batch/calendar/v3`` for an ``api_endpoint`` ending in ``/calendar/v3/``."""
    if not api_endpoint:
        return DEFAULT_BATCH_URI
    parts = urlsplit(api_endpoint)
    path = parts.path.rstrip("/")
    prefix = path.removesuffix("/calendar/v3")
    return f"{parts.scheme}://{parts.netloc}{prefix}/batch/calendar/v3"


def _send_updates(notify: bool) -> str:
    return "all" if notify else "none"


def _conditional(request: Any, etag: str | None) -> Any:
    if etag:
        request.headers["If-Match"] = etag
    return request


class GoogleCalendar:
    """One calendar of one Google user.

    Args:
        account: the account's config; ``auth`` holds the Google options.
        owner_tz: the zone for events that carry none.
        window: the span a full listing covers.
        credentials: the :class:`~syncd.store.credentials.CredentialStore` (OAuth mode).
        http: the transport under the credentials (tests inject one; default
            ``httplib2.Http(timeout=timeout)``).
        clock, sleep, rng: injectable time and randomness for pacing and backoff.
        timeout: seconds before a request counts as lost.
        retry: the backoff policy.
        budget: the request budget (default: a new one from ``requests_per_minute``;
            :func:`open_calendar` passes the user's process-wide one, or with several
            replicas the one they share).
    """

    MAX_BATCH = 50
    #: Push (:class:`connectors.base.Watchable`): Google posts to ``/hooks/google``, and
    #: notifies syncd's own writes like anyone's (so a missing one means a dead channel).
    push_kind = "google"
    notifies_own_writes = True

    def __init__(self, account: AccountConfig, *, owner_tz: str, window: Window,
                 credentials: Any = None, http: httplib2.Http | None = None,
                 clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep,
                 rng: Callable[[], float] = random.random, timeout: float = 30.0,
                 retry: RetryPolicy | None = None, budget: Pacer | None = None
                 ) -> None:
        auth = account.auth
        self.account = account
        self.owner_tz = owner_tz
        self.window = window
        self.owner = auth.get("subject") or account.owner
        self.calendar_id = account.calendar or "primary"
        # Without invite_guests, guests live in the description (failure modes 6 and 7),
        # and guest edits made in Google are not read back.
        self.describe_guests = not account.invite_guests
        carried = FIELDS if account.invite_guests else tuple(f for f in FIELDS if f != "guests")
        # sendUpdates=none lets a write reach invited attendees without e-mail.
        self.capabilities = Capabilities(max_batch=self.MAX_BATCH,
                                         fields=frozenset(carried), silent_writes=True)
        self._credential_store = credentials
        self._base_http = http or httplib2.Http(timeout=timeout)
        self._http: Any = None
        self._resources: dict[str, AccountResource] | None = None
        endpoint = auth.get("api_endpoint")
        budget = budget or RequestBudget(int(auth.get("requests_per_minute", 500)),
                                         clock=clock, sleep=sleep)
        self.transport = Transport(batch_uri_for(endpoint), budget, policy=retry, sleep=sleep,
                                   rng=rng, batch_size=self.MAX_BATCH)

    def _resource(self, name: str) -> AccountResource:
        """The process's shared ``name`` resource, sending through this account's HTTP.

        Credentials are loaded on first use rather than in the constructor, so a missing
        or refused credential surfaces inside the engine's cycle as
        :class:`~syncd.errors.AuthFailed` (the account is marked for re-authorisation).
        The client itself is built once per process (:mod:`connectors.google_client`).
        """
        if self._resources is None:
            creds = load_credentials(self.account, self._credential_store)
            # Every API and batch answer is read at most to the cap (the token requests
            # to the token cap: google_auth.token_request).
            self._http = google_auth_httplib2.AuthorizedHttp(
                creds, http=CappedHttp(self._base_http))
            self._resources = account_resources(self._http,
                                                self.account.auth.get("api_endpoint"))
        return self._resources[name]

    @property
    def events(self) -> AccountResource:
        """The ``events`` resource."""
        return self._resource("events")

    # --- protocol -------------------------------------------------------------------------

    def changes(self, cursor: str | None) -> ChangeSet:
        """A full listing of the window (``cursor`` None) or the changes since ``cursor``.

        Raises:
            CursorExpired: Google no longer accepts ``cursor`` (410 fullSyncRequired).
            AccountCooldown: Calendar usage limits were hit (403 quotaExceeded).
            AuthFailed: the credentials were refused.
            RateLimited: throttling outlasted the retries.
            Transient: the listing failed for now.
        """
        if cursor is not None:
            events, token = self._pages({"syncToken": cursor})
            return ChangeSet(events, token, full=False)
        params = {"timeMin": self.window.start.astimezone(UTC).isoformat(timespec="seconds"),
                  "timeMax": self.window.end.astimezone(UTC).isoformat(timespec="seconds"),
                  "showDeleted": False}
        for _ in range(FULL_LISTING_TRIES):
            try:
                events, token = self._pages(params)
            except CursorExpired:
                continue  # the calendar's tokens were reset while we paged: start over
            # A full listing never reports deletions: absence is not a delete signal.
            return ChangeSet([e for e in events if not e.deleted], token, full=True)
        raise Transient(reason="the full listing kept being invalidated", status=410)

    def get(self, event_id: str) -> RemoteEvent | None:
        """The event, or None when it does not exist or was deleted."""
        reply = self.transport.one(self._get_request(event_id))
        if reply.error_class is EventGone:
            return None
        if not reply.ok:
            raise error_for(reply, event_id=event_id)
        event = as_asked(self._read(reply.body or {}), event_id)
        return None if event.deleted else event

    def find(self, marker: str, generation: int) -> RemoteEvent | None:
        """Our live event for (marker, generation), if an insert reached Google."""
        event = self.get(event_id_for(marker, generation))
        return event if event is not None and event.marker == marker else None

    def write(self, ops: Sequence[WriteOp]) -> list[WriteResult]:
        """Apply ``ops`` in batches; one result per op, in order (see the module docstring)."""
        ops = list(ops)
        done: dict[int, WriteResult] = {}
        try:
            self._write(ops, done)
        except (AccountWide, Retriable) as exc:  # the token could not be had at all
            for i, op in enumerate(ops):
                done.setdefault(i, WriteResult(op.key, error=exc))
        self._halted(ops, done)
        return [done[i] for i in range(len(ops))]

    def close(self) -> None:
        """Close the HTTP connections."""
        if self._http is not None:
            self._http.close()
        else:
            self._base_http.close()

    # --- push (Watchable) -----------------------------------------------------------------

    def watch(self, address: str, channel_id: str, token: str,
              expires_at: datetime) -> Channel:
        """``events.watch`` on the calendar: a channel posting to ``address`` until
        ``expires_at`` or the earlier expiration Google grants.

        Raises:
            PushRefused: Google will not notify this calendar or this address.
            AuthFailed, AccountCooldown, RateLimited, Transient: not now.
        """
        body = watch_body(address, channel_id, token, expires_at, datetime.now(UTC))
        # Not sent twice after an ambiguous failure: a watch that did reach Google would
        # answer the second one "channel id not unique"; the keeper asks again later.
        reply = self.transport.run([Call(0, lambda: self.events.watch(
            calendarId=self.calendar_id, body=body), safe=False)])[0]
        if not reply.ok:
            refused = refusal(reply.status, reply.reason)
            if refused is not None:
                raise refused
            raise self._listing_error(reply)
        return read_channel(reply.body, channel_id, expires_at)

    def renew(self, channel: Channel, address: str, channel_id: str, token: str,
              expires_at: datetime) -> Channel:
        """A new channel: Google cannot extend one (the caller stops ``channel``)."""
        return self.watch(address, channel_id, token, expires_at)

    def unwatch(self, channel: Channel) -> None:
        """``channels.stop``; a channel Google no longer knows (expired, stopped) is fine."""
        body = {"id": channel.id, "resourceId": channel.resource_id}
        reply = self.transport.one(lambda: self._resource("channels").stop(body=body))
        if reply.ok or reply.error_class is EventGone:
            return
        raise error_for(reply)

    # --- free/busy and the agenda (FreeBusyReadable, WindowReadable) -----------------------

    def busy_between(self, start: datetime, end: datetime) -> list[BusyInterval]:
        """``freeBusy.query`` for the calendar: one request per :data:`FREEBUSY_SPAN`.

        Raises:
            CalendarMissing: Google does not know the calendar or does not share its
                free/busy with this account (per-calendar ``notFound``).
            AuthFailed, AccountCooldown, RateLimited, Transient: as for a listing.
        """
        start, end = check_span(start, end)
        tally = BusyTally(f"google {self.calendar_id}")
        for piece_start, piece_end in pieces(start, end, FREEBUSY_SPAN):
            body = {"timeMin": _rfc3339_utc(piece_start), "timeMax": _rfc3339_utc(piece_end),
                    "timeZone": "UTC", "items": [{"id": self.calendar_id}]}
            reply = self.transport.one(self._free_busy_request(body))
            if not reply.ok:
                raise self._listing_error(reply)
            read_free_busy(reply.body, self.calendar_id, tally)
        return tally.result(log)

    def events_between(self, start: datetime, end: datetime) -> list[RemoteEvent]:
        """Every event overlapping [start, end), series expanded (``singleEvents=true``,
        ordered by start), every page followed, short and empty ones included."""
        start, end = check_span(start, end)
        params: JsonDict = {"timeMin": _rfc3339_utc(start), "timeMax": _rfc3339_utc(end),
                            "singleEvents": True, "orderBy": "startTime",
                            "showDeleted": False, "maxResults": PAGE_SIZE}
        events: list[RemoteEvent] = []
        for items, _body in self._listing_pages(self._window_request, params):
            for item in items:
                event = read_occurrence(item, owner=self.owner, default_tz=self.owner_tz,
                                        describe_guests=self.describe_guests)
                if not event.deleted:
                    events.append(event)
        return events

    # --- reading --------------------------------------------------------------------------

    def _read(self, resource: JsonDict) -> RemoteEvent:
        return read_event(resource, owner=self.owner, default_tz=self.owner_tz,
                          describe_guests=self.describe_guests)

    def _listing_error(self, reply: Reply) -> Exception:
        if reply.error_class is EventGone:
            # The calendar itself is unknown or not shared with this account: only an
            # admin can fix that, so the account waits for one.
            return AuthFailed(reason=f"calendar {self.calendar_id} is not found or not shared")
        return error_for(reply, event_id=self.calendar_id)

    def _list_request(self, params: JsonDict) -> Callable[[], Any]:
        return lambda: self.events.list(
            calendarId=self.calendar_id, singleEvents=False, maxResults=PAGE_SIZE, **params)

    def _free_busy_request(self, body: JsonDict) -> Callable[[], Any]:
        return lambda: self._resource("freebusy").query(body=body)

    def _window_request(self, params: JsonDict) -> Callable[[], Any]:
        return lambda: self.events.list(calendarId=self.calendar_id, **params)

    def _get_request(self, event_id: str) -> Callable[[], Any]:
        return lambda: self.events.get(calendarId=self.calendar_id, eventId=event_id)

    def _pages(self, params: JsonDict) -> tuple[list[RemoteEvent], str]:
        """Every item of a listing, read, and its ``nextSyncToken``; empty pages are followed.

        Each page is read into events as it arrives, so only one page of Google's JSON is
        held at a time, not the whole calendar's.
        """
        events: list[RemoteEvent] = []
        token = None
        for items, body in self._listing_pages(self._list_request, params):
            # Every item is read, whatever it is: one that is not an event is quarantined.
            events.extend(self._read(item) for item in items)
            token = body.get("nextSyncToken")  # only the last page has one
        if not token:
            raise Transient(reason="a listing ended without a sync token", status=200)
        return events, str(token)

    def _listing_pages(self, request: Callable[[JsonDict], Callable[[], Any]],
                       params: JsonDict) -> Iterator[tuple[list[Any], JsonDict]]:
        """Each page of an ``events.list`` (its items and its body), following
        ``nextPageToken`` through short and empty pages to the last one."""
        page_token: str | None = None
        for _ in range(MAX_PAGES):
            page = {**params, "pageToken": page_token} if page_token else params
            reply = self.transport.one(request(page))
            if not reply.ok:
                raise self._listing_error(reply)
            body = reply.body or {}
            items = body.get("items") or []
            if not isinstance(items, list):
                raise Transient(reason="a listing page's items are not a list", status=200)
            yield items, body
            page_token = body.get("nextPageToken")
            if not page_token:
                return
        raise Transient(reason=f"a listing did not end after {MAX_PAGES} pages", status=200)

    # --- writing --------------------------------------------------------------------------

    def _write(self, ops: list[WriteOp], done: dict[int, WriteResult]) -> None:
        attendees = self._current_attendees(ops, done)
        calls = [Call(i, self._request(op, attendees.get(i)), self._safe(op))
                 for i, op in enumerate(ops) if i not in done]
        if not calls or self._halted(ops, done):
            return
        replies = self.transport.run(calls)
        duplicates = []
        for call in calls:
            i, reply = int(call.key), replies[call.key]  # type: ignore[call-overload]
            if isinstance(ops[i], CreateOp) and reply.duplicate:
                duplicates.append(i)
            else:
                done[i] = self._result(ops[i], reply)
        if duplicates and not self._halted(ops, done):
            self._settle_duplicates(ops, duplicates, done)

    def _invited(self, invited: frozenset[str]) -> frozenset[str] | None:
        """The attendees to write; None when the account invites nobody (never any)."""
        return None if self.describe_guests else invited

    @staticmethod
    def _safe(op: WriteOp) -> bool:
        # Safe to send twice: an insert under our id, or a write conditional on an etag.
        return isinstance(op, CreateOp) or op.etag is not None

    def _patch_request(self, event_id: str, body: JsonDict, etag: str | None,
                       notify: bool) -> Callable[[], Any]:
        return lambda: _conditional(self.events.patch(
            calendarId=self.calendar_id, eventId=event_id, body=body,
            sendUpdates=_send_updates(notify)), etag)

    def _request(self, op: WriteOp, attendees: list[JsonDict] | None) -> Callable[[], Any]:
        if isinstance(op, CreateOp):
            body = {"id": event_id_for(op.marker, op.generation),
                    **event_body(op.projection, marker=op.marker,
                                 invited=self._invited(op.invited))}
            return lambda: self.events.insert(
                calendarId=self.calendar_id, body=body, sendUpdates=_send_updates(op.notify))
        if isinstance(op, UpdateOp):
            body = event_body(op.projection, op.fields, marker=op.marker, patch=True,
                              invited=self._invited(op.invited), theirs=op.theirs,
                              current_attendees=attendees or ())
            return self._patch_request(op.event_id, body, op.etag, op.notify)
        return lambda: _conditional(self.events.delete(
            calendarId=self.calendar_id, eventId=op.event_id,
            sendUpdates=_send_updates(op.notify)), op.etag)

    def _current_attendees(self, ops: list[WriteOp], done: dict[int, WriteResult]
                           ) -> dict[int, list[JsonDict]]:
        """Read the events whose guests change: a patch replaces the whole attendee list,
        and the answers of guests who stay must survive it. Described guests need none."""
        wanted = {i: op for i, op in enumerate(ops) if not self.describe_guests
                  and isinstance(op, UpdateOp) and "guests" in op.fields and not op.theirs}
        calls = [Call(i, self._get_request(op.event_id)) for i, op in wanted.items()]
        replies = self.transport.run(calls) if calls else {}
        out: dict[int, list[JsonDict]] = {}
        for i, op in wanted.items():
            reply = replies[i]
            body = reply.body or {}
            if not reply.ok:
                done[i] = WriteResult(op.key, error=error_for(reply, event_id=op.event_id))
            elif body.get("status") == "cancelled":
                done[i] = WriteResult(op.key, error=EventGone(event_id=op.event_id))
            elif op.etag and body.get("etag") != op.etag:
                done[i] = WriteResult(op.key, error=EtagMismatch(event_id=op.event_id))
            else:
                out[i] = [a for a in body.get("attendees") or [] if isinstance(a, dict)]
        return out

    def _result(self, op: WriteOp, reply: Reply) -> WriteResult:
        if isinstance(op, CreateOp):
            event_id = event_id_for(op.marker, op.generation)
        else:
            event_id = op.event_id
        if reply.ok:
            if isinstance(op, DeleteOp):
                return WriteResult(op.key)
            event = self._read(reply.body or {})
            if event.deleted:  # an unconditional patch of an event deleted meanwhile
                return WriteResult(op.key, error=EventGone(event_id=event_id))
            if event.event_id != event_id:
                # The answer is not the event written (a broken reply): read it back later.
                return WriteResult(op.key, error=Transient(
                    reason="Google's answer to a write is not the event", status=reply.status))
            return WriteResult(op.key, event)
        error = error_for(reply, event_id=event_id)
        if isinstance(op, CreateOp) and isinstance(error, EtagMismatch | EventGone):
            # A create has no event to re-read yet; the pending intent is settled by
            # find() next cycle instead.
            error = Transient(reason=f"a create met HTTP {reply.status}", status=reply.status)
        return WriteResult(op.key, error=error)

    def _settle_duplicates(self, ops: list[WriteOp], indexes: list[int],
                           done: dict[int, WriteResult]) -> None:
        """Our id is taken: adopt our live event, restore our cancelled one, refuse others.

        The event an earlier attempt created may hold older content (its answer was lost
        and the activity was edited since); the differing fields are then patched, on
        the condition of the etag just read, so the retried create's content wins.
        """
        ids = {i: event_id_for(ops[i].marker, ops[i].generation)  # type: ignore[union-attr]
               for i in indexes}
        replies = self.transport.run([Call(i, self._get_request(ids[i])) for i in indexes])
        patches: list[Call] = []
        for i in indexes:
            op, reply = ops[i], replies[i]
            assert isinstance(op, CreateOp)
            existing = reply.body or {}
            if not reply.ok:
                done[i] = self._result(op, reply)
                continue
            if read_marker(existing) != op.marker:
                done[i] = WriteResult(op.key, error=ItemRejected(
                    event_id=ids[i], reason="the chosen id holds an event syncd did not write"))
                continue
            cancelled = existing.get("status") == "cancelled"
            current = None if cancelled else self._read(existing)
            if current is None:
                fields = frozenset(FIELDS)
            elif current.projection is None:
                done[i] = WriteResult(op.key, current)  # unreadable: the engine quarantines
                continue
            else:
                fields = op.projection.diff(current.projection)
            if not fields:
                log.info("google: adopted event %s created by an earlier attempt", ids[i])
                done[i] = WriteResult(op.key, current)
                continue
            body = event_body(op.projection, fields, marker=op.marker, patch=True,
                              invited=self._invited(op.invited),
                              current_attendees=existing.get("attendees") or ())
            if cancelled:
                body["status"] = "confirmed"
            log.info("google: %s event %s created by an earlier attempt", "restoring"
                     if cancelled else "updating the adopted", ids[i])
            patches.append(Call(i, self._patch_request(ids[i], body, existing.get("etag"),
                                                       op.notify)))
        if patches and not self._halted(ops, done):
            for key, reply in self.transport.run(patches).items():
                i = int(key)  # type: ignore[call-overload]
                done[i] = self._result(ops[i], reply)

    @staticmethod
    def _halted(ops: list[WriteOp], done: dict[int, WriteResult]) -> bool:
        """After an account-wide refusal nothing else is sent; open ops share its error."""
        stop = next((r.error for r in done.values()
                     if isinstance(r.error, AccountWide)), None)
        if stop is None:
            return False
        for i, op in enumerate(ops):
            done.setdefault(i, WriteResult(op.key, error=stop))
        return True


def open_calendar(account: AccountConfig, context: Any) -> GoogleCalendar:
    """Registry entry point (see ``connectors.REGISTRY``)."""
    user = account.auth.get("subject") or account.owner
    per_minute = int(account.auth.get("requests_per_minute", 500))
    per_project = int(account.auth.get("project_requests_per_minute",
                                       PROJECT_REQUESTS_PER_MINUTE))
    # Google counts the quotas per user and per project, whichever replica sends: with
    # several, they spend from lines in the database.
    budget = budget_for(user, per_minute, project_of(account), per_project,
                        getattr(context, "limits", None))
    return GoogleCalendar(account, owner_tz=context.owner_tz, window=context.window,
                          credentials=context.credentials, budget=budget,
                          timeout=getattr(context, "timeout", 30.0))
