"""Fixtures for the Pipedrive tests: the emulator on a frozen clock, and the database the
budget ledger lives in on SQLite and on PostgreSQL (several handles on one database stand
for several replicas)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from syncd.config import SecretRef
from syncd.store.budgets import BudgetLedger
from syncd.store.credentials import CredentialStore
from syncd.store.db import Database
from syncd_testkit.emulators.google_fixtures import google_emulator  # noqa: F401
from syncd_testkit.emulators.graph_fixtures import (  # noqa: F401
    graph_emulator,
    graph_emulator_with_identity,
    identity_emulator,
)
from syncd_testkit.emulators.pipedrive import PipedriveClock, PipedriveEmulator
from syncd_testkit.emulators.pipedrive_fixtures import START
from syncd_testkit.servers import RecordingProxy
from tests.outlook.conftest import STATE_KEY_ENV, _fresh_mailbox_gates, env  # noqa: F401
from tests.pipedrive.sides import GoogleSide, GraphSide, RadicaleSide
from tests.pipedrive.world import CalendarSide
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


# --- end-to-end: the calendar on the other side ------------------------------------------------


@pytest.fixture
def e2e_db(tmp_path: Path) -> Iterator[Database]:
    """syncd's database for an end-to-end test (SQLite)."""
    db = Database(f"sqlite:///{tmp_path / 'syncd.db'}")
    yield db
    db.close()


@pytest.fixture(params=["radicale", "google", "graph"])
def side(request: pytest.FixtureRequest, e2e_db: Database) -> Iterator[CalendarSide]:
    """The calendar provider on the other side of Pipedrive."""
    yield from open_side(request, e2e_db)


def open_side(request: pytest.FixtureRequest, db: Database) -> Iterator[CalendarSide]:
    """The side ``request.param`` names: a CalDAV server's fixture name (``radicale``,
    ``xandikos``; reached through a recording proxy), ``google`` or ``graph``."""
    if request.param == "google":
        yield GoogleSide(request.getfixturevalue("google_emulator"))
    elif request.param == "graph":
        yield GraphSide(request.getfixturevalue("env"),
                        CredentialStore(db, SecretRef(f"env:{STATE_KEY_ENV}")))
    else:
        server = request.getfixturevalue(request.param)
        proxy = RecordingProxy(server.port).start()
        yield RadicaleSide(server, proxy)
        proxy.stop()
