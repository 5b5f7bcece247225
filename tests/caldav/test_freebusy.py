"""Free/busy and window listings of a CalDAV calendar against real Radicale and Xandikos:
the free-busy-query REPORT for busy time, a calendar-query (recurrences expanded by the
server) for the agenda and for servers that refuse free-busy-query."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import requests

from connectors.base import BusyInterval
from connectors.caldav import CalDAVCalendar
from syncd.config import AccountConfig
from syncd_testkit.servers import DavServer
from tests.conftest import fresh_calendar
from tests.freebusy.checks import CLOCK_CHANGE_MONDAY, check_weekly_meeting_across_the_clock_change

DAY = datetime(2026, 12, 8, tzinfo=UTC)  # a Tuesday
OSLO = "Europe/Oslo"


class Calendar:
    """A fresh calendar on a real server, filled by another client (plain PUTs)."""

    def __init__(self, server: DavServer) -> None:
        self.server = server
        self.user, self.url = fresh_calendar(server)
        self.reports: list[str] = []

    def put(self, name: str, start: str, end: str, *extra: str) -> None:
        lines = ["BEGIN:VCALENDAR", "VERSION:2.0", "PRODID:-//other client//EN",
                 "BEGIN:VEVENT", f"UID:{name}", "DTSTAMP:20261201T000000Z",
                 f"DTSTART{';VALUE=DATE' if len(start) == 8 else ''}:{start}",
                 f"DTEND{';VALUE=DATE' if len(end) == 8 else ''}:{end}",
                 f"SUMMARY:{name}", *extra, "END:VEVENT", "END:VCALENDAR", ""]
        reply = requests.put(self.url + f"{name}.ics", data="\r\n".join(lines).encode(),
                             auth=(self.user, "x"), timeout=10,
                             headers={"Content-Type": "text/calendar"})
        assert reply.status_code in (201, 204), reply.text

    def connector(self) -> CalDAVCalendar:
        account = AccountConfig(name="t", provider="caldav", owner=self.user,
                                calendar=self.url,
                                auth={"url": self.server.url, "username": self.user})
        conn = CalDAVCalendar(account, owner_tz=OSLO)
        conn.calendar  # noqa: B018 - find the calendar before the requests are counted
        reports, send = self.reports, conn.transport.send

        def count(method: str, url: str, body: bytes = b"", *args: Any, **kwargs: Any) -> Any:
            if method == "REPORT":  # every request after discovery is the transport's
                reports.append(body.decode())
            return send(method, url, body, *args, **kwargs)

        conn.transport.send = count  # type: ignore[method-assign]
        return conn


@pytest.fixture
def cal(dav_server: DavServer) -> Calendar:
    return Calendar(dav_server)


@pytest.fixture
def conn(cal: Calendar) -> Iterator[CalDAVCalendar]:
    c = cal.connector()
    yield c
    c.close()


def at(hour: float, day: datetime = DAY) -> datetime:
    return day + timedelta(hours=hour)


def fill(cal: Calendar) -> None:
    cal.put("opaque", "20261208T090000Z", "20261208T100000Z")
    cal.put("transparent", "20261208T110000Z", "20261208T120000Z", "TRANSP:TRANSPARENT")
    cal.put("tentative", "20261208T130000Z", "20261208T140000Z", "STATUS:TENTATIVE")
    cal.put("cancelled", "20261208T150000Z", "20261208T160000Z", "STATUS:CANCELLED")
    cal.put("standup", "20261201T070000Z", "20261201T071500Z", "RRULE:FREQ=DAILY;COUNT=20")


def test_opaque_and_tentative_events_are_busy_in_one_request(cal: Calendar,
                                                            conn: CalDAVCalendar) -> None:
    fill(cal)
    busy = conn.busy_between(at(0), at(24))
    assert busy == [BusyInterval(at(7), at(7.25), "busy"), BusyInterval(at(9), at(10), "busy"),
                    BusyInterval(at(13), at(14), "tentative")]
    assert len(cal.reports) == 1 and "free-busy-query" in cal.reports[0]


def test_an_all_day_busy_event_blocks_its_day(cal: Calendar, conn: CalDAVCalendar) -> None:
    cal.put("offsite", "20261209", "20261210")
    busy = conn.busy_between(at(0), at(72))
    # Both servers read a date without a zone as UTC midnight in their free/busy.
    assert busy == [BusyInterval(at(24), at(48))]


def test_a_recurring_event_is_busy_at_each_occurrence_in_range(
        cal: Calendar, conn: CalDAVCalendar) -> None:
    cal.put("standup", "20261201T070000Z", "20261201T071500Z", "RRULE:FREQ=DAILY;COUNT=20")
    busy = conn.busy_between(at(0, DAY + timedelta(days=2)), at(0, DAY + timedelta(days=4)))
    assert [(b.start, b.end) for b in busy] == [
        (at(7, DAY + timedelta(days=d)), at(7.25, DAY + timedelta(days=d))) for d in (2, 3)]


def test_events_touching_the_edges_are_outside_the_span(cal: Calendar,
                                                        conn: CalDAVCalendar) -> None:
    cal.put("before", "20261207T220000Z", "20261208T000000Z")
    cal.put("after", "20261208T060000Z", "20261208T070000Z")
    cal.put("across", "20261207T230000Z", "20261208T010000Z")
    # Both servers clip their periods to the span; read from the events, the event is whole.
    assert conn.busy_between(at(0), at(6)) == [BusyInterval(at(0), at(1))]
    conn._free_busy_query = False
    assert conn.busy_between(at(0), at(6)) == [BusyInterval(at(-1), at(1))]


def test_the_agenda_lists_occurrences_and_leaves_cancelled_events_out(
        cal: Calendar, conn: CalDAVCalendar) -> None:
    fill(cal)
    events = conn.events_between(at(0), at(24))
    assert [(e.projection.title, e.projection.busy, e.recurring)
            for e in events if e.projection] == [
        ("standup", True, True), ("opaque", True, False), ("transparent", False, False),
        ("tentative", True, False)]
    assert len(cal.reports) == 1 and "calendar-query" in cal.reports[0]


def test_busy_time_from_the_events_when_free_busy_query_is_refused(
        cal: Calendar, conn: CalDAVCalendar) -> None:
    fill(cal)
    cal.put("offsite", "20261209", "20261210")
    conn._free_busy_query = False  # as after a server's refusal
    busy = conn.busy_between(at(0), at(48))
    oslo_midnight = datetime(2026, 12, 8, 23, tzinfo=UTC)
    assert busy == [BusyInterval(at(7), at(7.25)), BusyInterval(at(9), at(10)),
                    BusyInterval(at(13), at(14), "tentative"),
                    BusyInterval(oslo_midnight, oslo_midnight + timedelta(days=1)),
                    BusyInterval(at(7, DAY + timedelta(days=1)),
                                 at(7.25, DAY + timedelta(days=1)))]
    assert len(cal.reports) == 1 and "calendar-query" in cal.reports[0]


OSLO_ZONE = ("BEGIN:VTIMEZONE", "TZID:Europe/Oslo", "BEGIN:STANDARD", "DTSTART:19701025T030000",
             "RRULE:FREQ=YEARLY;BYMONTH=10;BYDAY=-1SU", "TZOFFSETFROM:+0200",
             "TZOFFSETTO:+0100", "END:STANDARD", "BEGIN:DAYLIGHT", "DTSTART:19700329T020000",
             "RRULE:FREQ=YEARLY;BYMONTH=3;BYDAY=-1SU", "TZOFFSETFROM:+0100",
             "TZOFFSETTO:+0200", "END:DAYLIGHT", "END:VTIMEZONE")


def test_a_weekly_meeting_keeps_its_wall_time_across_the_clock_change(
        cal: Calendar, conn: CalDAVCalendar) -> None:
    lines = ["BEGIN:VCALENDAR", "VERSION:2.0", "PRODID:-//other client//EN", *OSLO_ZONE,
             "BEGIN:VEVENT", "UID:weekly", "DTSTAMP:20261201T000000Z",
             "DTSTART;TZID=Europe/Oslo:20261020T090000",
             "DTEND;TZID=Europe/Oslo:20261020T100000", "RRULE:FREQ=WEEKLY",
             "SUMMARY:weekly", "END:VEVENT", "END:VCALENDAR", ""]
    reply = requests.put(cal.url + "weekly.ics", data="\r\n".join(lines).encode(),
                         auth=(cal.user, "x"), timeout=10,
                         headers={"Content-Type": "text/calendar"})
    assert reply.status_code in (201, 204)
    check_weekly_meeting_across_the_clock_change(conn)
    events = conn.events_between(CLOCK_CHANGE_MONDAY,
                                 CLOCK_CHANGE_MONDAY + timedelta(days=14))
    assert all(e.recurring and e.event_id.endswith(("070000Z", "080000Z")) for e in events)
