"""The engine-level contract every calendar provider keeps, through the real engine.

``tests/contract.py`` checks a connector on its own; this checks what a whole cycle does
with it. A provider's test module subclasses :class:`SyncContract` and gives a ``world``
fixture: a :class:`~syncd_testkit.world.World` that can tell what its provider received
and can edit the calendar as its owner would. The memory calendar, CalDAV on Radicale and
Xandikos, and the Google and Graph emulators all run it.

What it holds each provider to:

* an idle cycle after convergence sends only its listing of changes, and writes nothing;
* our own edit read back (its echo) is recognised: nothing is updated or written, and it
  costs no more requests than the provider's world declares (an idle cycle's, where the
  listing alone shows the echo is ours);
* private notes (canaries) appear in no request and in no log line, whatever the cycle did;
* an edit that lands between our read and our write meets a precondition failure (412),
  and the cycle merges both edits instead of losing one;
* an event we created and its owner deleted before any committed listing showed it
  takes its activity with it (a listing that is the difference of two snapshots, as
  Xandikos's, names such an event nowhere);
* a process killed (SIGKILL) at any failpoint and run again loses no edit and leaves no
  duplicate event.
"""

from __future__ import annotations

import json
import logging
import signal
import uuid
from dataclasses import replace
from pathlib import Path

import pytest

from connectors.base import CreateOp, RemoteEvent
from syncd.crm.builtin import BuiltinSource
from syncd.engine.audit import Finding
from syncd.engine.execute import LEASE_TTL
from syncd.model import project_activity
from syncd.service import account_policy
from syncd.verify import REPAIR_LOG, AccountAudit, audit_calendar, realign_drift, unpair_shared
from syncd_testkit.world import World

FAILPOINTS = ["after_intent_commit", "after_write_request", "before_cursor_commit"]


class SyncContract:
    """Subclass it in a provider's test module and give a ``world`` fixture."""

    def test_an_idle_cycle_after_convergence_only_lists_changes(self, world: World) -> None:
        for i in range(3):
            world.add(f"Call {i}", day=3 + i, location="Room 1")
        world.converge()
        world.forget_sent()
        report = world.sync()
        assert report.outcome == "ok", report.message
        assert report.counts["crm_changes"] == 0 and report.counts["calendar_changes"] == 0
        sent = world.sent()
        assert [s for s in sent if s.write] == []
        assert [s.method for s in sent] == list(world.idle_requests)

    def test_the_echo_of_our_own_edit_is_ignored(self, world: World) -> None:
        a = world.add("Call Ada")
        world.converge()
        world.store.edit_activity(a.id, subject="Call Ada Lovelace", location="Phone")
        report = world.sync()
        assert report.outcome == "ok", report.message
        assert (world.event_title(a.id), world.event_location(a.id)) == (
            "Call Ada Lovelace", "Phone")
        world.advance(minutes=1)
        world.forget_sent()
        echo = world.sync()  # reads back what we wrote
        assert echo.outcome == "ok", echo.message
        assert echo.counts["activities_updated"] == 0
        expected = world.idle_requests if world.echo_requests is None else world.echo_requests
        assert [s.method for s in world.sent()] == list(expected)
        assert world.store.get(a.id).subject == "Call Ada Lovelace"

    def test_private_notes_reach_no_request_and_no_log(
            self, world: World, caplog: pytest.LogCaptureFixture) -> None:
        caplog.set_level(logging.DEBUG)  # the client libraries' own debug output included
        canaries = [f"CANARY-{uuid.uuid4().hex}" for _ in range(4)]
        activities = [world.add(f"Meeting {i}", day=3 + i, note=f"private: {canary}",
                                description="Public agenda", location="Room 4")
                      for i, canary in enumerate(canaries)]
        world.forget_sent()
        world.converge()
        # Every kind of change: an edit with a new note, a note-only edit, a delete, and an
        # edit in the calendar that comes back to the CRM.
        world.store.edit_activity(activities[0].id, subject="Moved",
                                  note=f"v2 {canaries[0]}")
        world.store.edit_activity(activities[1].id, note=f"v2 {canaries[1]}")
        world.store.delete_activity(activities[2].id)
        world.user_edit(activities[3].id, "Renamed in the calendar")
        for _ in range(2):
            assert world.sync().outcome == "ok"
            world.advance(minutes=1)
        sent = world.sent()
        # The public text did travel: the check below is not vacuous.
        assert any("Public agenda" in s.text for s in sent if s.write)
        assert any("Moved" in s.text for s in sent if s.write)
        logged = caplog.text + " ".join(str(r.args) for r in caplog.records)
        for canary in canaries:
            assert not [s.method for s in sent if canary in s.text], canary
            assert canary not in logged
        assert world.store.get_note(activities[3].id) == f"private: {canaries[3]}"

    def test_an_edit_between_our_read_and_write_is_merged_after_the_412(
            self, world: World) -> None:
        a = world.add("Plan")
        world.converge()
        world.store.edit_activity(a.id, location="Room 7")
        world.before_write.append(lambda: world.user_edit(a.id, "Renamed in the calendar"))
        report = world.sync()
        assert report.outcome == "ok", report.message
        assert report.counts["stale_etag"] == 1
        assert (world.event_title(a.id), world.event_location(a.id)) == (
            "Renamed in the calendar", "Room 7")
        after = world.store.get(a.id)
        assert (after.subject, after.location) == ("Renamed in the calendar", "Room 7")

    def test_an_event_deleted_before_the_listing_after_our_create_deletes_its_activity(
            self, world: World) -> None:
        world.add("Kept", day=9)
        world.converge()
        gone = world.add("Deleted in the calendar", day=11)
        report = world.sync()  # the cursor it keeps is its listing's, from before the create
        assert report.outcome == "ok" and report.counts["events_created"] == 1, report
        world.advance(minutes=1)
        world.user_delete(gone.id)
        report = world.sync()
        assert report.outcome == "ok", report.message
        assert report.counts["activities_deleted"] == 1, report
        assert world.subjects() == ["Kept"]
        assert gone.id not in world.state.links(world.account.name)

    @pytest.mark.parametrize("failpoint", FAILPOINTS)
    def test_a_kill_at_a_failpoint_loses_nothing_and_duplicates_nothing(
            self, world: World, failpoint: str) -> None:
        activities = [world.add(f"Visit {i}", day=10 + i) for i in range(4)]
        assert world.sync_killed_at(failpoint) == -signal.SIGKILL
        world.converge()
        assert world.markers() == {a.sync_uid: 1 for a in activities}
        links = world.state.links(world.account.name)
        assert len(links) == 4 and not any(link.pending for link in links.values())

        # An edit whose cycle dies (where an edit passes that point) is neither lost nor
        # applied twice.
        world.store.edit_activity(activities[0].id, subject="Visit 0 (moved)")
        assert world.sync_killed_at(failpoint) in (0, -signal.SIGKILL)
        world.converge()
        assert world.markers() == {a.sync_uid: 1 for a in activities}
        assert [world.event_title(a.id) for a in activities] == [
            "Visit 0 (moved)", "Visit 1", "Visit 2", "Visit 3"]

    def test_verify_is_clean_after_a_sync_and_finds_each_planted_fault(self, world: World
                                                                        ) -> None:
        def read() -> tuple[AccountAudit, list[RemoteEvent]]:
            connector = world.cycle_connector()
            try:
                return audit_calendar(world.account, BuiltinSource(world.store), world.state,
                                      connector, account_policy(world.account), world.now)
            finally:
                world.release(connector)

        def verify() -> AccountAudit:
            return read()[0]

        secret = world.add("Call Ada", day=3, note="Ask about the merger terms, quietly")
        copied = world.add("Lunch", day=4)
        drifted = world.add("Review", day=5)
        world.converge()
        world.forget_sent()
        clean = verify()
        assert clean.findings == [] and clean.privacy_checked and clean.pairs == 3
        assert world.sent() and not [s for s in world.sent() if s.write]  # a listing only

        # A note pasted into the event in the calendar app (re-cased, re-spaced).
        world.user_edit(secret.id, "Call Ada: ask about  the MERGER terms, quietly")
        # A second event carrying one activity's marker, and one whose marker is nobody's.
        link = world.state.links(world.account.name)[copied.id]
        projection = project_activity(world.store.get(copied.id))
        assert projection is not None
        connector = world.cycle_connector()
        try:
            results = connector.write([
                CreateOp("copy", link.sync_uid, link.generation + 7, projection),
                CreateOp("stray", uuid.uuid4().hex, 0, projection)])
        finally:
            world.release(connector)
        assert all(r.error is None for r in results), results
        # A pair that recorded a CRM edit as written although the event never got it.
        world.store.edit_activity(drifted.id, subject="Review (moved)")
        drift_link = world.state.links(world.account.name)[drifted.id]
        world.state.save_link(world.account.name, replace(
            drift_link, crm_base=project_activity(world.store.get(drifted.id))))
        unsynced = world.add("Not yet", day=6)

        # An event syncd wrote to that no longer carries its marker (as if it were not ours).
        world.state.record(world.account.name, writes=[("not-ours", None, "update")])
        found = {(f.kind, f.activity_id) for f in verify().findings}
        assert found == {("privacy", secret.id), ("duplicate", copied.id), ("orphan", None),
                         ("drift", drifted.id), ("missing", unsynced.id)}, found
        assert world.state.written_events(world.account.name) >= {
            world.event_id_of(secret.id), "not-ours"}

        # The drift repair: the next cycle writes the activity's title over the event's,
        # with no conflict recorded (the calendar side had not changed).
        audit, events = read()
        token = world.state.acquire_lease(world.account.name, "verify", LEASE_TTL)
        assert token is not None
        assert realign_drift(world.state, world.account.name, audit.findings, events,
                             token=token, log_dir=None) == [drifted.id]
        world.state.release_lease(world.account.name, token)
        assert "drift" not in {f.kind for f in verify().findings}
        world.converge()
        assert world.event_title(drifted.id) == "Review (moved)"
        assert not world.state.conflicts(world.account.name, open_only=False)

    def test_verify_repair_gives_each_activity_sharing_an_event_its_own(
            self, world: World, tmp_path: Path) -> None:
        def read() -> tuple[list[Finding], list[RemoteEvent]]:
            connector = world.cycle_connector()
            try:
                audit, events = audit_calendar(world.account, BuiltinSource(world.store),
                                               world.state, connector,
                                               account_policy(world.account), world.now)
                return audit.findings, events
            finally:
                world.release(connector)

        first, second = world.add("Demo", day=3), world.add("Lunch", day=4)
        world.converge()
        third = world.add("Review", day=5)  # not synced yet
        # Two more pairs point at the first one's event (a bug's leftover): the second's
        # own event is still there, the third never had one.
        links = world.state.links(world.account.name)
        world.state.save_link(world.account.name, replace(
            links[second.id], event_id=links[first.id].event_id, etag=links[first.id].etag))
        world.state.save_link(world.account.name, replace(
            links[first.id], activity_id=third.id, sync_uid=third.sync_uid,
            crm_base=project_activity(third)))
        (shared,), events = read()  # (the third's pair differs from the event: no drift)
        assert (shared.kind, shared.activity_id, sorted(shared.unpair)) == (
            "paired_twice", first.id, [second.id, third.id])  # it carries the first's marker

        token = world.state.acquire_lease(world.account.name, "verify", LEASE_TTL)
        assert token is not None
        assert sorted(unpair_shared(world.state, world.account.name, [shared], events,
                                    token=token, log_dir=tmp_path)) == [second.id, third.id]
        world.state.release_lease(world.account.name, token)
        logged = [json.loads(line) for line in (tmp_path / REPAIR_LOG).read_text().splitlines()]
        assert sorted((e["unpaired"], e["kept_with"]) for e in logged) == [
            (second.id, first.id), (third.id, first.id)]
        assert world.state.links(world.account.name)[second.id].event_id == \
            links[second.id].event_id  # paired with its own event again
        world.converge()  # and the third gets its first
        assert read()[0] == []
        assert world.markers() == {a.sync_uid: 1 for a in (first, second, third)}
        assert [world.event_title(a.id) for a in (first, second, third)] == [
            "Demo", "Lunch", "Review"]
