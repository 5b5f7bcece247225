"""End to end: an edit made in Pipedrive between the cycle's read and its write (v2 has no
If-Match) is not overwritten: the source refuses the write and the engine reads the
activity again and merges, in the same cycle."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence

import pytest

from syncd.crm.pipedrive import PipedriveSource
from syncd.crm.source import SourceOp, SourceResult
from syncd.store.db import Database
from syncd_testkit.emulators.pipedrive import PipedriveEmulator
from tests.pipedrive.world import CalendarSide, company, make_world


class RacingSource(PipedriveSource):
    """The real source, with someone editing in Pipedrive just before its next write."""

    race: Callable[[], None] | None = None

    def write(self, ops: Sequence[SourceOp]) -> list[SourceResult]:
        race, self.race = self.race, None
        if race is not None:
            race()
        return super().write(ops)


@pytest.fixture
def emulator() -> Iterator[PipedriveEmulator]:
    emu = company()
    yield emu
    emu.stop()


def test_a_pipedrive_edit_between_read_and_write_is_merged_not_overwritten(
        emulator: PipedriveEmulator, e2e_db: Database, side: CalendarSide) -> None:
    world = make_world(emulator, e2e_db, side)
    activity_id = world.add("Call Cy", "2026-12-10", "09:00")
    world.converge()
    world.advance(minutes=5)
    world.user_edit(world.event_of(activity_id).event_id, location="Room 4")
    real = world.source()
    racing = RacingSource(real.http, real.markers, real.settings)
    racing.race = lambda: world.edit(activity_id, subject="Call Cy (renamed in Pipedrive)")
    world.make_source = lambda: racing

    report = world.sync()

    assert report.outcome == "ok", report.message
    assert report.counts["stale_activity"] == 1 and report.counts["replanned"] >= 1
    stored = world.activity(activity_id)
    assert stored["subject"] == "Call Cy (renamed in Pipedrive)"
    assert stored["location"]["value"] == "Room 4"
    world.converge()
    event = world.event_of(activity_id).projection
    assert event is not None and event.title == "Call Cy (renamed in Pipedrive)"
    assert event.location == "Room 4"
