"""The Pipedrive source spends through the company's ledger: every call it makes is
counted, and a budget spent in the middle of a listing keeps the cursor, so the listing
resumes after the daily reset with nothing lost."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import requests

from syncd.crm import open_source
from syncd.crm.pipedrive import open_pipedrive
from syncd.crm.pipedrive_auth import ApiToken
from syncd.crm.pipedrive_budget import Limits, PipedriveBudget, token_key_of
from syncd.crm.pipedrive_http import PipedriveHttp
from syncd.errors import AccountCooldown
from syncd.model import Activity
from syncd.store.budgets import BudgetLedger
from syncd.store.db import Database
from tests.pipedrive.conftest import EmulatorFactory


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    database = Database(f"sqlite:///{tmp_path / 'state.sqlite'}")
    yield database
    database.close()


def test_every_call_the_source_makes_is_counted_in_the_companys_ledger(
        make_emulator: EmulatorFactory, db: Database) -> None:
    emulator = make_emulator()
    ada = emulator.add_user("Ada", "ada@acme.test", is_admin=True)
    for n in range(12):
        emulator.create_as_user(ada, subject=f"Call {n}", due_date="2026-03-05",
                                due_time="09:00", duration="00:30")
    source = open_source("pipedrive", db, {
        "company_domain": "acme", "api_token": emulator.api_token(ada),
        "api_url": emulator.base_url, "plan": "growth", "seats": 3, "daily_tokens": 5000})

    owner = source.user("ada@acme.test")
    assert owner is not None
    cursor, seen = None, 0
    while True:
        page = source.changes(cursor, owner_id=owner.id, limit=5)
        seen, cursor = seen + len(page.items), page.cursor
        if not page.more:
            break

    assert seen == 12
    [today] = BudgetLedger(db).current(datetime.now(UTC))
    assert (today.scope, today.allowance) == ("pipedrive:acme", 5000)
    assert today.used == emulator.tokens_spent() > 0


def test_a_budget_spent_mid_listing_keeps_the_cursor_and_the_rest_is_read_after_the_reset(
        make_emulator: EmulatorFactory, db: Database) -> None:
    emulator = make_emulator(daily_tokens=60)
    ada = emulator.add_user("Ada", "ada@acme.test", is_admin=True)
    made = {int(emulator.create_as_user(ada, subject=f"Call {n}", due_date="2026-03-05",
                                        due_time="09:00", duration="00:30")["id"])
            for n in range(40)}
    token = emulator.api_token(ada)
    budget = PipedriveBudget(BudgetLedger(db), "acme", Limits(60, 40), token_key_of(token),
                             clock=emulator.clock.now, sleep=emulator.clock.advance)
    source = open_pipedrive({"company_domain": "acme", "api_token": token,
                             "api_url": emulator.base_url}, db, budget=budget)
    owner = source.user("ada@acme.test")
    assert owner is not None

    cursor: str | None = None
    read: list[int] = []
    stops = 0
    while True:
        try:
            page = source.changes(cursor, owner_id=owner.id, limit=5)
        except AccountCooldown as spent:
            stops += 1
            emulator.clock.advance(spent.seconds)  # the next cycle, after the reset
            continue
        read += [a.id for a in page.items if isinstance(a, Activity)]
        cursor = page.cursor  # what the engine commits after each page
        if not page.more:
            break

    assert stops == 1  # day one: the users (20 tokens) and 4 of the 8 pages (10 each)
    assert sorted(read) == sorted(made)  # nothing lost, nothing read twice
    assert 429 not in [r.status for r in emulator.requests]


def test_a_429_is_waited_out_and_the_call_sent_again_by_the_sources_http_layer(
        make_emulator: EmulatorFactory, db: Database) -> None:
    emulator = make_emulator(burst_limit=2)
    ada = emulator.add_user("Ada", "ada@acme.test", is_admin=True)
    token = emulator.api_token(ada)
    for _ in range(2):  # another integration fills the token's window
        assert requests.get(emulator.base_url + "/api/v2/activities",
                            headers={"x-api-token": token}, timeout=10).status_code == 200
    budget = PipedriveBudget(BudgetLedger(db), "acme", Limits(1000, 40), token_key_of(token),
                             clock=emulator.clock.now, sleep=emulator.clock.advance)
    http = PipedriveHttp(emulator.base_url, ApiToken(token), budget=budget,
                         sleep=emulator.clock.advance)

    assert http.get("/api/v2/activities", {"limit": 5}).data == []

    assert [r.status for r in emulator.requests] == [200, 200, 429, 200]
    today = budget.today()
    assert today is not None and today.used == 10
