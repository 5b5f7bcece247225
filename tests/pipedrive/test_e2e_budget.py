"""The company's daily budget running out in the middle of a cycle, end to end (Pipedrive
emulator <-> Google emulator through the engine): the account rests until the reset with
its cursors where they were, and the next cycle after the reset finishes the work with
nothing lost and nothing done twice."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from syncd.crm.pipedrive import PipedriveSource, Settings
from syncd.crm.pipedrive_auth import ApiToken
from syncd.crm.pipedrive_budget import Limits, PipedriveBudget, token_key_of
from syncd.crm.pipedrive_http import PipedriveHttp
from syncd.crm.pipedrive_markers import MarkerStore
from syncd.engine import fetch, runner
from syncd.store.budgets import BudgetLedger
from syncd.store.db import Database
from syncd_testkit.emulators.google import GoogleEmulator
from syncd_testkit.emulators.pipedrive import PipedriveEmulator
from tests.pipedrive.sides import GoogleSide
from tests.pipedrive.world import PipedriveWorld, company, make_world

MIDNIGHT = datetime(2026, 12, 2, tzinfo=UTC)  # the worlds start at 2026-12-01 08:00 UTC


@pytest.fixture
def emulator() -> Iterator[PipedriveEmulator]:
    emu = company()
    yield emu
    emu.stop()


def budgeted(world: PipedriveWorld, daily_tokens: int) -> None:
    """Give the world's source a company budget of ``daily_tokens`` a day."""
    token = world.emulator.api_token(world.owner)
    clock = world.emulator.clock
    ledger = BudgetLedger(world.db)

    def make() -> PipedriveSource:
        budget = PipedriveBudget(ledger, "acme", Limits(daily_tokens, 40), token_key_of(token),
                                 clock=clock.now, sleep=clock.advance)
        http = PipedriveHttp(world.emulator.base_url, ApiToken(token), budget=budget,
                             sleep=clock.advance)
        return PipedriveSource(http, MarkerStore(world.db, "acme", clock=clock.now_dt),
                               Settings("acme", "https://acme.pipedrive.com"))

    world.make_source = make


def until_reset(world: PipedriveWorld) -> None:
    world.advance(seconds=(MIDNIGHT - world.now).total_seconds() + 60)


def test_a_budget_spent_in_the_middle_of_a_first_sync_rests_the_account_and_resumes_after_reset(
        emulator: PipedriveEmulator, e2e_db: Database, google_emulator: GoogleEmulator,
        monkeypatch: pytest.MonkeyPatch) -> None:
    # Slices of 10 activities (instead of 500) keep the test small.
    monkeypatch.setattr(runner, "BACKFILL_SLICE", 10)
    monkeypatch.setattr(fetch, "CRM_PAGE", 10)
    world = make_world(emulator, e2e_db, GoogleSide(google_emulator))
    for n in range(95):
        world.add(f"Visit {n:02d}", f"2026-12-{10 + n % 15:02d}", f"{8 + n % 8:02d}:00")
        world.advance(seconds=1)  # one a second (a feed of equal seconds is re-read whole)
    # The users (20 tokens), then 10 a page: eight slices of the ten fit in the first day;
    # the second day reads the rest and asks about the linked ones by id.
    budgeted(world, 100)

    first = world.sync()
    assert first.outcome == "failed" and "daily token budget" in (first.message or "")
    account = world.state.account(world.account.name)
    assert account.status == "cooldown" and account.cooldown_until is not None
    assert account.cooldown_until >= MIDNIGHT
    made = len(world.events())
    assert 0 < made < 95  # the slices read before the budget ran out are in the calendar
    assert world.state.account(world.account.name).crm_cursor is not None

    world.advance(minutes=30)  # still the same day: the account rests, nothing is sent
    sent = len(emulator.requests)
    assert world.sync().outcome == "skipped"
    assert len(emulator.requests) == sent

    until_reset(world)
    world.converge()
    titles = sorted(e.projection.title for e in world.events().values() if e.projection)
    assert titles == [f"Visit {n:02d}" for n in range(95)]  # each exactly once
    assert 429 not in [r.status for r in emulator.requests]


def test_a_budget_spent_while_importing_calendar_events_loses_none_and_imports_none_twice(
        emulator: PipedriveEmulator, e2e_db: Database, google_emulator: GoogleEmulator) -> None:
    side = GoogleSide(google_emulator)
    world = make_world(emulator, e2e_db, side)
    start = datetime(2026, 12, 10, 9, 0, tzinfo=UTC)
    for n in range(8):
        side.user_create(world.account, f"Phone call {n}", start + timedelta(days=n), 30)
    budgeted(world, 100)  # the reads, then a few of the eight imports (10 tokens each)

    first = world.sync()
    assert first.outcome != "ok"
    imported = len(world.live_activities())
    assert 0 < imported < 8
    assert world.state.quarantine_count(world.account.name) == 0

    until_reset(world)
    world.converge()
    subjects = sorted(a["subject"] for a in world.live_activities())
    assert subjects == [f"Phone call {n}" for n in range(8)]
    assert world.state.quarantine_count(world.account.name) == 0
    assert 429 not in [r.status for r in emulator.requests]
