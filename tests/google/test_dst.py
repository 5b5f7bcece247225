"""The hour repeated when clocks go back, through the engine and the Google emulator."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path

from syncd_testkit.emulators.google import GoogleEmulator
from tests.google.helpers import TZ
from tests.google.world import make_world

FALL_BACK = date(2027, 10, 31)  # Europe/Oslo (TZ): 03:00 CEST -> 02:00 CET


def test_either_0230_of_the_night_clocks_go_back_keeps_its_instant_both_ways(
        tmp_path: Path, google_emulator: GoogleEmulator) -> None:
    world = make_world(tmp_path, google_emulator)
    a = world.store.add_activity(owner_id=world.owner_id, subject="Night call",
                                 due_date=FALL_BACK, due_time=time(2, 30, fold=1),
                                 duration_minutes=60)
    world.converge()
    event = world.event_of(a.id)
    start = datetime.fromisoformat(event["start"]["dateTime"])
    end = datetime.fromisoformat(event["end"]["dateTime"])
    assert start.astimezone(UTC) == datetime(2027, 10, 31, 1, 30, tzinfo=UTC)
    assert end - start == timedelta(hours=1)

    # In Google, the call moves an hour earlier (the first 02:30), then back.
    for offset, fold in (("+02:00", 0), ("+01:00", 1)):
        moved = {**world.event_of(a.id),
                 "start": {"dateTime": f"2027-10-31T02:30:00{offset}", "timeZone": TZ},
                 "end": {"dateTime": f"2027-10-31T03:30:00{offset}", "timeZone": TZ}}
        world.emu.put_event(world.calendar_id(), moved)
        report = world.sync()
        assert report.outcome == "ok" and report.counts["activities_updated"] == 1, report
        after = world.store.get(a.id)
        assert (after.due_date, after.due_time, after.duration_minutes) == (
            FALL_BACK, time(2, 30), 60)
        assert after.due_time is not None and after.due_time.fold == fold
        world.advance(minutes=1)
        idle = world.sync()  # both sides agree: nothing goes back to Google
        assert idle.counts["events_updated"] == 0 and idle.counts["activities_updated"] == 0
        world.advance(minutes=1)
