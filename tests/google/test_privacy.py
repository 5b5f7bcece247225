"""Private notes never leave syncd: not in any request to Google, not in any log line."""

from __future__ import annotations

import logging
import uuid
from datetime import time
from pathlib import Path

import pytest

from syncd.model import Guest
from syncd_testkit.emulators.google import FaultRule, GoogleEmulator
from tests.google.world import make_world


def test_note_canaries_reach_neither_google_nor_the_logs(
        tmp_path: Path, google_emulator: GoogleEmulator,
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)  # the client library's own debug output included
    world = make_world(tmp_path, google_emulator, invite_guests=True)
    canaries = [f"CANARY-{uuid.uuid4().hex}" for _ in range(12)]
    activities = [
        world.add(f"Meeting {i}", day=3 + i, note=f"private: {canary} do not share",
                  guests=(Guest(f"guest{i}@example.org", "Guest"),),
                  description="Public agenda", location="Room 4")
        for i, canary in enumerate(canaries)
    ]
    world.converge()
    # Edits of both kinds, a note-only edit, a retry and a conflict: every code path that
    # builds a request or logs something.
    world.store.edit_activity(activities[0].id, subject="Moved", due_time=time(15))
    world.store.edit_activity(activities[1].id, note=f"new private {canaries[1]}")
    world.store.delete_activity(activities[2].id)
    event = world.event_of(activities[3].id)
    world.emu.put_event(world.calendar_id(), {**event, "summary": "Edited in Google"})
    google_emulator.inject(FaultRule.backend_error(503, inner=True, count=1))
    assert world.sync().outcome == "ok"
    world.advance(minutes=1)
    assert world.sync().outcome == "ok"

    seen = google_emulator.requests
    assert len(seen) > 5
    for request in seen:
        wire = " ".join([request.method, request.path, repr(request.query),
                         repr(request.headers), request.body.decode("utf-8", "replace")])
        for canary in canaries:
            assert canary not in wire, f"a note leaked in {request.method} {request.path}"
    logged = caplog.text + " ".join(str(r.args) for r in caplog.records)
    for canary in canaries:
        assert canary not in logged
    # The public description does sync: the check above is not vacuous.
    assert any("Public agenda" in r.body.decode("utf-8", "replace") for r in seen)
