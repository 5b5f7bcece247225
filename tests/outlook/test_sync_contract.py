"""The engine-level contract on the Graph emulator behind the identity emulator."""

from __future__ import annotations

from tests.sync_contract import SyncContract


class TestOutlookKeepsTheSyncContract(SyncContract):
    """Uses the ``world`` fixture of tests/outlook/conftest.py: Alice, app-only sign-in."""
