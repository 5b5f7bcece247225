"""An event syncd created, deleted by its owner before any committed listing showed it.

A cycle's calendar cursor is the token of the listing it read before its writes, so the
next listing runs from before our create. Xandikos lists changes as the difference of
two snapshots of the collection: an event created and deleted between them is in
neither, and the listing never names it (soak seed 1807, round 487). Radicale keeps a
history and reports it as removed. Either way the activity must go with its event
(``tests/sync_contract.py`` holds every provider to that); here, what it costs.
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from syncd_testkit.servers import DavServer
from tests.caldav.world import DavWorld, close_world, make_dav_world


@pytest.fixture
def world(tmp_path: Path, dav_server: DavServer) -> Iterator[DavWorld]:
    w = make_dav_world(tmp_path, dav_server, proxied=True)
    yield w
    close_world(w)


def test_the_deletion_is_found_after_a_cycle_that_read_the_echo_died_uncommitted(
        world: DavWorld) -> None:
    world.add("Kept", day=9)
    world.converge()
    gone = world.add("Deleted in the calendar", day=11)
    assert world.sync().counts["events_created"] == 1
    # This cycle lists our create's echo but dies before its cursor is committed: the
    # next listing still runs from before the create (soak seed 1807: cycle 483).
    assert world.sync_killed_at("before_cursor_commit") == -signal.SIGKILL
    world.user_delete(gone.id)
    world.forget_sent()
    report = world.sync()
    assert report.outcome == "ok", report.message
    assert report.counts["activities_deleted"] == 1, report
    assert world.subjects() == ["Kept"]
    # Radicale's listing names the removal; Xandikos's does not, and the event is read by id.
    read_by_id = ["GET"] if world.server.kind == "xandikos" else []
    assert [s.method for s in world.sent()] == ["REPORT", *read_by_id]
    # Looked for once: later cycles send only their listing again.
    world.forget_sent()
    assert world.sync().outcome == "ok"
    assert [s.method for s in world.sent()] == ["REPORT"]


def test_the_cycle_after_our_creates_costs_only_its_listing_when_they_are_listed(
        world: DavWorld) -> None:
    world.add("Kept", day=9)
    world.converge()
    for day in (11, 12, 13):
        world.add(f"New {day}", day=day)
    assert world.sync().counts["events_created"] == 3
    world.forget_sent()
    report = world.sync()  # lists the echo of the three creates: nothing read by id
    assert report.outcome == "ok" and report.counts["activities_deleted"] == 0
    assert [s.method for s in world.sent()] == ["REPORT"]
    world.forget_sent()
    assert world.sync().outcome == "ok"
    assert [s.method for s in world.sent()] == ["REPORT"]
