"""The per-user request budget: no sliding minute ever carries more than the limit."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest

from connectors import ConnectorContext
from connectors.base import CreateOp
from connectors.google import open_calendar
from connectors.google_auth import project_of
from connectors.google_http import BothBudgets, RequestBudget, SharedRequestBudget
from syncd.config_types import AccountConfig, SecretRef
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
    budgets = [c.transport.budget for c in (first, second, other)]
    assert all(isinstance(b, BothBudgets) for b in budgets)
    assert budgets[0].user is budgets[1].user  # type: ignore[attr-defined]
    assert budgets[2].user is not budgets[0].user  # type: ignore[attr-defined]
    # one project's key: all three count against one project budget
    assert budgets[2].project is budgets[0].project  # type: ignore[attr-defined]


class FakeLine:
    """A send line as :class:`syncd.store.limits.LimitStore` keeps it, on a fake clock
    (the database's own is tested in tests/replicas/test_limits.py)."""

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.next_at: dict[str, float] = {}
        self.takes = 0

    def pace(self, scope: str, seconds: float, *, burst: float = 0.0,
             also: Sequence[tuple[str, float]] = ()) -> float:
        self.takes += 1
        now = self.clock.now
        wait = 0.0
        for key, length, ahead in ((scope, seconds, burst),
                                   *((k, n, 0.0) for k, n in also)):
            start = max(self.next_at.get(key, now), now)
            self.next_at[key] = start + length
            wait = max(wait, start - ahead - now)
        return wait

    def hold(self, scope: str, seconds: float, *, burst: float = 0.0) -> None:
        now = self.clock.now
        self.next_at[scope] = max(self.next_at.get(scope, now), now + seconds + burst)

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
    assert isinstance(alone.transport.budget, BothBudgets)


def test_users_of_one_project_never_pass_its_budget_in_any_sliding_minute() -> None:
    """Each take reserves on the user's line and the project's in one statement: however
    many users send, no minute of send times holds more than the project's budget."""
    clock = FakeClock()
    line = FakeLine(clock)
    budgets = [SharedRequestBudget(line, f"u{i}@example.com", 500, project="p",
                                   project_per_minute=900, sleep=clock.sleep)
               for i in range(6)]
    sent: list[tuple[float, int]] = []
    for i in range(3000):
        budgets[i % 6].take(1)
        sent.append((clock.now, 1))
    assert busiest_minute(sent) <= 900  # six users of 500 each would be 3,000
    assert line.takes == len(sent)  # one statement per take, both lines in it
    assert len(sent) / ((clock.now - 1000.0) / 60) >= 0.8 * 900


def test_a_pause_google_asked_for_holds_the_users_line_for_every_replica() -> None:
    clock = FakeClock()
    line = FakeLine(clock)
    user = "paused-once@example.com"  # (a pause this process heard of stays by scope)
    told, other = (SharedRequestBudget(line, user, 500, sleep=clock.sleep,
                                       clock=clock.clock) for _ in range(2))
    told.take()
    told.hold(30.0)
    start = clock.now
    other.take()  # another replica's request (or another account's of the user)
    assert clock.now - start >= 30.0
    told.hold(365 * 24 * 3600.0)  # hostile: bounded
    other.take()
    assert clock.now - start <= 30.0 + 600.0 + 1.0


def test_a_pause_holds_every_account_of_the_user_in_one_process() -> None:
    clock = FakeClock()
    budget = RequestBudget(500, clock=clock.clock, sleep=clock.sleep)
    budget.take()
    budget.hold(12.0)
    budget.take()
    assert clock.sleeps == [pytest.approx(12.0)]


def test_accounts_count_against_the_project_of_their_key(tmp_path: Path) -> None:
    key = tmp_path / "key.json"
    key.write_text('{"type": "service_account", "project_id": "crm-sync-123", '
                   '"client_email": "s@crm-sync-123.iam.gserviceaccount.com"}')
    account = AccountConfig(name="a", provider="google", owner=OWNER,
                            auth={"service_account_file": SecretRef(f"file:{key}")})
    assert project_of(account) == "crm-sync-123"
    missing = AccountConfig(name="b", provider="google", owner=OWNER,
                            auth={"service_account_file": SecretRef("file:/nonexistent")})
    assert project_of(missing) == "file:/nonexistent"  # the cycle says why; counted alike
