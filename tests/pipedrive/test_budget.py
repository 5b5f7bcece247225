"""Pipedrive's budgets counted by syncd: the company's daily tokens and each token's 2-second
burst window, shared by every account and replica through the database, with real HTTP
calls to the emulator (which counts and refuses like Pipedrive)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import UTC, datetime

import pytest
import requests

from syncd.crm.pipedrive_budget import (
    STOP_AFTER,
    Limits,
    PipedriveBudget,
    cost_of,
    day_of,
    token_key_of,
)
from syncd.errors import AccountCooldown
from syncd.store.budgets import BudgetLedger
from syncd_testkit.emulators.pipedrive import PipedriveEmulator
from syncd_testkit.emulators.pipedrive_fixtures import START
from tests.pipedrive.conftest import EmulatorFactory, Replicas

TO_MIDNIGHT = 15 * 3600  # the emulator's clock starts at 09:00 UTC
LIST = "/api/v2/activities"


class Account:
    """One account's calls through its budget, as the source's HTTP layer makes them."""

    def __init__(self, emulator: PipedriveEmulator, token: str, budget: PipedriveBudget
                 ) -> None:
        self.emulator, self.token, self.budget = emulator, token, budget
        self.session = requests.Session()
        self.session.headers["x-api-token"] = token

    def list_page(self) -> int:
        url = self.emulator.base_url + LIST
        answer = self.budget.send("GET", url, lambda: self.session.get(url, params={"limit": 5}))
        return answer.status_code


def account(emulator: PipedriveEmulator, ledger: BudgetLedger, limits: Limits, token: str, *,
            clock: Callable[[], float] | None = None,
            sleep: Callable[[float], None] | None = None) -> Account:
    """An account of company acme; its budget waits on the emulator's clock unless told."""
    budget = PipedriveBudget(ledger, "acme", limits, token_key_of(token),
                             clock=clock or emulator.clock.now,
                             sleep=sleep or emulator.clock.advance)
    return Account(emulator, token, budget)


def statuses(emulator: PipedriveEmulator) -> list[int | None]:
    return [r.status for r in emulator.requests]


def naive_get(emulator: PipedriveEmulator, token: str) -> int:
    """A call that no budget counts (another integration of the company)."""
    return requests.get(emulator.base_url + LIST, headers={"x-api-token": token},
                        timeout=10).status_code


class OwnClock:
    """syncd's clock where it differs from Pipedrive's: moves only when syncd sleeps."""

    def __init__(self) -> None:
        self.t = START.timestamp()

    def now(self) -> float:
        return self.t

    def sleep(self, seconds: float) -> None:
        self.t += seconds


# --- costs and limits ---------------------------------------------------------------------


def test_calls_cost_the_documented_tokens_and_an_unlisted_call_the_dearest() -> None:
    assert cost_of("GET", "https://acme.pipedrive.com/api/v2/activities?limit=500") == 10
    assert cost_of("GET", "/api/v2/activities/17") == 1
    assert cost_of("PATCH", "/api/v2/activities/17") == 10
    assert cost_of("POST", "/api/v2/activities") == 10
    assert cost_of("DELETE", "/api/v2/activities/17") == 6
    assert cost_of("GET", "http://127.0.0.1:9/v1/users") == 20
    assert cost_of("GET", "/v1/users/me") == 2
    assert cost_of("GET", "/api/v2/itemSearch") == 40


def test_a_plan_gives_30000_tokens_per_seat_times_its_multiplier_and_a_burst_per_token(
) -> None:
    assert Limits.for_plan("growth", 5) == Limits(300_000, 40)
    assert Limits.for_plan("lite", 3, oauth=True) == Limits(90_000, 80)
    assert Limits.for_plan("ultimate", 1, daily_tokens=50_000).daily_tokens == 50_000
    assert Limits.for_plan("premium", 2, daily_tokens=10**9).daily_tokens == 300_000
    with pytest.raises(ValueError, match="plan must be one of"):
        Limits.for_plan("gold", 1)


# --- the daily budget ---------------------------------------------------------------------


def test_two_accounts_of_one_company_share_one_daily_budget_and_stop_before_it_is_passed(
        make_emulator: EmulatorFactory, replicas: Replicas) -> None:
    emulator = make_emulator(daily_tokens=100)
    ledger = replicas()
    limits = Limits(daily_tokens=100, burst=40)
    alice = account(emulator, ledger, limits, emulator.api_token(
        emulator.add_user("Alice", "alice@acme.test")))
    bob = account(emulator, ledger, limits, emulator.api_token(
        emulator.add_user("Bob", "bob@acme.test")))

    for _ in range(5):
        assert alice.list_page() == 200
        assert bob.list_page() == 200
    for who in (alice, bob):
        with pytest.raises(AccountCooldown) as refused:
            who.list_page()
        assert refused.value.seconds == TO_MIDNIGHT
        assert "daily token budget of Pipedrive company acme is spent (100 of 100)" in (
            refused.value.reason)

    assert statuses(emulator) == [200] * 10  # the refusals sent nothing
    assert emulator.budget.used_today == 100
    today = alice.budget.today()
    assert today is not None and (today.used, today.left) == (100, 0)


def test_two_replicas_share_one_daily_budget_through_the_database(
        make_emulator: EmulatorFactory, replicas: Replicas) -> None:
    emulator = make_emulator(daily_tokens=300, burst_limit=1000)
    limits = Limits(daily_tokens=300, burst=1000)
    users = [emulator.add_user(f"U{i}", f"u{i}@acme.test") for i in range(4)]
    # Two replicas (two handles on the database), each running two accounts at once.
    workers = [account(emulator, ledger, limits, emulator.api_token(user))
               for ledger, user in zip([replicas(), replicas()] * 2, users, strict=True)]
    sent = [0] * len(workers)

    def run(index: int) -> None:
        while True:
            try:
                assert workers[index].list_page() == 200
            except AccountCooldown:
                return
            sent[index] += 1

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(workers))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)

    assert sum(sent) == 30
    assert statuses(emulator) == [200] * 30
    assert emulator.budget.used_today == 300
    for worker in workers:
        today = worker.budget.today()
        assert today is not None and today.used == 300


def test_the_budget_starts_afresh_after_the_daily_reset_and_keeps_the_old_day(
        make_emulator: EmulatorFactory, replicas: Replicas) -> None:
    emulator = make_emulator(daily_tokens=20)
    ledger = replicas()
    alice = account(emulator, ledger, Limits(20, 40), emulator.api_token(
        emulator.add_user("Alice", "alice@acme.test")))
    assert [alice.list_page(), alice.list_page()] == [200, 200]
    with pytest.raises(AccountCooldown) as refused:
        alice.list_page()

    emulator.clock.advance(refused.value.seconds)
    assert alice.list_page() == 200
    assert statuses(emulator) == [200] * 3
    today = alice.budget.today()
    assert today is not None and (today.day, today.used) == ("2026-03-03", 10)
    yesterday = ledger.day("pipedrive:acme", "2026-03-02")
    assert yesterday is not None and yesterday.used == 20


def test_the_day_ends_at_midnight_of_the_configured_zone() -> None:
    # 2026-03-28 23:30 UTC is already the 29th in Berlin, the day summer time starts.
    assert day_of("Europe/Berlin", datetime(2026, 3, 28, 23, 30, tzinfo=UTC).timestamp()) == (
        "2026-03-29", datetime(2026, 3, 29, 22, 0, tzinfo=UTC))
    assert day_of("UTC", START.timestamp()) == ("2026-03-02", datetime(2026, 3, 3, tzinfo=UTC))


def test_crossing_three_quarters_of_the_budget_is_logged_once(
        make_emulator: EmulatorFactory, replicas: Replicas,
        caplog: pytest.LogCaptureFixture) -> None:
    emulator = make_emulator()
    alice = account(emulator, replicas(), Limits(100, 40), emulator.api_token(
        emulator.add_user("Alice", "alice@acme.test")))
    with caplog.at_level(logging.WARNING, logger="syncd.crm.pipedrive_budget"):
        for _ in range(10):
            alice.list_page()
    warnings = [r.getMessage() for r in caplog.records]
    assert warnings == ["Pipedrive company acme: 80 of 100 tokens of today's budget used (75 %)"]


# --- the burst window and 429s ---------------------------------------------------------------


def test_accounts_sharing_a_token_are_paced_within_its_burst_window(
        make_emulator: EmulatorFactory, replicas: Replicas) -> None:
    emulator = make_emulator(burst_limit=5)
    token = emulator.api_token(emulator.add_user("Admin", "admin@acme.test", is_admin=True))
    # Without pacing, the sixth call inside two seconds is refused...
    assert [naive_get(emulator, token) for _ in range(6)][-1] == 429
    emulator.clock.advance(2)
    emulator.clear_requests()
    # ...while two accounts using the same token through the budget never are.
    ledger = replicas()
    first, second = (account(emulator, ledger, Limits(10_000, 5), token) for _ in range(2))
    for _ in range(15):
        assert first.list_page() == 200
        assert second.list_page() == 200
    assert statuses(emulator) == [200] * 30


def test_a_429_waits_the_time_pipedrive_asks_then_the_call_goes_through_counted_once(
        make_emulator: EmulatorFactory, replicas: Replicas) -> None:
    emulator = make_emulator(burst_limit=3)
    emulator.budget.retry_after_header = True
    token = emulator.api_token(emulator.add_user("Alice", "alice@acme.test"))
    for _ in range(3):  # another integration fills the token's window
        assert naive_get(emulator, token) == 200
    alice = account(emulator, replicas(), Limits(10_000, 3), token)
    before = emulator.clock.now()

    assert alice.list_page() == 200

    assert statuses(emulator) == [200, 200, 200, 429, 200]
    assert emulator.clock.now() - before >= 2.0  # Retry-After: 2
    today = alice.budget.today()
    assert today is not None and (today.used, today.throttled) == (10, 0)  # the 429 is free


def test_repeated_429s_stop_every_call_of_the_company_before_the_block_page(
        make_emulator: EmulatorFactory, replicas: Replicas) -> None:
    # Pipedrive keeps refusing (its window never clears on its own clock) and would show
    # the block page after 10 refusals in a row.
    emulator = make_emulator(burst_limit=1, block_after=10)
    ledger = replicas()
    own = OwnClock()
    alice = account(emulator, ledger, Limits(10_000, 40), emulator.api_token(
        emulator.add_user("Alice", "alice@acme.test")), clock=own.now, sleep=own.sleep)
    bob = account(emulator, ledger, Limits(10_000, 40), emulator.api_token(
        emulator.add_user("Bob", "bob@acme.test")), clock=own.now, sleep=own.sleep)
    assert alice.list_page() == 200

    with pytest.raises(AccountCooldown) as stopped:
        alice.list_page()
    assert "4 rate-limited answers in a row" in stopped.value.reason
    with pytest.raises(AccountCooldown):
        bob.list_page()  # another account of the company: refused before sending

    assert statuses(emulator) == [200] + [429] * STOP_AFTER
    assert STOP_AFTER < 10
    assert 403 not in statuses(emulator)

    own.sleep(stopped.value.seconds)  # the daily reset, on both clocks
    emulator.clock.advance(stopped.value.seconds)
    assert bob.list_page() == 200


def test_a_block_page_seen_stops_every_call_of_the_company_until_the_daily_reset(
        make_emulator: EmulatorFactory, replicas: Replicas) -> None:
    emulator = make_emulator(burst_limit=1, block_after=2)
    admin = emulator.api_token(emulator.add_user("Admin", "admin@acme.test", is_admin=True))
    ledger = replicas()
    limits = Limits(10_000, 40)
    alice = account(emulator, ledger, limits, admin)
    bob = account(emulator, ledger, limits, emulator.api_token(
        emulator.add_user("Bob", "bob@acme.test")))
    # Another integration on the admin's token keeps calling after 429s and gets it blocked.
    assert [naive_get(emulator, admin) for _ in range(5)] == [200, 429, 429, 403, 403]
    emulator.clear_requests()

    with pytest.raises(AccountCooldown) as stopped:
        alice.list_page()
    assert stopped.value.seconds == TO_MIDNIGHT
    assert "block page (403) was seen" in stopped.value.reason
    with pytest.raises(AccountCooldown):
        bob.list_page()
    assert statuses(emulator) == [403]

    emulator.clock.advance(TO_MIDNIGHT)
    assert alice.list_page() == 200
    assert bob.list_page() == 200


def test_a_429_for_a_day_spent_on_pipedrives_side_stops_at_once_until_its_reset(
        make_emulator: EmulatorFactory, replicas: Replicas) -> None:
    emulator = make_emulator(daily_tokens=50)
    other = emulator.api_token(emulator.add_user("Other", "other@acme.test"))
    for _ in range(5):  # other integrations spend the company's whole day
        assert naive_get(emulator, other) == 200
    emulator.clear_requests()
    alice = account(emulator, replicas(), Limits(10_000, 40), emulator.api_token(
        emulator.add_user("Alice", "alice@acme.test")))

    with pytest.raises(AccountCooldown) as stopped:
        alice.list_page()

    assert statuses(emulator) == [429]
    assert stopped.value.seconds == TO_MIDNIGHT
    today = alice.budget.today()
    assert today is not None and today.used == 0
