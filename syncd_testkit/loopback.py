"""Servers on free loopback ports, started and stopped one way.

:class:`LoopbackServer` is the life cycle every test server shares: ``start()`` picks a free
port of 127.0.0.1 and returns once the server accepts connections, ``stop()`` releases the
port (twice is harmless), and ``with server:`` does both. Two kinds fill it in:

* :class:`ThreadedHTTPServer` serves a request handler in a thread of this process (the
  emulators, proxies, responders, stubs); a subclass gives :meth:`~ThreadedHTTPServer.handler`.
* :class:`ChildProcessServer` runs a real server as a child process (Radicale, Xandikos);
  a subclass gives :meth:`~ChildProcessServer.command`.

:class:`QuietHandler` is the request handler they build on: it logs nothing, reads a body by
its ``Content-Length`` and sends a complete reply in one call.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Self, TypeVar

HOST = "127.0.0.1"


def free_port() -> int:
    """A port of 127.0.0.1 nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


class LoopbackServer:
    """A server on a port of 127.0.0.1 (see the module docstring)."""

    def start(self) -> Self:
        """Serve on a free port; returns ``self`` once connections are accepted."""
        raise NotImplementedError

    def stop(self) -> None:
        """Stop serving and release the port (harmless when not started)."""
        raise NotImplementedError

    @property
    def port(self) -> int:
        raise NotImplementedError

    @property
    def origin(self) -> str:
        """``http://127.0.0.1:PORT``, without a trailing slash."""
        return f"http://{HOST}:{self.port}"

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False  # clients keep connections open; do not wait for them on stop

    def __init__(self, handler: type[BaseHTTPRequestHandler],
                 quiet: tuple[type[BaseException], ...], backlog: int) -> None:
        self.request_queue_size = backlog  # read by listen() inside the constructor
        super().__init__((HOST, 0), handler)
        self.quiet = quiet
        self.accepted = 0  # connections accepted (a client's reuse of one is not counted)

    def process_request(self, request: Any, client_address: Any) -> None:
        self.accepted += 1  # the serving loop's one thread accepts: no lock needed
        super().process_request(request, client_address)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that gave up or hung up on a reply is what many tests do on purpose.
        if not isinstance(sys.exc_info()[1], self.quiet):
            super().handle_error(request, client_address)


class ThreadedHTTPServer(LoopbackServer):
    """An HTTP server in a thread of this process; subclasses give :meth:`handler`."""

    #: The thread's name, for a readable stack dump.
    name = "loopback"
    #: How often the serving loop looks for stop(): short, as each test starts and stops one.
    poll_interval = 0.05
    #: Errors while handling a request that are expected and not printed.
    quiet_errors: tuple[type[BaseException], ...] = (ConnectionError,)
    #: Connections the kernel queues before the serving loop accepts them.
    backlog = 5

    _server: _HTTPServer | None = None
    _thread: threading.Thread | None = None

    def handler(self) -> type[BaseHTTPRequestHandler]:
        """The request handler class (bound to ``self`` as the subclass needs, e.g. with
        :func:`bound`)."""
        raise NotImplementedError

    def on_start(self) -> None:
        """Called once serving has started: what else the server runs beside it."""

    def on_stop(self) -> None:
        """Called first by every :meth:`stop` (so it must be harmless when not started)."""

    @property
    def running(self) -> bool:
        return self._server is not None

    @property
    def connections(self) -> int:
        """Connections accepted since the start (clients that keep one alive open one)."""
        return self._server.accepted if self._server is not None else 0

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError(f"{type(self).__name__} is not started")
        return int(self._server.server_address[1])

    def start(self) -> Self:
        if self._server is None:
            self._server = _HTTPServer(self.handler(), self.quiet_errors, self.backlog)
            self._thread = threading.Thread(target=self._server.serve_forever,
                                            kwargs={"poll_interval": self.poll_interval},
                                            name=self.name, daemon=True)
            self._thread.start()
            self.on_start()
        return self

    def stop(self) -> None:
        self.on_stop()
        server, thread = self._server, self._thread
        self._server = self._thread = None
        if server is not None:
            server.shutdown()
            server.server_close()
        if thread is not None:
            thread.join(timeout=5)


H = TypeVar("H", bound=BaseHTTPRequestHandler)


def bound(handler: type[H], **attributes: Any) -> type[H]:
    """A subclass of ``handler`` with ``attributes`` set on it (the server a handler serves,
    say), so one handler class can serve many servers at once."""
    return type(f"_Bound{handler.__name__}", (handler,), attributes)


class HandlerServer(ThreadedHTTPServer):
    """A :class:`ThreadedHTTPServer` for a handler class a test writes inline."""

    def __init__(self, handler: type[BaseHTTPRequestHandler], name: str = "loopback") -> None:
        self._handler = handler
        self.name = name

    def handler(self) -> type[BaseHTTPRequestHandler]:
        return self._handler


class ChildProcessServer(LoopbackServer):
    """A server run as a child process on a port chosen before it starts.

    Subclasses give :meth:`command` (it may use :attr:`port`); ``start`` waits until the port
    accepts connections and fails at once if the child exits first.
    """

    #: How long a child may take to open its port.
    start_timeout = 30.0

    def __init__(self) -> None:
        self._port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def port(self) -> int:
        return self._port

    def command(self) -> list[str]:
        raise NotImplementedError

    def output(self) -> Any:
        """Where the child's stdout and stderr go (an open file, or DEVNULL)."""
        return subprocess.DEVNULL

    def start(self) -> Self:
        if self.process is None:
            self.process = subprocess.Popen(self.command(), stdout=self.output(),
                                            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
            self._wait_until_listening(self.process)
        return self

    def _wait_until_listening(self, process: subprocess.Popen[bytes]) -> None:
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError(f"server exited with {process.returncode}")
            with socket.socket() as sock:
                sock.settimeout(0.3)
                if sock.connect_ex((HOST, self._port)) == 0:
                    return
            time.sleep(0.05)
        raise RuntimeError(f"server did not open port {self._port}")

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is not None:
            process.terminate()
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(10)


class QuietHandler(BaseHTTPRequestHandler):
    """A keep-alive request handler that logs nothing and replies in one call."""

    protocol_version = "HTTP/1.1"
    # Headers and body go out in separate writes; without TCP_NODELAY, Nagle's algorithm
    # plus delayed ACKs add ~40 ms to every keep-alive response.
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: Any) -> None:
        """Keep test output quiet."""

    def read_body(self) -> bytes:
        """The request body (empty without a ``Content-Length``)."""
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def reply(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None,
              content_type: str | None = None) -> None:
        """Send ``status``, ``headers`` and ``body`` (with its length and content type)."""
        self.send_response(status)
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        if body and content_type:
            self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if body:
            self.wfile.write(body)
