"""The engine-level contract on the in-memory calendar."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.engine.world import World, make_world
from tests.sync_contract import SyncContract


@pytest.fixture
def world(tmp_path: Path) -> World:
    return make_world(tmp_path)


class TestTheMemoryCalendarKeepsTheSyncContract(SyncContract):
    pass
