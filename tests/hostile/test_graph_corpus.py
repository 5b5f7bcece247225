"""The hostile JSON corpus through the Graph emulator, real msal and requests, and the engine.

Each hostile event is quarantined with its reason, every other event of the mailbox is
imported, and another account of the same daemon (same database, same emulator) syncs as
if nothing happened. Graph carries the events in the delta round, the calendarView pages
and the ``$batch`` GETs of an incremental cycle, so a hostile event is met in all three.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

import pytest

from syncd.engine.plan import cal_key
from syncd.model import Activity
from syncd.store.db import Database
from syncd_testkit.emulators.graph_fixtures import (  # noqa: F401 - pytest fixtures
    graph_emulator_with_identity,
    identity_emulator,
)
from tests.hostile.jsonread import (
    GRAPH,
    Dirty,
    Hostile,
    check_imported,
    check_quarantined,
    common,
    dirty,
    quarantine_reasons,
)
from tests.outlook.conftest import (  # noqa: F401 - pytest fixtures
    ALICE,
    BOB,
    Env,
    OutlookWorld,
    _fresh_mailbox_gates,
    env,
    make_world,
)

CORPUS: list[Hostile] = [
    *common(GRAPH),
    Hostile("time_zone_no_one_has_heard_of",
            lambda e: {**e, "start": {"dateTime": "2026-12-10T10:00:00",
                                      "timeZone": "Mars/Olympus Mons"}}, "unknown time zone"),
    Hostile("time_zone_is_a_list",
            lambda e: {**e, "start": {"dateTime": "2026-12-10T10:00:00", "timeZone": ["UTC"]}},
            "has no time zone"),
    Hostile("end_past_the_year_9999_in_utc",
            lambda e: {**e, "end": {"dateTime": "9999-12-31T23:30:00",
                                    "timeZone": "Pacific/Honolulu"}}),
    Hostile("all_day_with_words_for_a_date",
            lambda e: {**e, "isAllDay": True, "start": {"dateTime": "the tenth",
                                                         "timeZone": "UTC"}}, "dateTime"),
    Hostile("extended_properties_is_a_number",
            lambda e: {**e, "singleValueExtendedProperties": 5}, "TypeError"),
]
DIRTY: list[Dirty] = [
    *dirty(GRAPH),
    Dirty("html_body_with_a_script",
          lambda e: {**e, "subject": "Html body",
                     "body": {"contentType": "html",
                              "content": "<html><body><script>alert(1)</script>"
                                         "<p>agenda\u0000</p></body></html>"}},
          "Html body"),
]
GOOD = 6


def _event(world: OutlookWorld, title: str, day: int) -> dict[str, Any]:
    return world.env.graph.create_event_as_user(world.upn, {
        "subject": title,
        "start": {"dateTime": f"2026-12-{day:02d}T09:00:00", "timeZone": "UTC"},
        "end": {"dateTime": f"2026-12-{day:02d}T10:00:00", "timeZone": "UTC"}})


def _activities(world: OutlookWorld) -> list[Activity]:
    return world.store.activities_due_between(world.owner_id, date(2026, 1, 1),
                                              date(2027, 12, 31))


def _titles(world: OutlookWorld) -> list[str]:
    return sorted(a.subject for a in _activities(world))


@pytest.fixture
def worlds(tmp_path: Path, env: Env) -> tuple[OutlookWorld, OutlookWorld]:  # noqa: F811
    env.graph.add_mailbox(BOB)
    db = Database(f"sqlite:///{tmp_path / 'syncd.db'}")
    alice = make_world(tmp_path, env, env.account(import_events=True), db=db)
    bob = make_world(tmp_path, env, env.account("bob", BOB, import_events=True), db=db)
    return alice, bob


def test_every_hostile_event_is_quarantined_with_its_reason_and_the_rest_syncs(
        worlds: tuple[OutlookWorld, OutlookWorld]) -> None:
    alice, bob = worlds
    graph = alice.env.graph
    good = [f"Good {i}" for i in range(GOOD)]
    expected: dict[str, Hostile] = {}
    for i, item in enumerate(CORPUS):
        _event(alice, good[i % GOOD] if i < GOOD else f"Filler {i}", 2 + i % 25)
        real = _event(alice, f"Hostile {item.name}", 2 + i % 25)
        graph.planted.plant(real["id"], item.text(real))
        expected.setdefault(cal_key(item.key_id(real)), item)
    for i, dirty_item in enumerate(DIRTY):
        real = _event(alice, "plain", 3 + i)
        graph.planted.plant(real["id"], dirty_item.text(real))
    for i in range(3):
        _event(bob, f"Bob {i}", 4 + i)

    report = alice.sync()
    assert report.outcome in ("ok", "partial"), report.message

    check_quarantined(quarantine_reasons(alice.db, alice.account.name), expected)
    fillers = [f"Filler {i}" for i in range(GOOD, len(CORPUS))]
    check_imported(_activities(alice), good + fillers + [d.title for d in DIRTY])
    titles = _titles(alice)

    other = bob.sync()
    assert other.outcome == "ok", other.message
    assert _titles(bob) == ["Bob 0", "Bob 1", "Bob 2"]
    assert quarantine_reasons(alice.db, bob.account.name) == {}

    # A second cycle reads the same mailbox again: nothing new, nothing lost.
    alice.advance(minutes=5)
    again = alice.sync()
    assert again.outcome in ("ok", "partial"), again.message
    assert set(quarantine_reasons(alice.db, alice.account.name)) == set(expected)
    assert _titles(alice) == titles


def test_hostile_events_met_in_an_incremental_delta_are_quarantined(
        worlds: tuple[OutlookWorld, OutlookWorld]) -> None:
    alice, _ = worlds
    graph = alice.env.graph
    _event(alice, "Before", 5)
    assert alice.sync().outcome == "ok"
    alice.advance(minutes=5)
    items = [i for i in CORPUS if "longer than" not in i.reason][:15]
    expected: dict[str, Hostile] = {}
    for i, item in enumerate(items):
        real = _event(alice, f"Hostile {item.name}", 6 + i % 20)
        graph.planted.plant(real["id"], item.text(real))
        if "not a usable identifier" not in item.reason:
            # A delta names the event by its real id; the $batch GET then meets the body.
            expected[cal_key(real["id"])] = item
    _event(alice, "After", 7)
    report = alice.sync()
    assert report.outcome in ("ok", "partial"), report.message
    check_quarantined(quarantine_reasons(alice.db, alice.account.name), expected)
    assert _titles(alice) == ["After", "Before"]
