"""A synced event that a user turns into a weekly series on the CalDAV server (failure
mode 19): the pair is set aside with its reason, the activity is kept as it was, and
nothing is written on either side, that cycle or the next."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from syncd_testkit.servers import DavServer
from tests.caldav.world import DavWorld, close_world, make_dav_world


@pytest.fixture
def world(tmp_path: Path, dav_server: DavServer) -> Iterator[DavWorld]:
    w = make_dav_world(tmp_path, dav_server)
    yield w
    close_world(w)


def test_a_synced_event_made_weekly_in_caldav_is_set_aside_and_its_activity_kept(
        world: DavWorld) -> None:
    activity = world.add("Weekly review", day=7)
    world.sync()
    [href] = world.objects().keys()
    event = world.dav().event_by_url(world.dav().url.join(href))
    event.load()
    event.icalendar_component.add("RRULE", {"FREQ": "WEEKLY", "COUNT": 5})
    event.save()
    world.connector.forbid_writes = True  # a write would raise
    for cycle in range(2):
        report = world.sync()
        assert report.outcome == "ok", report.message
        assert report.counts["quarantined"] == (1 if cycle == 0 else 0), report.counts
    kept = world.store.get(activity.id)
    assert not kept.deleted and kept.subject == "Weekly review"
    assert list(world.objects()) == [href]
    assert world.reasons()
