"""Fixtures of the Google connector tests: the emulator from tests/emulators.

The emulator is imported as ``tests.emulators.google`` (never with tests/emulators on
sys.path, where its google.py would shadow the ``google`` package).
"""

from __future__ import annotations

from tests.emulators import google_fixtures

google_emulator = google_fixtures.google_emulator
