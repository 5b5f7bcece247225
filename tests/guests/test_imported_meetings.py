"""A meeting the owner made in the calendar app, with guests they invited there, then
imported into the CRM, on an account that does not invite (``invite_guests = false``).

syncd invites nobody on such an account, but the owner did: their guests hold an
invitation made by the calendar app. Graph e-mails an event's attendees on every write
of what they see, so the CRM's later edits of that meeting stay in the CRM and deleting
the activity keeps the event (with a conflict saying why), as for any meeting with
invited guests (docs/guest-mail.md, rule 5). Google writes with ``sendUpdates=none``, so
there the edits reach the calendar and nobody is mailed either. (The chaos soak's
``--import`` run found Graph mailing updates and cancellations here: Outlook seed 41.)
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from syncd.model import Activity
from tests.guests.worlds import GuestWorld, google_world, outlook_world

ADA = "ada@example.org"
ALICE_OUTLOOK = "alice@contoso.test"


@pytest.fixture
def outlook(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[GuestWorld]:
    w = outlook_world(tmp_path, request.getfixturevalue("env"), invite_guests=False,
                      import_events=True)
    yield w
    w.close()


def _make_in_outlook(w: GuestWorld, env: Any, *, attendees: list[str]) -> str:
    made = env.graph.create_event_as_user(ALICE_OUTLOOK, {
        "subject": "Pricing call",
        "start": {"dateTime": "2026-12-10T10:00:00", "timeZone": "Europe/Oslo"},
        "end": {"dateTime": "2026-12-10T11:00:00", "timeZone": "Europe/Oslo"},
        "attendees": [{"emailAddress": {"address": a, "name": a.split("@")[0]},
                       "type": "required"} for a in attendees],
    })
    return str(made["id"])


def _imported(w: GuestWorld) -> Activity:
    activities = [a for a in w.store.visible_to(w.owners["alice"])
                  if a.subject == "Pricing call"]
    assert len(activities) == 1, activities
    return activities[0]


def _settled_import(w: GuestWorld, env: Any, attendees: list[str]) -> tuple[Activity, str]:
    assert w.cycle() == Counter()
    event_id = _make_in_outlook(w, env, attendees=attendees)
    assert w.cycle() == Counter()  # imported (and our marker written): nobody mailed
    assert w.cycle() == Counter()
    return _imported(w), event_id


def test_a_crm_edit_of_an_imported_outlook_meeting_with_invited_guests_mails_nobody(
        request: pytest.FixtureRequest, outlook: GuestWorld) -> None:
    env = request.getfixturevalue("env")
    activity, event_id = _settled_import(outlook, env, [ADA])
    outlook.store.edit_activity(activity.id, subject="Pricing call (moved)")
    assert outlook.cycle() == Counter()
    assert outlook.cycle() == Counter()  # and it is not tried again
    # The title stays in the CRM: writing it would have e-mailed Ada an update.
    assert env.graph.get_event(ALICE_OUTLOOK, event_id)["subject"] == "Pricing call"
    assert outlook.store.get(activity.id).subject == "Pricing call (moved)"


def test_deleting_an_imported_outlook_meeting_with_invited_guests_keeps_it_and_says_why(
        request: pytest.FixtureRequest, outlook: GuestWorld) -> None:
    env = request.getfixturevalue("env")
    activity, event_id = _settled_import(outlook, env, [ADA])
    outlook.store.delete_activity(activity.id)
    assert outlook.cycle() == Counter()  # no cancellation
    assert env.graph.get_event(ALICE_OUTLOOK, event_id)["subject"] == "Pricing call"
    kept = [c["calendar_value"] for c in outlook.state.conflicts("alice")
            if c["activity_id"] == activity.id]
    assert kept == [
        "kept in the calendar: deleting it would e-mail 1 invited guest(s) a cancellation"]
    assert outlook.cycle() == Counter()


def test_an_imported_outlook_meeting_nobody_was_invited_to_takes_the_crms_edits(
        request: pytest.FixtureRequest, outlook: GuestWorld) -> None:
    """The control: without attendees the same edit is written (so the test above sees
    a write withheld, not a write that never happens)."""
    env = request.getfixturevalue("env")
    activity, event_id = _settled_import(outlook, env, [])
    outlook.store.edit_activity(activity.id, subject="Pricing call (moved)")
    assert outlook.cycle() == Counter()
    assert env.graph.get_event(ALICE_OUTLOOK, event_id)["subject"] == "Pricing call (moved)"


def test_a_crm_edit_of_an_imported_google_meeting_with_guests_is_written_silently(
        request: pytest.FixtureRequest, tmp_path: Path) -> None:
    emu = request.getfixturevalue("google_emulator")
    w = google_world(tmp_path, emu, invite_guests=False, import_events=True)
    try:
        assert w.cycle() == Counter()
        made = emu.put_event("alice@example.com", {
            "id": "pricingcall1",
            "summary": "Pricing call",
            "start": {"dateTime": "2026-12-10T10:00:00+01:00"},
            "end": {"dateTime": "2026-12-10T11:00:00+01:00"},
            "attendees": [{"email": ADA}],
        })
        assert w.cycle() == Counter()
        activity = _imported(w)
        w.store.edit_activity(activity.id, subject="Pricing call (moved)")
        assert w.cycle() == Counter()  # sendUpdates=none
        [event] = [e for e in emu.events("alice@example.com") if e["id"] == made["id"]]
        assert event["summary"] == "Pricing call (moved)"
    finally:
        w.close()
