"""The embedded calendar server's child process: Radicale behind a Host check.

Run by :class:`syncd.daemon.EmbeddedCalendarServer` as
``python -m syncd.embedded_server --host H --port P --data-dir D``. It serves Radicale's
WSGI application with the standard library's threaded WSGI server and Radicale's own
request handler, configured here in full (no system or user Radicale config is read):

- ``htpasswd`` authentication with bcrypt (``data_dir/embedded/users``), logins lower-cased,
  successful logins cached for 15 s so a sync cycle does not pay bcrypt on every request;
- ``from_file`` rights (``data_dir/embedded/rights``): each user their own calendars,
  syncd's service user all of them;
- storage in ``data_dir/calendars``, created under umask 077.

Radicale does not look at the Host header, so a web page whose name an attacker points at
127.0.0.1 (DNS rebinding) could reach it from the user's browser. :class:`HostCheck`
answers 403 to any request whose Host is not the configured address (or ``localhost``)
with the configured port, before Radicale (and its authentication) sees it.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import socket
import socketserver
import sys
import threading
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any
from wsgiref.simple_server import WSGIServer

Environ = dict[str, Any]
StartResponse = Callable[..., Any]
WSGIApp = Callable[[Environ, StartResponse], Iterable[bytes]]

REQUEST_TIMEOUT = 30.0  # seconds a client may take to send a request
#: Written on ``--ready-fd`` once the server listens: the daemon's proof that the port it
#: sends passwords to is this server's, not another program's.
READY_LINE = b"listening\n"


def allowed_hosts(host: str, port: int) -> frozenset[str]:
    """The Host header values the server answers: its own address and ``localhost``."""
    names = {host.lower(), "localhost"}
    return frozenset(f"[{n}]:{port}" if ":" in n else f"{n}:{port}" for n in names)


class HostCheck:
    """WSGI middleware: refuse (403) a request whose Host header is not one of ``allowed``."""

    def __init__(self, app: WSGIApp, allowed: frozenset[str]) -> None:
        self.app, self.allowed = app, allowed

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        host = str(environ.get("HTTP_HOST", "")).strip().lower()
        if host not in self.allowed:
            body = b"Forbidden: this server answers only to its own loopback address.\n"
            start_response("403 Forbidden", [("Content-Type", "text/plain; charset=utf-8"),
                                             ("Content-Length", str(len(body)))])
            return [body]
        return self.app(environ, start_response)


def radicale_settings(data_path: Path) -> dict[str, dict[str, str]]:
    """The complete Radicale configuration of the embedded server."""
    embedded = data_path / "embedded"
    return {
        "auth": {
            "type": "htpasswd",
            "htpasswd_filename": str(embedded / "users"),
            "htpasswd_encryption": "bcrypt",
            "htpasswd_cache": "True",  # re-read only when the file changes
            "lc_username": "True",
            "cache_logins": "True",
            "cache_successful_logins_expiry": "15",
        },
        "rights": {"type": "from_file", "file": str(embedded / "rights")},
        "storage": {"filesystem_folder": str(data_path / "calendars"), "folder_umask": "0077"},
        "web": {"type": "none"},
        "logging": {"level": "warning"},
    }


#: Connections the kernel holds for the accept loop (the listen backlog).
ACCEPT_QUEUE = 256


class _Server(socketserver.ThreadingMixIn, WSGIServer):
    # Requests in flight finish before the process exits (server_close joins them).
    daemon_threads = False
    block_on_close = True
    # socketserver listens with a queue of 5: with the daemon's 16 or more workers opening
    # connections at once, the kernel dropped the rest while the loop was accepting, and
    # their cycles failed on a connection refused or reset. Loopback only, with a password.
    request_queue_size = ACCEPT_QUEUE

    def get_request(self) -> tuple[socket.socket, Any]:
        request, address = super().get_request()
        request.settimeout(REQUEST_TIMEOUT)
        return request, address


def build_app(data_path: Path, host: str, port: int) -> WSGIApp:
    from radicale import Application, config

    configuration = config.load()
    configuration.update(radicale_settings(data_path), "syncd")
    # What Radicale's own server sets: it verifies request lengths itself.
    configuration.update({"server": {"_internal_server": "True"}}, "syncd", privileged=True)
    return HostCheck(Application(configuration), allowed_hosts(host, port))


def serve(data_path: Path, host: str, port: int, ready_fd: int | None = None) -> None:
    """Serve until SIGTERM or SIGINT, then let requests in flight finish."""
    from radicale.server import RequestHandler

    os.umask(0o077)
    # SIGTERM (also sent when the daemon dies) and SIGINT are taken by sigwait below, not
    # by a handler: a handler setting an Event can deadlock against the main thread's own
    # wait on it. Blocked before any thread starts, so every thread inherits the mask.
    stop_signals = {signal.SIGTERM, signal.SIGINT}
    signal.pthread_sigmask(signal.SIG_BLOCK, stop_signals)
    # Warnings and errors only (failed logins name the user, never the password), on the
    # daemon's standard error.
    logging.basicConfig(level=logging.WARNING,
                        format="%(asctime)s %(levelname)s embedded calendar: %(message)s")
    _Server.address_family = socket.AF_INET6 if ":" in host else socket.AF_INET
    server = _Server((host, port), RequestHandler)
    server.set_app(build_app(data_path, host, port))
    if ready_fd is not None:
        os.write(ready_fd, READY_LINE)
        os.close(ready_fd)
    worker = threading.Thread(target=server.serve_forever, name="embedded-calendar")
    worker.start()
    signal.sigwait(stop_signals)
    server.shutdown()
    worker.join()
    server.server_close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="syncd.embedded_server")
    parser.add_argument("--host", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--ready-fd", type=int, help="a pipe to write the ready line on")
    args = parser.parse_args(argv)
    serve(Path(args.data_dir), args.host, args.port, args.ready_fd)
    return 0


if __name__ == "__main__":
    sys.exit(main())
