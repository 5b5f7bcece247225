"""A visitor books through the real page in headless Chromium, against ``syncd run``.

The daemon runs in a subprocess with the built-in CRM, one CalDAV account on a real
Radicale polled hourly, and the HTTP listener; the CRM watch makes the booking's cycle.
Two browser contexts are two visitors: the one who sends the form second for the same
slot is told it is taken and shown fresh slots.

The layout checks use the page on an in-process listener (``site``): on a phone the
details come after a week of slots, and picking a time must bring them into view (with
the script and without it); on a desktop they stay beside the slots.
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
from tests.booking.conftest import Site
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


PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 800}


def _box(page: Any, selector: str) -> dict[str, float]:
    box = page.locator(selector).bounding_box()
    assert box is not None, selector
    return dict(box)


def _in_view(box: dict[str, float], viewport: dict[str, int]) -> bool:
    return box["y"] >= 0 and box["y"] + box["height"] <= viewport["height"]


@pytest.mark.parametrize("script", [True, False], ids=["script", "no_script"])
def test_on_a_phone_picking_a_time_brings_the_details_into_view_and_books(
        site: Site, browser: Any, script: bool) -> None:  # noqa: F811
    context = browser.new_context(viewport=PHONE, java_script_enabled=script,
                                  timezone_id="Europe/Oslo", locale="en-GB")
    try:
        page = context.new_page()
        page.goto(site.page + "?tz=Europe/Oslo")
        # A week of slots: the details start screens below the first slot.
        assert _box(page, ".aside")["y"] > 2 * PHONE["height"]

        page.locator("input[name=slot] + label").first.click()
        assert page.evaluate("window.scrollY") == 0  # nothing scrolled, by us or the page
        panel = _box(page, ".aside")
        for field in ("#name", "#email", "button.book"):
            assert _in_view(_box(page, field), PHONE), field
        picked = page.locator("input[name=slot] + label").first.bounding_box()
        assert picked is not None and picked["y"] + picked["height"] <= panel["y"]

        # At the end of the list the details dock after the last slot, hiding none.
        page.evaluate("window.scrollTo(0, document.documentElement.scrollHeight)")
        last = page.locator("input[name=slot] + label").last.bounding_box()
        assert last is not None and last["y"] + last["height"] <= _box(page, ".aside")["y"]

        page.get_by_label("Your name").fill("Ada Visitor")
        page.get_by_label("Your e-mail address").fill("ada@example.org")
        page.get_by_role("button", name="Book").click()
        page.wait_for_selector(".done")
    finally:
        context.close()
    [booked] = site.store.list_activities(ActivityFilter(owner_id=site.owner_id))
    assert booked.subject == "Meeting with Ada Visitor"


def test_on_a_desktop_the_details_stay_beside_the_slots(site: Site,
                                                        browser: Any) -> None:  # noqa: F811
    context = browser.new_context(viewport=DESKTOP, timezone_id="Europe/Oslo")
    try:
        page = context.new_page()
        page.goto(site.page + "?tz=Europe/Oslo")
        times, panel = _box(page, "section.times"), _box(page, ".aside")
        assert panel["x"] >= times["x"] + times["width"]  # beside, not below
        assert _in_view(panel, DESKTOP)
        page.locator("input[name=slot] + label").nth(3).click()
        page.evaluate("window.scrollTo(0, document.documentElement.scrollHeight)")
        assert page.evaluate("window.scrollY") > 0
        assert _in_view(_box(page, ".aside"), DESKTOP)  # it stays in view while scrolling
        assert _box(page, ".aside")["x"] == panel["x"]
    finally:
        context.close()
