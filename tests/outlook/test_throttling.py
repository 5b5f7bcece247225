"""Throttling: Retry-After is honoured, creates are never re-sent blindly, 4 in flight at most.

A fake clock stands in for time: the connector's sleeps advance it, and every request the
session sends is stamped with it, so "no request before Retry-After" is checked exactly
and the tests never wait.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from typing import Any

import pytest

from connectors import ConnectorContext
from connectors.base import CreateOp
from connectors.outlook import OutlookCalendar
from connectors.outlook_http import MAILBOX_BURST, MAILBOX_REQUESTS, MAILBOX_WINDOW
from syncd.errors import RateLimited, Transient
from syncd_testkit.emulators.graph import FaultRule
from syncd_testkit.emulators.identity import RoutingSession
from tests.contract import timed
from tests.outlook.conftest import ALICE, CLIENT_ID, WINDOW, Context, Env


class FakeClock:
    """Monotonic seconds that only move when the code under test sleeps."""

    def __init__(self) -> None:
        self.now = 1_000.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


class StampingSession(RoutingSession):
    """Stamps every Graph request with the fake clock's time."""

    clock: FakeClock
    graph_base: str
    sent: list[tuple[float, str]]

    def request(self, method: str | bytes, url: str | bytes, *args: Any,
                **kwargs: Any) -> Any:
        if str(url).startswith(self.graph_base):
            self.sent.append((self.clock(), str(method)))
        return super().request(method, url, *args, **kwargs)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def _connector(env: Env, clock: FakeClock, **options: Any) -> tuple[OutlookCalendar, Any]:
    session = StampingSession(env.identity)
    session.clock, session.graph_base, session.sent = clock, env.graph.base_url, []
    conn = OutlookCalendar(env.account(), Context("Europe/Oslo", WINDOW), session=session,
                           clock=clock, sleep=clock.sleep, **options)
    return conn, session


def _creates(n: int, prefix: str = "m") -> list[CreateOp]:
    return [CreateOp(f"k{i}", f"{prefix}{i:07d}", 0, timed(f"Call {i}", hour=8 + i % 9))
            for i in range(n)]


def test_no_request_reaches_a_throttled_mailbox_before_retry_after(env: Env,
                                                                   clock: FakeClock) -> None:
    env.graph.inject(FaultRule(method="GET", path=r"/delta$", status=429,
                               code="ApplicationThrottled", retry_after=7, count=1))
    conn, session = _connector(env, clock)
    conn.changes(None)
    statuses = [r.status for r in env.graph.requests]
    assert statuses[0] == 429 and 429 not in statuses[1:]
    (throttled_at, _), (next_at, _) = session.sent[0], session.sent[1]
    assert next_at - throttled_at >= 7
    assert len(session.sent) == len(env.graph.requests)  # every request was stamped


def test_an_inner_429_is_sent_again_after_retry_after_and_its_dependents_too(
    env: Env, clock: FakeClock
) -> None:
    env.graph.inject(FaultRule(method="POST", path=r"/events$", status=429,
                               code="ApplicationThrottled", retry_after=5, count=1,
                               in_batch=True))
    conn, session = _connector(env, clock)
    results = conn.write(_creates(8))
    assert [r.error for r in results] == [None] * 8
    assert len(env.graph.events(ALICE)) == 8
    inner = [r.status for r in env.graph.requests if r.in_batch]
    assert inner.count(429) == 1 and inner.count(424) == 1  # the head and its chain
    batches = [t for t, method in session.sent if method == "POST"]
    assert len(batches) == 2 and batches[1] - batches[0] >= 5


def test_a_pause_longer_than_the_connector_waits_is_reported_and_sends_nothing(
    env: Env, clock: FakeClock
) -> None:
    env.graph.inject(FaultRule(method="GET", path=r"/delta$", status=429,
                               code="ApplicationThrottled", retry_after=120, count=1))
    conn, _ = _connector(env, clock, max_wait=30.0)
    with pytest.raises(RateLimited) as raised:
        conn.changes(None)
    assert raised.value.retry_after == pytest.approx(120)
    assert len(env.graph.requests) == 1
    # Another connector of this process, same mailbox: refused before any request.
    other, _ = _connector(env, clock, max_wait=30.0)
    with pytest.raises(RateLimited):
        other.changes(None)
    [result] = other.write(_creates(1))
    assert isinstance(result.error, RateLimited)
    assert len(env.graph.requests) == 1
    clock.now += 120
    other.changes(None)
    assert len(env.graph.requests) == 2


def test_reads_are_retried_after_503_but_a_create_is_never_resent_blindly(
    env: Env, clock: FakeClock
) -> None:
    env.graph.inject(FaultRule(method="GET", path=r"/delta$", status=503, count=2))
    conn, _ = _connector(env, clock)
    conn.changes(None)
    assert [r.status for r in env.graph.requests][:3] == [503, 503, 200]
    assert len(clock.sleeps) == 2
    env.graph.inject(FaultRule(method="POST", path=r"/events$", status=503, count=1,
                               in_batch=True))
    [result] = conn.write(_creates(1))
    assert isinstance(result.error, Transient)
    assert sum(1 for r in env.graph.requests if r.method == "POST" and r.in_batch) == 1


def test_two_accounts_on_one_mailbox_share_its_four_slots(env: Env) -> None:
    env.graph.latency_seconds = 0.02
    a = env.connector(env.account("one"))
    b = env.connector(env.account("two"))
    errors: list[BaseException] = []

    def run(conn: OutlookCalendar, prefix: str) -> None:
        try:
            assert all(r.error is None for r in conn.write(_creates(20, prefix)))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(a, "a")),
               threading.Thread(target=run, args=(b, "b"))]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert not errors, errors
    assert time.monotonic() - started < 30
    assert env.graph.max_in_flight_seen[ALICE.lower()] == 4
    assert all(r.status != 429 for r in env.graph.requests)
    assert len(env.graph.events(ALICE)) == 40


def test_a_write_larger_than_a_batch_is_split_into_batches_of_twenty(env: Env,
                                                                     clock: FakeClock) -> None:
    conn, session = _connector(env, clock)
    results = conn.write(_creates(25))
    assert [r.error for r in results] == [None] * 25
    assert [m for _, m in session.sent] == ["POST", "POST"]
    assert len(env.graph.events(ALICE)) == 25


class FakeSlots:
    """A mailbox's slots as :class:`syncd.store.limits.LimitStore` keeps them for every
    replica, in memory (the database's own is tested in tests/replicas/test_limits.py);
    ``elsewhere`` are held by other replicas."""

    def __init__(self, elsewhere: int = 0, clock: FakeClock | None = None) -> None:
        self.elsewhere = elsewhere
        self.clock = clock
        self.tickets: dict[str, int] = {}
        self.takes: list[tuple[str, int, int]] = []
        self.taken_at: list[float] = []  # the clock at each take (with a clock)
        self.peak = 0
        self.paced: list[tuple[str, float, float]] = []
        self.holds: list[tuple[str, float]] = []
        self._lock = threading.Lock()

    def pace(self, scope: str, seconds: float, *, burst: float = 0.0,
             also: Sequence[tuple[str, float]] = ()) -> float:
        self.paced.append((scope, seconds, burst))
        return 0.0  # the line is tested with the database's (tests/replicas)

    def hold(self, scope: str, seconds: float, *, burst: float = 0.0) -> None:
        self.holds.append((scope, seconds))

    def take_slots(self, scope: str, limit: int, permits: int, hold: float) -> str | None:
        with self._lock:
            self.takes.append((scope, limit, permits))
            if self.clock is not None:
                self.taken_at.append(self.clock())
            if self.elsewhere + sum(self.tickets.values()) + permits > limit:
                return None
            ticket = f"t{len(self.takes)}"
            self.tickets[ticket] = permits
            self.peak = max(self.peak, sum(self.tickets.values()))
            return ticket

    def give_back(self, scope: str, ticket: str) -> None:
        with self._lock:
            del self.tickets[ticket]


def test_a_replicas_requests_take_the_mailboxs_shared_slots_and_give_them_back(
        env: Env) -> None:
    slots = FakeSlots()
    account = env.account()
    conn = OutlookCalendar(account, ConnectorContext("Europe/Oslo", WINDOW, limits=slots),
                           session=env.session)
    assert all(r.error is None for r in conn.write(_creates(20)))  # one $batch of 4 chains
    assert slots.tickets == {}  # every slot given back
    assert slots.peak == 4
    scopes = {scope for scope, _limit, _permits in slots.takes}
    assert scopes == {f"graph:{env.graph.base_url.split('/')[2]}|{CLIENT_ID}|{ALICE.lower()}"}
    assert {limit for _scope, limit, _permits in slots.takes} == {4}
    assert (scopes.pop(), 4, 4) in slots.takes  # the batch took its four chains' slots


def test_a_mailbox_whose_slots_other_replicas_hold_is_left_for_later_and_sent_nothing(
        env: Env, clock: FakeClock) -> None:
    slots = FakeSlots(elsewhere=4, clock=clock)
    session = StampingSession(env.identity)
    session.clock, session.graph_base, session.sent = clock, env.graph.base_url, []
    conn = OutlookCalendar(env.account(), ConnectorContext("Europe/Oslo", WINDOW, limits=slots),
                           session=session, clock=clock, sleep=clock.sleep, max_wait=5.0)
    with pytest.raises(RateLimited):
        conn.get("AAMkAGI2")
    assert session.sent == []
    # It waited, polling, up to max_wait: measured between its first and last look at
    # the slots (a sign-in retried on the loaded machine may sleep before the first).
    assert 4.0 < slots.taken_at[-1] - slots.taken_at[0] <= 5.0
    assert len(slots.takes) > 3


def test_a_replicas_429_with_retry_after_is_recorded_for_every_replica_bounded(
        env: Env, clock: FakeClock) -> None:
    slots = FakeSlots(clock=clock)
    env.graph.inject(FaultRule(method="GET", path=r"/delta$", status=429,
                               code="ApplicationThrottled", retry_after=7, count=1))
    env.graph.inject(FaultRule(method="GET", path=r"/delta$", status=429,
                               code="ApplicationThrottled", retry_after=10 ** 9, count=1))
    conn = OutlookCalendar(env.account(), ConnectorContext("Europe/Oslo", WINDOW, limits=slots),
                           session=env.session, clock=clock, sleep=clock.sleep,
                           max_wait=1000.0)
    conn.changes(None)
    scope = f"graph:{env.graph.base_url.split('/')[2]}|{CLIENT_ID}|{ALICE.lower()}"
    # the second pause, of 30 years, holds the mailbox for ten minutes
    assert slots.holds == [(scope, 7.0), (scope, 600.0)]


def test_a_replicas_batch_spends_one_turn_of_the_mailboxs_line_per_item(env: Env) -> None:
    slots = FakeSlots()
    conn = OutlookCalendar(env.account(), ConnectorContext("Europe/Oslo", WINDOW, limits=slots),
                           session=env.session)
    assert all(r.error is None for r in conn.write(_creates(20)))
    spacing = MAILBOX_WINDOW / (MAILBOX_REQUESTS - MAILBOX_BURST - 20)  # 9,000 in 10 min
    assert [(seconds, burst) for _scope, seconds, burst in slots.paced] == [
        (pytest.approx(20 * spacing), pytest.approx(MAILBOX_BURST * spacing))]  # one $batch
