"""syncd through heavy faults converges once they stop, with no duplicate and no lost edit.

Two small chaos runs, one per kind of server: ``syncd sync`` (the command, in-process) on
a real Radicale, and the engine on the Google emulator, each behind a :class:`FaultProxy`
injecting every kind of fault at high rates while the CRM and the calendar's owner both
edit. Then fault-free cycles, and the oracle: every activity has exactly one event, its
title is the last edit made on either side, and ``syncd verify`` finds nothing.

CRM edits and calendar edits touch different activities, so no conflict policy decides
the expected title: it is simply the last edit made.
"""

from __future__ import annotations

import random
from collections import Counter
from pathlib import Path
from typing import Any

import caldav
import httplib2
import icalendar
import pytest

from syncd_testkit.emulators.google import GoogleEmulator
from syncd_testkit.emulators.google_fixtures import google_emulator
from syncd_testkit.faults import FaultProxy, FaultRates
from syncd_testkit.servers import RadicaleServer
from tests.conftest import fresh_calendar
from tests.google.world import GoogleWorld, make_world
from tests.soak.fault_support import dav_config, run

__all__ = ["google_emulator"]

ACTIVITIES = 16
FAULTY_CYCLES = 10
#: Every kind at once; half the sync-token reads are told the token expired.
RATES = FaultRates(server_error=0.1, throttle=0.1, lost_answer=0.1, timeout=0.05,
                   reset=0.05, expired_token=0.5, retry_after=1, hang_seconds=4)
#: Between heavy cycles on CalDAV: a failed cycle keeps no sync token, so the expired-token
#: fault needs cycles that get through.
LIGHT = FaultRates(lost_answer=0.05, expired_token=0.5)


def assert_many_faults(counts: dict[str, int]) -> None:
    """The run met lost answers and most other kinds (the seed gives all six on an idle
    machine; a slow one may time out elsewhere and draw others)."""
    kinds = ("server_error", "throttle", "lost_answer", "timeout", "reset", "expired_token")
    assert counts["lost_answer"] and sum(1 for k in kinds if counts[k]) >= 4, counts


def prefix(title: str) -> str:
    """"A3" of "A3 crm edit 5": which activity a title belongs to."""
    return title.split(" ", 1)[0]


def radicale_titles(calendar: Any) -> Counter[str]:
    """How many events of the calendar carry each title (read straight from Radicale)."""
    titles: Counter[str] = Counter()
    for obj in calendar.get_objects_by_sync_token(load_objects=True).objects:
        for vevent in icalendar.Calendar.from_ical(obj.data).walk("VEVENT"):
            titles[str(vevent["SUMMARY"])] += 1
    return titles


def retitle_on_radicale(calendar: Any, start: str, title: str) -> bool:
    """The calendar's owner renames the event whose title starts with ``start``."""
    for obj in calendar.get_objects_by_sync_token(load_objects=True).objects:
        cal = icalendar.Calendar.from_ical(obj.data)
        vevent = next(iter(cal.walk("VEVENT")))
        if prefix(str(vevent["SUMMARY"])) == start:
            vevent["SUMMARY"] = title
            obj.data = cal.to_ical().decode()
            obj.save()
            return True
    return False


def test_syncd_sync_on_radicale_converges_through_faults_with_no_duplicates(
        tmp_path: Path, radicale: RadicaleServer) -> None:
    user, calendar_url = fresh_calendar(radicale)
    direct = caldav.DAVClient(url=radicale.url, username=user, password="x").calendar(
        url=calendar_url)
    rng = random.Random(3)
    with FaultProxy(radicale.origin, RATES, seed=3, provider="caldav") as proxy:
        config = dav_config(tmp_path, radicale, proxy, user, calendar_url, request_timeout=2)
        assert run(config, "user", "add", user, "--time-zone", "Europe/Oslo")[0] == 0
        expected: dict[str, str] = {}
        ids: dict[str, int] = {}
        for n in range(ACTIVITIES):
            status, added = run(config, "activity", "add", f"A{n} new", "--owner", user,
                                "--due", f"2027-01-{10 + n:02d}", "--time", "09:00",
                                "--duration", "30", "--busy")
            assert status == 0
            ids[f"A{n}"] = added["id"] if isinstance(added, dict) else added[0]["id"]
            expected[f"A{n}"] = f"A{n} new"
        crm_side, calendar_side = sorted(ids)[::2], sorted(ids)[1::2]
        outcomes: Counter[object] = Counter()
        for cycle in range(FAULTY_CYCLES):
            for name in rng.sample(crm_side, 2):
                expected[name] = f"{name} crm edit {cycle}"
                assert run(config, "activity", "edit", str(ids[name]),
                           "--subject", expected[name])[0] == 0
            name = rng.choice(calendar_side)
            if retitle_on_radicale(direct, name, f"{name} calendar edit {cycle}"):
                expected[name] = f"{name} calendar edit {cycle}"
            proxy.set_rates(LIGHT if cycle % 2 else RATES)
            outcomes[run(config, "sync")[0]] += 1
            # A failed cycle rests the account (a minute, doubling); time runs faster here.
            assert run(config, "resume", "dav")[0] == 0
        with proxy.quiet():
            for _ in range(3):
                status, synced = run(config, "sync")
                assert status == 0, synced
            status, audit = run(config, "verify")
        counts = proxy.counts()
    assert status == 0, audit
    assert radicale_titles(direct) == Counter(expected.values())  # one event each, last edit
    _, listed = run(config, "activity", "list")
    assert {prefix(a["subject"]): a["subject"] for a in listed} == expected
    assert_many_faults(counts)
    print(f"faulty cycles by exit status: {dict(outcomes)}; faults: {counts}")


def retitle_on_google(world: GoogleWorld, start: str, title: str) -> bool:
    for event in world.live_events():
        if prefix(event["summary"]) == start:
            world.emu.put_event(world.calendar_id(), {**event, "summary": title})
            return True
    return False


def test_the_engine_on_google_converges_through_faults_with_no_duplicates(
        tmp_path: Path, google_emulator: GoogleEmulator) -> None:
    rng = random.Random(19)
    with FaultProxy(google_emulator.origin, RATES, seed=19, provider="google") as proxy:
        world = make_world(tmp_path, google_emulator, http=httplib2.Http(timeout=2),
                           auth={"api_endpoint": f"{proxy.url}/calendar/v3/"})
        expected = {f"A{n}": f"A{n} new" for n in range(ACTIVITIES)}
        ids = {name: world.add(title, day=10 + n, hour=9).id
               for n, (name, title) in enumerate(expected.items())}
        crm_side, calendar_side = sorted(ids)[::2], sorted(ids)[1::2]
        outcomes: Counter[object] = Counter()
        for cycle in range(FAULTY_CYCLES):
            for name in rng.sample(crm_side, 2):
                expected[name] = f"{name} crm edit {cycle}"
                world.store.edit_activity(ids[name], subject=expected[name], now=world.now)
            name = rng.choice(calendar_side)
            if retitle_on_google(world, name, f"{name} calendar edit {cycle}"):
                expected[name] = f"{name} calendar edit {cycle}"
            outcomes[str(world.sync().outcome)] += 1
            world.advance(minutes=1)
        with proxy.quiet():
            for _ in range(3):
                report = world.sync()
                assert report.outcome == "ok", report.message
                world.advance(minutes=1)
        counts = proxy.counts()
    titles = Counter(e["summary"] for e in world.live_events())
    assert titles == Counter(expected.values())  # one event each, with the last edit
    assert sum(world.markers().values()) == ACTIVITIES and set(world.markers().values()) == {1}
    assert {prefix(s): s for s in world.subjects()} == expected
    assert world.reasons() == {}  # nothing left in quarantine
    assert_many_faults(counts)
    print(f"faulty cycles: {dict(outcomes)}; faults: {counts}")


@pytest.fixture(autouse=True)
def _quiet_logs(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("WARNING")
