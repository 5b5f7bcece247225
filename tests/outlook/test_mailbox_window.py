"""A single process counts Graph's requests per mailbox in 10 minutes, as replicas do.

The emulator enforces the window (429 + Retry-After past ``requests_per_10_min_per_mailbox``
in ``requests_window_seconds``), shortened here, on a fake clock that the transport's sleeps
advance: what is counted is requests, at the emulator, never wall-clock time. Without
shared limits (no replicas: SQLite, the default) the transport paces on this process's own
line (:mod:`connectors.local_limits`); its control, the line set far past the quota,
meets the emulator's 429s.
"""

from __future__ import annotations

import threading
from typing import Any

import pytest
import requests

from connectors.local_limits import local_limits
from connectors.outlook_http import MAX_BATCH, GraphTransport
from syncd.errors import RateLimited
from syncd_testkit.emulators.graph import FaultRule, GraphEmulator

MAILBOX = "ann@contoso.test"
#: The window (Graph's 10 minutes, shortened), Graph's quota in it, syncd's line under it
#: (in the ratio of 9,000 to 10,000), and how many requests a run sends: over three windows'
#: worth of the quota, so that unpaced they are refused.
WINDOW, QUOTA, LINE, SENT = 10.0, 60, 54, 200


class FakeClock:
    """Seconds that move only when someone sleeps; shared by the emulator and syncd."""

    def __init__(self) -> None:
        self.now = 5_000.0
        self._lock = threading.Lock()

    def __call__(self) -> float:
        with self._lock:
            return self.now

    def sleep(self, seconds: float) -> None:
        with self._lock:
            self.now += max(seconds, 0.0)


class Tokens:
    def token(self) -> str:
        return "token"

    def invalidate(self) -> None:
        pass


@pytest.fixture
def graph(graph_emulator: GraphEmulator) -> GraphEmulator:
    graph_emulator.add_mailbox(MAILBOX)
    graph_emulator.requests_per_10_min_per_mailbox = QUOTA
    graph_emulator.requests_window_seconds = WINDOW
    return graph_emulator


class Stamping(requests.Session):
    """Stamps each request with the fake clock's time, and its answer's status."""

    def __init__(self, clock: FakeClock) -> None:
        super().__init__()
        self.clock = clock
        self.sent: list[tuple[float, int]] = []

    def request(self, method: str | bytes, url: str | bytes, *args: Any,
                **kwargs: Any) -> Any:
        at = self.clock()
        answer = super().request(str(method), str(url), *args, **kwargs)
        self.sent.append((at, answer.status_code))
        return answer


def _transport(graph: GraphEmulator, clock: FakeClock, *, line: int = LINE,
               max_wait: float = 1e6, session: Stamping | None = None) -> GraphTransport:
    graph.clock = clock
    return GraphTransport(session or Stamping(clock), graph.base_url, Tokens(),
                          mailbox=MAILBOX, prefer='IdType="ImmutableId"', clock=clock,
                          sleep=clock.sleep, app="app", per_window=line, window=WINDOW,
                          max_wait=max_wait)


def _send(transport: GraphTransport, count: int) -> list[int]:
    return [transport.request("GET", f"/users/{MAILBOX}/events?$top=1").status
            for _ in range(count)]


def _busiest_window(sent: list[tuple[float, int]]) -> int:
    """The most answered requests sent in any one window (by the fake clock)."""
    times = sorted(at for at, status in sent if status != 429)
    most, start = 0, 0
    for i, at in enumerate(times):
        while times[start] <= at - WINDOW:
            start += 1
        most = max(most, i - start + 1)
    return most


#: The line's spacing: a burst of a tenth of it, then one request each this many seconds.
SPACING = WINDOW / (LINE - LINE // 10 - MAX_BATCH)


def test_a_single_process_sending_past_the_mailboxs_window_is_paced_and_never_refused(
        graph: GraphEmulator) -> None:
    clock = FakeClock()
    session = Stamping(clock)
    statuses = _send(_transport(graph, clock, session=session), SENT)
    assert statuses == [200] * SENT
    assert graph.gate.refused_in_window.get(MAILBOX, 0) == 0
    assert QUOTA > LINE >= _busiest_window(session.sent) > LINE // 2
    # Paced, not stopped: four windows' worth of the quota went out, each request as
    # soon as its turn came (a burst of LINE // 10, then one each SPACING).
    assert clock.now - 5_000.0 == pytest.approx((SENT - 1 - LINE // 10) * SPACING)


def test_its_control_with_the_line_far_past_the_quota_is_refused(
        graph: GraphEmulator) -> None:
    """The control: the same process and requests, its line a million a window (off)."""
    clock = FakeClock()
    session = Stamping(clock)
    statuses = _send(_transport(graph, clock, line=1_000_000, session=session), SENT)
    assert graph.gate.refused_in_window.get(MAILBOX, 0) > 0
    assert sum(1 for _at, status in session.sent if status == 429) > 0
    assert statuses == [200] * SENT  # each refusal was waited out (its Retry-After)


def test_every_connector_of_the_process_spends_from_one_line_per_mailbox(
        graph: GraphEmulator) -> None:
    """Two accounts on one mailbox, each cycle a new transport: they take turns on one
    line, so their requests are paced as one sender's."""
    clock = FakeClock()
    for _cycle in range(4):
        for _account in range(2):
            assert set(_send(_transport(graph, clock), SENT // 8)) == {200}
    assert graph.gate.refused_in_window.get(MAILBOX, 0) == 0
    assert local_limits(clock).lines() == 2  # the mailbox's, and its app's
    assert clock.now - 5_000.0 == pytest.approx((SENT - 1 - LINE // 10) * SPACING)


def test_a_pause_graph_asked_for_moves_the_processs_line_and_spends_its_burst(
        graph: GraphEmulator) -> None:
    clock = FakeClock()
    transport = _transport(graph, clock)
    transport.slots.hold(30.0)  # what a 429 with Retry-After: 30 records
    _send(transport, 2)
    assert clock.now - 5_000.0 == pytest.approx(30.0 + SPACING)  # no burst after a pause
    # A pause longer than a connector waits is reported, and nothing is sent.
    transport.slots.hold(600.0)
    sent = len(graph.requests)
    with pytest.raises(RateLimited):
        _send(_transport(graph, clock, max_wait=5.0), 1)
    assert len(graph.requests) == sent


def test_a_429_from_graph_holds_the_processs_line_for_its_retry_after(
        graph: GraphEmulator) -> None:
    clock = FakeClock()
    graph.inject(FaultRule(method="GET", path=r"/events$", status=429,
                           code="ApplicationThrottled", retry_after=7, count=1))
    session = Stamping(clock)
    assert _send(_transport(graph, clock, session=session), 3) == [200] * 3
    (refused_at, refused), (again_at, _ok) = session.sent[0], session.sent[1]
    assert refused == 429 and again_at - refused_at == pytest.approx(7.0)
    # Another connector of the process, a cycle later, finds the burst spent.
    before = clock.now
    _send(_transport(graph, clock), 1)
    assert clock.now - before == pytest.approx(SPACING)


def test_a_retry_after_of_400_digits_holds_the_processs_line_ten_minutes_not_forever(
        graph: GraphEmulator) -> None:
    clock = FakeClock()
    graph.inject(FaultRule(method="GET", path=r"/events$", status=429,
                           code="ApplicationThrottled", retry_after=int("9" * 400), count=1))
    session = Stamping(clock)
    assert _send(_transport(graph, clock, session=session), 2) == [200] * 2
    (refused_at, refused), (again_at, _ok) = session.sent[0], session.sent[1]
    assert refused == 429 and again_at - refused_at == pytest.approx(600.0)
