"""Meetings someone else organises stay theirs (docs/guest-mail.md).

An invitation the owner received, imported with ``import_events``, keeps its ORGANIZER,
every PARTSTAT and every scheduling parameter byte for byte through CRM edits of its
guests and of its time, and nothing is sent about it.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import time
from pathlib import Path

import caldav
import pytest

from syncd.crm.builtin.views import ActivityFilter
from syncd_testkit.emulators.google import GoogleEmulator
from syncd_testkit.servers import DavServer
from tests.caldav.world import DavWorld, make_dav_world
from tests.google.world import make_world
from tests.guests.itip import messages

BOSS = "boss@other.example"


def invitation(owner: str) -> str:
    return "\r\n".join([
        "BEGIN:VCALENDAR", "VERSION:2.0", "PRODID:-//Other Org//Mail//EN",
        "BEGIN:VEVENT", "UID:board-2026@other.example", "DTSTAMP:20261120T100000Z",
        "SEQUENCE:3", "DTSTART:20261210T130000Z", "DTEND:20261210T140000Z",
        "SUMMARY:Board review",
        f"ORGANIZER;CN=The Boss;SCHEDULE-AGENT=CLIENT:mailto:{BOSS}",
        f"ATTENDEE;CN=Owner;PARTSTAT=ACCEPTED;ROLE=REQ-PARTICIPANT;RSVP=TRUE:mailto:{owner}",
        "ATTENDEE;CN=Carl;PARTSTAT=TENTATIVE;ROLE=OPT-PARTICIPANT;SCHEDULE-AGENT=CLIENT:"
        "mailto:carl@other.example",
        "ATTENDEE;PARTSTAT=DECLINED;SCHEDULE-STATUS=2.0:mailto:dana@other.example",
        "END:VEVENT", "END:VCALENDAR", ""])


def people(data: str) -> list[str]:
    """The ORGANIZER, ATTENDEE and SEQUENCE lines, unfolded, as the server holds them."""
    unfolded = re.sub(r"\r?\n[ \t]", "", data)
    return [line for line in unfolded.splitlines()
            if line.startswith(("ORGANIZER", "ATTENDEE", "SEQUENCE"))]


@pytest.fixture
def world(tmp_path: Path, radicale: DavServer) -> Iterator[DavWorld]:
    w = make_dav_world(tmp_path, radicale, import_events=True, invite_guests=True)
    yield w
    w.connector.close()


def _stored(world: DavWorld) -> str:
    client = caldav.DAVClient(url=world.server.url, username=world.user, password="x")
    [obj] = client.calendar(url=world.calendar_url).objects(load_objects=True)
    return str(obj.data)


def test_an_imported_invitation_keeps_its_people_byte_for_byte_through_crm_edits(
        world: DavWorld) -> None:
    client = caldav.DAVClient(url=world.server.url, username=world.user, password="x")
    client.calendar(url=world.calendar_url).save_event(invitation(world.user))
    original = _stored(world)
    assert world.sync().outcome == "ok"
    [activity] = world.store.list_activities(ActivityFilter(owner_id=world.owner_id))
    assert {g.email for g in activity.guests} == {"carl@other.example", "dana@other.example"}
    imported = _stored(world)
    assert people(imported) == people(original)  # adopting it wrote only our marker

    world.store.edit_activity(activity.id, guests=["carl@other.example", "new@example.com"])
    assert world.sync().outcome == "ok"
    after_guests = _stored(world)
    assert people(after_guests) == people(original)
    assert messages(imported.encode(), after_guests.encode()) == {}

    world.store.edit_activity(activity.id, due_time=time(16))
    assert world.sync().outcome == "ok"
    after_time = _stored(world)
    assert people(after_time) == people(original)
    assert "DTSTART:20261210T130000Z" not in re.sub(r"\r?\n[ \t]", "", after_time)
    # The guest edit stays in the CRM.
    guests = {g.email for g in world.store.get(activity.id).guests}
    assert guests == {"carl@other.example", "new@example.com"}


def test_a_google_invitation_keeps_its_organizer_and_answers_and_nobody_is_mailed(
        tmp_path: Path, google_emulator: GoogleEmulator) -> None:
    world = make_world(tmp_path, google_emulator, import_events=True, invite_guests=True)
    owner = world.account.owner
    # events.import: how an invitation from another organizer lands in a calendar
    world.emu.store.import_event(world.calendar_id(), None, {
        "iCalUID": "board-2026@other.example", "summary": "Board review",
        "start": {"dateTime": "2026-12-10T13:00:00Z"}, "end": {"dateTime": "2026-12-10T14:00:00Z"},
        "organizer": {"email": BOSS, "displayName": "The Boss"},
        "attendees": [{"email": owner, "responseStatus": "accepted"},
                      {"email": "carl@other.example", "responseStatus": "tentative",
                       "optional": True},
                      {"email": BOSS, "organizer": True, "responseStatus": "accepted"}]})
    original = world.emu.events(world.calendar_id())[0]
    world.converge()
    [activity] = world.store.list_activities(ActivityFilter(owner_id=world.owner_id))
    assert {g.email for g in activity.guests} == {"carl@other.example"}

    world.store.edit_activity(activity.id, guests=["carl@other.example", "new@example.com"])
    world.converge()
    world.store.edit_activity(activity.id, due_time=time(16))
    world.converge()
    [event] = world.emu.events(world.calendar_id())
    assert event["organizer"] == original["organizer"]
    assert event["attendees"] == original["attendees"]
    assert event["start"] != original["start"]
    assert world.emu.emails_sent == 0
