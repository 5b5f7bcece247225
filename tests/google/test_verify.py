"""``syncd verify`` on the Google emulator: a foreign event syncd wrote is reported with
whether it still holds what syncd left, and no repair ever writes it."""

from __future__ import annotations

from pathlib import Path

from syncd.crm.builtin import BuiltinSource
from syncd.engine.audit import Finding
from syncd.engine.execute import LEASE_TTL
from syncd.service import account_policy
from syncd.verify import audit_calendar, realign_drift, unpair_shared
from syncd_testkit.emulators.google import GoogleEmulator
from tests.google.world import make_world


def test_a_foreign_event_syncd_wrote_is_reported_and_left_as_it_is(
        tmp_path: Path, google_emulator: GoogleEmulator) -> None:
    world = make_world(tmp_path, google_emulator)
    world.add("Demo", day=3)
    world.converge()
    calendar = world.calendar_id()
    theirs = google_emulator.put_event(calendar, {
        "id": "theirs00001", "summary": "Their meeting",
        "start": {"dateTime": "2027-01-12T09:00:00Z"},
        "end": {"dateTime": "2027-01-12T10:00:00Z"}})
    world.state.record(world.account.name, writes=[(theirs["id"], theirs["etag"], "update")])

    def findings() -> list[Finding]:
        return audit_calendar(world.account, BuiltinSource(world.store), world.state,
                              world.calendar, account_policy(world.account),
                              world.now)[0].findings

    (found,) = findings()
    assert (found.kind, found.event_ids, found.reason) == (
        "foreign_touched", (theirs["id"],), "unchanged")
    # Neither repair touches it: it is not a duplicate, an orphan, drift or a shared event.
    token = world.state.acquire_lease(world.account.name, "verify", LEASE_TTL)
    assert token is not None
    assert realign_drift(world.state, world.account.name, [found], [], token=token,
                         log_dir=tmp_path) == []
    assert unpair_shared(world.state, world.account.name, [found], [], token=token,
                         log_dir=tmp_path) == []
    world.state.release_lease(world.account.name, token)
    assert not found.remove and not (tmp_path / "repairs.jsonl").exists()

    google_emulator.put_event(calendar, {**theirs, "summary": "Their meeting, moved"})
    (found,) = findings()
    assert found.reason == "changed"
