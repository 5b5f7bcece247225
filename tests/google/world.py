"""The engine on SQLite against the Google emulator, through the real connector."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Any

import httplib2

from connectors.google import GoogleCalendar
from syncd.config import AccountConfig
from syncd.crm.builtin.activities import ActivityStore
from syncd.crm.builtin.source import BuiltinSource
from syncd.engine.runner import CycleReport, sync_account
from syncd.model import Activity
from syncd.store.db import Database
from syncd.store.state import StateStore
from syncd_testkit.emulators.google import GoogleEmulator
from tests.google.helpers import START, TZ, FakeClock, account, connector


@dataclass
class GoogleWorld:
    """One CRM owner with one Google calendar; ``sync`` runs one engine cycle."""

    emu: GoogleEmulator
    store: ActivityStore
    state: StateStore
    account: AccountConfig
    owner_id: int
    calendar: GoogleCalendar
    clock: FakeClock
    now: datetime = START
    reports: list[CycleReport] = field(default_factory=list)

    def add(self, subject: str = "Call", day: int = 10, hour: int | None = 9, **values: Any
            ) -> Activity:
        values.setdefault("duration_minutes", 30)
        return self.store.add_activity(
            owner_id=self.owner_id, subject=subject, type="meeting",
            due_date=date(2026, 12, day), due_time=time(hour) if hour is not None else None,
            **values)

    def sync(self, **options: Any) -> CycleReport:
        report = sync_account(self.account, self.calendar, BuiltinSource(self.store), self.state,
                              now=self.now, **options)
        self.reports.append(report)
        return report

    def converge(self) -> None:
        """Two cycles: the first writes, the second reads its own echo back."""
        for _ in range(2):
            report = self.sync()
            assert report.outcome == "ok", report.message
            self.advance(minutes=1)

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)

    def calendar_id(self) -> str:
        return self.account.calendar or self.account.owner

    def event_of(self, activity_id: int) -> dict[str, Any]:
        link = self.state.links(self.account.name)[activity_id]
        [event] = [e for e in self.emu.events(self.calendar_id(), include_cancelled=True)
                   if e["id"] == link.event_id]
        return event

    def live_events(self) -> list[dict[str, Any]]:
        return self.emu.events(self.calendar_id())


def make_world(tmp_path: Path, emu: GoogleEmulator, name: str = "alice",
               http: httplib2.Http | None = None, clock: FakeClock | None = None,
               db: Database | None = None, attempts: int = 5, **options: Any) -> GoogleWorld:
    """A world on a fresh SQLite file (or ``db``) and a calendar of the emulator."""
    owner = f"{name}@example.com"
    emu.add_calendar(owner, time_zone=TZ)
    db = db or Database(f"sqlite:///{tmp_path / 'syncd.db'}")
    store = ActivityStore(db)
    owner_id = store.add_user(owner, name.title(), TZ)
    cfg = account(emu, name=name, owner=owner, calendar=owner, **options)
    clock = clock or FakeClock()
    conn = connector(emu, clock=clock, http=http, acct=cfg, attempts=attempts)
    return GoogleWorld(emu, store, StateStore(db), cfg, owner_id, conn, clock)
