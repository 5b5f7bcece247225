"""The booking page's screenshots in docs/: ``docs/booking-desktop.png`` (1280x800) and
``docs/booking-phone.png`` (390x844), taken in Debian's headless Chromium.

The page is served by syncd's own listener and endpoints over a throwaway SQLite CRM:
one owner in Europe/Oslo with two busy meetings (they show only as missing slots), a
30-minute meeting link, the clock fixed on a Monday morning so the pictures are the same
every run; the visitor's browser is in Europe/London. Run::

    .venv/bin/python -m bench.booking_screenshots [--out docs]
"""

from __future__ import annotations

import argparse
import tempfile
from datetime import UTC, date, datetime, time
from pathlib import Path

from syncd.booking import Bookings
from syncd.crm.builtin import BuiltinSource
from syncd.crm.builtin.activities import ActivityStore
from syncd.http.booking_guard import Signer, load_key
from syncd.http.booking_page import BookingPages
from syncd.http.router import Router
from syncd.http.server import HttpServer
from syncd.store.booking_links import BookingLinkStore
from syncd.store.db import Database
from syncd_testkit.booking import crm_free_slots

NOW = datetime(2026, 12, 7, 7, 0, tzinfo=UTC)  # Monday 08:00 in Oslo
CHROMIUM = "/usr/bin/chromium"
VIEWPORTS = {"booking-desktop.png": (1280, 800), "booking-phone.png": (390, 844)}


def serve(folder: Path) -> tuple[HttpServer, str]:
    """The page over a demo CRM; returns the server and the link's URL."""
    db = Database(f"sqlite:///{folder / 'syncd.db'}")
    store = ActivityStore(db)
    owner = store.add_user("olga@example.com", "Olga Nordmann", "Europe/Oslo")
    for day, hour, subject in ((date(2026, 12, 7), 11, "Board meeting"),
                               (date(2026, 12, 8), 9, "Quarterly review")):
        store.add_activity(owner_id=owner, subject=subject, due_date=day,
                           due_time=time(hour, 0), duration_minutes=90, busy=True)
    _, token = BookingLinkStore(db).create("olga@example.com", "meeting",
                                           duration_minutes=30, horizon_days=14, now=NOW)
    source = BuiltinSource(store)
    pages = BookingPages(BookingLinkStore(db),
                         Bookings(source, crm_free_slots(source), clock=lambda: NOW),
                         Signer(load_key(folder / "data")))
    router = Router(4096)
    for route in pages.routes():
        router.add(route)
    server = HttpServer("127.0.0.1", 0, router)
    server.start()
    return server, f"{server.url}/book/{token}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("docs"))
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as folder, sync_playwright() as playwright:
        server, url = serve(Path(folder))
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run"])
        try:
            for name, (width, height) in VIEWPORTS.items():
                context = browser.new_context(viewport={"width": width, "height": height},
                                              timezone_id="Europe/London", locale="en-GB")
                page = context.new_page()
                page.goto(url)
                page.wait_for_url("**?tz=Europe%2FLondon")  # the script picked the zone
                page.locator("input[name=slot] + label").nth(2).click()
                page.get_by_label("Your name").fill("Ada Lovelace")
                page.screenshot(path=str(args.out / name))
                context.close()
                print(f"wrote {args.out / name}")
        finally:
            browser.close()
            server.stop()


if __name__ == "__main__":
    main()
