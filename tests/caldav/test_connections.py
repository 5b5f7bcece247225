"""What a CalDAV connector's requests cost in connections, and what happens when one fails
before any answer, against the real Radicale behind a loopback proxy.

A read (the idle cycle's sync-collection) whose connection is reset, or that a gateway
answers 502, is sent once more: at 64 workers a busy server's listen queue resets new
connections now and then (Radicale's built-in server queues 5), and a cycle must not
fail for that. A write is sent once, whatever happens to it.
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from connectors.base import CreateOp
from connectors.caldav import CalDAVCalendar
from syncd.config import AccountConfig
from syncd.errors import Transient
from syncd.model import Projection, When
from syncd_testkit.proxy import Answer, Plan, ProxyRequest, ReverseProxy
from syncd_testkit.servers import RadicaleServer
from tests.conftest import fresh_calendar


class Faulty(ReverseProxy):
    """Passes everything on, except the next requests of a method it was told to fail:
    their connection reset, or a 502 in the server's stead."""

    name = "faulty-proxy"
    nodelay = True

    def __init__(self, upstream_port: int) -> None:
        super().__init__(f"http://127.0.0.1:{upstream_port}", timeout=30.0)
        self.faults: list[tuple[str, str]] = []  # (method, "reset" or "502"), in order
        self.seen: Counter[str] = Counter()  # requests that reached the proxy, by method

    def plan(self, request: ProxyRequest) -> Plan:
        self.seen[request.method] += 1
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


@pytest.fixture
def connector(radicale: RadicaleServer, proxy: Faulty) -> Iterator[CalDAVCalendar]:
    user, calendar = fresh_calendar(radicale)
    through = calendar.replace(radicale.origin, proxy.origin)
    account = AccountConfig(name="c", provider="caldav", owner=user, calendar=through,
                            auth={"url": f"{proxy.origin}/", "username": user})
    conn = CalDAVCalendar(account, owner_tz="UTC")
    conn.calendar  # noqa: B018 - found before the requests are counted
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


def test_a_write_whose_connection_was_reset_is_sent_once(
        connector: CalDAVCalendar, proxy: Faulty) -> None:
    proxy.seen.clear()
    proxy.faults = [("PUT", "reset")]
    when = When(datetime(2026, 12, 8, 9, tzinfo=UTC), datetime(2026, 12, 8, 10, tzinfo=UTC))
    [result] = connector.write([CreateOp("k", uuid.uuid4().hex, 0, Projection("Call", when))])
    assert isinstance(result.error, Transient)
    assert proxy.seen == {"PUT": 1}
