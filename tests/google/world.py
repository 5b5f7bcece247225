"""The engine on SQLite against the Google emulator, through the real connector."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import httplib2

from connectors.google import GoogleCalendar
from connectors.google_map import MARKER_KEY
from syncd.model import Activity
from syncd.store.db import Database
from syncd.store.state import StateStore
from syncd_testkit.emulators.google import GoogleEmulator
from syncd_testkit.world import Sent, World, open_store
from tests.google.helpers import TZ, WRITE_METHODS, FakeClock, account, connector


@dataclass(kw_only=True)
class GoogleWorld(World):
    """One CRM owner with one Google calendar; ``sync`` runs one engine cycle."""

    emu: GoogleEmulator
    calendar: GoogleCalendar
    clock: FakeClock

    idle_requests: ClassVar[tuple[str, ...]] = ("GET",)  # one incremental listing

    def cycle_connector(self) -> GoogleCalendar:
        return self.calendar

    def add(self, subject: str = "Call", day: int = 10, hour: int | None = 9, **values: Any
            ) -> Activity:
        values.setdefault("type", "meeting")
        return super().add(subject, day, hour, **values)

    def calendar_id(self) -> str:
        return self.account.calendar or self.account.owner

    def event_of(self, activity_id: int) -> dict[str, Any]:
        event_id = self.event_id_of(activity_id)
        [event] = [e for e in self.emu.events(self.calendar_id(), include_cancelled=True)
                   if e["id"] == event_id]
        return event

    def live_events(self) -> list[dict[str, Any]]:
        return self.emu.events(self.calendar_id())

    # ---- the contract's view ----------------------------------------------------------------

    def sent(self) -> list[Sent]:
        return [Sent(r.method, " ".join([r.method, r.path, repr(r.query), repr(r.headers),
                                         r.body.decode("utf-8", "replace")]),
                     r.method in WRITE_METHODS)
                for r in self.emu.requests]

    def forget_sent(self) -> None:
        self.emu.clear_requests()

    def user_edit(self, activity_id: int, title: str) -> None:
        self.emu.put_event(self.calendar_id(), {**self.event_of(activity_id), "summary": title})

    def user_delete(self, activity_id: int) -> None:
        self.emu.delete_event_as_user(self.calendar_id(), self.event_id_of(activity_id))

    def event_title(self, activity_id: int) -> str:
        return str(self.event_of(activity_id)["summary"])

    def event_location(self, activity_id: int) -> str:
        return str(self.event_of(activity_id).get("location", ""))

    def markers(self) -> Counter[str]:
        return Counter(str(e.get("extendedProperties", {}).get("private", {}).get(MARKER_KEY))
                       for e in self.live_events())


def make_world(tmp_path: Path, emu: GoogleEmulator, name: str = "alice",
               http: httplib2.Http | None = None, clock: FakeClock | None = None,
               db: Database | None = None, attempts: int = 5, **options: Any) -> GoogleWorld:
    """A world on a fresh SQLite file (or ``db``) and a calendar of the emulator."""
    owner = f"{name}@example.com"
    emu.add_calendar(owner, time_zone=TZ)
    db, store, owner_id = open_store(tmp_path, owner, db, name=name.title())
    cfg = account(emu, name=name, owner=owner, calendar=owner, **options)
    clock = clock or FakeClock()
    conn = connector(emu, clock=clock, http=http, acct=cfg, attempts=attempts)
    return GoogleWorld(db=db, store=store, state=StateStore(db), account=cfg,
                       owner_id=owner_id, emu=emu, calendar=conn, clock=clock)
