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

from syncd.store.crm_views import ActivityFilter
from tests.caldav.test_sync_caldav import DavWorld, make_dav_world
from tests.guests.itip import messages
from tests.servers import DavServer

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
