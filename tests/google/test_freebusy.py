"""Free/busy and window listings of a Google calendar, through the emulator and the real
client library: freeBusy.query for busy time, events.list with singleEvents for the agenda."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from connectors.base import BusyInterval
from connectors.google import GoogleCalendar
from syncd.errors import CalendarMissing, Transient
from syncd_testkit.emulators.google import FaultRule, GoogleEmulator
from tests.freebusy.checks import check_weekly_meeting_across_the_clock_change
from tests.google.helpers import OWNER, connector

DAY = datetime(2026, 12, 8, tzinfo=UTC)  # a Tuesday


def at(hour: float, day: datetime = DAY) -> datetime:
    return day + timedelta(hours=hour)


def put(emu: GoogleEmulator, title: str, start: datetime, end: datetime,
        **extra: Any) -> dict[str, Any]:
    return emu.put_event(OWNER, {
        "id": f"ev{abs(hash((title, start))) % 10**12:012d}", "summary": title,
        "start": {"dateTime": start.isoformat().replace("+00:00", "Z"), "timeZone": "UTC"},
        "end": {"dateTime": end.isoformat().replace("+00:00", "Z"), "timeZone": "UTC"},
        **extra})


def posts(emu: GoogleEmulator, suffix: str) -> list[Any]:
    return [r for r in emu.requests if r.path.endswith(suffix)]


def test_an_opaque_event_is_busy_and_a_transparent_one_is_not(
        emu: GoogleEmulator, conn: GoogleCalendar) -> None:
    put(emu, "Call", at(9), at(10))
    put(emu, "Reading", at(11), at(12), transparency="transparent")
    assert conn.busy_between(at(0), at(24)) == [BusyInterval(at(9), at(10), "busy")]
    assert len(posts(emu, "/freeBusy")) == 1  # one request for one calendar


def test_tentative_out_of_office_and_all_day_events_count_as_busy(
        emu: GoogleEmulator, conn: GoogleCalendar) -> None:
    put(emu, "Maybe", at(9), at(10), status="tentative")
    put(emu, "Away", at(13), at(14), eventType="outOfOffice")
    emu.put_event(OWNER, {"id": "a11da000001", "summary": "Offsite",
                          "start": {"date": "2026-12-09"}, "end": {"date": "2026-12-10"}})
    busy = conn.busy_between(at(0), at(48))
    oslo_midnight = datetime(2026, 12, 8, 23, tzinfo=UTC)  # 2026-12-09 00:00 in Oslo
    assert busy == [BusyInterval(at(9), at(10)), BusyInterval(at(13), at(14)),
                    BusyInterval(oslo_midnight, oslo_midnight + timedelta(days=1))]


def test_a_cancelled_or_declined_event_is_free(emu: GoogleEmulator,
                                              conn: GoogleCalendar) -> None:
    gone = put(emu, "Gone", at(9), at(10))
    emu.delete_event_as_user(OWNER, gone["id"])
    put(emu, "Declined", at(11), at(12), attendees=[
        {"email": OWNER, "self": True, "responseStatus": "declined"},
        {"email": "bob@example.com", "organizer": True}])
    assert conn.busy_between(at(0), at(24)) == []


def test_a_recurring_event_is_busy_at_each_occurrence_in_range(
        emu: GoogleEmulator, conn: GoogleCalendar) -> None:
    put(emu, "Standup", at(9), at(9.25), recurrence=["RRULE:FREQ=DAILY;COUNT=10"])
    busy = conn.busy_between(at(0, DAY + timedelta(days=2)), at(0, DAY + timedelta(days=4)))
    assert [(b.start, b.end) for b in busy] == [
        (at(9, DAY + timedelta(days=d)), at(9.25, DAY + timedelta(days=d))) for d in (2, 3)]


def test_busy_time_is_clipped_at_the_edges_of_the_span(emu: GoogleEmulator,
                                                        conn: GoogleCalendar) -> None:
    put(emu, "Overnight", at(-1), at(1))
    put(emu, "Ends as we start", at(-2), at(0))
    put(emu, "Starts as we end", at(6), at(7))
    assert conn.busy_between(at(0), at(6)) == [BusyInterval(at(0), at(1))]


def test_a_span_over_90_days_is_asked_in_pieces(emu: GoogleEmulator,
                                                 conn: GoogleCalendar) -> None:
    put(emu, "Early", at(9), at(10))
    put(emu, "Late", at(9, DAY + timedelta(days=150)), at(10, DAY + timedelta(days=150)))
    busy = conn.busy_between(at(0), at(0, DAY + timedelta(days=200)))
    assert [b.start for b in busy] == [at(9), at(9, DAY + timedelta(days=150))]
    spans = [(r.json()["timeMin"], r.json()["timeMax"]) for r in posts(emu, "/freeBusy")]
    assert len(spans) == 3 and spans[0][1] == spans[1][0]


def test_the_emulator_refuses_a_span_over_90_days(emu: GoogleEmulator,
                                                  conn: GoogleCalendar) -> None:
    body = {"timeMin": "2026-01-01T00:00:00Z", "timeMax": "2026-04-02T00:00:00Z",
            "items": [{"id": OWNER}]}
    reply = conn.transport.one(conn._free_busy_request(body))
    assert (reply.status, reply.reason) == (400, "timeRangeTooLong")


def test_an_unknown_calendar_is_missing_not_free(emu: GoogleEmulator) -> None:
    emu.auto_create_calendars = False
    conn = connector(emu, calendar="nobody@example.com")
    with pytest.raises(CalendarMissing):
        conn.busy_between(at(0), at(24))


def test_a_failing_free_busy_is_retried_then_reported(emu: GoogleEmulator) -> None:
    conn = connector(emu, attempts=2)
    emu.inject(FaultRule.backend_error(503, path="/freeBusy", count=5))
    with pytest.raises(Transient):
        conn.busy_between(at(0), at(24))
    assert len(posts(emu, "/freeBusy")) == 2


def test_a_naive_or_empty_span_is_refused(conn: GoogleCalendar) -> None:
    with pytest.raises(ValueError):
        conn.busy_between(at(1).replace(tzinfo=None), at(2))
    with pytest.raises(ValueError):
        conn.events_between(at(2), at(1))


def test_the_agenda_lists_every_event_with_occurrences_expanded(
        emu: GoogleEmulator, conn: GoogleCalendar) -> None:
    put(emu, "Call", at(9), at(10))
    put(emu, "Reading", at(11), at(12), transparency="transparent")
    put(emu, "Standup", at(8), at(8.25), recurrence=["RRULE:FREQ=DAILY;COUNT=5"])
    put(emu, "Tomorrow", at(30), at(31))
    events = conn.events_between(at(0), at(24))
    titles = [(e.projection.title, e.projection.busy, e.recurring)
              for e in events if e.projection]
    assert titles == [("Standup", True, True), ("Call", True, False),
                      ("Reading", False, False)]
    [query] = [r.query for r in posts(emu, "/events")]
    assert query["singleEvents"] == ["true"] and query["orderBy"] == ["startTime"]


def test_the_agenda_follows_short_and_empty_pages(emu: GoogleEmulator,
                                                  conn: GoogleCalendar) -> None:
    for i in range(5):
        put(emu, f"E{i}", at(9 + i), at(9.5 + i))
    emu.short_pages = True
    events = conn.events_between(at(0), at(24))
    assert [e.projection.title for e in events if e.projection] == [f"E{i}" for i in range(5)]
    assert len(posts(emu, "/events")) == 2  # an empty first page, then the rest


def test_the_agenda_sends_no_write(emu: GoogleEmulator, conn: GoogleCalendar) -> None:
    put(emu, "Call", at(9), at(10))
    conn.events_between(at(0), at(24))
    conn.busy_between(at(0), at(24))
    assert {r.method for r in emu.requests} <= {"GET", "POST"}
    assert [r.path for r in emu.requests if r.method == "POST"] == ["/calendar/v3/freeBusy"]


def test_a_weekly_meeting_keeps_its_wall_time_across_the_clock_change(
        emu: GoogleEmulator, conn: GoogleCalendar) -> None:
    emu.put_event(OWNER, {
        "id": "eek100001", "summary": "Weekly", "recurrence": ["RRULE:FREQ=WEEKLY"],
        "start": {"dateTime": "2026-10-20T09:00:00", "timeZone": "Europe/Oslo"},
        "end": {"dateTime": "2026-10-20T10:00:00", "timeZone": "Europe/Oslo"}})
    check_weekly_meeting_across_the_clock_change(conn)
