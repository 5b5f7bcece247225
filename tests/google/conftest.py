"""Fixtures of the Google connector tests: the emulator from syncd_testkit/emulators, and
a stand-in receiver for its push notifications (``hook``).

The emulator is imported as ``syncd_testkit.emulators.google`` (never with that folder on
sys.path, where its google.py would shadow the ``google`` package).
"""

from __future__ import annotations

from syncd_testkit.emulators import google_fixtures

from . import push_receiver

google_emulator = google_fixtures.google_emulator
hook = push_receiver.hook
