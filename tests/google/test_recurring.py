"""A synced event that a user turns into a weekly series in Google (failure mode 19).

syncd syncs single events only. A series is never expanded nor written: the pair is set
aside (quarantined, its activity kept as it was, never deleted) and nothing is written,
in the calendar or in the CRM, on that cycle or the next.
"""

from __future__ import annotations

from pathlib import Path

from syncd_testkit.emulators.google import GoogleEmulator
from tests.google.helpers import write_requests
from tests.google.world import make_world


def test_a_synced_event_made_weekly_in_google_is_set_aside_and_its_activity_kept(
        tmp_path: Path, google_emulator: GoogleEmulator) -> None:
    world = make_world(tmp_path, google_emulator)
    activity = world.add("Weekly review", day=7)
    for _ in range(2):
        assert world.sync().outcome == "ok"
    event = world.event_of(activity.id)
    google_emulator.put_event(world.calendar_id(),
                              {**event, "recurrence": ["RRULE:FREQ=WEEKLY;COUNT=5"]})
    google_emulator.clear_requests()
    for cycle in range(2):
        report = world.sync()
        assert report.outcome == "ok", report.message
        assert report.counts["quarantined"] == (1 if cycle == 0 else 0), report.counts
    assert write_requests(google_emulator) == []
    kept = world.store.get(activity.id)
    assert not kept.deleted and kept.subject == "Weekly review"
    assert world.event_id_of(activity.id) == event["id"]
    assert [e["id"] for e in world.live_events()] == [event["id"]]
    assert world.reasons()[event["id"]]  # with its reason, for `syncd quarantine`
