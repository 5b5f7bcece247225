"""Real CalDAV servers for the tests: Radicale and Xandikos on free loopback ports.

Each runs as a child process on its own temporary folder, exactly as an admin would run
it. Xandikos also runs with WebDAV-Push (:class:`XandikosPushServer`); Radicale has none
and stays the polled case. :class:`RecordingProxy` sits in front of one when a test needs
to see every request the server received (the privacy canary tests).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from syncd_testkit.loopback import ChildProcessServer
from syncd_testkit.proxy import Plan, ProxyRequest, ReverseProxy


class DavServer(ChildProcessServer):
    """A CalDAV server child process on its own folder (its log in ``server.log`` there).
    ``url`` is its root; ``calendar_url(user, name)`` a calendar."""

    kind = "dav"

    def __init__(self, folder: Path) -> None:
        super().__init__()
        self.folder = folder
        self._log: IO[bytes] | None = None

    @property
    def url(self) -> str:
        return f"{self.origin}/"

    def output(self) -> Any:
        self.folder.mkdir(parents=True, exist_ok=True)
        self._log = (self.folder / "server.log").open("ab")
        return self._log

    def stop(self) -> None:
        super().stop()
        if self._log is not None:
            self._log.close()
            self._log = None


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


class XandikosPushServer(XandikosServer):
    """Xandikos with WebDAV-Push (``--webdav-push``), delivering to push resources on
    loopback over TLS that trust ``ca_file`` (see :mod:`syncd_testkit.xandikos_push`).
    Its VAPID key and subscription index live in ``state`` under the folder."""

    kind = "xandikos-push"

    def __init__(self, folder: Path, ca_file: Path) -> None:
        super().__init__(folder)
        self.ca_file = ca_file

    def command(self) -> list[str]:
        launcher = Path(__file__).with_name("xandikos_push.py")
        return [sys.executable, str(launcher), str(self.ca_file), "-d",
                str(self.folder / "data"), "--state-dir", str(self.folder / "state"),
                "--defaults", "--webdav-push", "-l", "127.0.0.1", "-p", str(self.port)]


@dataclass
class Recorded:
    method: str
    path: str
    headers: str
    body: bytes


class RecordingProxy(ReverseProxy):
    """A loopback reverse proxy that keeps every request before passing it on.

    It is the shared proxy (:class:`syncd_testkit.proxy.ReverseProxy`): absolute links to
    the upstream in a reply (Graph's nextLink/deltaLink, say) are rewritten to the proxy,
    so the client keeps coming back through it.
    """

    name = "recording-proxy"
    nodelay = True  # no latency is measured here

    def __init__(self, upstream_port: int) -> None:
        super().__init__(f"http://127.0.0.1:{upstream_port}", timeout=30.0)
        self.upstream_port = upstream_port
        self.requests: list[Recorded] = []

    @property
    def url(self) -> str:
        return f"{self.origin}/"

    def plan(self, request: ProxyRequest) -> Plan:
        self.requests.append(Recorded(request.method, request.path, str(request.headers),
                                      request.body))
        return Plan()

    def everything_sent(self) -> bytes:
        return b"\n".join(r.method.encode() + b" " + r.path.encode() + b"\n" +
                          r.headers.encode() + r.body for r in self.requests)
