"""The hour repeated when clocks go back, through the engine and a real CalDAV server."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path

import pytest

from syncd_testkit.servers import DavServer
from tests.caldav.world import DavWorld, make_dav_world

FALL_BACK = date(2027, 10, 31)  # Europe/Oslo, the world's owner zone: 03:00 -> 02:00


@pytest.fixture
def world(tmp_path: Path, dav_server: DavServer) -> Iterator[DavWorld]:
    w = make_dav_world(tmp_path, dav_server)
    yield w
    w.connector.close()


def test_a_call_at_0230_the_night_clocks_go_back_keeps_its_hour_both_ways(
        world: DavWorld) -> None:
    a = world.add("Night call", due_date=FALL_BACK, due_time=time(2, 30), duration_minutes=60)
    assert world.sync().outcome == "ok"
    [(_, vevent)] = world.objects().values()
    start, end = vevent.decoded("DTSTART"), vevent.decoded("DTEND")
    assert start.astimezone(UTC) == datetime(2027, 10, 31, 0, 30, tzinfo=UTC)
    assert end - start == timedelta(hours=1)  # it was 0: DTEND said 02:30 in Oslo again

    # A calendar app moves the call to the second 02:30 (in UTC: a TZID cannot say it).
    [href] = world.objects().keys()
    event = world.dav().event_by_url(world.dav().url.join(href))
    event.load()
    component = event.icalendar_component
    for prop in ("DTSTART", "DTEND"):
        component.pop(prop)
    component.add("DTSTART", datetime(2027, 10, 31, 1, 30, tzinfo=UTC))
    component.add("DTEND", datetime(2027, 10, 31, 2, 30, tzinfo=UTC))
    event.save()
    report = world.sync()
    assert report.counts["activities_updated"] == 1, report
    after = world.store.get(a.id)
    assert (after.due_date, after.due_time, after.duration_minutes) == (FALL_BACK, time(2, 30),
                                                                        60)
    assert after.due_time is not None and after.due_time.fold == 1  # the second 02:30
    world.connector.forbid_writes = True  # nothing to write back: both sides agree
    for _ in range(2):
        assert world.sync().outcome == "ok"
