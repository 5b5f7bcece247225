"""A booking page on a real listener (loopback, any free port) over a fresh SQLite CRM:
one owner (Europe/Oslo) with a booking link, a clock fixed on a Monday morning."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import requests

from syncd.booking import Bookings
from syncd.crm.builtin import BuiltinSource
from syncd.crm.builtin.activities import ActivityStore
from syncd.http.booking_guard import RateLimiter, Signer, load_key
from syncd.http.booking_page import BookingPages
from syncd.http.router import Router
from syncd.http.server import HttpServer
from syncd.store.booking_links import BookingLinkStore, LinkRow
from syncd.store.db import Database
from syncd_testkit.booking import crm_free_slots

NOW = datetime(2026, 12, 7, 7, 0, tzinfo=UTC)  # a Monday, 08:00 in Oslo


@dataclass
class Site:
    url: str
    store: ActivityStore
    links: BookingLinkStore
    pages: BookingPages
    owner_id: int
    link: LinkRow
    token: str
    clock: list[float]  # monotonic seconds the rate limiters and shared reads see

    @property
    def page(self) -> str:
        return f"{self.url}/book/{self.token}"

    def get(self, path: str = "", **kw: Any) -> requests.Response:
        return requests.get(self.page + path, timeout=10, allow_redirects=False, **kw)

    def form(self, html: str) -> dict[str, str]:
        """The hidden fields of the booking form in ``html``."""
        import re

        return dict(re.findall(r'<input type="hidden" name="(\w+)" value="([^"]*)"', html))

    def slots(self, html: str) -> list[str]:
        import re

        return re.findall(r'name="slot" id="s\d+" value="([^"]+)"', html)

    def post(self, data: dict[str, str], *, same_minute: bool = False,
             **kw: Any) -> requests.Response:
        """POST the form; a minute later than the last one unless ``same_minute`` (so
        only the rate-limit test meets the limit)."""
        if not same_minute:
            self.clock[0] += 60
        return requests.post(self.page, data=data, timeout=10, allow_redirects=False, **kw)


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    db = Database(f"sqlite:///{tmp_path / 'syncd.db'}")
    store = ActivityStore(db)
    owner_id = store.add_user("alice@example.com", "Alice Owner", "Europe/Oslo")
    links = BookingLinkStore(db)
    link, token = links.create("alice@example.com", "meeting", duration_minutes=30,
                               horizon_days=7, now=NOW)
    source = BuiltinSource(store)
    ticks = [0.0]
    pages = BookingPages(links, Bookings(source, crm_free_slots(source), clock=lambda: NOW,
                                         monotonic=lambda: ticks[0]),
                         Signer(load_key(tmp_path / "data"), clock=lambda: NOW.timestamp()),
                         views=RateLimiter(60, 30, clock=lambda: ticks[0]),
                         posts=RateLimiter(6, 5, clock=lambda: ticks[0]))
    router = Router(4096)
    for route in pages.routes():
        router.add(route)
    server = HttpServer("127.0.0.1", 0, router)
    server.start()
    try:
        yield Site(server.url, store, links, pages, owner_id, link, token, ticks)
    finally:
        server.stop()
        db.close()
