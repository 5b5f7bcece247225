"""Every row of docs/guest-mail.md, on every provider, in both ``invite_guests`` modes.

Each scenario settles the accounts, makes one CRM change, runs one cycle of both
accounts and compares the e-mails each guest got in that cycle with the policy table;
the cycle after it must send nothing at all.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator
from datetime import date, time
from pathlib import Path
from typing import Any

import pytest

from syncd.model import Activity
from tests.guests.worlds import GuestWorld, caldav_world, google_world, outlook_world

ADA, BEN, CLEO = "ada@example.org", "ben@example.org", "cleo@example.org"
GUESTS = [ADA, BEN]
BOTH = {ADA: 1, BEN: 1}


@pytest.fixture(params=["google", "outlook", "caldav"])
def provider(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def make_world(request: pytest.FixtureRequest, tmp_path: Path, provider: str,
               **options: object) -> GuestWorld:
    options.setdefault("done_style", "prefix")
    if provider == "google":
        return google_world(tmp_path, request.getfixturevalue("google_emulator"), **options)
    if provider == "outlook":
        return outlook_world(tmp_path, request.getfixturevalue("env"), **options)
    return caldav_world(tmp_path, request.getfixturevalue("radicale"), **options)


def settle(w: GuestWorld) -> None:
    assert w.cycle() == Counter()  # the first sync of an empty CRM


def invited(w: GuestWorld) -> Activity:
    """A meeting created after the first sync: its guests are invited (when the account
    invites), and the next cycle reads its echo."""
    settle(w)
    a = w.add(guests=GUESTS)
    w.cycle()
    w.cycle()
    return a


def new(w: GuestWorld) -> Counter[str]:
    settle(w)
    w.add(guests=GUESTS)
    return w.cycle()


def first_sync(w: GuestWorld) -> Counter[str]:
    w.add(guests=GUESTS)
    return w.cycle()


def first_change_after_first_sync(w: GuestWorld) -> Counter[str]:
    a = w.add(guests=GUESTS)
    w.cycle()
    w.store.edit_activity(a.id, due_time=time(11))
    return w.cycle()


def backfill_of_the_past(w: GuestWorld) -> Counter[str]:
    settle(w)
    w.add(guests=GUESTS, day=date(2026, 11, 27))
    return w.cycle()


def invited_then(action: Callable[[GuestWorld, Activity], object]
                 ) -> Callable[[GuestWorld], Counter[str]]:
    def scenario(w: GuestWorld) -> Counter[str]:
        a = invited(w)
        action(w, a)
        return w.cycle()
    return scenario


def edited(**fields: Any) -> Callable[[GuestWorld], Counter[str]]:
    return invited_then(lambda w, a: w.store.edit_activity(a.id, **fields))


done = invited_then(lambda w, a: w.store.mark_done(a.id))
owner_moved = invited_then(lambda w, a: w.store.edit_activity(a.id, owner_id=w.owners["bob"]))
deleted = invited_then(lambda w, a: w.store.delete_activity(a.id))


def edited_after_it_ended(w: GuestWorld) -> Counter[str]:
    a = invited(w)
    w.advance(days=10)
    w.store.edit_activity(a.id, location="Room 9", due_time=time(10))
    return w.cycle()


#: row -> (scenario, e-mails per guest in invite mode); without invite_guests: none.
TABLE: dict[str, tuple[Callable[[GuestWorld], Counter[str]], dict[str, int]]] = {
    "new meeting": (new, BOTH),
    "first sync": (first_sync, {}),
    "first change after the first sync": (first_change_after_first_sync, BOTH),
    "backfill of the past": (backfill_of_the_past, {}),
    "time": (edited(due_time=time(11)), BOTH),
    "place": (edited(location="Room 4"), BOTH),
    "title": (edited(subject="Product demo (v2)"), BOTH),
    "description": (edited(description="Agenda: pricing"), BOTH),
    "guest added": (edited(guests=[*GUESTS, CLEO]), {**BOTH, CLEO: 1}),
    "guest removed": (edited(guests=[ADA]), BOTH),  # Ada an update, Ben a cancellation
    "done": (done, {}),
    "owner moved": (owner_moved, {}),
    "deleted": (deleted, BOTH),
    "edited after it ended": (edited_after_it_ended, {}),
}


@pytest.fixture
def world(request: pytest.FixtureRequest, tmp_path: Path, provider: str
          ) -> Iterator[Callable[..., GuestWorld]]:
    made: list[GuestWorld] = []

    def build(**options: object) -> GuestWorld:
        made.append(make_world(request, tmp_path, provider, **options))
        return made[-1]
    yield build
    for w in made:
        w.close()


@pytest.mark.parametrize("invite", [True, False], ids=["invite", "no-invite"])
@pytest.mark.parametrize("row", list(TABLE))
def test_each_change_e_mails_each_guest_exactly_what_the_policy_table_says(
        world: Callable[..., GuestWorld], row: str, invite: bool) -> None:
    scenario, expected = TABLE[row]
    w = world(invite_guests=invite)
    assert dict(scenario(w)) == (expected if invite else {})
    assert w.cycle() == Counter()  # and nothing more afterwards


@pytest.mark.parametrize("provider", ["outlook", "caldav", "google"])
def test_an_owner_move_deletes_silently_or_keeps_the_event_and_says_so(
        world: Callable[..., GuestWorld], provider: str) -> None:
    w = world(invite_guests=True)
    a = invited(w)
    w.store.edit_activity(a.id, owner_id=w.owners["bob"])
    assert w.cycle() == Counter()
    links = w.state.links("bob")
    assert a.id in links and a.id not in w.state.links("alice")
    kept = [c for c in w.state.conflicts("alice") if c["activity_id"] == a.id]
    if provider == "google":  # sendUpdates=none: deleted without a cancellation
        assert kept == []
    else:  # a deletion would e-mail the invited guests: the event stays, and says why
        assert [c["calendar_value"] for c in kept] == [
            "kept in the calendar: deleting it would e-mail 2 invited guest(s) a cancellation"]
