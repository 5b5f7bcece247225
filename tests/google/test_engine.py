"""The real engine (SQLite stores) syncing through the Google connector into the emulator."""

from __future__ import annotations

from collections import Counter
from datetime import time, timedelta
from pathlib import Path

import pytest

from syncd.store.db import Database
from syncd.store.state import StateStore
from syncd_testkit.emulators.google import FaultRule, GoogleEmulator
from tests.google.helpers import HookedHttp, write_requests
from tests.google.world import GoogleWorld, make_world

GUESTS = ("ada@example.org", "bob@example.net")


@pytest.fixture
def world(tmp_path: Path, google_emulator: GoogleEmulator) -> GoogleWorld:
    return make_world(tmp_path, google_emulator, invite_guests=True)


def markers(world: GoogleWorld) -> Counter[str]:
    """How many live events carry each marker (any count above 1 is a duplicate)."""
    return Counter(e.get("extendedProperties", {}).get("private", {}).get("syncd", "")
                   for e in world.live_events())


# --- guests and e-mail -------------------------------------------------------------------------


def test_backfill_of_100_activities_with_guests_sends_no_email(world: GoogleWorld) -> None:
    for i in range(100):
        world.add(f"Call {i}", day=2 + i % 25, hour=8 + i % 9, guests=[f"g{i}@example.org"])
    world.emu.clear_requests()
    report = world.sync()
    assert report.outcome == "ok", report.message
    assert report.counts["events_created"] == 100
    assert world.emu.emails_sent == 0
    assert len(world.live_events()) == 100
    requests = world.emu.requests
    # One listing and two batches of 50 parts: the figures quoted in the hand-over.
    assert len([r for r in requests if not r.inner]) == 3
    assert len([r for r in requests if r.path == "/batch/calendar/v3"]) == 2
    assert len([r for r in requests if r.inner]) == 100


def test_moving_an_invited_activity_mails_each_guest_once(world: GoogleWorld) -> None:
    activity = world.add("Review", guests=list(GUESTS))
    world.converge()
    assert world.emu.emails_sent == 0
    world.store.edit_activity(activity.id, due_time=time(14))
    report = world.sync()
    assert report.counts["events_updated"] == 1
    assert world.emu.emails_by_recipient == dict.fromkeys(GUESTS, 1)


def test_without_invite_guests_guests_are_described_and_never_invited(
        tmp_path: Path, google_emulator: GoogleEmulator) -> None:
    world = make_world(tmp_path, google_emulator)
    activity = world.add("Review", guests=list(GUESTS), description="Agenda")
    world.converge()
    world.store.edit_activity(activity.id, due_time=time(15),
                              guests=[*GUESTS, "carol@example.com"])
    assert world.sync().outcome == "ok"
    event = world.event_of(activity.id)
    assert "attendees" not in event
    assert event["description"] == (
        "Agenda\n\nGuests: ada@example.org, bob@example.net, carol@example.com")
    assert world.emu.emails_sent == 0
    # No guest address ever went to Google as an attendee, in any write.
    assert all(b'"attendees"' not in r.body for r in write_requests(world.emu))
    # The paragraph is stripped inbound: it is not read as a description edit.
    world.advance(minutes=1)
    world.emu.clear_requests()
    assert world.sync().outcome == "ok" and write_requests(world.emu) == []
    assert world.store.get(activity.id).description == "Agenda"


def test_idle_cycle_after_convergence_writes_and_mails_nothing(world: GoogleWorld) -> None:
    for i in range(5):
        world.add(f"Call {i}", day=3 + i, guests=list(GUESTS))
    world.converge()
    world.emu.clear_requests()
    report = world.sync()
    assert report.outcome == "ok"
    assert write_requests(world.emu) == []
    assert [r.method for r in world.emu.requests] == ["GET"]  # one incremental listing
    assert world.emu.emails_sent == 0


def test_every_write_names_send_updates_explicitly(world: GoogleWorld) -> None:
    kept, moved, dropped = (world.add(n, guests=list(GUESTS)) for n in ("a", "b", "c"))
    world.converge()
    world.store.edit_activity(moved.id, subject="b moved", due_time=time(11))
    world.store.edit_activity(kept.id, guests=["carol@example.com"])
    world.store.delete_activity(dropped.id)
    world.sync()
    writes = write_requests(world.emu)
    assert {r.method for r in writes} == {"POST", "PATCH", "DELETE"}
    assert all(r.param("sendUpdates") in ("all", "none") for r in writes), [
        (r.method, r.query) for r in writes]


def test_a_guest_change_keeps_the_answers_of_guests_who_stay(world: GoogleWorld) -> None:
    world.converge()  # the first sync: what it creates invites nobody
    activity = world.add("Review", guests=list(GUESTS))
    world.converge()
    event = world.event_of(activity.id)
    for attendee in event["attendees"]:
        attendee["responseStatus"] = "accepted"
    world.emu.put_event(world.calendar_id(), event)  # the guests answered
    world.sync()
    world.store.edit_activity(activity.id, guests=[*GUESTS, "carol@example.com"])
    world.sync()
    attendees = world.event_of(activity.id)["attendees"]
    answers = {a["email"]: a.get("responseStatus", "needsAction") for a in attendees}
    assert answers == {"ada@example.org": "accepted", "bob@example.net": "accepted",
                       "carol@example.com": "needsAction"}


# --- conflicts, expiry, outages, retries -------------------------------------------------------


def test_stale_etag_is_reread_and_merged_through_the_engine(tmp_path: Path,
                                                           google_emulator: GoogleEmulator
                                                           ) -> None:
    http = HookedHttp()
    world = make_world(tmp_path, google_emulator, http=http)
    activity = world.add("Plan")
    world.converge()

    def user_edit() -> None:  # lands between the engine's read and its write
        event = world.event_of(activity.id)
        world.emu.put_event(world.calendar_id(), {**event, "location": "Room 7"})

    http.before(lambda method, uri, body: method == "PATCH", user_edit)
    world.store.edit_activity(activity.id, subject="Plan v2")
    report = world.sync()
    assert report.outcome == "ok", report.message
    assert report.counts["stale_etag"] == 1 and report.counts["replanned"] >= 1
    event = world.event_of(activity.id)
    assert (event["summary"], event["location"]) == ("Plan v2", "Room 7")
    assert world.store.get(activity.id).location == "Room 7"
    assert [r.status for r in world.emu.requests if r.method == "PATCH"] == [412, 200]


def test_sync_token_expiring_while_paging_loses_no_edit(tmp_path: Path,
                                                        google_emulator: GoogleEmulator) -> None:
    http = HookedHttp()
    world = make_world(tmp_path, google_emulator, http=http)
    acts = [world.add(f"Call {i}", day=3 + i) for i in range(6)]
    world.converge()
    world.emu.short_pages = True
    user_edited = world.event_of(acts[0].id)
    world.emu.put_event(world.calendar_id(), {**user_edited, "summary": "Renamed in Google"})
    world.store.edit_activity(acts[1].id, subject="Renamed in the CRM")

    def second_incremental_page(method: str, uri: str, body: str) -> bool:
        return "syncToken=" in uri and "pageToken=" in uri

    http.before(second_incremental_page, world.emu.expire_sync_tokens)
    report = world.sync()
    assert report.outcome == "ok", report.message
    assert report.counts["full_resync"] == 1
    assert any(r.status == 410 for r in world.emu.requests)
    assert world.store.get(acts[0].id).subject == "Renamed in Google"
    assert world.event_of(acts[1].id)["summary"] == "Renamed in the CRM"
    assert set(markers(world).values()) == {1} and len(world.live_events()) == 6
    world.emu.clear_requests()
    assert world.sync().outcome == "ok" and write_requests(world.emu) == []


def test_expired_token_after_an_outage_reconciles_without_duplicates(world: GoogleWorld) -> None:
    acts = [world.add(f"Call {i}", day=3 + i) for i in range(4)]
    world.converge()
    world.emu.inject(FaultRule.backend_error(503, count=None))
    failed = world.sync()
    assert failed.outcome == "failed"
    world.emu.put_event(world.calendar_id(),
                        {**world.event_of(acts[0].id), "summary": "Edited during the outage"})
    world.store.edit_activity(acts[1].id, subject="CRM edit during the outage")
    new = world.add("Created during the outage", day=20)
    world.emu.clear_faults()
    world.emu.expire_sync_tokens()
    world.advance(minutes=10)  # past the failing account's backoff
    report = world.sync()
    assert report.outcome == "ok", report.message
    assert report.counts["full_resync"] == 1
    assert world.store.get(acts[0].id).subject == "Edited during the outage"
    assert world.event_of(acts[1].id)["summary"] == "CRM edit during the outage"
    assert world.event_of(new.id)["summary"] == "Created during the outage"
    assert set(markers(world).values()) == {1} and len(world.live_events()) == 5


@pytest.mark.parametrize("failure", ["503", "drop", "timeout"])
def test_insert_applied_before_a_failure_is_adopted_not_duplicated(
        tmp_path: Path, google_emulator: GoogleEmulator, failure: str) -> None:
    timeout = 0.5 if failure == "timeout" else 10.0
    world = make_world(tmp_path, google_emulator, http=HookedHttp(timeout=timeout))
    acts = [world.add(f"Call {i}", day=3 + i) for i in range(3)]
    google_emulator.inject(FaultRule(method="POST", path=r"/events$", apply_then_fail=failure,  # type: ignore[arg-type]
                                     delay_seconds=1.5 if failure == "timeout" else 0.0))
    report = world.sync()
    assert report.outcome == "ok", report.message
    assert len(world.live_events()) == 3
    assert set(markers(world).values()) == {1}
    assert sorted(world.event_of(a.id)["summary"] for a in acts) == ["Call 0", "Call 1", "Call 2"]
    assert any(r.status == 409 for r in world.emu.requests)
    world.emu.clear_requests()
    world.advance(minutes=1)
    assert world.sync().outcome == "ok" and write_requests(world.emu) == []


def test_a_create_of_a_recreated_event_restores_the_cancelled_one(world: GoogleWorld) -> None:
    activity = world.add("Keep me")
    world.converge()
    event_id = world.event_of(activity.id)["id"]
    link = world.state.links(world.account.name)[activity.id]
    # A crash after the create intent: the link is pending again for the same generation.
    world.state.save_link(world.account.name, link.__class__(
        activity.id, link.sync_uid, None, None, link.crm_base, None, link.generation,
        pending=True))
    world.emu.delete_event_as_user(world.calendar_id(), event_id)
    world.store.edit_activity(activity.id, subject="Keep me, edited")
    report = world.sync()
    assert report.outcome == "ok", report.message
    [event] = world.live_events()
    assert (event["id"], event["summary"], event["status"]) == (
        event_id, "Keep me, edited", "confirmed")


# --- account-wide failures ---------------------------------------------------------------------


def test_quota_exceeded_cools_the_account_down_and_others_carry_on(
        tmp_path: Path, google_emulator: GoogleEmulator) -> None:
    db = Database(f"sqlite:///{tmp_path / 'syncd.db'}")
    alice = make_world(tmp_path, google_emulator, name="alice", db=db)
    bob = make_world(tmp_path, google_emulator, name="bob", db=db)
    alice.add("Alice's call")
    bob.add("Bob's call")
    google_emulator.inject(FaultRule.quota_exceeded(path=r"alice%40example\.com", count=None))
    report = alice.sync()
    assert report.outcome == "failed"
    state = alice.state.account("alice")
    assert state.status == "cooldown"
    assert state.cooldown_until is not None
    rest = state.cooldown_until.replace(tzinfo=None) - alice.now.replace(tzinfo=None)
    assert rest.total_seconds() == 3600
    assert len([r for r in google_emulator.requests if "alice" in r.path]) == 1  # no retry
    assert bob.sync().outcome == "ok"
    assert [e["summary"] for e in bob.live_events()] == ["Bob's call"]
    assert alice.sync().outcome == "skipped"


def test_quota_limits_in_a_row_double_the_rest_up_to_a_day_and_a_sync_resets_it(
        tmp_path: Path, google_emulator: GoogleEmulator) -> None:
    world = make_world(tmp_path, google_emulator)
    world.add("Call")
    google_emulator.inject(FaultRule.quota_exceeded(count=None))
    rests = []
    for _ in range(7):
        # a new state store each time: what a restart of the daemon reads
        world.state = StateStore(world.db)
        assert world.sync().outcome == "failed"
        row = world.state.account("alice")
        assert row.status == "cooldown" and row.cooldown_until is not None
        rest = row.cooldown_until - world.now
        rests.append(rest.total_seconds() / 3600)
        assert world.sync().outcome == "skipped"  # resting: no request
        world.advance(seconds=rest.total_seconds())
    assert rests == [1, 2, 4, 8, 16, 24, 24]
    # one request per limit met, none while resting
    assert len(google_emulator.requests) == 7
    google_emulator.clear_faults()
    assert world.sync().outcome == "ok"
    assert world.state.account("alice").quota_cooldowns == 0
    google_emulator.inject(FaultRule.quota_exceeded(count=None))
    world.advance(minutes=1)
    assert world.sync().outcome == "failed"
    row = world.state.account("alice")
    assert row.cooldown_until is not None and row.cooldown_until - world.now == timedelta(hours=1)


def test_refused_credentials_mark_the_account_for_reauthorisation(world: GoogleWorld) -> None:
    world.add("Call")
    world.emu.inject(FaultRule.auth_error(count=None))
    report = world.sync()
    assert report.outcome == "failed"
    assert world.state.account("alice").status == "needs_reauth"
    assert world.sync().outcome == "skipped"
