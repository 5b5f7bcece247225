"""What a CalDAV connector's requests cost in connections, and what happens when one fails
before any answer, against the real Radicale behind a loopback proxy.

A read (the idle cycle's sync-collection) whose connection is reset, or that a gateway
answers 502, is sent once more: at 64 workers a busy server's listen queue resets new
connections now and then (Radicale's built-in server queues 5), and a cycle must not
fail for that. A write is sent once, whatever happens to it.
"""

from __future__ import annotations

import base64
import cProfile
import pstats
import socket
import threading
import uuid
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import unquote

import pytest

from connectors.base import CreateOp, WriteResult
from connectors.caldav import CalDAVCalendar
from syncd.config import AccountConfig
from syncd.errors import Transient, Unreachable
from syncd.model import Projection, When
from syncd_testkit.loopback import QuietHandler
from syncd_testkit.proxy import Answer, Plan, ProxyRequest, ReverseProxy
from syncd_testkit.servers import RadicaleServer
from syncd_testkit.tls import self_signed
from tests.conftest import fresh_calendar

#: Idle listings profiled, and the Python calls one may cost (measured: ~600).
LISTINGS = 20
MAX_CALLS_PER_IDLE_LISTING = 1000


class Faulty(ReverseProxy):
    """Passes everything on, except the next requests of a method it was told to fail:
    their connection reset, or a 502 in the server's stead. With ``close_after`` it
    closes each connection after its answer (as a server ends an idle kept-alive one)."""

    name = "faulty-proxy"
    nodelay = True

    def __init__(self, upstream_port: int) -> None:
        super().__init__(f"http://127.0.0.1:{upstream_port}", timeout=30.0)
        self.faults: list[tuple[str, str]] = []  # (method, "reset" or "502"), in order
        self.seen: Counter[str] = Counter()  # requests that reached the proxy, by method
        self.sent: list[tuple[str, str]] = []  # (path, Authorization) of each request
        self.close_after = False
        self.closed = threading.Event()  # set when the proxy ended a client's connection

    def handler(self) -> type[QuietHandler]:
        proxy, base = self, super().handler()

        class Closing(base):  # type: ignore[valid-type,misc]
            def handle_one_request(self) -> None:
                super().handle_one_request()
                self.close_connection = self.close_connection or proxy.close_after

            def finish(self) -> None:
                super().finish()
                if proxy.close_after:  # the FIN goes out now, not when the server is done
                    self.connection.shutdown(socket.SHUT_RDWR)
                    proxy.closed.set()

        return Closing

    def plan(self, request: ProxyRequest) -> Plan:
        self.seen[request.method] += 1
        self.sent.append((request.path, request.headers.get("Authorization", "")))
        if self.faults and self.faults[0][0] == request.method:
            _, fault = self.faults.pop(0)
            if fault == "reset":
                return Plan(reset=True)
            return Plan(answer=Answer(502, "Bad Gateway", body=b"upstream failed"))
        return Plan()


@pytest.fixture
def proxy(radicale: RadicaleServer) -> Iterator[Faulty]:
    with Faulty(radicale.port) as running:
        yield running


def open_connector(radicale: RadicaleServer, proxy: Faulty) -> CalDAVCalendar:
    """A connector for a fresh calendar on ``radicale``, reached through ``proxy``, its
    calendar found (by the library) before anything is counted."""
    user, calendar = fresh_calendar(radicale)
    through = calendar.replace(radicale.origin, proxy.origin)
    account = AccountConfig(name=user, provider="caldav", owner=user, calendar=through,
                            auth={"url": f"{proxy.origin}/", "username": user})
    conn = CalDAVCalendar(account, owner_tz="UTC")
    conn.calendar  # noqa: B018
    return conn


@pytest.fixture
def connector(radicale: RadicaleServer, proxy: Faulty) -> Iterator[CalDAVCalendar]:
    conn = open_connector(radicale, proxy)
    yield conn
    conn.close()


def idle_cursor(conn: CalDAVCalendar) -> str:
    cursor = conn.changes(None).cursor
    assert cursor is not None
    return cursor


@pytest.mark.parametrize("fault", ["reset", "502"])
def test_an_idle_listing_whose_request_failed_before_an_answer_is_sent_once_more(
        connector: CalDAVCalendar, proxy: Faulty, fault: str) -> None:
    cursor = idle_cursor(connector)
    proxy.seen.clear()
    proxy.faults = [("REPORT", fault)]
    changes = connector.changes(cursor)
    assert list(changes.events) == [] and changes.cursor == cursor
    assert proxy.seen == {"REPORT": 2}


def test_a_listing_that_fails_twice_fails_the_cycle_after_two_requests(
        connector: CalDAVCalendar, proxy: Faulty) -> None:
    cursor = idle_cursor(connector)
    proxy.seen.clear()
    proxy.faults = [("REPORT", "reset"), ("REPORT", "reset")]
    with pytest.raises(Transient):
        connector.changes(cursor)
    assert proxy.seen == {"REPORT": 2}


def create(connector: CalDAVCalendar) -> WriteResult:
    when = When(datetime(2026, 12, 8, 9, tzinfo=UTC), datetime(2026, 12, 8, 10, tzinfo=UTC))
    [result] = connector.write([CreateOp("k", uuid.uuid4().hex, 0, Projection("Call", when))])
    return result


def test_idle_listings_share_one_kept_connection_and_few_python_calls(
        connector: CalDAVCalendar, proxy: Faulty) -> None:
    # The idle cycle's one request. Through the library's session (niquests) a listing
    # cost ~2,000 Python calls; on the connector's own http.client connection ~600.
    cursor = idle_cursor(connector)
    opened = proxy.connections
    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(LISTINGS):
        connector.changes(cursor)
    profiler.disable()
    calls = pstats.Stats(profiler).total_calls / LISTINGS  # type: ignore[attr-defined]
    assert calls < MAX_CALLS_PER_IDLE_LISTING, f"{calls:.0f} Python calls per idle listing"
    assert proxy.connections == opened  # the first listing's connection, kept
    assert proxy.seen["REPORT"] == LISTINGS + 1


def test_each_connector_sends_its_own_accounts_credentials_only(
        radicale: RadicaleServer, proxy: Faulty) -> None:
    first, second = open_connector(radicale, proxy), open_connector(radicale, proxy)
    try:
        proxy.sent.clear()
        for conn in (first, second, first, second):
            conn.changes(None)
            create(conn)
    finally:
        first.close()
        second.close()
    for path, authorization in proxy.sent:
        user = path.strip("/").split("/")[0]
        assert authorization == "Basic " + base64.b64encode(f"{unquote(user)}:".encode()
                                                             ).decode()
    assert len({a for _, a in proxy.sent}) == 2 and len(proxy.sent) == 8


def test_a_kept_connection_the_server_closed_is_not_used_for_a_write(
        connector: CalDAVCalendar, proxy: Faulty) -> None:
    proxy.close_after = True  # every answer ends its connection, as an idle timeout would
    idle_cursor(connector)
    assert proxy.closed.wait(10)
    proxy.seen.clear()
    assert create(connector).error is None
    assert proxy.seen == {"PUT": 1}


def test_a_write_whose_connection_was_reset_is_sent_once(
        connector: CalDAVCalendar, proxy: Faulty) -> None:
    proxy.seen.clear()
    proxy.faults = [("PUT", "reset")]
    assert isinstance(create(connector).error, Transient)
    assert proxy.seen == {"PUT": 1}


class TlsRadicale(RadicaleServer):
    """Radicale over TLS, with a self-signed certificate for 127.0.0.1."""

    def __init__(self, folder: Path) -> None:
        super().__init__(folder)
        self.cert, self.key = self_signed(folder / "tls")

    def command(self) -> list[str]:
        return [*super().command(), "--server-ssl", "--server-certificate", str(self.cert),
                "--server-key", str(self.key)]

    @property
    def origin(self) -> str:
        return f"https://127.0.0.1:{self.port}"


def test_over_tls_the_connectors_own_connection_verifies_the_accounts_ca_bundle(
        tmp_path: Path) -> None:
    with TlsRadicale(tmp_path / "radicale") as server:
        user = "tls-user@example.com"
        account = AccountConfig(name=user, provider="caldav", owner=user, calendar="crm",
                                auth={"url": server.url, "username": user,
                                      "ca_bundle": str(server.cert),
                                      "create_calendar": True})
        conn = CalDAVCalendar(account, owner_tz="UTC")
        try:
            cursor = idle_cursor(conn)  # found (and made) by the library, then listed
            wire = conn.transport.wire
            assert wire is not None and wire.serves(conn.base_url) is not None
            assert conn.changes(cursor).cursor == cursor
            wire.verify = True  # the system's authorities, which never signed this server
            with pytest.raises(Unreachable, match="TLS failed"):
                conn.changes(cursor)
        finally:
            conn.close()
