"""A loopback reverse proxy between syncd and a test server: counts, delays, and hooks.

It stands for the network between syncd and a provider. It is threaded (one thread per
client connection) and speaks HTTP/1.1 keep-alive on both sides, so a client that reuses
its connection pays no handshake, and neither does the proxy towards the server. Every
request may wait ``latency`` seconds before it is passed on, whatever it carries (a batch
of 50 costs one latency, as one round trip would).

Absolute links the server sends back (Graph ``@odata.nextLink``, a ``Location`` header)
name the server's own port; they are rewritten to the proxy's, so clients stay behind it.

Counts, per outer HTTP method and per API call: a Google batch
(``POST .../batch/calendar/v3``) or a Graph ``POST .../$batch`` carries several calls, and
each is counted under its own method in ``calls`` while the envelope is one ``POST`` in
``http``. Statuses of the outer responses are counted too.

What it holds is bounded: a request or an answer larger than ``max_body`` is refused (413
to the client, 502 for the server's answer) instead of being buffered.

A subclass changes what happens to a request by overriding :meth:`ReverseProxy.plan`,
which returns a :class:`Plan`: answer in the server's stead, reset the connection, forward
another body, and after forwarding close without an answer, hold the answer, or rewrite it
(:mod:`syncd_testkit.faults` injects faults this way).
"""

from __future__ import annotations

import http.client
import json
import os
import re
import socket
import struct
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from email.message import Message
from typing import Any, Literal
from urllib.parse import urlsplit

from syncd_testkit.loopback import HOST, QuietHandler, ThreadedHTTPServer

_HOP_BY_HOP = frozenset({"connection", "keep-alive", "proxy-connection", "transfer-encoding",
                         "te", "trailer", "upgrade", "content-length", "host"})
_GOOGLE_PART = re.compile(rb"^(GET|POST|PUT|PATCH|DELETE) /", re.MULTILINE)
_TEXTUAL = ("json", "xml", "text", "multipart", "http")
METHODS = ("GET", "HEAD", "PUT", "POST", "PATCH", "DELETE", "OPTIONS", "PROPFIND",
           "PROPPATCH", "REPORT", "MKCALENDAR", "MKCOL", "MOVE", "COPY")
#: Methods that change nothing on the server (the rest count as writes).
READS = frozenset({"GET", "HEAD", "OPTIONS", "PROPFIND", "REPORT"})
#: The largest request or answer body the proxy holds (test servers send far less).
MAX_BODY = 32 * 1024 * 1024


class RequestCounts:
    """Thread-safe counters of what went through the proxy."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.http: Counter[str] = Counter()
        self.calls: Counter[str] = Counter()
        self.statuses: Counter[str] = Counter()
        self.batch_sizes: Counter[int] = Counter()
        self.bytes_in = 0
        self.bytes_out = 0

    def add(self, method: str, calls: Counter[str], batch: bool, status: int, sent: int,
            received: int) -> None:
        with self._lock:
            self.http[method] += 1
            self.calls.update(calls)
            if batch:
                self.batch_sizes[sum(calls.values())] += 1
            self.statuses[str(status)] += 1
            self.bytes_in += sent
            self.bytes_out += received

    def snapshot(self, reset: bool = False) -> dict[str, Any]:
        """The counts as plain data; with ``reset`` the counters start again from zero."""
        with self._lock:
            data = {
                "http": dict(self.http), "calls": dict(self.calls),
                "statuses": dict(self.statuses),
                "batch_sizes": {str(k): v for k, v in sorted(self.batch_sizes.items())},
                "bytes_to_server": self.bytes_in, "bytes_from_server": self.bytes_out,
            }
            if reset:
                self.http.clear()
                self.calls.clear()
                self.statuses.clear()
                self.batch_sizes.clear()
                self.bytes_in = self.bytes_out = 0
        return data


def is_google_batch(method: str, path: str) -> bool:
    return method == "POST" and path.split("?", 1)[0].rstrip("/").endswith("/batch/calendar/v3")


def is_graph_batch(method: str, path: str) -> bool:
    return method == "POST" and path.split("?", 1)[0].endswith("/$batch")


def inner_calls(method: str, path: str, body: bytes) -> tuple[Counter[str], bool]:
    """The API calls one request carries, by method, and whether it was a batch."""
    if is_google_batch(method, path):
        return Counter(m.decode() for m in _GOOGLE_PART.findall(body)), True
    if is_graph_batch(method, path):
        try:
            items = json.loads(body).get("requests", [])
            return Counter(str(item.get("method", "GET")).upper() for item in items), True
        except (ValueError, AttributeError):
            return Counter({method: 1}), False
    return Counter({method: 1}), False


@dataclass(frozen=True)
class ProxyRequest:
    """A request as the client sent it (``path`` with its query)."""

    method: str
    path: str
    headers: Message
    body: bytes


@dataclass(frozen=True)
class Answer:
    """A complete HTTP answer: the server's, or one made in its stead."""

    status: int
    reason: str = ""
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""

    def header(self, name: str) -> str:
        """The first value of header ``name`` ("" when absent)."""
        return next((v for k, v in self.headers if k.lower() == name.lower()), "")


@dataclass(frozen=True)
class Plan:
    """What the proxy does with one request (the default: pass it on).

    ``answer``: sent instead of forwarding (the server never sees the request).
    ``reset``: the client's connection is reset (RST) instead of forwarding.
    ``body``: forwarded instead of the request's own body.
    ``then``: after forwarding, ``"answer"`` the client, ``"close"`` its connection with no
    answer, or ``"hold"`` the answer ``hold`` seconds and then close with none.
    ``rewrite``: applied to the server's answer before it goes back.
    """

    answer: Answer | None = None
    reset: bool = False
    body: bytes | None = None
    then: Literal["answer", "close", "hold"] = "answer"
    hold: float = 0.0
    rewrite: Callable[[Answer], Answer] | None = None


class BodyTooLarge(Exception):
    """A request body above :data:`MAX_BODY`."""


class ReverseProxy(ThreadedHTTPServer):
    """Forward everything to ``upstream`` (``http://host:port``) after ``latency`` seconds.

    Use :meth:`start`, then clients talk to :attr:`url`; :attr:`traffic` holds the tallies
    of what reached the server. Subclasses override :meth:`plan`.
    """

    name = "reverse-proxy"
    poll_interval = 0.1
    backlog = 128
    #: Headers and body in separate writes, as measured so far: the latency is the proxy's.
    nodelay = False

    def __init__(self, upstream: str, *, latency: float = 0.0, timeout: float = 120.0,
                 max_body: int = MAX_BODY) -> None:
        parts = urlsplit(upstream if "://" in upstream else f"http://{upstream}")
        if parts.scheme != "http" or not parts.hostname or parts.port is None:
            raise ValueError(f"upstream {upstream!r} is not http://host:port")
        self.upstream = (parts.hostname, parts.port)
        self.latency = latency
        self.timeout = timeout
        self.max_body = max_body
        self.traffic = RequestCounts()
        self._rewrites: list[tuple[bytes, bytes]] = []
        self._stopping = threading.Event()

    @property
    def url(self) -> str:
        return self.origin

    def plan(self, request: ProxyRequest) -> Plan:
        """What to do with ``request``: by default, pass it on."""
        return Plan()

    def on_start(self) -> None:
        self._stopping.clear()
        host, port = self.upstream
        here = f"{HOST}:{self.port}".encode()
        self._rewrites = [(f"{host}:{port}".encode(), here)]
        if host == HOST:
            self._rewrites.append((f"localhost:{port}".encode(), here))

    def on_stop(self) -> None:
        self._stopping.set()  # wakes the requests held or delayed

    def pause(self, seconds: float) -> None:
        """Wait ``seconds``, or less when the proxy stops."""
        if seconds > 0:
            self._stopping.wait(seconds)

    def rewrite(self, data: bytes) -> bytes:
        """``data`` with the server's own address replaced by the proxy's."""
        for old, new in self._rewrites:
            data = data.replace(old, new)
        return data

    def handler(self) -> type[QuietHandler]:
        return _bound_handler(self)


def _bound_handler(proxy: ReverseProxy) -> type[QuietHandler]:
    class Handler(_ProxyHandler):
        pass

    Handler.proxy = proxy
    Handler.disable_nagle_algorithm = proxy.nodelay
    for name in METHODS:
        setattr(Handler, f"do_{name}", Handler.relay)
    return Handler


class _ProxyHandler(QuietHandler):
    proxy: ReverseProxy
    upstream_conn: http.client.HTTPConnection | None = None

    def _body(self) -> bytes:
        cap = self.proxy.max_body
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks: list[bytes] = []
            total = 0
            while True:
                line = self.rfile.readline(1024)
                size = int(line.split(b";")[0].strip() or b"0", 16)
                total += size
                if total > cap:
                    raise BodyTooLarge
                if size == 0:
                    while self.rfile.readline(1024) not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline(1024)
        length = int(self.headers.get("Content-Length") or 0)
        if length < 0:
            raise ValueError("negative Content-Length")
        if length > cap:
            raise BodyTooLarge
        return self.rfile.read(length) if length else b""

    def _forward(self, body: bytes) -> Answer:
        proxy = self.proxy
        headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP_BY_HOP}
        headers["Host"] = f"{proxy.upstream[0]}:{proxy.upstream[1]}"
        headers["Content-Length"] = str(len(body))
        for attempt in (1, 2):
            if self.upstream_conn is None:
                self.upstream_conn = http.client.HTTPConnection(*proxy.upstream,
                                                                timeout=proxy.timeout)
            try:
                self.upstream_conn.request(self.command, self.path, body=body, headers=headers)
                response = self.upstream_conn.getresponse()
                data = response.read(proxy.max_body + 1)
                if len(data) > proxy.max_body:
                    raise BodyTooLarge
                if response.will_close or not response.isclosed():
                    self._drop_upstream()
                return Answer(response.status, response.reason, response.getheaders(), data)
            except (http.client.HTTPException, OSError):
                # A kept-alive upstream connection the server had closed: retry once on a
                # fresh one (the request never reached the server).
                self._drop_upstream()
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def _drop_upstream(self) -> None:
        if self.upstream_conn is not None:
            self.upstream_conn.close()
        self.upstream_conn = None

    def _send(self, answer: Answer) -> None:
        proxy = self.proxy
        content_type = length = ""
        self.send_response(answer.status, answer.reason or None)
        for key, value in answer.headers:
            if key.lower() == "content-type":
                content_type = value
            if key.lower() == "content-length":
                length = value
            if key.lower() in _HOP_BY_HOP:
                continue
            self.send_header(key, proxy.rewrite(value.encode("latin-1")).decode("latin-1"))
        data = answer.body
        if any(t in content_type for t in _TEXTUAL):
            data = proxy.rewrite(data)
        if self.command == "HEAD":  # no body, but the length the GET would have
            data = b""
        self.send_header("Content-Length", (length or "0") if self.command == "HEAD"
                         else str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _reset(self) -> None:
        """Close the client's connection with a TCP reset (SO_LINGER 0)."""
        self.close_connection = True
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        # Closed now, not once the handler's file objects let go of the socket.
        os.close(self.connection.detach())

    def _relay(self) -> None:
        proxy = self.proxy
        try:
            body = self._body()
        except BodyTooLarge:
            self.close_connection = True
            self.send_error(413, "request body too large")
            return
        except ValueError:  # a length or chunk size that is not a number
            self.close_connection = True
            self.send_error(400, "malformed request body framing")
            return
        plan = proxy.plan(ProxyRequest(self.command, self.path, self.headers, body))
        proxy.pause(proxy.latency)
        if plan.reset:
            self._reset()
            return
        if plan.answer is not None:
            self._send(plan.answer)
            return
        sent = body if plan.body is None else plan.body
        try:
            answer = self._forward(sent)
        except BodyTooLarge:
            self.send_error(502, "answer too large")
            return
        except (http.client.HTTPException, OSError):
            self.send_error(502, "upstream failed")
            return
        calls, batch = inner_calls(self.command, self.path, sent)
        proxy.traffic.add(self.command, calls, batch, answer.status, len(sent), len(answer.body))
        if plan.then != "answer":
            if plan.then == "hold":
                proxy.pause(plan.hold)
            self.close_connection = True
            self._drop_upstream()
            return
        self._send(answer if plan.rewrite is None else plan.rewrite(answer))

    def relay(self) -> None:
        try:
            self._relay()
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        if self.close_connection:
            self._drop_upstream()
