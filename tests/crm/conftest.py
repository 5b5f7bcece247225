"""Fixtures of the CRM-source tests: the Pipedrive emulator and a migrated state database."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text

from syncd.store.db import Database
from syncd_testkit.emulators.pipedrive import PipedriveClock, PipedriveEmulator
from syncd_testkit.emulators.pipedrive_fixtures import START
from tests.crm.pipedrive_fixtures import PipedriveCrm
from tests.store.conftest import pg_url  # noqa: F401  (a fixture)


@pytest.fixture(scope="session")
def markers_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An SQLite file migrated to head, copied by each test."""
    path = tmp_path_factory.mktemp("pipedrive-template") / "template.sqlite"
    Database(f"sqlite:///{path}").close()
    return path


@pytest.fixture
def state_db(markers_template: Path, tmp_path: Path) -> Iterator[Database]:
    """A migrated SQLite database of syncd's state, fresh for each test."""
    path = tmp_path / "state.sqlite"
    shutil.copyfile(markers_template, path)
    db = Database(f"sqlite:///{path}")
    yield db
    db.close()


@pytest.fixture
def pg_state_db(request: pytest.FixtureRequest) -> Iterator[Database]:
    """The session's PostgreSQL database with no Pipedrive markers in it."""
    db = Database(str(request.getfixturevalue("pg_url")))
    with db.session() as session:
        session.execute(text("DELETE FROM pipedrive_markers"))
        session.execute(text("DELETE FROM pipedrive_moves"))
    yield db
    db.close()


@pytest.fixture
def emulator() -> Iterator[PipedriveEmulator]:
    emu = PipedriveEmulator(clock=PipedriveClock(START, frozen=True)).start()
    try:
        yield emu
    finally:
        emu.stop()


@pytest.fixture
def crm(emulator: PipedriveEmulator, state_db: Database) -> PipedriveCrm:
    """Ada's company, reconciling every feed (deleted items unlisted unless switched)."""
    return PipedriveCrm(emulator, state_db)
