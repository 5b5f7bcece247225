"""End to end: Pipedrive (emulator, through the real source and its budget) and a calendar
(Radicale, the Google emulator, the Graph emulator, through the real connectors), with real
engine cycles in between."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import MetaData, select

from syncd.model import When
from syncd.store.db import Database
from syncd_testkit.emulators.google import GoogleEmulator
from syncd_testkit.emulators.pipedrive import PipedriveEmulator
from tests.pipedrive.sides import GoogleSide
from tests.pipedrive.world import CalendarSide, PipedriveWorld, company, make_world


@pytest.fixture
def emulator() -> Iterator[PipedriveEmulator]:
    emu = company()
    yield emu
    emu.stop()


@pytest.fixture
def world(emulator: PipedriveEmulator, e2e_db: Database, side: CalendarSide) -> PipedriveWorld:
    return make_world(emulator, e2e_db, side)


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def test_an_activity_and_its_event_follow_each_other_edit_by_edit(world: PipedriveWorld
                                                                  ) -> None:
    a = world.add("Call Bo", "2026-12-10", "09:00", location={"value": "Room 4"},
                  public_description="agenda")
    world.converge()
    event = world.event_of(a)
    assert event.projection is not None
    assert (event.projection.title, event.projection.location) == ("Call Bo", "Room 4")
    assert event.projection.when.start == utc("2026-12-10T09:00")

    world.edit(a, subject="Call Bo (moved)", due_time="10:30")
    world.converge()
    moved = world.event_of(a).projection
    assert moved is not None and moved.title == "Call Bo (moved)"
    assert (moved.when.start, moved.when.end) == (utc("2026-12-10T10:30"), utc("2026-12-10T11:00"))

    world.user_edit(world.event_of(a).event_id, title="Call Bo about pricing",
                    location="Room 9")
    world.converge()
    assert (world.activity(a)["subject"], world.activity(a)["location"]["value"]) == (
        "Call Bo about pricing", "Room 9")

    world.edit(a, done=True)
    world.converge()
    assert world.activity(a)["done"] is True
    assert world.event_of(a).projection is not None  # done_style keep: the event stays
    assert len(world.live_activities()) == 1 and len(world.events()) == 1


def test_deletions_go_both_ways(world: PipedriveWorld) -> None:
    a = world.add("Call Al", "2026-12-10", "09:00")
    b = world.add("Call Bea", "2026-12-11", "09:00")
    world.converge()
    assert len(world.events()) == 2

    world.user_delete(world.event_of(a).event_id)
    world.converge()
    assert world.activity(a)["is_deleted"] is True

    world.emulator.delete_as_user(world.owner, b)
    world.advance(hours=2)  # past reconcile_hours: the deletion is asked for by id
    world.converge()
    assert world.events() == {}
    assert world.live_activities() == []


@pytest.mark.parametrize("policy", ["crm_wins", "calendar_wins"])
def test_conflicting_edits_are_decided_by_the_policy_and_both_values_kept(
        emulator: PipedriveEmulator, e2e_db: Database, side: CalendarSide, policy: str) -> None:
    world = make_world(emulator, e2e_db, side, conflict_policy=policy)
    a = world.add("Call Cy", "2026-12-10", "09:00")
    world.converge()
    world.advance(minutes=5)
    world.edit(a, subject="Call Cy (CRM)")
    world.user_edit(world.event_of(a).event_id, title="Call Cy (calendar)")
    world.converge()

    winner = "Call Cy (CRM)" if policy == "crm_wins" else "Call Cy (calendar)"
    assert world.activity(a)["subject"] == winner
    event = world.event_of(a).projection
    assert event is not None and event.title == winner
    [conflict] = world.state.conflicts(world.account.name)
    assert (conflict["crm_value"], conflict["calendar_value"]) == (
        "Call Cy (CRM)", "Call Cy (calendar)")


def test_an_event_made_in_the_calendar_becomes_one_activity(world: PipedriveWorld) -> None:
    world.side.user_create(world.account, "Lunch with Di", utc("2026-12-11T11:00"), 60)
    world.converge()
    world.converge()
    [made] = world.live_activities()
    assert (made["subject"], made["due_date"], made["due_time"], made["duration"]) == (
        "Lunch with Di", "2026-12-11", "11:00", "01:00")
    assert made["owner_id"] == world.owner.id


def test_guests_of_an_activity_are_on_its_event(
        emulator: PipedriveEmulator, e2e_db: Database, side: CalendarSide) -> None:
    world = make_world(emulator, e2e_db, side, invite_guests=True)
    a = world.add("Demo", "2026-12-10", "09:00",
                  attendees=[{"email": "Gus@Example.org", "name": "Gus"}])
    world.converge()
    event = world.event_of(a).projection
    assert event is not None and "gus@example.org" in event.guests


@pytest.mark.parametrize(("zone", "before", "after", "all_day"), [
    # Berlin springs forward on 2027-03-28: 09:00 local is 08:00 UTC before, 07:00 after.
    ("Europe/Berlin", "2027-03-27T08:00", "2027-03-29T07:00", "2027-03-28"),
    # New York springs forward on 2027-03-14: 09:00 local is 14:00 UTC before, 13:00 after.
    ("America/New_York", "2027-03-13T14:00", "2027-03-15T13:00", "2027-03-14"),
])
def test_timed_and_all_day_activities_keep_their_times_across_dst(
        emulator: PipedriveEmulator, e2e_db: Database, side: CalendarSide, zone: str,
        before: str, after: str, all_day: str) -> None:
    world = make_world(emulator, e2e_db, side, zone=zone)
    ids = [world.add("Before", before[:10], before[11:]),
           world.add("After", after[:10], after[11:]),
           world.add("Offsite", all_day, None, duration=None)]
    world.converge()

    starts: dict[str, When] = {}
    for activity_id in ids:
        event = world.event_of(activity_id).projection
        assert event is not None
        starts[event.title] = event.when
    assert starts["Before"].start == utc(before)
    assert starts["After"].start == utc(after)
    assert starts["Before"].local_start().hour == starts["After"].local_start().hour == 9
    day = date.fromisoformat(all_day)
    assert (starts["Offsite"].start, starts["Offsite"].end) == (day, day + timedelta(days=1))

    world.user_edit(world.event_of(ids[2]).event_id, title="Offsite (all hands)")
    world.converge()
    offsite = world.activity(ids[2])
    assert (offsite["subject"], offsite["due_date"], offsite.get("due_time")) == (
        "Offsite (all hands)", all_day, None)


def test_the_note_never_reaches_a_calendar_the_logs_or_the_sync_state(
        world: PipedriveWorld, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    canary = "CANARY-5d1e-private-pipedrive-note"
    a = world.add("Call Ed", "2026-12-10", "09:00", note=f"budget 40k {canary}",
                  public_description="public agenda")
    world.converge()
    world.user_edit(world.event_of(a).event_id, title="Call Ed!")
    world.edit(a, note=f"still private {canary}", subject="Call Ed!")
    world.converge()

    assert canary in world.activity(a)["note"]  # the canary was there to leak
    assert not [text for text in world.side.sent() if canary in text]
    assert canary not in caplog.text
    meta = MetaData()
    meta.reflect(world.db.engine)
    with world.db.engine.connect() as conn:
        for table in meta.sorted_tables:
            assert canary not in repr(conn.execute(select(table)).all()), table.name


def test_verify_finds_a_pipedrive_note_pasted_into_an_event_and_names_only_its_activity(
        world: PipedriveWorld) -> None:
    secret = world.add("Call Flo", "2026-12-11", "09:00",
                       note="<p>Budget is <b>40k</b> &amp; the CFO signs</p>")
    world.add("Call Gus", "2026-12-11", "11:00", note="<p>ok</p>")  # too short to search
    world.converge()
    clean = world.verify()[0]
    assert clean.privacy_checked and clean.findings == [] and clean.activities == 2

    # Pasted as a person would copy it from Pipedrive's page: the text, not the HTML.
    world.user_edit(world.event_of(secret).event_id,
                    description="Recap: budget is 40K & the CFO   signs.")
    found = world.verify()[0].findings
    assert [(f.kind, f.activity_id) for f in found] == [("privacy", secret)]
    assert "40k" not in repr(found).lower()


def test_a_description_edited_in_the_calendar_comes_back_with_its_links_to_pipedrive(
        world: PipedriveWorld) -> None:
    # Pipedrive keeps the public text; the event shows it with the links back to the
    # linked person. Found by the chaos soak: the event kept the user's text without the
    # links for good, and `syncd verify` reported drift.
    person = world.emulator.store.add_person("Pat Person", "pat@client.test")
    a = world.add("Call Pat", "2026-12-10", "09:00", person_id=person,
                  public_description="agenda")
    world.converge()
    link = f"Pipedrive person: https://acme.pipedrive.com/person/{person}"
    assert world.event_of(a).projection.description == f"agenda\n\n{link}"  # type: ignore[union-attr]

    world.user_edit(world.event_of(a).event_id, description="the new agenda")
    world.converge()
    assert world.activity(a)["public_description"] == "the new agenda"
    event = world.event_of(a).projection
    assert event is not None and event.description == f"the new agenda\n\n{link}"
    assert world.verify()[0].findings == []


# --- handovers between owners, each with their own calendar ------------------------------------


@pytest.fixture
def owners(emulator: PipedriveEmulator, e2e_db: Database, google_emulator: GoogleEmulator
           ) -> tuple[PipedriveWorld, PipedriveWorld, PipedriveWorld]:
    """Ada, Bob and Cleo of one company, each with their own Google calendar."""
    side = GoogleSide(google_emulator)
    ada, bob, cleo = (make_world(emulator, e2e_db, side, name=n) for n in ("Ada", "Bob", "Cleo"))
    return ada, bob, cleo


def synced(world: PipedriveWorld, *others: PipedriveWorld) -> None:
    """``world`` syncs until quiet; the others' clocks follow (one company, one time)."""
    world.converge()
    for other in others:
        other.now = world.now


def titles(world: PipedriveWorld) -> list[str]:
    return sorted(e.projection.title for e in world.events().values() if e.projection)


def test_an_activity_handed_on_twice_leaves_only_the_last_owners_event(
        owners: tuple[PipedriveWorld, PipedriveWorld, PipedriveWorld]) -> None:
    # Found by the chaos soak: handed Ada -> Bob -> Cleo before Ada's feed was told of the
    # first move, Bob was never told of the second and kept the meeting for good.
    ada, bob, cleo = owners
    call = ada.add("Call Bo", "2026-12-10", "09:00")
    synced(ada, bob, cleo)
    assert titles(ada) == ["Call Bo"]
    ada.edit(call, owner_id=bob.owner.id)
    synced(bob, ada, cleo)  # Bob's account puts it in his calendar; Ada's has not run
    assert titles(bob) == ["Call Bo"]
    ada.advance(seconds=1)
    ada.edit(call, owner_id=cleo.owner.id)
    synced(cleo, ada, bob)
    synced(bob, ada, cleo)
    synced(ada, bob, cleo)
    assert (titles(ada), titles(bob), titles(cleo)) == ([], [], ["Call Bo"])
    assert call not in ada.state.links(ada.account.name)
    assert call not in bob.state.links(bob.account.name)


def test_an_activity_handed_back_keeps_its_event_with_the_owner_it_came_back_to(
        owners: tuple[PipedriveWorld, PipedriveWorld, PipedriveWorld]) -> None:
    ada, bob, _ = owners
    call = ada.add("Call Bo", "2026-12-10", "09:00")
    synced(ada, bob)
    ada.edit(call, owner_id=bob.owner.id)
    synced(bob, ada)
    ada.advance(seconds=1)
    ada.edit(call, owner_id=ada.owner.id)  # back before Ada's feed was told it left her
    synced(ada, bob)
    synced(bob, ada)
    synced(ada, bob)
    assert (titles(ada), titles(bob)) == (["Call Bo"], [])
    assert ada.event_of(call).projection is not None
