"""CalDAV connector (RFC 4791, RFC 6578, RFC 6638) on the ``caldav`` library.

The library finds the calendar. Every request after that is ours, sent through
:mod:`connectors.caldav_http` with the library's session and credentials, because what a
server answers is untrusted (failure mode 24): replies are capped and streamed, XML is
parsed safely, only hrefs inside the collection are read, objects the listing says are
over the size cap are never downloaded, a reply that spoils a whole calendar-multiget is
asked for again in halves until the one object is found, and every object from the
server is read in the sandbox (:mod:`connectors.sandbox`) under a CPU and memory budget.
A status that concerns one event (403 on a read-only event, 413, 415, 507) is that
event's failure; only a 401 is the account's.

Between runs the principal, calendar home and collection URL (and the auth scheme the
server asked for) are kept in the sync state (``ConnectorContext.discovery``), so a
``syncd sync`` from cron sends only the sync-collection of an idle calendar: nothing kept
is followed outside the configured server's origin, and a 404, a redirect or a refused
login forgets it. Credentials go with the first request (no 401 round trip) over TLS and
to loopback servers only, never in clear text across a network.

Creates are a PUT to a chosen href with ``If-None-Match: *``; updates and deletes carry
``If-Match``. Where the server offers WebDAV-Push the connector is
:class:`~connectors.base.Watchable` (:mod:`connectors.caldav_push`), and while it holds a
subscription every write of ours names it in ``Push-Dont-Notify``. Server differences
(providers.md C.2): an invalid sync token is a 403 on Radicale and a 412 on Xandikos, both
with DAV:valid-sync-token, and mean a full listing.
"""

from __future__ import annotations

import logging
import re
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, cast
from urllib.parse import unquote, urlsplit

from caldav.collection import CalendarSet
from caldav.davclient import DAVClient
from caldav.elements import dav
from caldav.lib import error as dav_error

from connectors import caldav_push
from connectors.base import (
    BusyInterval,
    Capabilities,
    ChangeSet,
    Channel,
    CreateOp,
    DeleteOp,
    KeptDiscovery,
    RemoteEvent,
    UpdateOp,
    WriteOp,
    WriteResult,
)
from connectors.busy import BusyTally, check_span, instants, overlaps
from connectors.caldav_busy import NoFreeBusy, calendar_query, free_busy
from connectors.caldav_http import (
    BadReply,
    DavTransport,
    Fetched,
    Member,
    Reply,
    ReplyTooLarge,
    chunks_by_size,
    href_of,
    multiget,
    status_error,
    sync_collection,
)
from connectors.caldav_options import DEFAULT_CALENDAR
from connectors.ical import MAX_OBJECT_BYTES, build_calendar, read_event, without_timezones
from connectors.sandbox import POOL, Overrun
from syncd.config_checks import is_loopback
from syncd.config_types import AccountConfig
from syncd.errors import (
    AuthFailed,
    CalendarMissing,
    ConnectorError,
    EtagMismatch,
    EventGone,
    ItemRejected,
    Transient,
    Unreachable,
)
from syncd.network import network_reason

log = logging.getLogger("syncd.caldav")

DEFAULT_CALENDAR_NAME = "CRM activities"
ICS = {"Content-Type": "text/calendar; charset=utf-8"}
SYNC_PREFIX = "sync:"
MULTIGET_CHUNK = 100  # objects per calendar-multiget REPORT: bounded replies and memory
MULTIGET_BYTES = 8 * 1024 * 1024  # bytes the listing announced, per calendar-multiget
MAX_REPLY_BYTES = 16 * 1024 * 1024  # one REPORT's reply: 8 MiB of objects, escaped
SINGLE_REPLY_BYTES = 4 * MAX_OBJECT_BYTES + 64 * 1024  # the reply for one object
WRITTEN_CACHE = 20_000  # our own recent writes remembered, a few MB at most
REDIRECTS = frozenset({301, 302, 303, 307, 308})


def _read_error(exc: dav_error.DAVError, url: str) -> ConnectorError:
    """A failed read of the collection: a 4xx means nothing calendar-like is there (a
    removed calendar, a typo, or another server on that port); the rest may pass."""
    # The library fills ``status`` for some errors only; its message starts with it.
    said = re.match(r"\s*(\d{3})\b", f"{exc.reason} {exc.url}".replace("no reason", ""))
    status = exc.status or (int(said.group(1)) if said else None) or (
        404 if isinstance(exc, dav_error.NotFoundError) else None)
    # 501: the method is unknown there, so that is no WebDAV server at all.
    if status is not None and ((400 <= status < 500 and status != 429) or status == 501):
        return CalendarMissing(calendar=url, found=())
    return Transient(reason=f"reading the calendar failed: {type(exc).__name__}", status=status)


class CalDAVCalendar:
    """One calendar collection on a CalDAV server."""

    capabilities = Capabilities(max_batch=25)
    push_kind = caldav_push.PUSH_KIND
    #: Our writes carry Push-Dont-Notify: silence after them says nothing of the channel.
    notifies_own_writes = False

    def __init__(self, account: AccountConfig, *, owner_tz: str, timeout: int = 30,
                 read_only: bool = False,
                 before_request: Callable[[], None] | None = None,
                 discovery: KeptDiscovery | None = None) -> None:
        """``read_only`` (a dry run): a missing calendar is never made, only described.
        ``before_request`` is called before every request (the library's and ours) and
        raises to stop it (see :class:`connectors.ConnectorContext`). ``discovery`` keeps
        what was found about the server between runs."""
        auth = account.auth
        password = auth["password"].resolve() if auth.get("password") else None
        if password is None and auth.get("username"):
            # A user name alone still has to be sent (as Basic auth with an empty password):
            # servers without authentication, like the embedded one, find the user's
            # calendars from it.
            password = ""
        self.account = account
        self.owner_tz = owner_tz
        self.client = DAVClient(
            url=auth["url"], username=auth.get("username"), password=password,
            ssl_verify_cert=auth.get("ca_bundle", True), timeout=timeout,
        )
        if before_request is not None:
            check = before_request

            def guard(request: Any, **_: Any) -> Any:
                check()
                return request

            self.client.session.hooks["pre_request"].append(guard)
        self.transport = DavTransport(self.client, before_request=before_request)
        self._calendar: Any = None
        self.discovery = discovery
        self._kept = False  # the calendar in use came from ``discovery``, not this run
        self._sent_first = False  # Basic credentials go with every request, unasked
        self._hint: dict[str, str] | None = None  # kept URLs to start the next lookup from
        self._found: dict[str, str] | None = None  # what this connector kept or recalled
        self.read_only = read_only
        self._absent = False  # read-only, and the calendar a real sync would make is not there
        # etag -> the event as we wrote it, until its echo is listed (bounded: the
        # connector lives across cycles)
        self._written: OrderedDict[str, RemoteEvent] = OrderedDict()
        # our WebDAV-Push subscription's URL, named in Push-Dont-Notify on every write
        self.subscription: str | None = None
        # False once the server refused a free-busy-query: busy time is read from events
        self._free_busy_query = True

    # --- the collection -----------------------------------------------------------------

    @property
    def calendar(self) -> Any:
        """The collection, found on first use (and made only when the account says so)."""
        if self._calendar is None:
            self._calendar = self._resolve_calendar()
        return self._calendar

    def _resolve_calendar(self) -> Any:
        """The calendar as kept from an earlier run (no request), else found anew."""
        kept, self._hint = self._hint or self._recall(), None
        self._send_credentials_first(kept.get("auth") if kept else None)
        if kept and kept.get("calendar"):
            self._kept, self._found = True, kept
            return self.client.calendar(url=kept["calendar"])
        try:
            cal = self._discover(kept)
        except AuthFailed:
            if self.client.auth is None or not self._sent_first:
                raise
            # Perhaps the server wants another scheme than Basic: let it say which.
            self.client.auth, self._sent_first = None, False
            cal = self._discover(kept)
        self._keep(cal)
        return cal

    def _recall(self) -> dict[str, str] | None:
        """What an earlier run found, when it is still usable: every URL on the configured
        server's origin (a calendar given as a URL: exactly that URL)."""
        found = self.discovery.recall() if self.discovery is not None else None
        if not found:
            return None
        wanted = self.account.calendar or ""
        by_url = wanted.startswith(("http://", "https://"))
        origin = _origin(self.account.auth["url"])
        kept = {}
        for name in ("calendar", "principal", "home"):
            url = found.get(name)
            if url and origin is not None and _origin(url) == origin and (
                    name != "calendar" or not by_url or url.rstrip("/") == wanted.rstrip("/")):
                kept[name] = url
        if found.get("auth") in ("basic", "digest", "bearer", "none"):
            kept["auth"] = found["auth"]
        return kept or None

    def _keep(self, cal: Any) -> None:
        """Keep what this run found, for the next one (not a calendar a dry run lacks)."""
        if self.discovery is None or self._absent:
            return
        self._found = found = {"calendar": str(cal.url), "auth": _scheme(self.client.auth)}
        principal = getattr(self.client, "_principal", None)
        if principal is not None:
            found["principal"] = str(principal.url)
        if not (self.account.calendar or "").startswith(("http://", "https://")):
            # A calendar is a member of its calendar home (RFC 4791 4.2).
            found["home"] = str(cal.url).rstrip("/").rsplit("/", 1)[0] + "/"
        origin = _origin(self.account.auth["url"])
        self.discovery.keep({k: v for k, v in found.items()
                             if k == "auth" or (origin is not None and _origin(v) == origin)})

    def _forget(self, hint: Mapping[str, str] | None = None) -> None:
        """The kept calendar led nowhere (or the login was refused): find it anew, from
        ``hint`` (the kept principal and calendar home) when given."""
        if self.discovery is not None:
            self.discovery.forget()
        self._calendar, self._kept = None, False
        self._hint = {k: v for k, v in (hint or {}).items() if k != "calendar"} or None

    def _send_credentials_first(self, scheme: str | None) -> None:
        """Send Basic credentials with every request, without waiting for a 401, when
        the connection is safe for them (TLS, or a loopback server) and the server did
        not ask for another scheme last time."""
        if self.client.auth is not None or scheme not in (None, "basic"):
            return
        if self.client.username is None or self.client.password is None:
            return
        if may_send_first(self.account.auth["url"]):
            self.client.auth_type = "basic"
            self.client.build_auth_object()
            self.client.auth_type = None  # a later 401 may still negotiate another scheme
            self._sent_first = True

    def _discover(self, kept: Mapping[str, str] | None) -> Any:
        """Find the configured calendar; only reads, unless ``create_calendar`` is set.

        A calendar that is not there is an error naming it: a typo in ``calendar`` must not
        silently make a new, empty calendar. ``create_calendar`` (the embedded server's
        accounts carry it) makes a missing one, except in a dry run, which sends only
        reads and treats the calendar it would make as empty.

        Raises:
            CalendarMissing: the calendar does not exist and may not be made.
            AuthFailed: the server refused the credentials.
            Transient: the server could not be asked.
        """
        wanted = self.account.calendar
        by_url = bool(wanted and wanted.startswith(("http://", "https://")))
        if kept and kept.get("home") and not by_url:
            # The collection moved or went, but the calendar home is known: one listing
            # instead of the principal lookup (and that lookup when the home moved too).
            try:
                return self._find(kept["home"])
            except (CalendarMissing, Transient):
                pass
        return self._find(None)

    def _find(self, home: str | None) -> Any:
        """:meth:`_discover` in the kept calendar ``home`` (only finds), or from the
        server's root."""
        wanted = self.account.calendar
        try:
            if wanted and wanted.startswith(("http://", "https://")):
                cal = self.client.calendar(url=wanted)
                if not _is_calendar(cal):
                    raise CalendarMissing(calendar=wanted, found=())
                return cal
            name = wanted or DEFAULT_CALENDAR
            principal = None if home is not None else self.client.principal()
            where: Any = CalendarSet(self.client, url=home) if principal is None else principal
            found = where.calendars()
            for cal in found:
                if name in (cal.get_display_name(), _collection_name(cal)):
                    return cal
            if principal is None or not self.account.auth.get("create_calendar"):
                raise CalendarMissing(calendar=name,
                                      found=tuple(sorted(_collection_name(c) for c in found)))
            if self.read_only:
                self._absent = True
                return principal.calendar_home_set.calendar(cal_id=name)  # no request
            return principal.make_calendar(
                name=DEFAULT_CALENDAR_NAME if wanted is None else name, cal_id=name
            )
        except dav_error.AuthorizationError as exc:
            raise AuthFailed(reason=f"HTTP {exc.status or 401} {exc.reason}") from None
        except dav_error.DAVError as exc:
            raise _read_error(exc, self.account.calendar or self.account.auth["url"]) from None
        except OSError as exc:
            raise Unreachable(url=self.account.auth["url"], reason=network_reason(exc)) from None

    @property
    def base_url(self) -> str:
        return str(self.calendar.url).rstrip("/") + "/"

    def _url(self, event_id: str) -> str:
        return href_of(self.base_url, event_id)

    def href_for(self, marker: str, generation: int) -> str:
        # The href and UID carry the generation: a re-created event never reuses the name
        # of one the server may still hold in a trash bin (failure mode 2).
        return _event_id(self._url(f"{marker}-{generation}.ics"))

    # --- protocol -----------------------------------------------------------------------

    def changes(self, cursor: str | None) -> ChangeSet:
        if self.calendar is not None and self._absent:
            return ChangeSet([], None, full=True)  # a dry run: the calendar is yet to be made
        token = cursor[len(SYNC_PREFIX):] if cursor and cursor.startswith(SYNC_PREFIX) else None
        listing = self._listing(token)
        if listing.outside:
            log.warning("%s: ignored %d href(s) outside the calendar", self.account.name,
                        listing.outside)
        deleted = set(listing.removed)
        events: list[RemoteEvent] = []
        to_load: list[Member] = []
        for member in listing.members:
            if member.path in deleted:
                continue  # some servers also list a removed member among the changed ones
            # An echo is seen once, in the listing after our write: then it is forgotten,
            # so the cache holds what is in flight, not everything written today.
            ours = self._written.pop(_bare(member.etag), None) if member.etag else None
            if ours is not None and ours.event_id == member.path:
                events.append(ours)  # the echo of our own write: nothing to download
            elif member.size is not None and member.size > MAX_OBJECT_BYTES:
                events.append(RemoteEvent(member.path, member.etag, problem=(
                    f"object is {member.size} bytes, over the {MAX_OBJECT_BYTES} byte cap")))
            else:
                to_load.append(member)
        events.extend(_one_event_per_uid(self._load(to_load)))
        if token is not None:
            events.extend(RemoteEvent(path, deleted=True) for path in sorted(deleted))
        return ChangeSet(events, SYNC_PREFIX + listing.token, full=token is None,
                         outside=listing.outside)

    def _listing(self, token: str | None) -> Any:
        """The sync-collection of the calendar; a kept calendar URL that is gone (404,
        410) or moved (a redirect) is forgotten and the calendar found anew, once; a
        refused login forgets it too."""
        try:
            return sync_collection(self.transport, self.base_url, token)
        except (CalendarMissing, Transient) as exc:
            moved = isinstance(exc, Transient) and getattr(exc, "status", None) in REDIRECTS
            if not self._kept or not (moved or isinstance(exc, CalendarMissing)):
                raise
            log.info("%s: the kept calendar URL answered %s; finding the calendar again",
                     self.account.name, getattr(exc, "status", None) or "not found")
        except AuthFailed:
            if self._kept:
                self._forget()
            raise
        self._forget(hint=self._found)
        return sync_collection(self.transport, self.base_url, token)

    def _fetch(self, paths: Sequence[str]) -> list[Fetched]:
        """The objects at ``paths`` by calendar-multiget. A reply that cannot be used as a
        whole (too large, not XML) is asked for again in halves, down to single objects,
        so one poisoned object is set aside and the rest are read.

        Raises:
            Transient: the REPORT failed.
        """
        try:
            return multiget(self.transport, self.base_url, paths, max_object=MAX_OBJECT_BYTES,
                            max_bytes=MAX_REPLY_BYTES if len(paths) > 1 else SINGLE_REPLY_BYTES)
        except (BadReply, ReplyTooLarge) as exc:
            if len(paths) > 1:
                middle = len(paths) // 2
                return self._fetch(paths[:middle]) + self._fetch(paths[middle:])
            if isinstance(exc, ReplyTooLarge):
                return [Fetched(paths[0], None, None, status=0, problem=_reply_problem(exc))]
            return [self._fetch_alone(paths[0], exc)]

    def _fetch_alone(self, path: str, why: BadReply) -> Fetched:
        """One object whose multiget reply is not XML: a GET's body is not XML, so an
        object that only spoils XML (a control byte a server copied into its reply) is
        still read, and only an object that cannot be had either way is set aside."""
        try:
            reply = self._request(self._url(path), "GET")
        except ReplyTooLarge as exc:
            return Fetched(path, None, None, status=0, problem=_reply_problem(exc))
        if reply.status == 200:
            return Fetched(path, reply.headers.get("ETag"), reply.body)
        return Fetched(path, None, None, reply.status, problem=(
            f"{_reply_problem(why)}, and a GET answered HTTP {reply.status}"))

    def _load(self, members: Sequence[Member]) -> list[RemoteEvent]:
        """Download changed objects with calendar-multiget, in chunks bounded in number and
        in the bytes the listing announced, and read each chunk in the sandbox before the
        next is fetched, so memory holds one chunk's objects at a time."""
        events: list[RemoteEvent] = []
        for chunk in chunks_by_size(members, count=MULTIGET_CHUNK, total=MULTIGET_BYTES):
            fetched = self._fetch([m.path for m in chunk])
            events += self._read([f for f in fetched if f.data is not None])
            # An object gone since the listing (404) is left out: the next listing
            # reports its removal. Any other failure is that object's problem.
            events += [RemoteEvent(f.path, f.etag, problem=f.problem or (
                "the server sent no data" if f.status == 200 else
                f"the server could not send it (HTTP {f.status})"))
                for f in fetched if f.data is None and (f.problem or f.status != 404)]
        return events

    def _read(self, objects: Sequence[Fetched]) -> list[RemoteEvent]:
        """Map objects from the server to events, each within the per-item budget."""
        if not objects:
            return []
        results = POOL.map("ical.read_event", [(o.path, o.etag, o.data) for o in objects],
                           default_tz=self.owner_tz, owner=self.account.owner)
        return [r if isinstance(r, RemoteEvent) else
                RemoteEvent(o.path, o.etag, problem=cast(Overrun, r).reason)
                for o, r in zip(objects, results, strict=True)]

    def _remember(self, event: RemoteEvent) -> RemoteEvent:
        """Keep what we just wrote, so its echo in the next listing costs no download."""
        if event.etag:
            self._written[_bare(event.etag)] = event
            self._written.move_to_end(_bare(event.etag))
            while len(self._written) > WRITTEN_CACHE:
                self._written.popitem(last=False)
        return event

    def get(self, event_id: str) -> RemoteEvent | None:
        try:
            response = self._request(self._url(event_id), "GET",
                                     max_bytes=SINGLE_REPLY_BYTES)
        except ReplyTooLarge:
            return RemoteEvent(event_id, problem=_reply_problem(ReplyTooLarge()))
        if response.status in (404, 410):
            return None
        if response.status >= 400:
            raise status_error(response.status, event_id, response.headers)
        return self._read([Fetched(event_id, response.headers.get("ETag"), response.body)])[0]

    def find(self, marker: str, generation: int) -> RemoteEvent | None:
        event = self.get(self.href_for(marker, generation))
        return event if event is not None and event.marker == marker else None

    def write(self, ops: Sequence[WriteOp]) -> list[WriteResult]:
        stored = self._stored_objects([op for op in ops if isinstance(op, UpdateOp)])
        results = []
        for op in ops:
            try:
                results.append(self._write(op, stored))
            except ConnectorError as exc:
                if isinstance(exc, AuthFailed):
                    raise
                results.append(WriteResult(op.key, error=exc))
        return results

    def close(self) -> None:
        self.transport.close()
        self.client.close()

    # --- push (WebDAV-Push) -------------------------------------------------------------

    def watch(self, address: str, channel_id: str, token: str,
              expires_at: datetime) -> Channel:
        """Subscribe to the calendar's changes (see :func:`caldav_push.register`)."""
        channel = caldav_push.register(self.transport, self.base_url, address, channel_id,
                                       token, expires_at)
        self.subscription = channel.resource_id
        return channel

    def renew(self, channel: Channel, address: str, channel_id: str, token: str,
              expires_at: datetime) -> Channel:
        """A new subscription (the old one's push resource carries a token syncd no longer
        knows); the caller removes the old one once the new one is saved."""
        return self.watch(address, channel_id, token, expires_at)

    def unwatch(self, channel: Channel) -> None:
        caldav_push.unregister(self.transport, self.base_url, channel.resource_id)
        if self.subscription == channel.resource_id:
            self.subscription = None

    def resume(self, channel: Channel | None) -> None:
        """The account's stored channel (after a restart, a new connector does not know
        it): its subscription is named in Push-Dont-Notify from now on. None: no channel."""
        self.subscription = channel.resource_id or None if channel is not None else None

    def _quiet(self, headers: dict[str, str]) -> dict[str, str]:
        """``headers`` of a write of ours, with Push-Dont-Notify when we are subscribed."""
        if self.subscription:
            return {**headers, **caldav_push.dont_notify(self.subscription)}
        return headers

    # --- free/busy and the agenda (FreeBusyReadable, WindowReadable) ---------------------

    def busy_between(self, start: datetime, end: datetime) -> list[BusyInterval]:
        """A ``free-busy-query`` REPORT; where the server refuses it (or answers it with
        no VFREEBUSY), busy time computed from a ``calendar-query`` of the span instead,
        and the server is not asked the free-busy-query again by this connector.

        Raises:
            AuthFailed, CalendarMissing, RateLimited, Transient: as for a listing.
        """
        start, end = check_span(start, end)
        if self.calendar is not None and self._absent:
            return []  # a dry run: the calendar is yet to be made
        if self._free_busy_query:
            tally = BusyTally(f"caldav {self.account.name}")
            try:
                free_busy(self.transport, self.base_url, start, end, tally)
                return tally.result(log)
            except NoFreeBusy as exc:
                log.info("%s: no free-busy-query (%s); reading the events instead",
                         self.account.name, exc.args[0])
                self._free_busy_query = False
        tally = BusyTally(f"caldav {self.account.name}")
        for event, kind in self._window(start, end):
            tally.item()
            if event.problem is not None:
                tally.skip("an event that could not be read")
            elif kind is not None and event.projection is not None:
                first, last = instants(event.projection.when, self.owner_tz)
                tally.add(first, last, kind)
        return tally.result(log)

    def events_between(self, start: datetime, end: datetime) -> list[RemoteEvent]:
        """Every event overlapping [start, end): a ``calendar-query`` with a time-range,
        recurrences expanded by the server (cancelled ones left out), sorted by start."""
        start, end = check_span(start, end)
        if self.calendar is not None and self._absent:
            return []
        return [event for event, _kind in self._window(start, end)]

    def _window(self, start: datetime, end: datetime) -> list[tuple[RemoteEvent, str | None]]:
        """The occurrences in [start, end) with their busy kinds, read in the sandbox. The
        server's filter is not trusted: what it sends outside the span is dropped."""
        objects, outside = calendar_query(self.transport, self.base_url, start, end)
        if outside:
            log.warning("%s: ignored %d href(s) outside the calendar", self.account.name,
                        outside)
        readable = [o for o in objects if o.data is not None]
        found: list[tuple[RemoteEvent, str | None]] = [
            (RemoteEvent(o.path, o.etag, problem=o.problem or "no data"), None)
            for o in objects if o.data is None]
        results = POOL.map("ical.read_instances", [(o.path, o.etag, o.data) for o in readable],
                           default_tz=self.owner_tz, owner=self.account.owner) \
            if readable else []
        for obj, result in zip(readable, results, strict=True):
            if isinstance(result, Overrun):
                found.append((RemoteEvent(obj.path, obj.etag, problem=result.reason), None))
            else:
                found.extend(result)
        kept = [(e, k) for e, k in found if e.projection is None or
                overlaps(instants(e.projection.when, self.owner_tz), start, end)]
        return sorted(kept, key=lambda pair: _sort_key(pair[0], self.owner_tz))

    # --- writes -------------------------------------------------------------------------

    def _request(self, url: str, method: str, body: bytes = b"",
                 headers: dict[str, str] | None = None, *,
                 max_bytes: int = SINGLE_REPLY_BYTES) -> Reply:
        """One request through the bounded transport; a 401 is the account's, any other
        status is the caller's to judge (a 403 on one event is that event's problem).

        Raises:
            AuthFailed: the server refused the credentials.
            Transient: the network failed.
            ReplyTooLarge: the reply passed ``max_bytes``.
        """
        reply = self.transport.send(method, url, body, headers, max_bytes=max_bytes)
        if reply.status == 401:
            raise AuthFailed(reason="HTTP 401")
        return reply

    def _stored(self, event_id: str, response: Reply, body: bytes, *, ours: bool
                ) -> RemoteEvent:
        """The event as stored after a write; re-read when the server gave no strong ETag.

        ``ours``: every byte of ``body`` is syncd's (a create), so it is read here, without
        its VTIMEZONE blocks; an update carries the server's object and is read in the
        sandbox like anything else from the server.
        """
        etag = response.headers.get("ETag")
        if not etag or etag.startswith("W/"):
            # A server that rewrites what we sent must not return a strong ETag
            # (RFC 4791 5.3.4): read back what it holds, so its rewrite is our base.
            stored = self.get(event_id)
            if stored is None:
                raise EventGone(event_id=event_id)
            return stored
        # A strong ETag: the server holds our bytes as sent (RFC 4791 5.3.4).
        if ours:
            event = read_event(event_id, etag, without_timezones(body),
                               default_tz=self.owner_tz, owner=self.account.owner)
        else:
            event = self._read([Fetched(event_id, etag, body)])[0]
        return self._remember(event)

    def _stored_objects(self, updates: Sequence[UpdateOp]) -> dict[str, tuple[str | None, bytes]]:
        """The stored objects of several updates, by event id, with one calendar-multiget.

        An update rewrites only its fields in the object as stored, so it needs the object
        first; one REPORT for the batch instead of a GET each halves a change cycle's
        requests. Whatever this does not return (a single update, a server error, an
        object gone) is read by its own GET, which reports the failure precisely.
        """
        if len(updates) < 2:
            return {}
        try:
            found = self._fetch([op.event_id for op in updates])
        except Transient:
            return {}
        return {f.path: (f.etag, f.data) for f in found if f.data}

    def _write(self, op: WriteOp, stored: dict[str, tuple[str | None, bytes]]) -> WriteResult:
        if isinstance(op, CreateOp):
            return self._create(op)
        if isinstance(op, UpdateOp):
            return self._update(op, stored.get(op.event_id))
        return self._delete(op)

    def _create(self, op: CreateOp) -> WriteResult:
        event_id = self.href_for(op.marker, op.generation)
        uid = f"{op.marker}-{op.generation}@syncd"
        body = build_calendar(op.projection, uid=uid, marker=op.marker,
                              organizer=self.account.owner, invited=op.invited)
        response = self._request(self._url(event_id), "PUT", body,
                                 self._quiet({**ICS, "If-None-Match": "*"}))
        if response.status in (200, 201, 204):
            return WriteResult(op.key, self._stored(event_id, response, body, ours=True))
        if response.status == 412:
            # The href exists: an earlier attempt of this very create got through.
            existing = self.get(event_id)
            if existing is not None and existing.marker == op.marker:
                return WriteResult(op.key, existing)
            return WriteResult(op.key, error=ItemRejected(
                event_id=event_id, reason="the chosen href holds an event syncd did not write"))
        return WriteResult(op.key, error=status_error(response.status, event_id,
                                                      response.headers))

    def _update(self, op: UpdateOp, stored: tuple[str | None, bytes] | None = None
                ) -> WriteResult:
        """Rewrite the named fields of the stored object (``stored``: etag and data, when
        already fetched), conditional on the etag the engine planned against."""
        if stored is None:
            try:
                current = self._request(self._url(op.event_id), "GET")
            except ReplyTooLarge as exc:
                return WriteResult(op.key, error=ItemRejected(
                    event_id=op.event_id, reason=_reply_problem(exc)))
            if current.status >= 400:
                return WriteResult(op.key, error=status_error(current.status, op.event_id,
                                                              current.headers))
            stored = current.headers.get("ETag"), current.body
        etag, data = stored
        if op.etag is not None and etag is not None and _bare(etag) != _bare(op.etag):
            return WriteResult(op.key, error=EtagMismatch(event_id=op.event_id))
        # The stored object is the server's: it is rewritten in the sandbox too.
        [body] = POOL.map("ical.update_calendar", [(data, op.projection, op.fields)],
                          marker=op.marker, organizer=self.account.owner,
                          invited=op.invited, theirs=op.theirs)
        if isinstance(body, Overrun):
            return WriteResult(op.key, error=ItemRejected(event_id=op.event_id,
                                                          reason=body.reason))
        response = self._request(self._url(op.event_id), "PUT", body,
                                 self._quiet({**ICS, "If-Match": op.etag or etag or "*"}))
        if response.status in (200, 201, 204):
            return WriteResult(op.key, self._stored(op.event_id, response, body, ours=False))
        return WriteResult(op.key, error=status_error(response.status, op.event_id,
                                                      response.headers))

    def _delete(self, op: DeleteOp) -> WriteResult:
        headers = {"If-Match": op.etag} if op.etag else {}
        response = self._request(self._url(op.event_id), "DELETE", b"", self._quiet(headers))
        if response.status in (200, 204):
            return WriteResult(op.key)
        return WriteResult(op.key, error=status_error(response.status, op.event_id,
                                                      response.headers))


def may_send_first(url: str) -> bool:
    """Whether credentials may go with a request before the server asks for them: over
    TLS, or to a loopback address (the embedded server, a test server). Never over plain
    http:// to another host, where anyone on the path would read them."""
    parts = urlsplit(url)
    return parts.scheme == "https" or (parts.scheme == "http"
                                       and is_loopback(parts.hostname or ""))


def _origin(url: str) -> tuple[str, str, int | None] | None:
    """(scheme, host, port) of ``url``, default ports filled in; None when it is no
    http(s) URL."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return None
    return parts.scheme, parts.hostname.lower(), port or (443 if parts.scheme == "https"
                                                           else 80)


def _scheme(auth: Any) -> str:
    """The name of the auth scheme the library settled on ("none" without one)."""
    name = type(auth).__name__.lower() if auth is not None else ""
    return next((s for s in ("basic", "digest", "bearer") if s in name), "none")


def _collection_name(cal: Any) -> str:
    """The last path segment of a collection's URL (its id on the server)."""
    return unquote(str(cal.url).rstrip("/").rsplit("/", 1)[-1])


def _is_calendar(cal: Any) -> bool:
    """Whether ``cal``'s URL is a calendar collection on the server (one PROPFIND)."""
    try:
        props = cal.get_properties([dav.ResourceType()])
    except dav_error.NotFoundError:
        return False
    kinds = props.get("{DAV:}resourcetype") or []
    kinds = [kinds] if isinstance(kinds, str) else kinds
    return "{urn:ietf:params:xml:ns:caldav}calendar" in kinds


def _reply_problem(exc: BadReply | ReplyTooLarge) -> str:
    """The quarantine reason of an object whose own reply could not be used."""
    if isinstance(exc, ReplyTooLarge):
        return f"the server's reply for it is over the {SINGLE_REPLY_BYTES} byte cap"
    return f"the server's reply for it is unusable: {exc.args[0] if exc.args else 'bad XML'}"


def _one_event_per_uid(events: Sequence[RemoteEvent]) -> list[RemoteEvent]:
    """Set aside every event that repeats the UID of an earlier one in the listing.

    A calendar holds one object per UID (RFC 4791 5.3.2.1); a server that lets a second
    href carry the same UID would otherwise have it imported twice. An event carrying
    syncd's marker comes first: it is the one already synced, and a copy whose href
    happens to sort before it must not displace it in a full listing.
    """
    first: dict[str, str] = {}
    for event in sorted(events, key=lambda e: (e.marker is None, e.event_id)):
        if event.ical_uid and event.projection is not None:
            first.setdefault(event.ical_uid, event.event_id)
    kept = []
    for event in sorted(events, key=lambda e: e.event_id):
        holder = (first[event.ical_uid]
                  if event.ical_uid and event.projection is not None else event.event_id)
        if holder != event.event_id:
            event = RemoteEvent(event.event_id, event.etag, problem=(
                f"the same UID as {holder}: one calendar holds one event per UID"))
        kept.append(event)
    return kept


def _sort_key(event: RemoteEvent, owner_tz: str) -> tuple[datetime, str]:
    if event.projection is None:
        return datetime.min.replace(tzinfo=UTC), event.event_id
    return instants(event.projection.when, owner_tz)[0], event.event_id


def _event_id(url: object) -> str:
    """An event's id: its decoded path. Servers and the library disagree on whether to
    percent-encode characters such as "@" in hrefs, so ids are compared decoded."""
    return unquote(urlsplit(str(url)).path)


def _bare(etag: str) -> str:
    return re.sub(r'^W/', "", etag).strip('"')


def open_calendar(account: AccountConfig, context: Any) -> CalDAVCalendar:
    """Registry entry point (see ``connectors.REGISTRY``)."""
    return CalDAVCalendar(account, owner_tz=context.owner_tz,
                          read_only=getattr(context, "read_only", False),
                          before_request=getattr(context, "before_request", None),
                          discovery=getattr(context, "discovery", None),
                          timeout=int(getattr(context, "timeout", 30)))
