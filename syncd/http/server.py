"""The listener: cheroot's threaded WSGI server on ``[http] listen``, in the daemon.

cheroot parses HTTP (syncd parses none), runs the :class:`~syncd.http.router.Router` on a
small pool of threads and bounds what a caller can hold: request headers and bodies by
size, idle and slow connections by a socket timeout. :meth:`HttpServer.start` binds in the
caller's thread, so a port in use is reported before the daemon says it runs;
:meth:`HttpServer.stop` stops accepting, lets the requests in flight finish for a few
seconds and closes the socket (the daemon calls it first on SIGTERM).
"""

from __future__ import annotations

import errno
import logging
import threading

from cheroot import wsgi

from syncd.config import HttpConfig
from syncd.config_checks import parse_listen
from syncd.errors import PortInUse, ServerFailed
from syncd.http.router import Router

log = logging.getLogger("syncd.http")

THREADS = 8  # requests answered at once; a hook answers in milliseconds
SOCKET_TIMEOUT = 10  # seconds a connection may sit idle or trickle its request
SHUTDOWN_SECONDS = 5  # how long stop() waits for requests in flight
MAX_HEADER_BYTES = 16 * 1024


class HttpServer:
    """One listener on ``host:port`` (port 0: any free one, for tests) serving ``router``;
    ``certificate`` and ``private_key`` (paths) make it serve TLS itself."""

    def __init__(self, host: str, port: int, router: Router, *,
                 certificate: str | None = None, private_key: str | None = None) -> None:
        self.host, self.port, self.router = host, port, router
        self.tls = certificate is not None and private_key is not None
        self._server = wsgi.Server((host, port), router, numthreads=THREADS,
                                   server_name="syncd", timeout=SOCKET_TIMEOUT,
                                   shutdown_timeout=SHUTDOWN_SECONDS, request_queue_size=64)
        self._server.max_request_body_size = router.max_body
        self._server.max_request_header_size = MAX_HEADER_BYTES
        if self.tls:
            from cheroot.ssl.builtin import BuiltinSSLAdapter

            self._server.ssl_adapter = BuiltinSSLAdapter(certificate, private_key)
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
