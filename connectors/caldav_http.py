"""The CalDAV requests syncd sends itself: bounded, and read as untrusted.

The ``caldav`` library finds the calendar (principal, home set, PROPFIND); every request
after that goes through :class:`DavTransport`, because a server's replies are untrusted
input (failure mode 24) and the library reads every reply whole and raises for statuses
that concern one item (a 403 on one read-only event is not a refused login):

* replies are streamed and abandoned past a byte cap (:class:`ReplyTooLarge`), and a
  request has a deadline on its whole exchange, not only per read;
* XML is parsed without entities, DTDs, network access or huge text nodes
  (:class:`BadReply` when it cannot be parsed);
* redirects are never followed, and only hrefs inside the collection are read
  (:func:`member_path`): anything else a reply names is counted and ignored.

``sync_collection`` (RFC 6578) lists the collection with each member's size, so objects
over the cap are set aside before they are downloaded; ``multiget`` (RFC 4791 7.9)
fetches a chunk of objects.
"""

from __future__ import annotations

import posixpath
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, unquote, urljoin, urlsplit
from xml.sax.saxutils import escape

from caldav.lib.http_sync import CaseInsensitiveDict
from lxml import etree

from connectors.caldav_wire import Wire
from syncd.errors import (
    AuthFailed,
    CalendarMissing,
    ConnectorError,
    CursorExpired,
    ItemRejected,
    RateLimited,
    StatusTable,
    Transient,
    Unreachable,
    rule,
)
from syncd.network import network_reason
from syncd.telemetry import request_answered

DAV = "{DAV:}"
CALDAV = "{urn:ietf:params:xml:ns:caldav}"
#: A REPORT reply larger than this is abandoned (and its request split).
MAX_REPLY_BYTES = 16 * 1024 * 1024
#: A sync-collection reply larger than this fails the listing: about 200,000 members at
#: some 300 bytes each (Radicale ignores DAV:limit, so listings cannot be paged safely).
MAX_LISTING_BYTES = 64 * 1024 * 1024
#: Seconds one request may take in all, however slowly the server drips its reply.
REQUEST_DEADLINE = 120.0
#: Pages of a truncated sync-collection followed before giving up (RFC 6578 3.6).
MAX_SYNC_PAGES = 1000
SAFE_METHODS = frozenset({"GET", "HEAD", "PROPFIND", "REPORT", "OPTIONS"})
#: A gateway's "the server behind me failed" (502): a read that met it is sent once more.
RETRIED_STATUSES = frozenset({502})
_CHUNK = 64 * 1024
_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=False,
                          load_dtd=False, dtd_validation=False, remove_comments=True)
#: Characters left as they are when an event id (a decoded path) is put in a URL.
HREF_SAFE = "/@:+,;=!$&'()*~"


#: CalDAV's own rows of the status table, checked before the rows every provider shares
#: (:data:`syncd.errors.COMMON_RULES`: 401, 404/410, 412, 429, 413/415/507). A status
#: that concerns one event is that event's failure, and an unknown 4xx too; only a 401 is
#: the account's.
CALDAV_STATUS = StatusTable(rules=(
    rule(403, ItemRejected),  # a read-only event (or calendar): never the whole account
    rule(503, RateLimited, with_retry_after=True),  # the server names when to come back
))


def status_error(status: int, event_id: str, headers: Mapping[str, str] | None = None
                 ) -> ConnectorError:
    """What a failed request about one event (``event_id``) means for the engine."""
    retry = (headers or {}).get("Retry-After", "").strip()
    return CALDAV_STATUS.error(status, retry_after=float(retry) if retry.isdigit() else None,
                               event_id=event_id)


class ReplyTooLarge(Exception):
    """The reply passed its byte cap; nothing of it is used."""


class BadReply(Exception):
    """The reply is not the XML it should be; ``args[0]`` says why."""


@dataclass(frozen=True)
class Reply:
    status: int
    headers: Mapping[str, str]
    body: bytes


@dataclass(frozen=True)
class Reported:
    """A REPORT's answer: its status and headers (``Retry-After``, say), and its body as
    XML: the multistatus of a 207; for another status the error's XML (it may name a
    precondition), or None when the body is empty or no XML."""

    status: int
    headers: Mapping[str, str]
    root: Any


@dataclass(frozen=True)
class Member:
    """A member of the collection, as a sync-collection reply lists it."""

    path: str  # decoded path, the connector's event id
    etag: str | None
    size: int | None


@dataclass
class Listing:
    """What a sync-collection found: changed members, removed ones, the new token."""

    members: list[Member] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    token: str = ""
    outside: int = 0  # hrefs outside the collection, ignored


@dataclass(frozen=True)
class Fetched:
    """One object of a calendar-multiget reply: its data, or the status the server gave
    (``problem``: why it could not be fetched at all)."""

    path: str
    etag: str | None
    data: bytes | None
    status: int = 200
    problem: str | None = None


class DavTransport:
    """Requests under syncd's limits, with the library's credentials: on the connector's
    own keep-alive connections (:mod:`connectors.caldav_wire`) when the exchange is a
    plain one, else through the library's session.

    ``before_request`` is called before every request and raises to stop it (the
    connector also hooks it into the library's session)."""

    def __init__(self, client: Any, *, deadline: float = REQUEST_DEADLINE,
                 before_request: Callable[[], None] | None = None) -> None:
        self.client = client
        self.deadline = deadline
        self.before_request = before_request
        verify = getattr(client, "ssl_verify_cert", True)
        self.wire = Wire(timeout=client.timeout, verify=verify) \
            if isinstance(verify, str) or verify is True else None

    def close(self) -> None:
        """Close the connections kept for later requests."""
        if self.wire is not None:
            self.wire.close()

    def send(self, method: str, url: str, body: bytes = b"",
             headers: Mapping[str, str] | None = None, *,
             max_bytes: int = MAX_REPLY_BYTES) -> Reply:
        """One request; the reply's body read up to ``max_bytes``.

        Raises:
            ReplyTooLarge: the body passed ``max_bytes``.
            Transient: the network failed or the deadline passed.
        """
        reply = self._exchange(method, url, body, headers, max_bytes)
        if reply.status == 401 and getattr(self.client, "auth", None) is None:
            # The library sends credentials once a server asked for them; do the same.
            challenge = reply.headers.get("WWW-Authenticate", "")
            schemes = [part.strip().split(" ", 1)[0].lower()
                       for part in challenge.split(",") if part.strip()]
            if schemes and getattr(self.client, "username", None) is not None:
                self.client.build_auth_object(schemes)
                reply = self._exchange(method, url, body, headers, max_bytes)
        return reply

    def _exchange(self, method: str, url: str, body: bytes,
                  headers: Mapping[str, str] | None, max_bytes: int) -> Reply:
        """:meth:`_send`, and a read sent once more when it got no answer from the server.

        A read (:data:`SAFE_METHODS`) changes nothing, so sending it again is harmless:
        once more, on a new connection, when its connection failed before any answer (a
        busy server's full listen queue resets new connections: Radicale's built-in
        server queues 5; a kept connection the server closed just then), or when a
        gateway in front of the server answered :data:`RETRIED_STATUSES` for it. A write
        is never sent twice here: whether the server applied it is unknown, and the
        engine reconciles a failed write against the next listing.
        """
        if method not in SAFE_METHODS:
            return self._send(method, url, body, headers, max_bytes)
        try:
            reply = self._send(method, url, body, headers, max_bytes)
        except Unreachable:
            return self._send(method, url, body, headers, max_bytes, fresh=True)
        if reply.status in RETRIED_STATUSES:
            return self._send(method, url, body, headers, max_bytes, fresh=True)
        return reply

    def _send(self, method: str, url: str, body: bytes, headers: Mapping[str, str] | None,
              max_bytes: int, *, fresh: bool = False) -> Reply:
        started = time.monotonic()
        all_headers = {**getattr(self.client, "headers", {}), **(headers or {})}
        if not body:
            all_headers.pop("Content-Type", None)
        answer = self._open(method, url, body, all_headers, fresh)
        request_answered("caldav", answer.status)
        try:
            declared = answer.headers.get("Content-Length")
            if declared and declared.isdigit() and int(declared) > max_bytes:
                raise ReplyTooLarge(int(declared))
            parts: list[bytes] = []
            size = 0
            for chunk in answer.chunks(_CHUNK):
                size += len(chunk)
                if size > max_bytes:
                    raise ReplyTooLarge(size)
                if time.monotonic() - started > self.deadline:
                    raise Transient(reason=f"the server took over {self.deadline:g} s to answer")
                parts.append(chunk)
            return Reply(answer.status, answer.headers, b"".join(parts))
        except (ReplyTooLarge, Transient):
            raise
        except Exception as exc:  # a reset or decoding failure in the middle of the body
            raise Transient(reason=f"network: {type(exc).__name__}") from None
        finally:
            answer.close()

    def _open(self, method: str, url: str, body: bytes, headers: dict[str, str],
              fresh: bool) -> Any:
        """Send the request; the answer with its status and headers (see
        :class:`connectors.caldav_wire.Answer`), its body not read yet.

        Raises:
            Unreachable: no answer came.
        """
        auth = getattr(self.client, "auth", None)
        wire, origin, authorization = self.wire, None, None
        if wire is not None and getattr(self.client, "ssl_cert", None) is None:
            authorization = wire.authorization(auth)
            origin = wire.serves(url) if authorization is not None else None
        if origin is not None and self.before_request is not None:
            self.before_request()  # (the library's session calls it from its hook)
        try:
            if wire is not None and origin is not None and authorization is not None:
                return wire.send(origin, method, url, body,
                                 {**headers, "Authorization": authorization}, fresh=fresh)
            response = self.client.session.request(
                method, url, data=body or None, headers=headers, auth=auth,
                timeout=self.client.timeout, verify=self.client.ssl_verify_cert,
                cert=getattr(self.client, "ssl_cert", None), stream=True,
                allow_redirects=False,
            )
        except Exception as exc:  # the HTTP library's own error types vary by backend
            request_answered("caldav", 0)
            raise Unreachable(url=url, reason=network_reason(exc)) from None
        return _SessionAnswer(response)

    def report(self, url: str, body: str, *, max_bytes: int = MAX_REPLY_BYTES,
               depth: str | None = None) -> Reported:
        """A REPORT, its reply read up to ``max_bytes`` and parsed (see :class:`Reported`).

        Raises:
            ReplyTooLarge: the reply passed ``max_bytes``.
            BadReply: a 207 whose body is not a multistatus.
            Transient: the network failed or the deadline passed.
        """
        headers = {"Content-Type": "application/xml; charset=utf-8"}
        if depth is not None:
            headers["Depth"] = depth
        reply = self.send("REPORT", url, body.encode(), headers, max_bytes=max_bytes)
        if reply.status != 207:  # an error's body may carry a precondition, or be a page
            try:
                root = parse_xml(reply.body) if reply.body.strip() else None
            except BadReply:
                root = None
            return Reported(reply.status, reply.headers, root)
        root = parse_xml(reply.body)
        if root.tag != DAV + "multistatus":
            raise BadReply(f"the reply is a {etree.QName(root).localname}, not a multistatus")
        return Reported(reply.status, reply.headers, root)


class _SessionAnswer:
    """The library session's streamed response, read as :class:`caldav_wire.Answer` is."""

    def __init__(self, response: Any) -> None:
        self._response = response
        self.status: int = response.status_code
        self.headers: Mapping[str, str] = CaseInsensitiveDict(response.headers)

    def chunks(self, size: int) -> Iterable[bytes]:
        return self._response.iter_content(size)

    def close(self) -> None:
        self._response.close()


def parse_xml(body: bytes) -> Any:
    try:
        return etree.fromstring(body, parser=_PARSER)
    except etree.XMLSyntaxError as exc:
        raise BadReply(f"the reply is not valid XML ({str(exc)[:80]})") from None


# --- hrefs -----------------------------------------------------------------------------


def member_path(collection: str, href: str) -> str | None:
    """The decoded path of a member named by ``href``; None when the href is outside the
    collection (another host, a parent, a nested or the collection itself) or is no
    UTF-8 once decoded."""
    target = urlsplit(urljoin(collection, href.strip()))
    base = urlsplit(collection)
    if (target.scheme, target.netloc) != (base.scheme, base.netloc) or target.query:
        return None
    try:  # with replacement, two hrefs would share an id that names neither of them
        path = unquote(target.path, errors="strict")
    except UnicodeDecodeError:
        return None
    folder = unquote(base.path).rstrip("/") + "/"
    name = path[len(folder):] if path.startswith(folder) else ""
    if (not name or "/" in name or name in (".", "..") or "\x00" in name
            or posixpath.normpath(path) != path):
        return None
    return path


def href_of(collection: str, path: str) -> str:
    return urljoin(collection, quote(path, safe=HREF_SAFE))


# --- sync-collection (RFC 6578) ---------------------------------------------------------


def sync_collection(transport: DavTransport, collection: str, token: str | None) -> Listing:
    """The members changed since ``token`` (all members with None), following truncated
    replies.

    Raises:
        CursorExpired: the server no longer knows ``token`` (Radicale 403, Xandikos 412,
            both with DAV:valid-sync-token).
        AuthFailed: the server refused to list the collection.
        CalendarMissing: the collection is gone (404, 410).
        Transient: anything else went wrong; nothing is read as a deletion.
    """
    listing = Listing()
    for _page in range(MAX_SYNC_PAGES):
        body = ('<?xml version="1.0" encoding="utf-8"?>'
                '<D:sync-collection xmlns:D="DAV:">'
                f'<D:sync-token>{escape(token or "")}</D:sync-token>'
                "<D:sync-level>1</D:sync-level>"
                "<D:prop><D:getetag/><D:getcontentlength/></D:prop></D:sync-collection>")
        try:
            reported = transport.report(collection, body, depth="1",
                                        max_bytes=MAX_LISTING_BYTES)
        except (BadReply, ReplyTooLarge) as exc:
            raise Transient(reason=f"sync-collection: {_why(exc)}") from None
        status, root = reported.status, reported.root
        if status != 207:
            if token is not None and root is not None and root.find(
                    f".//{DAV}valid-sync-token") is not None:
                raise CursorExpired()
            if status in (401, 403):
                raise AuthFailed(reason=f"HTTP {status} to sync-collection")
            if status in (404, 410):
                raise CalendarMissing(calendar=collection, found=())
            raise Transient(reason=f"sync-collection failed (HTTP {status})", status=status)
        truncated = _absorb(collection, root, listing)
        new_token = root.findtext(f"{DAV}sync-token")
        if not new_token:
            raise Transient(reason="sync-collection reply without a sync-token")
        listing.token = new_token.strip()
        if not truncated:
            return listing
        token = listing.token
    raise Transient(reason=f"sync-collection still truncated after {MAX_SYNC_PAGES} pages")


def _absorb(collection: str, root: Any, listing: Listing) -> bool:
    """Add one page's members to ``listing``; True when the page says it is truncated."""
    truncated = False
    base_path = unquote(urlsplit(collection).path).rstrip("/")
    for response in root.iterfind(f"{DAV}response"):
        href = response.findtext(f"{DAV}href") or ""
        status = _status(response.findtext(f"{DAV}status"))
        path = member_path(collection, href)
        if path is None:
            target = unquote(urlsplit(urljoin(collection, href.strip())).path).rstrip("/")
            if target == base_path:
                truncated = truncated or status == 507
            else:
                listing.outside += 1
            continue
        if status == 404:
            listing.removed.append(path)
            continue
        etag = size = None
        for propstat in response.iterfind(f"{DAV}propstat"):
            if _status(propstat.findtext(f"{DAV}status")) != 200:
                continue
            etag = propstat.findtext(f"{DAV}prop/{DAV}getetag") or etag
            length = (propstat.findtext(f"{DAV}prop/{DAV}getcontentlength") or "").strip()
            size = int(length) if length.isdigit() else size
        listing.members.append(Member(path, etag, size))
    return truncated


# --- calendar-multiget (RFC 4791 7.9) -----------------------------------------------------


def multiget(transport: DavTransport, collection: str, paths: Sequence[str], *,
             max_bytes: int = MAX_REPLY_BYTES, max_object: int | None = None
             ) -> list[Fetched]:
    """The objects at ``paths``, in one REPORT; objects the reply does not name come back
    with status 404, objects over ``max_object`` bytes with a problem and no data (the
    listing may have understated their size).

    Raises:
        BadReply, ReplyTooLarge: the reply as a whole cannot be used; the caller splits
            the request to find the object that spoils it.
        Transient: the request failed.
    """
    hrefs = "".join(f"<D:href>{escape(href_of(collection, p))}</D:href>" for p in paths)
    body = ('<?xml version="1.0" encoding="utf-8"?>'
            '<C:calendar-multiget xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav">'
            f"<D:prop><D:getetag/><C:calendar-data/></D:prop>{hrefs}</C:calendar-multiget>")
    reported = transport.report(collection, body, max_bytes=max_bytes)
    status, root = reported.status, reported.root
    if status != 207:
        if status in (401, 403):
            raise AuthFailed(reason=f"HTTP {status} to calendar-multiget")
        raise Transient(reason=f"calendar-multiget failed (HTTP {status})", status=status)
    wanted = set(paths)
    found: dict[str, Fetched] = {}
    for response in root.iterfind(f"{DAV}response"):
        path = member_path(collection, response.findtext(f"{DAV}href") or "")
        if path is None or path not in wanted or path in found:
            continue  # never read what was not asked for, nor the same object twice
        status = _status(response.findtext(f"{DAV}status"))
        etag = data = None
        for propstat in response.iterfind(f"{DAV}propstat"):
            status = _status(propstat.findtext(f"{DAV}status"))
            if status == 200:
                etag = propstat.findtext(f"{DAV}prop/{DAV}getetag")
                text = propstat.findtext(f"{DAV}prop/{CALDAV}calendar-data")
                data = text.encode() if text is not None else None
                break
        if data is not None and max_object is not None and len(data) > max_object:
            found[path] = Fetched(path, etag, None, status, problem=(
                f"object is {len(data)} bytes, over the {max_object} byte cap"))
            continue
        found[path] = Fetched(path, etag, data, status)
    return [found.get(p) or Fetched(p, None, None, 404) for p in paths]


def _status(line: str | None) -> int:
    """200 from "HTTP/1.1 200 OK"; 200 when absent (a propstat-only response)."""
    if not line:
        return 200
    parts = line.split()
    return int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0


def _why(exc: Exception) -> str:
    if isinstance(exc, ReplyTooLarge):
        return "the reply is too large"
    return str(exc.args[0]) if exc.args else type(exc).__name__


def chunks_by_size(members: Iterable[Member], *, count: int, total: int
                   ) -> list[list[Member]]:
    """Consecutive groups of at most ``count`` members and ``total`` known bytes."""
    groups: list[list[Member]] = []
    size = 0
    for member in members:
        if not groups or len(groups[-1]) >= count or size + (member.size or 0) > total:
            groups.append([])
            size = 0
        groups[-1].append(member)
        size += member.size or 0
    return groups
