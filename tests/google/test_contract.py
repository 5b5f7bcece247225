"""The connector contract on the Google Calendar emulator."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from connectors.google import GoogleCalendar
from syncd.model import Projection
from tests.contract import ConnectorContract
from tests.emulators.google import GoogleEmulator
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
    @pytest.fixture
    def emu(self, google_emulator: GoogleEmulator) -> GoogleEmulator:
        google_emulator.add_calendar(OWNER, time_zone=TZ)
        return google_emulator

    @pytest.fixture
    def connector(self, emu: GoogleEmulator) -> Iterator[GoogleCalendar]:
        conn = connector(emu)
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
