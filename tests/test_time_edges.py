"""Time at the edges: every DST transition of a few zones, and dates outside the range.

For each zone, every transition from 2010 to 2030 (both directions, Lord Howe's 30-minute
shift, Apia's skipped day in 2011 and its DST until 2021) is taken through:

* the model: an instant becomes due date, wall time (with its fold) and minutes, and back;
  a wall time the CRM holds becomes an instant whose duration is elapsed time;
* each mapper's write and read: iCalendar (RFC 5545 text), Google (the body as sent and as
  Google echoes it in the event's zone) and Graph (the payload as sent and the answer in
  UTC, which the connector asks for).

The rule for a wall time that does not exist (the hour skipped in spring) is
:func:`syncd.model.wall_time`: it is read forward by the length of the gap.
"""

from __future__ import annotations

import functools
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from connectors import google_map, ical, outlook_map
from syncd.model import (
    FIRST_DAY,
    LAST_DAY,
    MAX_DURATION_MINUTES,
    Activity,
    Projection,
    When,
    activity_when,
    wall_time,
    when_to_activity_fields,
)
from syncd_testkit.emulators.google_model import edt_instant, format_local
from syncd_testkit.emulators.graph_tz import format_graph_datetime, parse_graph_datetime

ZONES = ("Europe/Oslo", "America/New_York", "Australia/Lord_Howe", "Pacific/Apia",
         "America/St_Johns")
OWNER = "ann@example.com"
NOW = datetime(2026, 12, 1, tzinfo=UTC)


@functools.cache
def transitions(zone: str) -> tuple[datetime, ...]:
    """Every UTC instant from 2010 to 2030 at which ``zone``'s offset changes."""
    tz = ZoneInfo(zone)
    found = []
    day = datetime(2010, 1, 1, tzinfo=UTC)
    while day.year < 2031:
        before = day.astimezone(tz).utcoffset()
        if before != (day + timedelta(days=1)).astimezone(tz).utcoffset():
            low, high = 0, 24 * 60  # minutes into the day: same offset at low, not at high
            while high - low > 1:
                mid = (low + high) // 2
                if (day + timedelta(minutes=mid)).astimezone(tz).utcoffset() == before:
                    low = mid
                else:
                    high = mid
            found.append(day + timedelta(minutes=high))
        day += timedelta(days=1)
    return tuple(found)


ALL_TRANSITIONS = [(zone, t) for zone in ZONES for t in transitions(zone)]


def test_the_zones_cover_both_directions_and_the_odd_shifts() -> None:
    def shifts(zone: str) -> set[timedelta]:
        tz = ZoneInfo(zone)
        return {t.astimezone(tz).utcoffset() - (t - timedelta(minutes=1)).astimezone(  # type: ignore[operator]
            tz).utcoffset() for t in transitions(zone)}

    assert shifts("Europe/Oslo") == {timedelta(hours=1), timedelta(hours=-1)}
    assert shifts("Australia/Lord_Howe") == {timedelta(minutes=30), timedelta(minutes=-30)}
    assert timedelta(hours=24) in shifts("Pacific/Apia")  # 2011-12-30 never happened there
    assert len(transitions("America/New_York")) == 42


def activity(zone: str, due_date: date, due_time: time | None, minutes: int) -> Activity:
    return Activity(id=1, sync_uid="0" * 32, owner_id=1, owner_tz=zone, type="call",
                    subject="Call", due_date=due_date, due_time=due_time,
                    duration_minutes=minutes, busy=True, description="", location="",
                    guests=(), done=False, marked_done_at=None, deleted=False, updated_at=NOW)


def through_ical(when: When, zone: str) -> When:
    data = ical.build_calendar(Projection("Call", when), uid="u1", marker="m", organizer=OWNER,
                               now=NOW)
    event = ical.read_event("e1", None, data, default_tz=zone, owner=OWNER)
    assert event.problem is None and event.projection is not None
    return event.projection.when


def through_google(when: When, zone: str, *, echoed: bool) -> When:
    body = google_map.event_body(Projection("Call", when))
    if echoed:  # Google answers with every dateTime rewritten in the event's zone
        for key in ("start", "end"):
            if "dateTime" in body[key]:
                moment = edt_instant(body[key], ZoneInfo(zone))
                body[key] = {**body[key], "dateTime": format_local(
                    moment.astimezone(ZoneInfo(body[key]["timeZone"])))}
    event = google_map.read_event({"id": "e1", **body}, owner=OWNER, default_tz=zone,
                                  describe_guests=True)
    assert event.problem is None and event.projection is not None
    return event.projection.when


def through_graph(when: When, zone: str, *, in_utc: bool) -> When:
    payload: dict[str, Any] = outlook_map.when_payload(when)
    if in_utc and not when.all_day:  # Prefer: outlook.timezone="UTC"
        for key in ("start", "end"):
            _, utc = parse_graph_datetime(payload[key]["dateTime"], payload[key]["timeZone"])
            payload[key] = {"dateTime": format_graph_datetime(utc.replace(tzinfo=None)),
                            "timeZone": "UTC"}
    event = outlook_map.read_event({"id": "e1", **payload}, fallback_tz=zone, mailbox=OWNER,
                                   describe_guests=True)
    assert event.problem is None and event.projection is not None
    return event.projection.when


def assert_round_trips(when: When, zone: str) -> None:
    """The span survives the model and every mapper, as the same instants (or dates)."""
    fields = when_to_activity_fields(when, zone)
    back = activity(zone, fields["due_date"], fields["due_time"], fields["duration_minutes"])
    if when.all_day:
        assert activity_when(back) == when
    else:
        assert fields["due_time"] == wall_time(fields["due_date"], fields["due_time"], zone)
        assert fields["due_time"].fold == wall_time(fields["due_date"], fields["due_time"],
                                                    zone).fold  # what the store keeps
        whole_minutes = When(when.start, when.start + timedelta(  # type: ignore[operator]
            minutes=fields["duration_minutes"]), zone)
        assert activity_when(back) == whole_minutes
    assert through_ical(when, zone) == when
    for echoed in (False, True):
        assert through_google(when, zone, echoed=echoed) == when
    for in_utc in (False, True):
        assert through_graph(when, zone, in_utc=in_utc) == when


# Instants a quarter of an hour apart around each transition: the hour before, the
# skipped or repeated hour (both occurrences), the hour after.
_AROUND = [timedelta(minutes=m) for m in range(-120, 121, 30)]


@pytest.mark.parametrize(("zone", "moment"), ALL_TRANSITIONS,
                         ids=[f"{z}-{t:%Y%m%dT%H%M}" for z, t in ALL_TRANSITIONS])
def test_every_transition_keeps_instants_and_elapsed_minutes(zone: str, moment: datetime) -> None:
    for offset in _AROUND:
        start = moment + offset
        for minutes in (0, 60, 90):
            assert_round_trips(When(start, start + timedelta(minutes=minutes), zone), zone)


@given(st.sampled_from(ALL_TRANSITIONS), st.integers(-300, 300), st.integers(0, 26 * 60),
       st.integers(0, 59))
def test_any_span_near_a_transition_round_trips(transition: tuple[str, datetime], offset: int,
                                                minutes: int, seconds: int) -> None:
    zone, moment = transition
    start = moment + timedelta(minutes=offset, seconds=seconds)
    assert_round_trips(When(start, start + timedelta(minutes=minutes), zone), zone)


@given(st.sampled_from(ALL_TRANSITIONS), st.integers(-3, 3), st.integers(1, 4))
def test_whole_days_around_a_transition_round_trip_as_dates(
        transition: tuple[str, datetime], shift: int, days: int) -> None:
    zone, moment = transition
    first = moment.astimezone(ZoneInfo(zone)).date() + timedelta(days=shift)
    when = When(first, first + timedelta(days=days), zone)
    assert_round_trips(when, zone)
    assert activity_when(activity(zone, first, None, days * 1440 if days > 1 else 0)) == when


@given(st.sampled_from(ALL_TRANSITIONS), st.integers(-180, 180), st.sampled_from((0, 1)),
       st.integers(0, 600))
def test_a_crm_wall_time_near_a_transition_is_one_instant_everywhere(
        transition: tuple[str, datetime], offset: int, fold: int, minutes: int) -> None:
    """What a user types: any wall time, either fold; elapsed minutes, the gap rule."""
    zone, moment = transition
    tz = ZoneInfo(zone)
    wall = (moment.astimezone(tz).replace(tzinfo=None) + timedelta(minutes=offset)).replace(
        fold=fold)
    when = activity_when(activity(zone, wall.date(), wall.time(), minutes))
    assert when is not None
    assert when.end - when.start == timedelta(minutes=minutes)  # type: ignore[operator]
    first, second = wall.replace(tzinfo=tz, fold=0), wall.replace(tzinfo=tz, fold=1)
    gap = second.utcoffset() - first.utcoffset()  # type: ignore[operator]
    if gap > timedelta(0):  # skipped: read forward by the gap
        assert when.local_start().replace(tzinfo=None) == wall + gap
    else:  # exists (once or twice): read as written, the fold picking the occurrence
        assert when.local_start().replace(tzinfo=None) == wall
        # (in UTC: PEP 495 makes an ambiguous time unequal to every other zone's times)
        meant = second if fold and gap < timedelta(0) else first
        assert when.start == meant.astimezone(UTC)
    assert_round_trips(when, zone)


def test_the_0230_call_on_the_night_clocks_go_back_keeps_its_hour_in_icalendar() -> None:
    """The case from the issue: 60 minutes written as an end equal to the start."""
    call = activity("Europe/Oslo", date(2027, 10, 31), time(2, 30), 60)
    when = activity_when(call)
    assert when is not None
    data = ical.build_calendar(Projection("Call", when), uid="u1", marker="m", organizer=OWNER,
                               now=NOW).decode()
    assert "DTSTART;TZID=Europe/Oslo:20271031T023000" in data
    assert "DTEND:20271031T013000Z" in data  # the second 02:30, which a TZID cannot say
    assert through_ical(when, "Europe/Oslo").end - when.start == timedelta(hours=1)  # type: ignore[operator]


# --- the range: its edges sync, what is outside is quarantined with the reason -----------


@pytest.mark.parametrize("zone", ["Europe/Oslo", "Pacific/Kiritimati", "Pacific/Pago_Pago"])
@pytest.mark.parametrize("day", [FIRST_DAY, LAST_DAY])
@pytest.mark.parametrize("clock", [None, time(0, 0), time(23, 59)])
def test_an_activity_at_either_edge_of_the_range_syncs_everywhere(
        zone: str, day: date, clock: time | None) -> None:
    """The longest activity on the first or last day, in the zones furthest from UTC."""
    when = activity_when(activity(zone, day, clock, MAX_DURATION_MINUTES))
    assert when is not None
    assert_round_trips(when, zone)


# --- dates outside the range: quarantined with the reason by every reader ---------------


def _ics(*lines: str) -> bytes:
    body = "".join(f"{line}\r\n" for line in lines)
    return ("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//t//t//EN\r\nBEGIN:VEVENT\r\nUID:x\r\n"
            f"DTSTAMP:20260101T000000Z\r\n{body}END:VEVENT\r\nEND:VCALENDAR\r\n").encode()


@pytest.mark.parametrize(("lines", "reason"), [
    (("DTSTART:99991231T230000Z", "DURATION:P2D"), "9999-12-31 is outside"),
    (("DTSTART:20270101T100000Z", "DURATION:P99999999W"), "longer than the 366 days"),
    (("DTSTART:20270101T100000Z", "DURATION:P999999999D"), "longer than the 366 days"),
    (("DTSTART;VALUE=DATE:99991231",), "9999-12-31 is outside"),
    (("DTSTART;VALUE=DATE:00010101", "DTEND;VALUE=DATE:00010102"), "0001-01-01 is outside"),
    (("DTSTART;TZID=Pacific/Kiritimati:00010101T000000", "DURATION:PT1H"), "outside"),
    (("DTSTART;TZID=America/New_York:99991231T230000", "DTEND:99991231T235959Z"), "outside"),
    (("DTSTART:18991231T120000Z", "DTEND:19000101T120000Z"), "1899-12-31 is outside"),
    (("DTSTART:20270101T100000Z", "DTEND:20280102T100001Z"), "longer than the 366 days"),
])
def test_an_icalendar_event_outside_the_range_is_quarantined_with_its_reason(
        lines: tuple[str, ...], reason: str) -> None:
    event = ical.read_event("e1", '"1"', _ics(*lines), default_tz="Europe/Oslo", owner=OWNER)
    assert event.projection is None and event.problem is not None and reason in event.problem


@pytest.mark.parametrize(("start", "end", "reason"), [
    ({"date": "9999-12-31"}, {"date": "9999-12-31"}, "9999-12-31 is outside"),
    ({"date": "0001-01-01"}, {"date": "0001-01-02"}, "0001-01-01 is outside"),
    ({"dateTime": "9999-12-31T23:00:00-05:00"}, {"dateTime": "9999-12-31T23:30:00-05:00"},
     "outside"),
    ({"dateTime": "0001-01-01T00:00:00+14:00"}, {"dateTime": "0001-01-01T01:00:00+14:00"},
     "outside"),
    ({"dateTime": "2027-01-01T10:00:00Z"}, {"dateTime": "9999-12-31T10:00:00Z"},
     "longer than the 366 days"),
])
def test_a_google_event_outside_the_range_is_quarantined_with_its_reason(
        start: dict[str, str], end: dict[str, str], reason: str) -> None:
    event = google_map.read_event({"id": "e1", "start": start, "end": end}, owner=OWNER,
                                  default_tz="UTC", describe_guests=False)
    assert event.projection is None and event.problem is not None and reason in event.problem


@pytest.mark.parametrize(("event", "reason"), [
    ({"start": {"dateTime": "9999-12-31T23:00:00", "timeZone": "Eastern Standard Time"},
      "end": {"dateTime": "9999-12-31T23:30:00", "timeZone": "UTC"}}, "outside"),
    ({"isAllDay": True, "start": {"dateTime": "9999-12-31T00:00:00", "timeZone": "UTC"},
      "end": {"dateTime": "9999-12-31T00:00:00", "timeZone": "UTC"}}, "9999-12-31 is outside"),
    ({"start": {"dateTime": "0001-01-01T00:00:00", "timeZone": "Pacific/Kiritimati"},
      "end": {"dateTime": "0001-01-01T01:00:00", "timeZone": "Pacific/Kiritimati"}}, "outside"),
    ({"start": {"dateTime": "2027-01-01T10:00:00", "timeZone": "UTC"},
      "end": {"dateTime": "2029-01-01T10:00:00", "timeZone": "UTC"}}, "longer than the 366 days"),
])
def test_a_graph_event_outside_the_range_is_quarantined_with_its_reason(
        event: dict[str, Any], reason: str) -> None:
    read = outlook_map.read_event({"id": "e1", **event}, fallback_tz="UTC", mailbox=OWNER,
                                  describe_guests=False)
    assert read.projection is None and read.problem is not None and reason in read.problem
