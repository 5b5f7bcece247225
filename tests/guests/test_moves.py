"""An owner move between providers moves the meeting without mail (docs/guest-mail.md).

Alice syncs to one provider, Bob to another, one CRM: handing Alice's meeting to Bob
creates it silently in Bob's calendar, and removes Alice's copy silently where the
provider allows (Google), or keeps it and says so on the activity (Graph).
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from syncd_testkit.emulators.google import GoogleEmulator
from tests.google import helpers as google
from tests.guests.worlds import TZ, GuestWorld, new_crm
from tests.outlook.conftest import Env

ADA, BEN = "ada@example.org", "ben@example.org"


def _mixed(tmp_path: Path, emu: GoogleEmulator, env: Env, *, google_owner: str
           ) -> GuestWorld:
    """``google_owner`` ("alice" or "bob") syncs to Google, the other to Outlook."""
    emails = {"alice": "alice@contoso.test", "bob": "bob@contoso.test"}
    store, state, owners = new_crm(tmp_path, emails)
    env.graph.add_mailbox(emails["bob"])
    accounts, connectors = {}, {}
    for name, email in emails.items():
        if name == google_owner:
            emu.add_calendar(email, time_zone=TZ)
            accounts[name] = google.account(emu, name=name, owner=email, calendar=email,
                                            invite_guests=True)
            connectors[name] = google.connector(emu, clock=google.FakeClock(),
                                                acct=accounts[name])
        else:
            accounts[name] = env.account(name, email, invite_guests=True)
            connectors[name] = env.connector(accounts[name])
    return GuestWorld("mixed", store, state, owners, accounts, connectors,
                      lambda: Counter(emu.emails_by_recipient)
                      + Counter(r.recipient for r in env.graph.mail_log))


def _move(w: GuestWorld) -> int:
    assert w.cycle() == Counter()
    a = w.add(guests=[ADA, BEN])
    assert w.cycle() == {ADA: 1, BEN: 1}  # invited by Alice
    w.cycle()
    w.store.edit_activity(a.id, owner_id=w.owners["bob"])
    assert w.cycle() == Counter()  # the move e-mails nobody
    assert a.id in w.state.links("bob") and a.id not in w.state.links("alice")
    assert w.cycle() == Counter()
    return a.id


def test_a_move_from_google_to_outlook_deletes_silently_and_creates_silently(
        tmp_path: Path, google_emulator: GoogleEmulator, env: Env) -> None:
    w = _mixed(tmp_path, google_emulator, env, google_owner="alice")
    activity_id = _move(w)
    assert google_emulator.events("alice@contoso.test") == []
    [event] = env.graph.events("bob@contoso.test")
    assert event["attendees"] == []  # described until the first change Bob makes
    assert "ada@example.org" in event["body"]["content"]
    assert w.state.conflicts("alice") == []
    w.store.edit_activity(activity_id, location="Room 2")
    assert w.cycle() == {ADA: 1, BEN: 1}  # Bob's first change: his invitation, once


def test_a_move_from_outlook_to_google_keeps_the_outlook_event_and_says_why(
        tmp_path: Path, google_emulator: GoogleEmulator, env: Env) -> None:
    w = _mixed(tmp_path, google_emulator, env, google_owner="bob")
    activity_id = _move(w)
    assert len(env.graph.events("alice@contoso.test")) == 1  # deleting would cancel
    [conflict] = w.state.conflicts("alice")
    assert conflict["activity_id"] == activity_id
    assert "would e-mail 2 invited guest(s) a cancellation" in conflict["calendar_value"]
    [event] = google_emulator.events("bob@contoso.test")
    assert "attendees" not in event
