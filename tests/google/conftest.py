"""Fixtures of the Google connector tests: the emulator from syncd_testkit/emulators, the
owner's calendar on it (``emu``) and a connector to it (``conn``; a module needing other
options defines its own), and a stand-in receiver for its push notifications (``hook``).

The emulator is imported as ``syncd_testkit.emulators.google`` (never with that folder on
sys.path, where its google.py would shadow the ``google`` package).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from connectors.google import GoogleCalendar
from syncd_testkit.emulators import google_fixtures
from syncd_testkit.emulators.google import GoogleEmulator

from . import push_receiver
from .helpers import OWNER, TZ, connector

google_emulator = google_fixtures.google_emulator
hook = push_receiver.hook


@pytest.fixture
def emu(google_emulator: GoogleEmulator) -> GoogleEmulator:
    google_emulator.add_calendar(OWNER, time_zone=TZ)
    return google_emulator


@pytest.fixture
def conn(emu: GoogleEmulator) -> Iterator[GoogleCalendar]:
    c = connector(emu)
    yield c
    c.close()
