"""The connector contract on real Radicale and Xandikos servers."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import quote, unquote

import caldav
import icalendar
import pytest

from connectors.caldav import SYNC_PREFIX, CalDAVCalendar
from connectors.ical import build_calendar
from syncd.config import AccountConfig
from syncd.model import Projection
from syncd_testkit.servers import DavServer
from tests.conftest import fresh_calendar
from tests.contract import ConnectorContract


class DavUser:
    """A person editing the calendar in their app: plain CalDAV, no syncd marker."""

    def __init__(self, server: DavServer, user: str, calendar_url: str) -> None:
        self.client = caldav.DAVClient(url=server.url, username=user, password="x")
        self.calendar = self.client.calendar(url=calendar_url)

    def create(self, projection: Projection) -> str:
        uid = uuid.uuid4().hex
        body = build_calendar(projection, uid=uid, marker="-", organizer="me@example.com")
        cal = icalendar.Calendar.from_ical(body)
        for vevent in cal.walk("VEVENT"):
            vevent.pop("X-SYNCD-ID")
        event = self.calendar.add_event(cal.to_ical().decode())
        return unquote(str(event.url.path))  # ids are decoded paths, as the connector reports

    def _load(self, event_id: str) -> Any:
        return self.calendar.event_by_url(self.calendar.url.join(quote(event_id)))

    def edit(self, event_id: str, **values: Any) -> None:
        event = self._load(event_id)
        event.load()
        vevent = event.icalendar_component
        if "title" in values:
            vevent.pop("SUMMARY", None)
            vevent.add("SUMMARY", values["title"])
        event.save()

    def delete(self, event_id: str) -> None:
        self._load(event_id).delete()


def make_connector(server: DavServer, user: str, calendar_url: str) -> CalDAVCalendar:
    account = AccountConfig(name="t", provider="caldav", owner=user, calendar=calendar_url,
                            auth={"url": server.url, "username": user})
    return CalDAVCalendar(account, owner_tz="Europe/Oslo")


class TestCalDAVContract(ConnectorContract):
    @pytest.fixture
    def _calendar(self, dav_server: DavServer) -> tuple[DavServer, str, str]:
        user, url = fresh_calendar(dav_server)
        return dav_server, user, url

    @pytest.fixture
    def connector(self, _calendar: tuple[DavServer, str, str]) -> Iterator[CalDAVCalendar]:
        conn = make_connector(*_calendar)
        yield conn
        conn.close()

    @pytest.fixture
    def calendar_user(self, _calendar: tuple[DavServer, str, str]) -> DavUser:
        return DavUser(*_calendar)

    @pytest.fixture
    def expired_cursor(self, dav_server: DavServer) -> Callable[[str], str]:
        if dav_server.kind == "radicale":
            return lambda cursor: SYNC_PREFIX + "http://radicale.org/ns/sync/" + "0" * 64
        return lambda cursor: SYNC_PREFIX + "0" * 40
