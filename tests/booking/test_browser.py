"""A visitor books through the real page in headless Chromium, against ``syncd run``.

The daemon runs in a subprocess with the built-in CRM, one CalDAV account on a real
Radicale polled hourly, and the HTTP listener; the CRM watch makes the booking's cycle.
Two browser contexts are two visitors: the one who sends the form second for the same
slot is told it is taken and shown fresh slots.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import caldav
import pytest

from syncd.crm.builtin.activities import ActivityStore
from syncd.crm.builtin.views import ActivityFilter
from syncd.store.booking_links import BookingLinkStore
from syncd.store.db import Database
from syncd_testkit.loopback import free_port
from syncd_testkit.servers import DavServer
from tests.booking.browser import browser  # noqa: F401  (the session's browser)
from tests.conftest import fresh_calendar
from tests.http.test_daemon_crm_watch import Running
from tests.http.test_daemon_push import dav_config, first_cycle, spawn
from tests.test_e2e_run import wait_for

pytestmark = pytest.mark.slow


@pytest.fixture
def running(tmp_path: Path, radicale: DavServer) -> Iterator[tuple[Running, str]]:
    """The daemon after its first cycle, and the booking link's URL."""
    user, calendar = fresh_calendar(radicale)
    data = tmp_path / "data"
    data.mkdir(mode=0o700)
    db = Database(f"sqlite:///{data / 'syncd.db'}")
    store = ActivityStore(db)
    owner_id = store.add_user(user, "Olga Owner", "Europe/Oslo")
    _, token = BookingLinkStore(db).create(user, "meeting", duration_minutes=30,
                                           horizon_days=14)
    port = free_port()
    config = tmp_path / "syncd.toml"
    config.write_text(dav_config(data, user, calendar, radicale.url,
                                 f'[http]\nlisten = "127.0.0.1:{port}"\n'))
    log = tmp_path / "daemon.log"
    daemon = Running(spawn(config, log), log, port, owner_id, ("", ""))
    daemon.store = store
    daemon.calendar = caldav.DAVClient(url=radicale.url, username=user,
                                       password="x").calendar(url=calendar)
    with first_cycle(daemon):
        yield daemon, f"http://127.0.0.1:{port}/book/{token}"


def test_a_visitor_books_a_slot_and_it_reaches_the_crm_and_the_owners_calendar(
        running: tuple[Running, str], browser: Any) -> None:  # noqa: F811
    daemon, url = running
    first = browser.new_context(timezone_id="America/New_York", locale="en-US")
    second = browser.new_context(timezone_id="America/New_York", locale="en-US")
    try:
        ada, bob = first.new_page(), second.new_page()
        ada.goto(url)
        # the script found the browser's zone and showed the times in it
        ada.wait_for_url("**?tz=America%2FNew_York")
        assert ada.locator("#tz").input_value() == "America/New_York"
        bob.goto(url + "?tz=America/New_York")
        assert ada.locator("input[name=slot]").count() > 0

        slot = ada.locator("input[name=slot]").first.get_attribute("value")
        for page, name, email in ((ada, "Ada Visitor", "ada@example.org"),
                                  (bob, "Bob Racer", "bob@example.org")):
            page.locator(f"input[name=slot][value='{slot}'] + label").click()
            page.get_by_label("Your name").fill(name)
            page.get_by_label("Your e-mail address").fill(email)

        # Both send at once: Ada with the mouse, Bob with the keyboard (Enter in a field).
        ada.get_by_role("button", name="Book").click(no_wait_after=True)
        bob.get_by_label("Your e-mail address").press("Enter", no_wait_after=True)
        outcome = {}
        for page, name in ((ada, "Ada Visitor"), (bob, "Bob Racer")):
            page.wait_for_selector(".done, .problem")
            outcome[name] = "booked" if page.locator(".done").count() else "taken"
        assert sorted(outcome.values()) == ["booked", "taken"], outcome
        winner = next(name for name, result in outcome.items() if result == "booked")
        won, lost = (ada, bob) if winner == "Ada Visitor" else (bob, ada)

        assert "is booked for" in won.locator("main").inner_text()
        with won.expect_download() as download:
            won.get_by_role("link", name="Add to your calendar (.ics)").click()
        assert b"BEGIN:VEVENT" in Path(download.value.path()).read_bytes()
        assert "that time is no longer free" in lost.get_by_role("alert").inner_text()
        assert lost.locator(f"input[name=slot][value='{slot}']").count() == 0
        assert lost.locator("input[name=slot]").count() > 0  # fresh slots to pick from
        assert lost.get_by_label("Your name").input_value() != winner  # theirs is kept
    finally:
        first.close()
        second.close()

    [booked] = daemon.store.list_activities(ActivityFilter(owner_id=daemon.owner_id))
    assert booked.busy and booked.subject == f"Meeting with {winner}"
    assert [g.name for g in booked.guests] == [winner]
    wait_for(lambda: daemon.events() == [f"Meeting with {winner}"] or None, timeout=60,
             what="the booking in the owner's calendar")
    daemon.stop()
    assert "booking booked 1" in daemon.log.read_text()
