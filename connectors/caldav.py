"""CalDAV connector (RFC 4791, RFC 6578, RFC 6638) on the ``caldav`` library.

Reads use the library (sync-collection, multiget). Writes are sent as raw requests
through the library's client so that every header is ours: creates are a PUT to a
chosen href with ``If-None-Match: *`` and updates and deletes carry ``If-Match``. The
library's own ``no_overwrite`` checks before it writes, which is not atomic.

Server differences handled here (providers.md C.2): an invalid sync token is a 403 on
Radicale and a 412 on Xandikos; both, and the library's ``fake-`` fallback token, mean a
full listing.
"""

from __future__ import annotations

import logging
import re
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any, cast
from urllib.parse import quote, unquote, urljoin, urlsplit

from caldav.davclient import DAVClient
from caldav.elements import dav
from caldav.lib import error as dav_error
from caldav.lib.url import URL

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
from connectors.ical import build_calendar, read_event, update_calendar, without_timezones
from syncd.config import AccountConfig
from syncd.errors import (
    AuthFailed,
    CalendarMissing,
    ConnectorError,
    CursorExpired,
    EtagMismatch,
    EventGone,
    ItemRejected,
    RateLimited,
    Transient,
)

log = logging.getLogger("syncd.caldav")

DEFAULT_CALENDAR = "crm"
DEFAULT_CALENDAR_NAME = "CRM activities"
ICS = {"Content-Type": "text/calendar; charset=utf-8"}
SYNC_PREFIX = "sync:"
MULTIGET_CHUNK = 100  # objects per calendar-multiget REPORT: bounded replies and memory
WRITTEN_CACHE = 20_000  # our own recent writes remembered, a few MB at most
_VALID_TOKEN = "{DAV:}valid-sync-token"


def _status_error(status: int, event_id: str, headers: Any = None) -> ConnectorError:
    """Map a failed write's HTTP status to what the engine does next."""
    if status == 412:
        return EtagMismatch(event_id=event_id)
    if status in (404, 410):
        return EventGone(event_id=event_id)
    if status == 401:
        return AuthFailed(reason=f"HTTP {status}")
    if status == 429 or (status == 503 and headers and headers.get("Retry-After")):
        retry = headers.get("Retry-After") if headers else None
        return RateLimited(retry_after=float(retry) if retry and retry.isdigit() else 30.0,
                           reason=f"HTTP {status}")
    if status >= 500:
        return Transient(reason=f"HTTP {status}", status=status)
    return ItemRejected(event_id=event_id, reason=f"the server answered HTTP {status}")


class CalDAVCalendar:
    """One calendar collection on a CalDAV server."""

    capabilities = Capabilities(provider="caldav", max_batch=25)

    def __init__(self, account: AccountConfig, *, owner_tz: str, timeout: int = 30,
                 read_only: bool = False) -> None:
        """``read_only`` (a dry run): a missing calendar is never made, only described."""
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
        self._calendar: Any = None
        self.read_only = read_only
        self._absent = False  # read-only, and the calendar a real sync would make is not there
        # etag -> the event as we wrote it, until its echo is listed (bounded: the
        # connector lives across cycles)
        self._written: OrderedDict[str, RemoteEvent] = OrderedDict()

    # --- the collection -----------------------------------------------------------------

    @property
    def calendar(self) -> Any:
        """The collection, found on first use (and made only when the account says so)."""
        if self._calendar is None:
            self._calendar = self._resolve_calendar()
        return self._calendar

    def _resolve_calendar(self) -> Any:
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
        try:
            if wanted and wanted.startswith(("http://", "https://")):
                cal = self.client.calendar(url=wanted)
                if not _is_calendar(cal):
                    raise CalendarMissing(calendar=wanted, found=())
                return cal
            principal = self.client.principal()
            name = wanted or DEFAULT_CALENDAR
            found = principal.calendars()
            for cal in found:
                if name in (cal.get_display_name(), _collection_name(cal)):
                    return cal
            if not self.account.auth.get("create_calendar"):
                raise CalendarMissing(calendar=name,
                                      found=tuple(sorted(_collection_name(c) for c in found)))
            if self.read_only:
                self._absent = True
                return principal.calendar_home_set.calendar(cal_id=name)  # no request
            return principal.make_calendar(
                name=DEFAULT_CALENDAR_NAME if wanted is None else name, cal_id=name
            )
        except dav_error.AuthorizationError as exc:
            raise AuthFailed(reason=f"the server refused the credentials ({exc.reason})") from None
        except dav_error.DAVError as exc:
            raise Transient(reason=f"cannot open the calendar: {type(exc).__name__}") from None
        except OSError as exc:
            raise Transient(reason=f"network: {type(exc).__name__}") from None

    @property
    def base_url(self) -> str:
        return str(self.calendar.url).rstrip("/") + "/"

    def _url(self, event_id: str) -> str:
        return urljoin(self.base_url, quote(event_id, safe="/@:+,;=!$&'()*~"))

    def href_for(self, marker: str, generation: int) -> str:
        # The href and UID carry the generation: a re-created event never reuses the name
        # of one the server may still hold in a trash bin (failure mode 2).
        return _event_id(self._url(f"{marker}-{generation}.ics"))

    # --- protocol -----------------------------------------------------------------------

    def check(self) -> None:
        _ = self.calendar

    def changes(self, cursor: str | None) -> ChangeSet:
        if self.calendar is not None and self._absent:
            return ChangeSet([], None, full=True)  # a dry run: the calendar is yet to be made
        token = cursor[len(SYNC_PREFIX):] if cursor and cursor.startswith(SYNC_PREFIX) else None
        try:
            result = self.calendar.get_objects_by_sync_token(
                sync_token=token, load_objects=False, disable_fallback=True
            )
        except (dav_error.AuthorizationError, dav_error.ReportError, dav_error.DAVError) as exc:
            preconditions = getattr(exc, "preconditions", None) or []
            if token is not None and (_VALID_TOKEN in preconditions or
                                      isinstance(exc, dav_error.AuthorizationError)):
                raise CursorExpired() from None
            if isinstance(exc, dav_error.AuthorizationError):
                raise AuthFailed(reason="the server refused the credentials") from None
            raise Transient(reason=f"sync-collection failed: {type(exc).__name__}") from None
        except OSError as exc:
            raise Transient(reason=f"network: {type(exc).__name__}") from None
        new_token = str(result.sync_token)
        if new_token.startswith("fake-"):
            raise CursorExpired()
        deleted = {_event_id(url) for url in getattr(result, "deleted_urls", ()) or ()}
        events: list[RemoteEvent] = []
        to_load = []
        for obj in result.objects:
            path = _event_id(obj.url)
            if path in deleted:
                continue  # some servers also list a removed member among the objects
            etag = (obj.props or {}).get("{DAV:}getetag")
            # An echo is seen once, in the listing after our write: then it is forgotten,
            # so the cache holds what is in flight, not everything written today.
            ours = self._written.pop(_bare(etag), None) if etag else None
            if ours is not None and ours.event_id == path:
                events.append(ours)  # the echo of our own write: nothing to download
            else:
                to_load.append(obj.url)
        events.extend(self._load(to_load))
        if token is not None:
            events.extend(RemoteEvent(path, deleted=True) for path in sorted(deleted))
        return ChangeSet(events, SYNC_PREFIX + new_token, full=token is None)

    def _multiget(self, urls: Sequence[Any]) -> list[tuple[str, str | None, str | None]]:
        """(event id, etag, data or None) of each object, from one calendar-multiget.

        Raises:
            Transient: the REPORT failed.
        """
        try:
            objects = self.calendar.multiget(urls)
        except dav_error.DAVError as exc:
            raise Transient(reason=f"calendar-multiget failed: {type(exc).__name__}") from None
        except OSError as exc:
            raise Transient(reason=f"network: {type(exc).__name__}") from None
        return [(_event_id(obj.url), (obj.props or {}).get("{DAV:}getetag"),
                 None if obj.data is None else str(obj.data)) for obj in objects]

    def _load(self, urls: Sequence[Any]) -> list[RemoteEvent]:
        """Download changed objects with calendar-multiget, a bounded number per REPORT."""
        events = []
        for start in range(0, len(urls), MULTIGET_CHUNK):
            for path, etag, data in self._multiget(urls[start:start + MULTIGET_CHUNK]):
                if data is None:
                    events.append(RemoteEvent(path, etag, problem="the server sent no data"))
                    continue
                events.append(read_event(path, etag, data, default_tz=self.owner_tz,
                                         owner=self.account.owner))
        return events

    def _remember(self, event: RemoteEvent) -> RemoteEvent:
        """Keep what we just wrote, so its echo in the next listing costs no download."""
        if event.etag:
            self._written[_bare(event.etag)] = event
            self._written.move_to_end(_bare(event.etag))
            while len(self._written) > WRITTEN_CACHE:
                self._written.popitem(last=False)
        return event

    def get(self, event_id: str) -> RemoteEvent | None:
        response = self._request(self._url(event_id), "GET")
        if response.status in (404, 410):
            return None
        if response.status >= 400:
            raise _status_error(response.status, event_id, response.headers)
        return read_event(event_id, response.headers.get("ETag"), response.raw,
                          default_tz=self.owner_tz, owner=self.account.owner)

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
        self.client.close()

    # --- writes -------------------------------------------------------------------------

    def _request(self, url: str, method: str, body: bytes | str = "",
                 headers: dict[str, str] | None = None) -> Any:
        try:
            # The library annotates the body as str but passes it to the HTTP layer as is;
            # bytes keep our UTF-8 encoding exactly as the serializer produced it.
            return self.client.request(url, method, cast(str, body), headers or {})
        except dav_error.AuthorizationError as exc:
            raise AuthFailed(reason=f"HTTP {getattr(exc, 'reason', '401')}") from None
        except OSError as exc:
            # The request may have reached the server: the caller reads before rewriting.
            raise Transient(reason=f"network: {type(exc).__name__}", maybe_applied=True) from None
        except dav_error.DAVError as exc:
            raise Transient(reason=f"{type(exc).__name__}", maybe_applied=True) from None

    def _stored(self, event_id: str, response: Any, body: bytes) -> RemoteEvent:
        """The event as stored after a write; re-read when the server gave no strong ETag."""
        etag = response.headers.get("ETag")
        if not etag or etag.startswith("W/"):
            # A server that rewrites what we sent must not return a strong ETag
            # (RFC 4791 5.3.4): read back what it holds, so its rewrite is our base.
            stored = self.get(event_id)
            if stored is None:
                raise EventGone(event_id=event_id)
            return stored
        # A strong ETag: the server holds our bytes as sent (RFC 4791 5.3.4).
        return self._remember(read_event(event_id, etag, without_timezones(body),
                                         default_tz=self.owner_tz, owner=self.account.owner))

    def _stored_objects(self, updates: Sequence[UpdateOp]) -> dict[str, tuple[str | None, str]]:
        """The stored objects of several updates, by event id, with one calendar-multiget.

        An update rewrites only its fields in the object as stored, so it needs the object
        first; one REPORT for the batch instead of a GET each halves a change cycle's
        requests. Whatever this does not return (a single update, a server error, an
        object gone) is read by its own GET, which reports the failure precisely.
        """
        if len(updates) < 2:
            return {}
        try:
            found = self._multiget([URL.objectify(self._url(op.event_id)) for op in updates])
        except Transient:
            return {}
        return {path: (etag, data) for path, etag, data in found if data}

    def _write(self, op: WriteOp, stored: dict[str, tuple[str | None, str]]) -> WriteResult:
        if isinstance(op, CreateOp):
            return self._create(op)
        if isinstance(op, UpdateOp):
            return self._update(op, stored.get(op.event_id))
        return self._delete(op)

    def _create(self, op: CreateOp) -> WriteResult:
        event_id = self.href_for(op.marker, op.generation)
        uid = f"{op.marker}-{op.generation}@syncd"
        body = build_calendar(op.projection, uid=uid, marker=op.marker,
                              organizer=self.account.owner, invite=op.notify)
        response = self._request(self._url(event_id), "PUT", body,
                                 {**ICS, "If-None-Match": "*"})
        if response.status in (200, 201, 204):
            return WriteResult(op.key, self._stored(event_id, response, body))
        if response.status == 412:
            # The href exists: an earlier attempt of this very create got through.
            existing = self.get(event_id)
            if existing is not None and existing.marker == op.marker:
                return WriteResult(op.key, existing)
            return WriteResult(op.key, error=ItemRejected(
                event_id=event_id, reason="the chosen href holds an event syncd did not write"))
        return WriteResult(op.key, error=_status_error(response.status, event_id,
                                                       response.headers))

    def _update(self, op: UpdateOp, stored: tuple[str | None, str] | None = None
                ) -> WriteResult:
        """Rewrite the named fields of the stored object (``stored``: etag and data, when
        already fetched), conditional on the etag the engine planned against."""
        if stored is None:
            current = self._request(self._url(op.event_id), "GET")
            if current.status >= 400:
                return WriteResult(op.key, error=_status_error(current.status, op.event_id,
                                                               current.headers))
            stored = current.headers.get("ETag"), current.raw
        etag, data = stored
        if op.etag is not None and etag is not None and _bare(etag) != _bare(op.etag):
            return WriteResult(op.key, error=EtagMismatch(event_id=op.event_id))
        body = update_calendar(data, op.projection, op.fields, marker=op.marker,
                               organizer=self.account.owner, invite=op.notify)
        response = self._request(self._url(op.event_id), "PUT", body,
                                 {**ICS, "If-Match": op.etag or etag or "*"})
        if response.status in (200, 201, 204):
            return WriteResult(op.key, self._stored(op.event_id, response, body))
        return WriteResult(op.key, error=_status_error(response.status, op.event_id,
                                                       response.headers))

    def _delete(self, op: DeleteOp) -> WriteResult:
        headers = {"If-Match": op.etag} if op.etag else {}
        response = self._request(self._url(op.event_id), "DELETE", "", headers)
        if response.status in (200, 204):
            return WriteResult(op.key)
        return WriteResult(op.key, error=_status_error(response.status, op.event_id,
                                                       response.headers))


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


def _event_id(url: object) -> str:
    """An event's id: its decoded path. Servers and the library disagree on whether to
    percent-encode characters such as "@" in hrefs, so ids are compared decoded."""
    return unquote(urlsplit(str(url)).path)


def _bare(etag: str) -> str:
    return re.sub(r'^W/', "", etag).strip('"')


def open_calendar(account: AccountConfig, context: Any) -> CalDAVCalendar:
    """Registry entry point (see ``connectors.REGISTRY``)."""
    return CalDAVCalendar(account, owner_tz=context.owner_tz,
                          read_only=getattr(context, "read_only", False))
