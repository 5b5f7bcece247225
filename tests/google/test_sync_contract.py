"""The engine-level contract on the Google Calendar emulator, through the real connector."""

from __future__ import annotations

from pathlib import Path

import pytest

from syncd_testkit.emulators.google import GoogleEmulator
from tests.google.world import GoogleWorld, make_world
from tests.sync_contract import SyncContract


@pytest.fixture
def world(tmp_path: Path, google_emulator: GoogleEmulator) -> GoogleWorld:
    return make_world(tmp_path, google_emulator)


class TestGoogleKeepsTheSyncContract(SyncContract):
    pass
