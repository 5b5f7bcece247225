"""pytest fixtures for the Pipedrive emulator (import them into a conftest.py or a test).

``pipedrive_emulator`` yields a started :class:`PipedriveEmulator` on a frozen clock that
starts at 2026-03-02 09:00 UTC; tests move it with ``emulator.clock.advance(seconds)``.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from .pipedrive import PipedriveClock, PipedriveEmulator

START = datetime(2026, 3, 2, 9, 0, 0, tzinfo=UTC)


@pytest.fixture
def pipedrive_emulator() -> Iterator[PipedriveEmulator]:
    """A started Pipedrive emulator on a frozen clock, stopped after the test."""
    emulator = PipedriveEmulator(clock=PipedriveClock(START, frozen=True)).start()
    try:
        yield emulator
    finally:
        emulator.stop()
