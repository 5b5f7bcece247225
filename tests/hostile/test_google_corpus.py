"""The hostile JSON corpus through the Google emulator, the real client and the engine.

Each hostile event is quarantined with its reason, every other event of the account is
imported, and another account of the same daemon (same database, same emulator) syncs as
if nothing happened.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from syncd.engine.plan import cal_key
from syncd.model import Activity
from syncd.safe_json import STAND_IN_PREFIX
from syncd.store.db import Database
from syncd_testkit.emulators.google import GoogleEmulator
from syncd_testkit.emulators.google_fixtures import google_emulator  # noqa: F401 - pytest fixture
from tests.google.world import GoogleWorld, make_world
from tests.hostile.jsonread import (
    GOOGLE,
    Dirty,
    Hostile,
    check_imported,
    check_quarantined,
    common,
    dirty,
    quarantine_reasons,
    raw,
)

CORPUS: list[Hostile] = [
    *common(GOOGLE),
    Hostile("all_day_on_the_last_day_of_time",
            lambda e: {**e, "start": {"date": "9999-12-31"}, "end": {"date": "9999-12-31"}}),
    Hostile("date_with_five_digit_year",
            lambda e: {**e, "start": {"date": "10000-01-01"}, "end": {"date": "10000-01-02"}},
            "yyyy-mm-dd"),
    Hostile("end_past_the_year_9999_in_utc",
            lambda e: {**e, "end": {"dateTime": "9999-12-31T23:30:00-10:00"}}),
    Hostile("time_zone_of_5000_characters",
            lambda e: {**e, "start": {"dateTime": "2026-12-10T10:00:00", "timeZone": "A" * 5000}}),
    Hostile("start_date_and_end_date_time_mixed",
            lambda e: {**e, "start": {"date": "2026-12-10"}}, "mix"),
    Hostile("item_is_a_number", raw("12345"), "not a JSON object"),
    Hostile("item_is_a_string", raw('"calendar#event"'), "not a JSON object"),
    Hostile("item_is_null", raw("null"), "not a JSON object"),
]
DIRTY: list[Dirty] = [
    *dirty(GOOGLE),
    Dirty("updated_without_an_offset",
          lambda e: {**e, "summary": "Naive stamp", "updated": "2026-11-30T10:00:00"},
          "Naive stamp"),
]
GOOD = 6


def _event(emu: GoogleEmulator, world: GoogleWorld, title: str, day: int) -> dict[str, Any]:
    start = datetime(2026, 12, day, 9, tzinfo=UTC)
    return emu.put_event(world.calendar_id(), {
        "summary": title,
        "start": {"dateTime": start.isoformat().replace("+00:00", "Z")},
        "end": {"dateTime": (start + timedelta(hours=1)).isoformat().replace("+00:00", "Z")}})


def _activities(world: GoogleWorld) -> list[Activity]:
    return world.store.activities_due_between(world.owner_id, date(2026, 1, 1),
                                              date(2027, 12, 31))


def _titles(world: GoogleWorld) -> list[str]:
    return sorted(a.subject for a in _activities(world))


@pytest.fixture
def worlds(tmp_path: Path,
           google_emulator: GoogleEmulator,  # noqa: F811
           ) -> tuple[GoogleWorld, GoogleWorld]:
    db = Database(f"sqlite:///{tmp_path / 'syncd.db'}")
    alice = make_world(tmp_path, google_emulator, "alice", db=db, import_events=True)
    bob = make_world(tmp_path, google_emulator, "bob", db=db, import_events=True)
    return alice, bob


def test_every_hostile_event_is_quarantined_with_its_reason_and_the_rest_syncs(
        worlds: tuple[GoogleWorld, GoogleWorld],
        google_emulator: GoogleEmulator) -> None:  # noqa: F811
    alice, bob = worlds
    emu = google_emulator
    good = [f"Good {i}" for i in range(GOOD)]
    expected: dict[str, Hostile] = {}
    # Hostile and good events alternate, so every listing page holds both.
    for i, item in enumerate(CORPUS):
        _event(emu, alice, good[i % GOOD] if i < GOOD else f"Filler {i}", 2 + i % 25)
        real = _event(emu, alice, f"Hostile {item.name}", 2 + i % 25)
        emu.planted.plant(real["id"], item.text(real))
        expected.setdefault(cal_key(item.key_id(real)), item)
    for i, dirty_item in enumerate(DIRTY):
        real = _event(emu, alice, "plain", 3 + i)
        emu.planted.plant(real["id"], dirty_item.text(real))
    for i in range(3):
        _event(emu, bob, f"Bob {i}", 4 + i)

    report = alice.sync()
    assert report.outcome in ("ok", "partial"), report.message

    check_quarantined(quarantine_reasons(alice.state.db, alice.account.name), expected)
    fillers = [f"Filler {i}" for i in range(GOOD, len(CORPUS))]
    check_imported(_activities(alice), good + fillers + [d.title for d in DIRTY])
    titles = _titles(alice)

    # The other account of the same daemon is untouched by any of it.
    other = bob.sync()
    assert other.outcome == "ok", other.message
    assert _titles(bob) == ["Bob 0", "Bob 1", "Bob 2"]
    assert quarantine_reasons(bob.state.db, bob.account.name) == {}

    # A second cycle reads the same listing again: nothing new, nothing lost.
    alice.advance(minutes=5)
    again = alice.sync()
    assert again.outcome in ("ok", "partial"), again.message
    assert set(quarantine_reasons(alice.state.db, alice.account.name)) == set(expected)
    assert _titles(alice) == titles


def test_a_hostile_event_read_alone_by_id_is_quarantined_too(
        worlds: tuple[GoogleWorld, GoogleWorld],
        google_emulator: GoogleEmulator) -> None:  # noqa: F811
    alice, _ = worlds
    # Items the CRM refuses (too long for an activity) are readable events for the connector.
    # (An answer that is not an object at all is a failed read: test_google_write_errors.)
    for item in [i for i in CORPUS if "longer than" not in i.reason
                 and "not a JSON object" not in i.reason]:
        real = _event(google_emulator, alice, item.name, 10)
        google_emulator.planted.plant(real["id"], item.text(real))
        event = alice.calendar.get(real["id"])
        assert event is not None and event.projection is None, item.name
        assert event.problem, item.name
        assert event.event_id == real["id"]  # even when the answer names another id


def test_stand_in_ids_never_collide_with_google_ids() -> None:
    # Google ids are base32hex: no "-", so a stand-in can never name a real event.
    assert "-" in STAND_IN_PREFIX
