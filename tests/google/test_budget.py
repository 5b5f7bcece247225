"""The per-user request budget: no sliding minute ever carries more than the limit."""

from __future__ import annotations

import pytest

from connectors import ConnectorContext
from connectors.base import CreateOp
from connectors.google import open_calendar
from connectors.google_http import RequestBudget, SharedRequestBudget
from syncd.config_types import AccountConfig
from syncd_testkit.emulators.google import GoogleEmulator
from tests.contract import timed
from tests.google.helpers import OWNER, TZ, WINDOW, FakeClock, HookedHttp, connector


def busiest_minute(calls_at: list[tuple[float, int]]) -> int:
    """The most API calls sent within any 60-second window [t, t + 60)."""
    return max(sum(n for u, n in calls_at if t <= u < t + 60) for t, _ in calls_at)


@pytest.mark.parametrize(("per_minute", "burst"), [(60, 1), (60, 7), (500, 50), (7, 1), (7, 3)])
def test_budget_never_exceeds_the_limit_in_any_sliding_minute(per_minute: int,
                                                              burst: int) -> None:
    clock = FakeClock()
    budget = RequestBudget(per_minute, clock=clock.clock, sleep=clock.sleep)
    taken: list[tuple[float, int]] = []
    for _ in range(5 * per_minute // burst + 3):
        budget.take(burst)
        taken.append((clock.now, burst))
    assert busiest_minute(taken) <= per_minute
    # ...and it is not needlessly slow: the long-run rate approaches the limit.
    total = sum(n for _, n in taken)
    assert total / ((clock.now - 1000.0) / 60) >= 0.8 * per_minute


def test_a_burst_within_the_minute_quota_is_not_paced() -> None:
    clock = FakeClock()
    budget = RequestBudget(500, clock=clock.clock, sleep=clock.sleep)
    for _ in range(10):
        budget.take(50)
    assert clock.sleeps == []
    budget.take(1)  # the 501st waits for the first batch to leave the window
    assert clock.now == pytest.approx(1060.0)


def test_requests_spread_over_the_minute_free_the_budget_as_they_age() -> None:
    clock = FakeClock()
    budget = RequestBudget(10, clock=clock.clock, sleep=clock.sleep)
    budget.take(5)
    clock.now += 30
    budget.take(5)
    clock.now += 31  # the first five are now more than a minute old
    budget.take(5)
    assert clock.sleeps == []
    budget.take(1)  # the second five are 31 s old: wait 29 s for them
    assert clock.sleeps == [pytest.approx(29.0)]


def test_default_budget_stays_under_googles_600_per_user_minute() -> None:
    assert RequestBudget(500).per_minute <= 500 < 600


def test_connector_writes_respect_requests_per_minute(google_emulator: GoogleEmulator) -> None:
    google_emulator.add_calendar(OWNER, time_zone=TZ)
    clock = FakeClock()
    http = HookedHttp(clock=clock.clock)
    conn = connector(google_emulator, clock=clock, http=http,
                     auth={"requests_per_minute": 60})
    ops = [CreateOp(str(i), f"m{i:07d}", 0, timed(f"Call {i}")) for i in range(150)]
    for start in range(0, len(ops), conn.capabilities.max_batch):
        results = conn.write(ops[start:start + conn.capabilities.max_batch])
        assert all(r.error is None for r in results)
    assert len(google_emulator.events(OWNER)) == 150
    assert sum(n for _, n in http.calls_at) == 150
    assert busiest_minute(http.calls_at) <= 60
    assert max(n for _, n in http.calls_at) <= 50  # Google's batch limit
    assert clock.now - 1000.0 >= 60  # it really waited (on the fake clock)


def test_cycles_of_one_user_share_one_budget(google_emulator: GoogleEmulator) -> None:
    from connectors import ConnectorContext
    from connectors.google import open_calendar
    from tests.google.helpers import WINDOW, account

    context = ConnectorContext(TZ, WINDOW)
    first = open_calendar(account(google_emulator), context)
    second = open_calendar(account(google_emulator), context)
    other = open_calendar(account(google_emulator, name="bob", owner="bob@example.com"), context)
    assert first.transport.budget is second.transport.budget
    assert other.transport.budget is not first.transport.budget


class FakeLine:
    """A send line as :class:`syncd.store.limits.LimitStore` keeps it, on a fake clock
    (the database's own is tested in tests/replicas/test_limits.py)."""

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.next_at: dict[str, float] = {}
        self.takes = 0

    def pace(self, scope: str, seconds: float) -> float:
        self.takes += 1
        now = self.clock.now
        start = max(self.next_at.get(scope, now), now)
        self.next_at[scope] = start + seconds
        return start - now

    def take_slots(self, scope: str, limit: int, permits: int, hold: float) -> str | None:
        raise AssertionError("Google takes no slots")

    def give_back(self, scope: str, ticket: str) -> None:
        raise AssertionError("Google takes no slots")


@pytest.mark.parametrize(("per_minute", "parts"), [(500, [50]), (500, [1]), (500, [50, 1, 7]),
                                                  (60, [6, 1]), (7, [1])])
def test_a_shared_budget_never_exceeds_the_limit_in_any_sliding_minute(
        per_minute: int, parts: list[int]) -> None:
    """Replicas take from one line in turn: whatever the batch sizes, no minute of send
    times holds more than the limit, and one database statement is spent per take."""
    clock = FakeClock()
    line = FakeLine(clock)
    budgets = [SharedRequestBudget(line, OWNER, per_minute, sleep=clock.sleep)
               for _replica in range(3)]
    assert budgets[0].capacity <= 50
    sent: list[tuple[float, int]] = []
    for i in range(6 * per_minute):
        n = min(parts[i % len(parts)], budgets[0].capacity)
        budgets[i % 3].take(n)
        sent.append((clock.now, n))
    assert busiest_minute(sent) <= per_minute
    assert line.takes == len(sent)
    total = sum(n for _, n in sent)
    assert total / ((clock.now - 1000.0) / 60) >= 0.8 * per_minute


def test_a_connector_of_a_replica_spends_from_the_shared_budget() -> None:
    clock = FakeClock()
    account = AccountConfig(name="a", provider="google", owner=OWNER,
                            auth={"api_endpoint": "https://calendar.test/calendar/v3/"})
    shared = open_calendar(account, ConnectorContext(TZ, WINDOW, limits=FakeLine(clock)))
    assert isinstance(shared.transport.budget, SharedRequestBudget)
    alone = open_calendar(account, ConnectorContext(TZ, WINDOW))
    assert isinstance(alone.transport.budget, RequestBudget)
