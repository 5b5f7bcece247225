"""Fixtures for the Pipedrive tests: the emulator on a frozen clock, and the database the
budget ledger lives in on SQLite and on PostgreSQL (several handles on one database stand
for several replicas)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from syncd.store.budgets import BudgetLedger
from syncd.store.db import Database
from syncd_testkit.emulators.pipedrive import PipedriveClock, PipedriveEmulator
from syncd_testkit.emulators.pipedrive_fixtures import START
from tests.store.conftest import BACKENDS, pg_url  # noqa: F401  (a fixture)

EmulatorFactory = Callable[..., PipedriveEmulator]
Replicas = Callable[[], BudgetLedger]


@pytest.fixture
def make_emulator() -> Iterator[EmulatorFactory]:
    """Start emulators with the given limits (``daily_tokens``, ``burst_limit``, ...) on a
    frozen clock at 2026-03-02 09:00 UTC; all stopped after the test."""
    started: list[PipedriveEmulator] = []

    def make(**options: Any) -> PipedriveEmulator:
        emulator = PipedriveEmulator(clock=PipedriveClock(START, frozen=True), **options)
        started.append(emulator.start())
        return emulator

    yield make
    for emulator in started:
        emulator.stop()


@pytest.fixture(params=BACKENDS)
def ledger_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A migrated database with empty budget tables, on SQLite or PostgreSQL."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'state.sqlite'}"
    else:
        url = str(request.getfixturevalue("pg_url"))
    db = Database(url)
    with db.session() as s:
        s.execute(text("DELETE FROM budget_days"))
        s.execute(text("DELETE FROM budget_bursts"))
    db.close()
    return url


@pytest.fixture
def replicas(ledger_url: str) -> Iterator[Replicas]:
    """Open one more handle on the ledger's database per call: one replica each."""
    opened: list[Database] = []

    def open_replica() -> BudgetLedger:
        db = Database(ledger_url, run_migrations=False)
        opened.append(db)
        return BudgetLedger(db)

    yield open_replica
    for db in opened:
        db.close()
