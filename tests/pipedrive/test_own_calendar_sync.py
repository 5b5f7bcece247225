"""Pipedrive's own calendar sync switched on for the calendar syncd syncs: no loop.

Pipedrive's two-way sync is played by :class:`PipedriveCalendarSync`: it writes each of
the user's activities into the calendar as an event without syncd's marker, and each
event it did not write (syncd's included) into Pipedrive as a new activity, as the
support article describes. syncd (the Pipedrive source on the emulator, a Radicale
calendar, ``import_events`` on) and it take turns; the copies they make of each other's
items stop after the first round instead of growing every round.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import caldav
import pytest

from connectors import provider_options
from syncd.config import load_config
from syncd.crm import source_options
from syncd.service import Service
from syncd_testkit.emulators.pipedrive import PipedriveEmulator
from syncd_testkit.emulators.pipedrive_model import User
from syncd_testkit.servers import DavServer
from tests.conftest import fresh_calendar
from tests.pipedrive.conftest import EmulatorFactory

TOKEN_ENV = "SYNCD_TEST_PIPEDRIVE_TOKEN"


@dataclass
class PipedriveCalendarSync:
    """Pipedrive's built-in two-way calendar sync of one user, as the tests play it."""

    emulator: PipedriveEmulator
    user: User
    calendar: Any
    written: dict[int, str] = field(default_factory=dict)  # activity id -> event UID
    imported: dict[str, int] = field(default_factory=dict)  # event UID -> activity id

    def run(self) -> None:
        for item in list(self.emulator.store.activities.values()):
            aid = item["id"]
            if (item["owner_id"] != self.user.id or item["is_deleted"] or not item["due_time"]
                    or aid in self.written or aid in self.imported.values()):
                continue
            start = datetime.fromisoformat(f"{item['due_date']}T{item['due_time']}+00:00")
            hours, minutes = (item["duration"] or "00:30").split(":")
            end = start + timedelta(hours=int(hours), minutes=int(minutes))
            uid = f"pipedrive-{aid}"
            self.calendar.save_event(
                "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//Pipedrive sync (test)//EN\r\n"
                f"BEGIN:VEVENT\r\nUID:{uid}\r\nDTSTAMP:20261201T000000Z\r\n"
                f"DTSTART:{start:%Y%m%dT%H%M%SZ}\r\nDTEND:{end:%Y%m%dT%H%M%SZ}\r\n"
                f"SUMMARY:{item['subject']}\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n")
            self.written[aid] = uid
        for found in self.calendar.events():
            event = found.icalendar_component
            uid = str(event["UID"])
            if uid in self.written.values() or uid in self.imported:
                continue
            start, end = event.decoded("DTSTART"), event.decoded("DTEND")
            minutes = int((end - start).total_seconds() // 60)
            start = start.astimezone(UTC)
            made = self.emulator.create_as_user(
                self.user, subject=str(event["SUMMARY"]), type="meeting",
                due_date=f"{start:%Y-%m-%d}", due_time=f"{start:%H:%M}",
                duration=f"{minutes // 60:02d}:{minutes % 60:02d}")
            self.imported[uid] = made["id"]


@dataclass
class Both:
    service: Service
    pipedrive_sync: PipedriveCalendarSync
    emulator: PipedriveEmulator
    alice: User

    def activities(self) -> int:
        return sum(1 for item in self.emulator.store.activities.values()
                   if item["owner_id"] == self.alice.id and not item["is_deleted"])

    def events(self) -> int:
        return len(self.pipedrive_sync.calendar.events())

    def round(self) -> dict[str, int]:
        # A minute passes between rounds, so a feed shows only what changed since the last.
        self.emulator.clock.advance(60)
        [account] = self.service.accounts()
        report = self.service.sync_one(account)
        assert report.outcome == "ok", report.line()
        # Pipedrive's sync runs on its own schedule: here after syncd has read its own
        # writes back, so the copies come when no pair they copy is among the changes.
        settled = self.service.sync_one(account)
        assert settled.outcome == "ok" and not settled.counts.get("events_created")
        self.pipedrive_sync.run()
        return dict(report.counts)


@pytest.fixture
def both(tmp_path: Path, radicale: DavServer, make_emulator: EmulatorFactory,
         monkeypatch: pytest.MonkeyPatch) -> Iterator[Both]:
    emulator = make_emulator()
    ada = emulator.add_user("Ada", "ada@acme.test", is_admin=True)
    alice = emulator.add_user("Alice", "alice@acme.test")
    monkeypatch.setenv(TOKEN_ENV, emulator.api_token(ada))
    login, calendar_url = fresh_calendar(radicale)
    config = tmp_path / "syncd.toml"
    config.write_text(
        f'[syncd]\ndata_dir = "{tmp_path / "data"}"\n'
        f'[crm]\nkind = "pipedrive"\ncompany_domain = "acme"\napi_token = "env:{TOKEN_ENV}"\n'
        f'api_url = "{emulator.base_url}"\nallow_insecure_http = true\nseats = 5\n'
        '[[account]]\nname = "alice-cal"\nprovider = "caldav"\nowner = "alice@acme.test"\n'
        f'calendar = "{calendar_url}"\nimport_events = true\n'
        f'[account.auth]\nurl = "{radicale.url}"\nusername = "{login}"\n')
    service = Service(load_config(config, provider_options(), crm_sources=source_options()))
    calendar = caldav.DAVClient(url=radicale.url, username=login, password="x").calendar(
        url=calendar_url)
    try:
        yield Both(service, PipedriveCalendarSync(emulator, alice, calendar), emulator, alice)
    finally:
        service.close()


def test_two_syncs_of_one_calendar_copy_each_other_once_and_then_stop(both: Both) -> None:
    due = datetime.now(UTC).date() + timedelta(days=10)
    both.emulator.create_as_user(both.alice, subject="Call Ada", due_date=f"{due}",
                                 due_time="09:00", duration="00:30")
    both.emulator.create_as_user(both.alice, subject="Demo for Acme", due_date=f"{due}",
                                 due_time="13:00", duration="01:00")
    # syncd sends both activities; Pipedrive writes its own copies of them and imports
    # syncd's events as two more activities.
    assert both.round()["events_created"] == 2
    counts = [(both.activities(), both.events())]
    echoes = []
    for _ in range(3):
        echoes.append(both.round().get("skipped_echo", 0))
        counts.append((both.activities(), both.events()))
    assert counts == [(4, 4)] * 4  # 2 activities + 2 copies, 2 events + 2 copies, for good
    assert echoes[0] == 4  # each copy recognised once instead of copied back
