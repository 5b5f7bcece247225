"""The calendar servers the benchmark runs against, and "the user" editing them.

Each backend starts one provider on a loopback port (Radicale as a child process, the
Google and Graph emulators in threads of the serving process), makes the owners'
calendars, and edits or deletes events the way a person in a calendar app would: directly
on the server, never through the latency proxy, so those requests are not counted.
"""

from __future__ import annotations

import base64
import http.client
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import quote

from syncd_testkit.servers import RadicaleServer

TZ = "Europe/Oslo"
CALENDAR_NAME = "crm"
GRAPH_TENANT = "bench"
GRAPH_CLIENT_ID = "syncd-bench"
GRAPH_SECRET = "bench-secret-not-a-real-one"


class Backend(Protocol):
    """One provider's server, as seen by the serving process."""

    def start(self, folder: Path) -> tuple[str, int]:
        """Start the server; returns its (host, port)."""

    def stop(self) -> None:
        """Stop the server."""

    def create_calendars(self, owners: Sequence[str]) -> dict[str, str]:
        """Make one empty calendar per owner; returns owner -> calendar reference."""

    def edit(self, calendar: str, event_ids: Sequence[str], stamp: str) -> int:
        """Change the title of each event as its owner would; returns how many."""

    def delete(self, calendar: str, event_ids: Sequence[str]) -> int:
        """Delete each event as its owner would; returns how many."""

    def count(self, calendar: str) -> int:
        """Live events in the calendar."""

    def titles(self, calendar: str, event_ids: Sequence[str]) -> dict[str, str]:
        """The title of each of these events as the user sees it (absent: not found)."""

    def pids(self) -> list[int]:
        """Child processes whose CPU time counts as the server's."""

    def info(self) -> dict[str, Any]:
        """What clients need beyond the API URL (identity endpoints, secrets)."""


class _Radicale(RadicaleServer):
    """Radicale as an admin would run it, with room for the benchmark's connections: 64
    in parallel, and a listen queue that holds the rest (:mod:`bench.radicale_server`)."""

    def command(self) -> list[str]:
        python, dash_m, module, *args = super().command()
        assert (dash_m, module) == ("-m", "radicale")
        return [python, "-m", "bench.radicale_server", *args, "--server-max-connections", "64"]


class RadicaleBackend:
    """Radicale (filesystem storage, no authentication), one calendar per owner."""

    def __init__(self) -> None:
        self.server: _Radicale | None = None

    def start(self, folder: Path) -> tuple[str, int]:
        self.server = _Radicale(folder / "radicale")
        self.server.start()
        return "127.0.0.1", self.server.port

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()

    def _request(self, owner: str, method: str, path: str, body: bytes = b"",
                 headers: dict[str, str] | None = None) -> tuple[int, bytes]:
        assert self.server is not None
        conn = http.client.HTTPConnection("127.0.0.1", self.server.port, timeout=60)
        auth = base64.b64encode(f"{owner}:x".encode()).decode()
        try:
            conn.request(method, path, body=body,
                         headers={"Authorization": f"Basic {auth}", **(headers or {})})
            response = conn.getresponse()
            return response.status, response.read()
        finally:
            conn.close()

    @staticmethod
    def owner_of(calendar: str) -> str:
        return calendar.strip("/").split("/", 1)[0]

    def create_calendars(self, owners: Sequence[str]) -> dict[str, str]:
        out = {}
        for owner in owners:
            path = f"/{owner}/{CALENDAR_NAME}/"
            status, body = self._request(owner, "MKCALENDAR", quote(path))
            if status not in (201, 405):  # 405: it exists already
                raise RuntimeError(f"MKCALENDAR {path}: HTTP {status} {body[:200]!r}")
            out[owner] = path
        return out

    def edit(self, calendar: str, event_ids: Sequence[str], stamp: str) -> int:
        owner = self.owner_of(calendar)
        done = 0
        for event_id in event_ids:
            status, data = self._request(owner, "GET", quote(event_id))
            if status != 200:
                continue
            lines = data.decode().replace("\r\n ", "").split("\r\n")
            lines = [f"{line} ({stamp})" if line.startswith("SUMMARY") else line
                     for line in lines]
            status, _ = self._request(owner, "PUT", quote(event_id), "\r\n".join(lines).encode(),
                                      {"Content-Type": "text/calendar; charset=utf-8"})
            done += status in (200, 201, 204)
        return done

    def delete(self, calendar: str, event_ids: Sequence[str]) -> int:
        owner = self.owner_of(calendar)
        return sum(self._request(owner, "DELETE", quote(e))[0] in (200, 204) for e in event_ids)

    def count(self, calendar: str) -> int:
        body = (b'<?xml version="1.0"?><propfind xmlns="DAV:"><prop><getetag/></prop>'
                b"</propfind>")
        status, data = self._request(self.owner_of(calendar), "PROPFIND", quote(calendar), body,
                                     {"Depth": "1", "Content-Type": "application/xml"})
        return data.count(b".ics</") if status == 207 else -1

    def titles(self, calendar: str, event_ids: Sequence[str]) -> dict[str, str]:
        owner = self.owner_of(calendar)
        found: dict[str, str] = {}
        for event_id in event_ids:
            status, data = self._request(owner, "GET", quote(event_id))
            lines = data.decode().replace("\r\n ", "").split("\r\n") if status == 200 else []
            for line in lines:
                if line.startswith("SUMMARY"):
                    found[event_id] = line.split(":", 1)[1]
        return found

    def pids(self) -> list[int]:
        return [self.server.process.pid] if self.server and self.server.process else []

    def info(self) -> dict[str, Any]:
        return {}


class XandikosBackend(RadicaleBackend):
    """Xandikos without push (polled, like Radicale): one principal, a calendar per owner
    under it."""

    def start(self, folder: Path) -> tuple[str, int]:
        from syncd_testkit.servers import XandikosServer

        self.server = XandikosServer(folder / "xandikos")  # type: ignore[assignment]
        assert self.server is not None
        self.server.start()
        return "127.0.0.1", self.server.port

    @staticmethod
    def owner_of(calendar: str) -> str:
        return "user"  # one principal; the server asks for no password

    def create_calendars(self, owners: Sequence[str]) -> dict[str, str]:
        out = {}
        for owner in owners:
            path = f"/user/calendars/{owner.split('@')[0]}/"
            status, body = self._request("user", "MKCALENDAR", quote(path))
            if status not in (201, 405):
                raise RuntimeError(f"MKCALENDAR {path}: HTTP {status} {body[:200]!r}")
            out[owner] = path
        return out


class XandikosPushBackend(XandikosBackend):
    """Xandikos with WebDAV-Push, delivering its notifications over TLS to a receiver that
    serves the certificate made here (the serving process makes it; ``info`` hands its
    files to the receiver's config)."""

    def start(self, folder: Path) -> tuple[str, int]:
        from syncd_testkit.servers import XandikosPushServer
        from syncd_testkit.tls import self_signed

        self.tls = self_signed(folder / "tls")
        self.server = XandikosPushServer(folder / "xandikos", self.tls[0])  # type: ignore[assignment]
        self.server.start()
        return "127.0.0.1", self.server.port

    def info(self) -> dict[str, Any]:
        return {"certificate": str(self.tls[0]), "private_key": str(self.tls[1])}


class GoogleBackend:
    """The Google Calendar v3 emulator, one calendar per owner (id = the owner's address)."""

    def __init__(self) -> None:
        from syncd_testkit.emulators.google import GoogleEmulator

        self.emu = GoogleEmulator()

    def start(self, folder: Path) -> tuple[str, int]:
        self.emu.start()
        host, port = self.emu.base_url.removeprefix("http://").split(":")
        return host, int(port)

    def stop(self) -> None:
        self.emu.stop()

    def create_calendars(self, owners: Sequence[str]) -> dict[str, str]:
        for owner in owners:
            self.emu.add_calendar(owner, owner=owner, time_zone=TZ)
        return {owner: owner for owner in owners}

    def edit(self, calendar: str, event_ids: Sequence[str], stamp: str) -> int:
        wanted = set(event_ids)
        done = 0
        for event in self.emu.events(calendar):
            if event["id"] in wanted:
                self.emu.put_event(calendar, {**event, "summary": f"{event['summary']} ({stamp})"})
                done += 1
        return done

    def delete(self, calendar: str, event_ids: Sequence[str]) -> int:
        for event_id in event_ids:
            self.emu.delete_event_as_user(calendar, event_id)
        return len(event_ids)

    def count(self, calendar: str) -> int:
        return len(self.emu.events(calendar))

    def titles(self, calendar: str, event_ids: Sequence[str]) -> dict[str, str]:
        wanted = set(event_ids)
        return {e["id"]: e.get("summary", "") for e in self.emu.events(calendar)
                if e["id"] in wanted}

    def pids(self) -> list[int]:
        return []

    def info(self) -> dict[str, Any]:
        return {}


class GraphBackend:
    """The Microsoft Graph emulator behind the identity emulator; one mailbox per owner."""

    def __init__(self) -> None:
        from syncd_testkit.emulators.graph import GraphEmulator
        from syncd_testkit.emulators.identity import IdentityEmulator

        self.identity = IdentityEmulator()
        self.graph = GraphEmulator(identity=self.identity)

    def start(self, folder: Path) -> tuple[str, int]:
        self.identity.start()
        self.identity.register_app(GRAPH_CLIENT_ID, GRAPH_SECRET)
        self.graph.start()
        host, rest = self.graph.base_url.removeprefix("http://").split(":")
        return host, int(rest.split("/", 1)[0])

    def stop(self) -> None:
        self.graph.stop()
        self.identity.stop()

    def create_calendars(self, owners: Sequence[str]) -> dict[str, str]:
        for owner in owners:
            self.graph.add_mailbox(owner)
        return {owner: owner for owner in owners}

    def edit(self, calendar: str, event_ids: Sequence[str], stamp: str) -> int:
        done = 0
        for event_id in event_ids:
            event = self.graph.get_event(calendar, event_id)
            self.graph.put_event(calendar, event_id, {"subject": f"{event['subject']} ({stamp})"})
            done += 1
        return done

    def delete(self, calendar: str, event_ids: Sequence[str]) -> int:
        for event_id in event_ids:
            self.graph.delete_event_as_user(calendar, event_id)
        return len(event_ids)

    def count(self, calendar: str) -> int:
        return len(self.graph.events(calendar))

    def titles(self, calendar: str, event_ids: Sequence[str]) -> dict[str, str]:
        wanted = set(event_ids)
        return {e["id"]: e.get("subject", "") for e in self.graph.events(calendar)
                if e["id"] in wanted}

    def pids(self) -> list[int]:
        return []

    def info(self) -> dict[str, Any]:
        return {
            "identity_url": self.identity.base_url,
            "authority_host": self.identity.authority_host,
            "authority": self.identity.authority(GRAPH_TENANT),
            "tenant": GRAPH_TENANT, "client_id": GRAPH_CLIENT_ID, "client_secret": GRAPH_SECRET,
            "api_path": "/v1.0",
        }


BACKENDS: dict[str, type[RadicaleBackend] | type[GoogleBackend] | type[GraphBackend]] = {
    "caldav": RadicaleBackend, "google": GoogleBackend, "outlook": GraphBackend,
    "xandikos": XandikosPushBackend,
}


def cpu_seconds(pid: int | None = None) -> float:
    """User + system CPU seconds of a process (this one by default), from /proc."""
    if pid is None:
        times = os.times()
        return times.user + times.system
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks
