"""One HTTP session per process for an API whose every request carries its own credentials.

Each Outlook connector had a ``requests.Session`` of its own: about 75 KB of Python objects
and a connection each, so 1,000 accounts held 1,000 connections to one host, each idle
for most of a minute between its cycles, closed by the server and opened again (with a
TLS handshake) on the next one. :func:`process_session` gives every connector of one
provider in a process the same :class:`ApiSession`: one pool per host, holding as many
connections as requests are in flight (urllib3's pools are thread-safe).

Sharing is safe because the session itself carries no credentials and keeps nothing
from an answer:

* no session-wide ``auth`` and no header of any account: each request brings its own
  ``Authorization`` (the caller's token, read again after a 401);
* a cookie jar that accepts no cookie, so nothing one account's answer sets can go out
  on another's request;
* no ``~/.netrc`` lookup: requests would otherwise read it for every request without
  ``auth`` and put its Basic credentials in place of the request's bearer token.

What stays as a connector's own session had it: the environment's proxies and CA bundle
read once per host (:mod:`syncd.http_env`), redirects only within the origin
(:func:`syncd.network.same_origin_redirects`), the timeout each request passes, and the
answer caps the caller reads with (:mod:`connectors.answer_caps`).

Less work per request: :meth:`ApiSession.exchange` sends a plain exchange (no proxy for
the host, no client certificate) on the process's own keep-alive ``http.client``
connections (:class:`Wire`): an idle Graph cycle's delta GET cost about 2,000 Python calls
through requests and urllib3-future, about 750 this way (``changes()`` as a whole). What
is not plain, and msal's sign-in requests, go through :meth:`ApiSession.request`, which
skips requests' merge of session settings (cookies, hooks, ``auth``, netrc: about 460
calls a request) and sends with ``Session.send`` (hooks, redirects, adapters as before).

Interface (for any connector built on ``requests``):

``process_session(shared)``
    the process's session, kept in ``ConnectorContext.shared`` (made on first use);
    a connector must not close it: :meth:`ApiSession.close` on the process's session is
    left to whoever owns ``shared`` (``Service.close``).
``ApiSession()``
    a session of the same kind for one connector alone (no ``shared``: a CLI command);
    its owner closes it.
``session.exchange(method, url, headers=, json=, timeout=, limit=)``
    the request on the plain connections and its answer read to ``limit`` bytes
    (:class:`Reply`), or None when it is not plain: then ``session.request``.
"""

from __future__ import annotations

import http.client
import json as jsonlib
import threading
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from http.cookiejar import DefaultCookiePolicy
from typing import Any
from urllib.parse import urljoin, urlsplit

import certifi
import requests
from requests.adapters import HTTPAdapter
from requests.cookies import RequestsCookieJar
from requests.models import PreparedRequest
from requests.structures import CaseInsensitiveDict
from requests.utils import select_proxy

from connectors import keepalive
from connectors.answer_caps import too_large
from connectors.keepalive import Origin, Shelf
from syncd.http_env import read_environment_once
from syncd.network import MAX_REDIRECTS, same_origin_redirects

#: Connections kept open per host for later requests. Requests in flight beyond it still
#: get a connection each, closed after its answer; a process runs at most ``[syncd]
#: workers`` cycles at once, each with one request in flight (a mailbox allows 4).
KEPT_PER_HOST = 128
#: Hosts the session keeps a pool for (an API host and its sign-in host, per cloud).
HOSTS = 16
#: The key of the process's session in :attr:`connectors.ConnectorContext.shared`.
SESSION_KEY = "http_pool.session"
_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_CHUNK = 64 * 1024

_made = threading.Lock()


class ApiSession(requests.Session):
    """A ``requests.Session`` that accounts may share: credentials only on each request,
    no cookies, no netrc; environment read once per host; same-origin redirects."""

    def __init__(self, *, kept_per_host: int = KEPT_PER_HOST) -> None:
        super().__init__()
        # allowed_domains=[]: the policy accepts and returns no cookie for any domain
        self.cookies = RequestsCookieJar(policy=DefaultCookiePolicy(allowed_domains=[]))
        adapter = HTTPAdapter(pool_connections=HOSTS, pool_maxsize=kept_per_host)
        self.mount("https://", adapter)
        self.mount("http://", adapter)
        read_environment_once(self)
        same_origin_redirects(self)
        self.wire = Wire(kept_per_host)

    def request(  # type: ignore[override]
            self, method: str, url: str, params: Any = None,
            data: Any = None, headers: Mapping[str, str] | None = None, cookies: Any = None,
            files: Any = None, auth: Any = None, timeout: Any = None,
            allow_redirects: bool = True, proxies: Any = None, hooks: Any = None,
            stream: bool | None = None, verify: Any = None, cert: Any = None,
            json: Any = None) -> requests.Response:
        """``Session.request`` without the merge of session settings that an API call
        with its own credentials does not use. A call passing cookies, files, auth,
        proxies, hooks, verify or cert (none of syncd's do) takes requests' own path."""
        if any(x is not None for x in (cookies, files, auth, proxies, hooks, verify, cert)):
            return super().request(method, url, params=params, data=data, headers=headers,
                                   cookies=cookies, files=files, auth=auth, timeout=timeout,
                                   allow_redirects=allow_redirects, proxies=proxies,
                                   hooks=hooks, stream=stream, verify=verify, cert=cert,
                                   json=json)
        sent = {k: v for k, v in {**self.headers, **(headers or {})}.items() if v is not None}
        prepared = PreparedRequest()
        prepared.prepare(method=method.upper(), url=url, headers=sent, params=params,
                         data=data, json=json, hooks=self.hooks)
        settings = self.merge_environment_settings(str(prepared.url), {}, stream, None, None)
        return self.send(prepared, timeout=timeout, allow_redirects=allow_redirects,
                         **settings)

    # --- the plain exchange, on http.client ------------------------------------------------

    def exchange(self, method: str, url: str, *, headers: Mapping[str, str],
                 json: Any = None, timeout: tuple[float, float], limit: int) -> Reply | None:
        """Send a request on the process's own keep-alive ``http.client`` connections,
        when it is a plain exchange (see :class:`Wire`): the answer with its body read, at
        most ``limit`` bytes. None when it is not plain (a proxy for the origin, a client
        certificate, another scheme): then :meth:`request` sends it.

        Raises:
            requests.ConnectionError: the exchange failed before the whole answer was read
                (its cause is the socket's error, for :func:`syncd.network.network_reason`).
            AnswerTooLarge: the body announced or passed ``limit`` bytes.
        """
        origin = self.wire.serves(url, self)
        if origin is None:
            return None
        body = None
        sent = dict(headers)
        if json is not None:
            body = jsonlib.dumps(json, allow_nan=False).encode()
            sent["Content-Type"] = "application/json"
        for _ in range(MAX_REDIRECTS + 1):
            reply = self.wire.send(origin, method, url, body, sent, timeout, limit)
            target = _same_origin_location(reply, url)
            if target is None:
                return reply
            # requests' rules: a 303, and a 301/302 to a POST, become a GET without body
            if reply.status == 303 or (reply.status in (301, 302) and method == "POST"):
                method, body = "GET", None
                sent.pop("Content-Type", None)
            url = target
        return reply

    def close(self) -> None:
        super().close()
        self.wire.close()


@dataclass
class Reply:
    """An answer read whole (under its cap): status, headers (case-insensitive, a repeated
    one joined with commas, as requests does) and body."""

    status: int
    headers: CaseInsensitiveDict[str]
    content: bytes


class Wire:
    """The keep-alive ``http.client`` connections of a process, for every account.

    An idle Graph cycle is one GET; through requests and urllib3-future it cost about
    2,000 Python calls, on ``http.client`` a few hundred. It sends a request this way when
    the exchange is plain:

    * http or https, with no proxy for the origin in the environment and no client
      certificate (read once per host, as :mod:`syncd.http_env` reads them for requests);
    * https verified as requests would: against the environment's bundle
      (``REQUESTS_CA_BUNDLE``, ``CURL_CA_BUNDLE``) or certifi's, the host name checked.

    A kept connection carries the requests of any account (each with its own
    ``Authorization``; nothing of an answer is kept). One the server closed meanwhile is
    noticed before it is used and dropped. The connect and each read have the request's
    timeouts. No ``Accept-Encoding`` is offered: answers come plain (a compressed one all
    the same is inflated, to ``limit`` bytes at most).

    The shelf of idle connections, origins, request targets, the header join and the TLS
    contexts are those of every kept ``http.client`` pool (:mod:`connectors.keepalive`).
    """

    def __init__(self, kept_per_host: int = KEPT_PER_HOST) -> None:
        self.kept_per_host = kept_per_host
        self._shelf = Shelf(kept_per_host)
        self._plain: dict[Origin, tuple[bool, str | None]] = {}
        self._lock = threading.Lock()

    def serves(self, url: str, session: requests.Session) -> Origin | None:
        """The origin of ``url`` when the exchange is plain, else None."""
        origin = keepalive.origin_of(url)
        if origin is None:
            return None
        known = self._plain.get(origin)
        if known is None:
            # what requests would do for this host, read once (syncd.http_env)
            env = session.merge_environment_settings(url, {}, None, None, None)
            verify = env.get("verify", True)
            plain = (not select_proxy(url, env.get("proxies") or {}) and not env.get("cert")
                     and verify is not False)
            with self._lock:
                if len(self._plain) >= HOSTS:
                    self._plain.clear()
                known = self._plain[origin] = (
                    plain, verify if isinstance(verify, str) else None)
        return origin if known[0] else None

    def send(self, origin: Origin, method: str, url: str, body: bytes | None,
             headers: Mapping[str, str], timeout: tuple[float, float], limit: int) -> Reply:
        """One request and its whole answer (see :meth:`ApiSession.exchange`)."""
        conn = self._shelf.take(origin)
        try:
            if conn is None:
                conn = self._connect(origin, timeout)
            conn.sock.settimeout(timeout[1])  # the connect had its own
            conn.request(method, keepalive.request_target(url), body=body, headers=dict(headers))
            response = conn.getresponse()
            reply = Reply(response.status, keepalive.joined_headers(response, CaseInsensitiveDict),
                          _read(response, url, limit))
        except (OSError, http.client.HTTPException) as exc:
            if conn is not None:
                conn.close()
            raise requests.ConnectionError(exc) from exc
        except BaseException:  # the answer past its cap, an interruption: not reusable
            if conn is not None:
                conn.close()
            raise
        if response.will_close:
            conn.close()
        else:
            self._shelf.give_back(origin, conn)
        return reply

    def close(self) -> None:
        self._shelf.close()

    def _connect(self, origin: Origin, timeout: tuple[float, float]
                 ) -> http.client.HTTPConnection:
        scheme, host, port = origin
        conn: http.client.HTTPConnection
        if scheme == "https":  # requests' default authorities: certifi's
            context = keepalive.tls_context(self._plain[origin][1] or certifi.where())
            conn = http.client.HTTPSConnection(host, port, timeout=timeout[0], context=context)
        else:
            conn = http.client.HTTPConnection(host, port, timeout=timeout[0])
        conn.connect()
        return conn


def _same_origin_location(reply: Reply, url: str) -> str | None:
    """Where a redirect points, if it is one to follow (same scheme, host and port)."""
    if reply.status not in _REDIRECTS or "location" not in reply.headers:
        return None
    target = urljoin(url, reply.headers["location"])
    here, there = urlsplit(url), urlsplit(target)
    try:
        same = (here.scheme.lower(), here.hostname, here.port) == (
            there.scheme.lower(), there.hostname, there.port)
    except ValueError:
        return None
    return target if same else None


def _read(response: http.client.HTTPResponse, url: str, limit: int) -> bytes:
    """The body, at most ``limit`` bytes (counted once inflated)."""
    declared = response.getheader("Content-Length", "").strip()
    if declared.isdigit() and int(declared) > limit:
        raise too_large(url, limit, f"it announced {int(declared):,} bytes")
    parts: list[bytes] = []
    size = 0
    while piece := response.read(_CHUNK):  # (one read of the cap would allocate all of it)
        size += len(piece)
        if size > limit:
            raise too_large(url, limit, f"it sent more than {limit:,} bytes")
        parts.append(piece)
    body = parts[0] if len(parts) == 1 else b"".join(parts)
    encoding = (response.getheader("Content-Encoding") or "").strip().lower()
    if encoding in ("gzip", "deflate") and body:
        return _inflate(body, url, limit)
    return body


def _inflate(body: bytes, url: str, limit: int) -> bytes:
    """``body`` inflated a piece at a time, never to more than ``limit`` bytes."""
    inflater = zlib.decompressobj(47)  # 32 + 15: gzip or zlib, told by the header
    parts: list[bytes] = []
    size = 0
    pending = body
    try:
        while pending:
            piece = inflater.decompress(pending, _CHUNK)
            pending = inflater.unconsumed_tail
            size += len(piece)
            if size > limit:
                raise too_large(url, limit, f"it inflates to more than {limit:,} bytes")
            parts.append(piece)
    except zlib.error as exc:
        raise requests.ConnectionError(exc) from exc  # a body that does not inflate
    return b"".join(parts)


def process_session(shared: dict[str, Any],
                    make: Callable[[], ApiSession] = ApiSession) -> ApiSession:
    """The process's :class:`ApiSession`, kept in ``shared`` (made by ``make`` on first
    use: a benchmark or a test passes a subclass that routes an emulator's host)."""
    with _made:
        session = shared.get(SESSION_KEY)
        if session is None:
            session = shared[SESSION_KEY] = make()
    assert isinstance(session, ApiSession)
    return session
