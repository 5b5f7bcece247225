"""The connector contract on the Google Calendar emulator, plus the describe-guests round trip."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from connectors.google import GoogleCalendar
from syncd.model import FIELDS, Projection
from syncd_testkit.emulators.google import GoogleEmulator
from tests.contract import ConnectorContract, create, rich
from tests.google.helpers import OWNER, TZ, connector, user_event


class GoogleUser:
    """A person in the Google Calendar UI: edits go through the emulator, no syncd marker."""

    def __init__(self, emu: GoogleEmulator) -> None:
        self.emu = emu

    def create(self, projection: Projection) -> str:
        return str(self.emu.put_event(OWNER, user_event(projection))["id"])

    def edit(self, event_id: str, **values: Any) -> None:
        [event] = [e for e in self.emu.events(OWNER) if e["id"] == event_id]
        if "title" in values:
            event["summary"] = values["title"]
        self.emu.put_event(OWNER, event)

    def delete(self, event_id: str) -> None:
        self.emu.delete_event_as_user(OWNER, event_id)


class TestGoogleContract(ConnectorContract):
    """Guests are real attendees here, because the contract's rich() projection has guests."""

    @pytest.fixture
    def emu(self, google_emulator: GoogleEmulator) -> GoogleEmulator:
        google_emulator.add_calendar(OWNER, time_zone=TZ)
        return google_emulator

    @pytest.fixture
    def connector(self, emu: GoogleEmulator) -> Iterator[GoogleCalendar]:
        conn = connector(emu, invite_guests=True)
        yield conn
        conn.close()

    @pytest.fixture
    def calendar_user(self, emu: GoogleEmulator) -> GoogleUser:
        return GoogleUser(emu)

    @pytest.fixture
    def expired_cursor(self, emu: GoogleEmulator) -> Callable[[str], str]:
        def expire(cursor: str) -> str:
            emu.expire_sync_tokens()
            return cursor

        return expire


def test_describe_mode_round_trips_guests_through_the_description_without_attendees(
        emu: GoogleEmulator) -> None:
    conn = connector(emu)
    assert conn.capabilities.fields == frozenset(FIELDS) - {"guests"}
    event = create(conn, rich())
    stored = conn.get(event.event_id)
    assert stored is not None and stored.projection == rich()
    [raw] = emu.events(OWNER)
    assert "attendees" not in raw
    assert raw["description"].endswith("Guests: Ada Lovelace <ada@example.com>, bob@example.org")
    # A guest added in Google is not read back as a guest (nor as a description edit).
    raw["attendees"] = [{"email": "carol@example.net"}]
    emu.put_event(OWNER, raw)
    again = conn.get(event.event_id)
    assert again is not None and again.projection == rich()
    assert emu.emails_sent == 0


def test_invite_mode_writes_attendees_and_reads_them_back(emu: GoogleEmulator) -> None:
    conn = connector(emu, invite_guests=True)
    assert "guests" in conn.capabilities.fields
    event = create(conn, rich(), invited=rich().guests)
    [raw] = emu.events(OWNER)
    assert sorted(a["email"] for a in raw["attendees"]) == ["ada@example.com", "bob@example.org"]
    assert "Guests:" not in raw.get("description", "")
    stored = conn.get(event.event_id)
    assert stored is not None and stored.projection == rich()
