"""The listener: cheroot's threaded WSGI server on ``[http] listen``, in the daemon.

cheroot parses HTTP (syncd parses none), runs the :class:`~syncd.http.router.Router` on a
small pool of threads and bounds what a caller can hold: request headers and bodies by
size, idle connections by a socket timeout, and a request's whole reading by
:data:`READ_SECONDS` (:class:`ReadDeadlines`): the socket timeout is per read, so a
client sending a byte every few seconds would otherwise hold a thread for ever, and
:data:`THREADS` such clients the whole listener, health probes included (slowloris).
With TLS the handshake is made on the request's thread under the same deadline, not in
cheroot's accept loop, where one client that never finishes its handshake stopped every
other connection; a connection gets a thread only once it sends something
(:class:`_Server`), and one client at most :data:`PER_CLIENT` of them (except loopback,
the reverse proxy's address). :meth:`HttpServer.start` binds in the caller's thread, so a
port in use is reported before the daemon says it runs; :meth:`HttpServer.stop` stops
accepting, lets the requests in flight finish for a few seconds and closes the socket (the
daemon calls it first on SIGTERM).
"""

from __future__ import annotations

import errno
import ipaddress
import logging
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import Any

from cheroot import wsgi
from cheroot.server import HTTPConnection

from syncd.config import HttpConfig
from syncd.config_checks import parse_listen
from syncd.errors import PortInUse, ServerFailed
from syncd.http.booking_guard import client_key
from syncd.http.router import Router

log = logging.getLogger("syncd.http")

THREADS = 8  # requests answered at once; a hook answers in milliseconds
SOCKET_TIMEOUT = 10  # seconds a connection may sit idle or trickle its request
SHUTDOWN_SECONDS = 5  # how long stop() waits for requests in flight
MAX_HEADER_BYTES = 16 * 1024
#: Seconds a request may take to arrive whole (TLS handshake, line, headers, body) and
#: its answer to be taken, the handler's own time not counted.
READ_SECONDS = 30.0
#: Requests of one client (an address, an IPv6 /64) read at once: slow clients cut off
#: after READ_SECONDS and opened again must not hold every thread.
PER_CLIENT = THREADS // 2


def exempt(address: str) -> bool:
    """Whether a client is left out of :data:`PER_CLIENT`: a loopback address, where the
    admin's reverse proxy forwards every visitor from (and buffers their requests)."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    mapped = getattr(ip, "ipv4_mapped", None)
    return bool((mapped or ip).is_loopback)


class ReadDeadlines:
    """The requests being read, each with its deadline; a watcher thread shuts the
    connection of one past it, which ends the read that holds its thread."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.cut = 0  # connections shut for being too slow
        self.refused = 0  # connections closed unread: their client had PER_CLIENT read
        self._reading: dict[int, tuple[float, socket.socket]] = {}  # thread -> (due, sock)
        self._clients: dict[int, str] = {}  # thread -> its client, unless exempt
        self._held: dict[int, float] = {}  # thread -> when its handler began
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._watch, name="syncd-http-deadlines",
                                        daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2)
            self._thread = None

    @contextmanager
    def reading(self, sock: socket.socket, address: str) -> Iterator[bool]:
        """One request of ``sock`` (from ``address``) on this thread, from its first byte
        to its answer; yields False, and counts it, when that client has
        :data:`PER_CLIENT` requests being read already (close it unread then)."""
        me = threading.get_ident()
        client = None if exempt(address) else client_key(address)
        with self._lock:
            admitted = client is None or sum(
                1 for c in self._clients.values() if c == client) < PER_CLIENT
            if not admitted:
                self.refused += 1
            else:
                self._reading[me] = (time.monotonic() + self.seconds, sock)
                if client is not None:
                    self._clients[me] = client
        try:
            yield admitted
        finally:
            with self._lock:
                self._reading.pop(me, None)
                self._held.pop(me, None)
                self._clients.pop(me, None)

    @contextmanager
    def handling(self) -> Iterator[None]:
        """The handler's time, which the deadline does not count."""
        me = threading.get_ident()
        began = time.monotonic()
        with self._lock:
            self._held[me] = began
        try:
            yield
        finally:
            with self._lock:
                self._held.pop(me, None)
                if me in self._reading:
                    due, sock = self._reading[me]
                    self._reading[me] = (due + time.monotonic() - began, sock)

    def _watch(self) -> None:
        while not self._stop.wait(min(1.0, self.seconds / 4)):
            now = time.monotonic()
            with self._lock:
                late = [(me, sock) for me, (due, sock) in self._reading.items()
                        if due < now and me not in self._held]
                for me, _sock in late:
                    del self._reading[me]
            for _me, sock in late:
                self.cut += 1
                log.debug("closed a connection that sent its request too slowly")
                # The raw socket (a TLS one is shut under its TLS layer too); one closed
                # meanwhile raises.
                with suppress(OSError):
                    socket.socket.shutdown(sock, socket.SHUT_RDWR)


class _Connection(HTTPConnection):
    """cheroot's connection, each request under the server's :class:`ReadDeadlines`, the
    TLS handshake first (see :class:`_LazyTls`). ``spoke``: it has sent a byte (until
    then it waits in the selector, see :class:`_Server`)."""

    spoke = False

    def communicate(self) -> bool:
        deadlines: ReadDeadlines = self.server.syncd_deadlines
        with deadlines.reading(self.socket, str(self.remote_addr or "")) as admitted:
            if not admitted:
                return False
            if isinstance(self.socket, ssl.SSLSocket) and not getattr(self, "_shaken", False):
                try:
                    self.socket.do_handshake()
                except (ssl.SSLError, OSError):
                    return False  # not a TLS client, or too slow: nothing to answer
                self._shaken = True
            return bool(super().communicate())


class _Server(wsgi.Server):
    """cheroot's server, handing a new connection to a thread only once it has sent
    something: cheroot queues every accepted connection for a thread at once, so
    connections that never speak, each held until the socket timeout, would keep the
    threads from everyone else. Until it speaks a connection waits in the selector, as a
    kept-alive one does, and expires there after the socket timeout."""

    def process_conn(self, conn: Any) -> None:
        if isinstance(conn, _Connection) and not conn.spoke:
            conn.spoke = True
            self._connections.put(conn)  # type: ignore[attr-defined]  # cheroot's own
            return
        super().process_conn(conn)


def _lazy_tls(certificate: str, private_key: str) -> Any:
    """cheroot's TLS adapter, but making the handshake on the request's thread
    (:class:`_Connection`) instead of in the accept loop."""
    from cheroot.ssl.builtin import BuiltinSSLAdapter

    class _LazyTls(BuiltinSSLAdapter):
        def wrap(self, sock: socket.socket) -> tuple[ssl.SSLSocket, dict[str, str]]:
            wrapped = self.context.wrap_socket(sock, do_handshake_on_connect=False,
                                               server_side=True)
            return wrapped, {"wsgi.url_scheme": "https", "HTTPS": "on"}

    return _LazyTls(certificate, private_key)


class HttpServer:
    """One listener on ``host:port`` (port 0: any free one, for tests) serving ``router``;
    ``certificate`` and ``private_key`` (paths) make it serve TLS itself."""

    def __init__(self, host: str, port: int, router: Router, *,
                 certificate: str | None = None, private_key: str | None = None) -> None:
        self.host, self.port, self.router = host, port, router
        self.tls = certificate is not None and private_key is not None
        self._server = _Server((host, port), router, numthreads=THREADS,
                                   server_name="syncd", timeout=SOCKET_TIMEOUT,
                                   shutdown_timeout=SHUTDOWN_SECONDS, request_queue_size=64)
        self._server.max_request_body_size = router.max_body
        self._server.max_request_header_size = MAX_HEADER_BYTES
        self.deadlines = ReadDeadlines(READ_SECONDS)
        self._server.syncd_deadlines = self.deadlines  # type: ignore[attr-defined]
        self._server.ConnectionClass = _Connection
        router.handling = self.deadlines.handling
        if self.tls:
            assert certificate is not None and private_key is not None
            self._server.ssl_adapter = _lazy_tls(certificate, private_key)
        self._thread: threading.Thread | None = None

    @classmethod
    def from_config(cls, config: HttpConfig, router: Router) -> HttpServer:
        assert config.listen is not None
        parsed = parse_listen(config.listen)
        if parsed is None:  # the config check refuses it first
            raise ValueError(f"[http] listen {config.listen!r} is not host:port")
        return cls(*parsed, router, certificate=config.certificate,
                   private_key=config.private_key)

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{'https' if self.tls else 'http'}://{host}:{self.port}"

    def start(self) -> None:
        """Bind and serve from a background thread.

        Raises:
            PortInUse: another program listens on the address.
            ServerFailed: the address cannot be bound for another reason.
        """
        try:
            self._server.prepare()
        except OSError as exc:
            cause = exc.__cause__ if isinstance(exc.__cause__, OSError) else exc
            if errno.EADDRINUSE in (exc.errno, cause.errno):
                raise PortInUse(what="HTTP receiver", host=self.host, port=self.port,
                                setting="[http] listen") from None
            raise ServerFailed(what="HTTP receiver",
                               reason=f"could not listen on {self.host}:{self.port} "
                                      f"({exc.strerror or exc})") from None
        bound = self._server.bind_addr
        if isinstance(bound, tuple):
            self.port = int(bound[1])
        self.deadlines.start()
        self._thread = threading.Thread(target=self._server.serve, name="syncd-http",
                                        daemon=True)
        self._thread.start()
        log.info("HTTP receiver on %s", self.url)

    def stop(self) -> None:
        """Stop accepting, give requests in flight a few seconds, close (idempotent)."""
        if self._thread is None:
            return
        self._server.stop()
        self._thread.join(timeout=SHUTDOWN_SECONDS + 1)
        self._thread = None
        self.deadlines.stop()
