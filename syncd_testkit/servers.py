"""Real CalDAV servers for the tests: Radicale and Xandikos on free loopback ports.

Each runs as a child process on its own temporary folder, exactly as an admin would run
it. :class:`RecordingProxy` sits in front of one when a test needs to see every request
the server received (the privacy canary tests).
"""

from __future__ import annotations

import http.client
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, process: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}")
        with socket.socket() as sock:
            sock.settimeout(0.3)
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"server did not open port {port}")


class DavServer:
    """A CalDAV server child process. ``url`` is its root; ``calendar_url(user)`` a calendar."""

    kind = "dav"

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    def command(self) -> list[str]:
        raise NotImplementedError

    def start(self) -> DavServer:
        self.folder.mkdir(parents=True, exist_ok=True)
        log = (self.folder / "server.log").open("wb")
        self.process = subprocess.Popen(self.command(), stdout=log, stderr=subprocess.STDOUT,
                                        stdin=subprocess.DEVNULL)
        wait_for_port(self.port, self.process)
        return self

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()


class RadicaleServer(DavServer):
    kind = "radicale"

    def command(self) -> list[str]:
        return [sys.executable, "-m", "radicale", "--server-hosts", f"127.0.0.1:{self.port}",
                "--storage-filesystem-folder", str(self.folder / "collections"),
                "--auth-type", "none", "--logging-level", "warning"]

    def account_url(self, user: str) -> str:
        return self.url

    def calendar_url(self, user: str, name: str) -> str:
        return f"{self.url}{user}/{name}/"


class XandikosServer(DavServer):
    kind = "xandikos"

    def command(self) -> list[str]:
        return [sys.executable, "-m", "xandikos.web", "-d", str(self.folder / "data"),
                "--defaults", "-l", "127.0.0.1", "-p", str(self.port)]

    def account_url(self, user: str) -> str:
        return self.url

    def calendar_url(self, user: str, name: str) -> str:
        # Xandikos serves one principal; its default calendar is created by --defaults.
        return f"{self.url}user/calendars/calendar/"


@dataclass
class Recorded:
    method: str
    path: str
    headers: str
    body: bytes


class RecordingProxy:
    """A loopback reverse proxy that keeps every request before passing it on.

    ``rewrite_bodies``: absolute links to the upstream in a reply's body (Graph's
    nextLink/deltaLink, say) are rewritten to the proxy, so the client keeps coming back
    through it.
    """

    def __init__(self, upstream_port: int, rewrite_bodies: bool = False) -> None:
        self.upstream_port = upstream_port
        self.requests: list[Recorded] = []
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def _relay(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                proxy.requests.append(Recorded(self.command, self.path, str(self.headers), body))
                conn = http.client.HTTPConnection("127.0.0.1", proxy.upstream_port, timeout=30)
                headers = {k: v for k, v in self.headers.items()
                           if k.lower() not in ("host", "connection")}
                headers["Host"] = f"127.0.0.1:{proxy.port}"
                conn.request(self.command, self.path, body=body, headers=headers)
                response = conn.getresponse()
                data = response.read()
                if rewrite_bodies:
                    data = data.replace(f"127.0.0.1:{proxy.upstream_port}".encode(),
                                        f"127.0.0.1:{proxy.port}".encode())
                self.send_response(response.status, response.reason)
                for key, value in response.getheaders():
                    if key.lower() not in ("transfer-encoding", "connection", "content-length"):
                        self.send_header(key, value.replace(f":{proxy.upstream_port}",
                                                            f":{proxy.port}"))
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
                conn.close()

            do_GET = do_PUT = do_DELETE = do_PROPFIND = do_REPORT = _relay
            do_OPTIONS = do_MKCALENDAR = do_PROPPATCH = do_POST = do_MKCOL = do_PATCH = _relay

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = int(self.server.server_address[1])
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    def start(self) -> RecordingProxy:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def everything_sent(self) -> bytes:
        return b"\n".join(r.method.encode() + b" " + r.path.encode() + b"\n" +
                          r.headers.encode() + r.body for r in self.requests)
