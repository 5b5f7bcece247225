"""The kill loop: a cycle between Pipedrive and Radicale is SIGKILLed at the points around
Pipedrive's POST and PATCH (and the engine's own), then syncd restarts: no activity or
event is duplicated and no edit, from either side, is lost."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import caldav
import icalendar
import pytest

from syncd.store.db import Database
from syncd.store.state import StateStore
from syncd_testkit.emulators.pipedrive import PipedriveClock, PipedriveEmulator
from syncd_testkit.servers import DavServer
from tests.conftest import fresh_calendar
from tests.pipedrive.world import START

FAILPOINTS = ["pipedrive_before_post", "pipedrive_after_post", "pipedrive_after_patch",
              "after_intent_commit", "after_write_request", "before_cursor_commit"]
ZONE = "Europe/Berlin"


@pytest.fixture
def emulator() -> Iterator[PipedriveEmulator]:
    # A running clock: the children's budgets pace the burst window by real time.
    emu = PipedriveEmulator(clock=PipedriveClock(START)).start()
    yield emu
    emu.stop()


class Loop:
    """Pipedrive (the emulator), a Radicale calendar and syncd's database."""

    def __init__(self, tmp_path: Path, emulator: PipedriveEmulator, server: DavServer) -> None:
        self.emulator, self.server = emulator, server
        self.user, self.calendar_url = fresh_calendar(server)
        self.owner = emulator.add_user("Kai", self.user, timezone_name=ZONE, is_admin=True)
        self.db_url = f"sqlite:///{tmp_path / 'syncd.db'}"
        Database(self.db_url).close()
        self.now = START
        self.kills = 0

    def cycle(self, failpoint: str | None = None) -> int:
        env = {k: v for k, v in os.environ.items() if k != "SYNCD_FAILPOINT"}
        if failpoint:
            env["SYNCD_FAILPOINT"] = failpoint
        self.now += timedelta(minutes=1)
        done = subprocess.run(
            [sys.executable, "-m", "tests.pipedrive.child", self.emulator.base_url,
             self.emulator.api_token(self.owner), self.db_url, self.user, ZONE,
             self.calendar_url, self.now.isoformat()],
            env=env, capture_output=True, text=True, timeout=180)
        assert done.returncode in (0, -signal.SIGKILL), done.stdout + done.stderr
        self.kills += done.returncode == -signal.SIGKILL
        return done.returncode

    def settle(self) -> None:
        """Clean cycles until one changes nothing (at most four)."""
        for _ in range(4):
            before = (self.activities(), self.events())
            assert self.cycle() == 0
            if (self.activities(), self.events()) == before:
                return
        raise AssertionError("no quiet cycle")

    def add(self, subject: str, day: int) -> int:
        return int(self.emulator.create_as_user(
            self.owner, subject=subject, type="meeting", due_date=f"2026-12-{day:02d}",
            due_time="09:00", duration="00:30")["id"])

    def activities(self) -> dict[int, str]:
        """Live activities: id -> subject."""
        with self.emulator.store.lock:
            ids = list(self.emulator.store.activities)
        rows = [self.emulator.activity(i) for i in ids]
        return {r["id"]: r["subject"] for r in rows if not r["is_deleted"]}

    def _calendar(self) -> caldav.Calendar:
        client = caldav.DAVClient(url=self.server.url, username=self.user, password="x")
        return client.calendar(url=self.calendar_url)

    def events(self) -> Counter[str]:
        """The calendar's events: a count per title."""
        titles: Counter[str] = Counter()
        for item in self._calendar().events():
            vevent = next(iter(icalendar.Calendar.from_ical(item.data).walk("VEVENT")))
            titles[str(vevent["SUMMARY"])] += 1
        return titles

    def markers(self) -> Counter[str]:
        found: Counter[str] = Counter()
        for item in self._calendar().events():
            vevent = next(iter(icalendar.Calendar.from_ical(item.data).walk("VEVENT")))
            found[str(vevent.get("X-SYNCD-ID"))] += 1
        return found

    def user_create(self, title: str, start: datetime) -> None:
        stamp = "%Y%m%dT%H%M%SZ"
        self._calendar().save_event(
            "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//phone//EN\r\nBEGIN:VEVENT\r\n"
            f"UID:{title.replace(' ', '-')}@phone\r\nDTSTAMP:{start.strftime(stamp)}\r\n"
            f"DTSTART:{start.strftime(stamp)}\r\n"
            f"DTEND:{(start + timedelta(minutes=45)).strftime(stamp)}\r\n"
            f"SUMMARY:{title}\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n")

    def user_retitle(self, old: str, new: str) -> None:
        for item in self._calendar().events():
            parsed = icalendar.Calendar.from_ical(item.data)
            vevent = next(iter(parsed.walk("VEVENT")))
            if str(vevent["SUMMARY"]) == old:
                vevent["SUMMARY"] = new
                item.data = parsed.to_ical().decode()
                item.save()
                return
        raise AssertionError(f"no event {old!r}")


@pytest.mark.parametrize("failpoint", FAILPOINTS)
def test_a_cycle_killed_around_pipedrives_writes_duplicates_nothing_and_loses_no_edit(
        tmp_path: Path, emulator: PipedriveEmulator, radicale: DavServer,
        failpoint: str) -> None:
    loop = Loop(tmp_path, emulator, radicale)
    for day in (10, 11, 12):
        loop.add(f"Visit {day}", day)
    loop.user_create("Lunch from the phone", datetime(2026, 12, 14, 11, 0,
                                                      tzinfo=START.tzinfo))
    # The first cycle creates three events and imports one (a POST), and dies where told.
    loop.cycle(failpoint)
    loop.settle()
    assert sorted(loop.activities().values()) == [
        "Lunch from the phone", "Visit 10", "Visit 11", "Visit 12"]
    assert loop.events() == Counter({"Lunch from the phone": 1, "Visit 10": 1,
                                     "Visit 11": 1, "Visit 12": 1})
    assert set(loop.markers().values()) == {1}

    # An edit on each side: the calendar's becomes a PATCH, Pipedrive's an event update.
    loop.user_retitle("Visit 10", "Visit 10 (moved by phone)")
    [eleven] = [i for i, s in loop.activities().items() if s == "Visit 11"]
    emulator.edit_as_user(loop.owner, eleven, subject="Visit 11 (moved in Pipedrive)")
    loop.cycle(failpoint)
    loop.settle()
    expected = ["Lunch from the phone", "Visit 10 (moved by phone)",
                "Visit 11 (moved in Pipedrive)", "Visit 12"]
    assert sorted(loop.activities().values()) == expected
    assert sorted(loop.events().elements()) == expected
    assert set(loop.markers().values()) == {1}
    db = Database(loop.db_url)
    links = StateStore(db).links("kill")
    db.close()
    assert len(links) == 4 and not any(link.pending for link in links.values())
    assert loop.kills >= 1  # the failpoint was reached (first cycle, edit cycle or both)
    posts = [r for r in emulator.requests if r.method == "POST" and r.status == 200]
    assert len(posts) == 1  # the import was made once, whatever was killed
