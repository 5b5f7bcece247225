"""A loopback reverse proxy that adds a fixed latency to every request and counts them.

It stands for the network between syncd and a provider: every HTTP request waits
``latency`` seconds before it is passed on, whatever it carries (a batch of 50 costs one
latency, as one round trip would). It is threaded (one thread per client connection) and
speaks HTTP/1.1 keep-alive on both sides, so a client that reuses its connection pays no
handshake, and neither does the proxy towards the server.

Absolute links the server sends back (Graph ``@odata.nextLink``, a ``Location`` header)
name the server's own port; they are rewritten to the proxy's, so clients stay behind it.

Counts, per outer HTTP method and per API call: a Google batch
(``POST .../batch/calendar/v3``) or a Graph ``POST .../$batch`` carries several calls, and
each is counted under its own method in ``calls`` while the envelope is one ``POST`` in
``http``. Statuses of the outer responses are counted too.
"""

from __future__ import annotations

import http.client
import json
import re
import threading
import time
from collections import Counter
from typing import Any

from syncd_testkit.loopback import QuietHandler, ThreadedHTTPServer

_HOP_BY_HOP = frozenset({"connection", "keep-alive", "proxy-connection", "transfer-encoding",
                         "te", "trailer", "upgrade", "content-length", "host"})
_GOOGLE_PART = re.compile(rb"^(GET|POST|PUT|PATCH|DELETE) /", re.MULTILINE)
_TEXTUAL = ("json", "xml", "text", "multipart", "http")
METHODS = ("GET", "HEAD", "PUT", "POST", "PATCH", "DELETE", "OPTIONS", "PROPFIND",
           "PROPPATCH", "REPORT", "MKCALENDAR", "MKCOL", "MOVE", "COPY")


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


def inner_calls(method: str, path: str, body: bytes) -> tuple[Counter[str], bool]:
    """The API calls one request carries, by method, and whether it was a batch."""
    if method == "POST" and path.split("?", 1)[0].rstrip("/").endswith("/batch/calendar/v3"):
        return Counter(m.decode() for m in _GOOGLE_PART.findall(body)), True
    if method == "POST" and path.split("?", 1)[0].endswith("/$batch"):
        try:
            items = json.loads(body).get("requests", [])
            return Counter(str(item.get("method", "GET")).upper() for item in items), True
        except (ValueError, AttributeError):
            return Counter({method: 1}), False
    return Counter({method: 1}), False


class LatencyProxy(ThreadedHTTPServer):
    """Forward everything to ``upstream`` (``host``, ``port``) after ``latency`` seconds.

    Use :meth:`start`, then clients talk to :attr:`url`; :attr:`counts` holds the tallies.
    """

    name = "latency-proxy"
    poll_interval = 0.1
    backlog = 128

    def __init__(self, upstream_host: str, upstream_port: int, latency: float,
                 timeout: float = 120.0) -> None:
        self.upstream = (upstream_host, upstream_port)
        self.latency = latency
        self.timeout = timeout
        self.counts = RequestCounts()
        self._rewrites: list[tuple[bytes, bytes]] = []

    @property
    def url(self) -> str:
        return self.origin

    def on_start(self) -> None:
        host, port = self.upstream
        here = f"127.0.0.1:{self.port}".encode()
        self._rewrites = [(f"{host}:{port}".encode(), here)]
        if host == "127.0.0.1":
            self._rewrites.append((f"localhost:{port}".encode(), here))

    def rewrite(self, data: bytes) -> bytes:
        for old, new in self._rewrites:
            data = data.replace(old, new)
        return data

    def handler(self) -> type[QuietHandler]:
        proxy = self

        class Handler(QuietHandler):
            disable_nagle_algorithm = False  # as measured so far: the latency is the proxy's
            upstream_conn: http.client.HTTPConnection | None = None

            def _body(self) -> bytes:
                if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                    chunks: list[bytes] = []
                    while True:
                        size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                        if size == 0:
                            while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                                pass
                            return b"".join(chunks)
                        chunks.append(self.rfile.read(size))
                        self.rfile.readline()
                length = int(self.headers.get("Content-Length") or 0)
                return self.rfile.read(length) if length else b""

            def _forward(self, body: bytes) -> tuple[int, str, list[tuple[str, str]], bytes]:
                headers = {k: v for k, v in self.headers.items()
                           if k.lower() not in _HOP_BY_HOP}
                headers["Host"] = f"{proxy.upstream[0]}:{proxy.upstream[1]}"
                headers["Content-Length"] = str(len(body))
                for attempt in (1, 2):
                    if self.upstream_conn is None:
                        self.upstream_conn = http.client.HTTPConnection(
                            *proxy.upstream, timeout=proxy.timeout)
                    try:
                        self.upstream_conn.request(self.command, self.path, body=body,
                                                   headers=headers)
                        response = self.upstream_conn.getresponse()
                        data = response.read()
                        if response.will_close:
                            self.upstream_conn.close()
                            self.upstream_conn = None
                        return response.status, response.reason, response.getheaders(), data
                    except (http.client.HTTPException, OSError):
                        # A kept-alive upstream connection the server had closed: retry once
                        # on a fresh one (the request never reached the server).
                        if self.upstream_conn is not None:
                            self.upstream_conn.close()
                        self.upstream_conn = None
                        if attempt == 2:
                            raise
                raise AssertionError("unreachable")

            def _relay(self) -> None:
                body = self._body()
                if proxy.latency:
                    time.sleep(proxy.latency)
                try:
                    status, reason, headers, data = self._forward(body)
                except (http.client.HTTPException, OSError):
                    self.send_error(502, "upstream failed")
                    return
                calls, batch = inner_calls(self.command, self.path, body)
                proxy.counts.add(self.command, calls, batch, status, len(body), len(data))
                content_type = length = ""
                self.send_response(status, reason)
                for key, value in headers:
                    if key.lower() == "content-type":
                        content_type = value
                    if key.lower() == "content-length":
                        length = value
                    if key.lower() in _HOP_BY_HOP:
                        continue
                    self.send_header(key, proxy.rewrite(value.encode("latin-1"))
                                     .decode("latin-1"))
                if any(t in content_type for t in _TEXTUAL):
                    data = proxy.rewrite(data)
                if self.command == "HEAD":  # no body, but the length the GET would have
                    data = b""
                self.send_header("Content-Length", (length or "0") if self.command == "HEAD"
                                 else str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _handle(self) -> None:
                try:
                    self._relay()
                except (BrokenPipeError, ConnectionResetError):
                    self.close_connection = True

        for name in METHODS:
            setattr(Handler, f"do_{name}", Handler._handle)
        return Handler
