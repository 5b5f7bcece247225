"""Fixtures of the CRM-source tests: the Pipedrive emulator and a migrated state database."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from syncd.store.db import Database
from syncd_testkit.emulators.pipedrive import PipedriveClock, PipedriveEmulator
from syncd_testkit.emulators.pipedrive_fixtures import START
from tests.crm.pipedrive_fixtures import PipedriveCrm


@pytest.fixture(scope="session")
def markers_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An SQLite file migrated to head, copied by each test."""
    path = tmp_path_factory.mktemp("pipedrive-template") / "template.sqlite"
    Database(f"sqlite:///{path}").close()
    return path


@pytest.fixture
def state_db(markers_template: Path, tmp_path: Path) -> Iterator[Database]:
    path = tmp_path / "state.sqlite"
    shutil.copyfile(markers_template, path)
    db = Database(f"sqlite:///{path}")
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
