"""The iCalendar mapping, property-tested: time zones, all-day dates and hostile text."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta

import icalendar
from hypothesis import given
from hypothesis import strategies as st

from connectors.ical import build_calendar, read_event, update_calendar, without_timezones
from syncd.model import Projection, When

ZONES = ["Europe/Oslo", "America/New_York", "Australia/Sydney", "Australia/Lord_Howe",
         "Asia/Kolkata", "America/St_Johns", "Pacific/Kiritimati", "Pacific/Pago_Pago", "UTC"]
instants = st.datetimes(min_value=datetime(2025, 1, 1), max_value=datetime(2027, 12, 31),
                        timezones=st.just(UTC))
#: What no line of an iCalendar object may hold: C0 controls but TAB, DEL, C1 controls and
#: the Unicode line and paragraph separators.
CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f-\x9f\u2028\u2029]")
# Text a CRM user might type, with the characters that break naive serializers.
hostile = st.text(alphabet=st.sampled_from([*"ab ;,:\\\"\r\n\t<>&é🍣", "\x00", "\x1b", "\x0b",
                                            "\x85", "\u2028"]),
                  max_size=40)


def round_trip(projection: Projection, tz: str = "UTC") -> Projection:
    body = build_calendar(projection, uid="u@syncd", marker="m", organizer="o@example.com")
    event = read_event("/c/u.ics", '"e"', body, default_tz=tz, owner="o@example.com")
    assert event.problem is None, event.problem
    assert event.projection is not None
    return event.projection


@given(start=instants, minutes=st.integers(0, 60 * 24 * 3), zone=st.sampled_from(ZONES))
def test_timed_events_keep_their_instants_in_every_zone(start: datetime, minutes: int,
                                                        zone: str) -> None:
    when = When(start, start + timedelta(minutes=minutes), zone)
    back = round_trip(Projection("t", when), zone).when
    assert (back.start, back.end) == (when.start, when.end)
    assert back.tz == zone


@given(day=st.dates(min_value=date(2025, 1, 1), max_value=date(2027, 12, 31)),
       days=st.integers(1, 14), zone=st.sampled_from(ZONES))
def test_all_day_dates_never_shift(day: date, days: int, zone: str) -> None:
    when = When(day, day + timedelta(days=days), zone)
    back = round_trip(Projection("t", when), zone).when
    assert back.all_day and (back.start, back.end) == (day, day + timedelta(days=days))


@given(title=hostile, description=hostile, location=hostile)
def test_hostile_text_cannot_inject_properties_or_components(title: str, description: str,
                                                             location: str) -> None:
    when = When(datetime(2026, 12, 3, 9, tzinfo=UTC), datetime(2026, 12, 3, 10, tzinfo=UTC))
    projection = Projection(title, when, description=description, location=location)
    body = build_calendar(projection, uid="u@syncd", marker="m", organizer="o@example.com")
    cal = icalendar.Calendar.from_ical(body)
    [vevent] = cal.walk("VEVENT")
    assert not vevent.subcomponents and "ATTENDEE" not in vevent
    assert sorted(k for k in vevent if k.startswith("X-")) == ["X-SYNCD-ID"]
    assert round_trip(projection) == projection


def test_update_touches_only_named_fields_and_bumps_sequence_for_time_only() -> None:
    when = When(datetime(2026, 12, 3, 9, tzinfo=UTC), datetime(2026, 12, 3, 10, tzinfo=UTC))
    original = Projection("Call", when, location="Room 1")
    body = build_calendar(original, uid="u@syncd", marker="m", organizer="o@example.com")
    renamed = update_calendar(body, original.replace({"title": "Call 2", "location": "X"}),
                              frozenset({"title"}), marker="m", organizer="o@example.com")
    vevent = icalendar.Calendar.from_ical(renamed).walk("VEVENT")[0]
    assert (str(vevent["SUMMARY"]), str(vevent["LOCATION"])) == ("Call 2", "Room 1")
    assert int(vevent["SEQUENCE"]) == 0
    later = When(when.start + timedelta(hours=1), when.end + timedelta(hours=1))
    moved = update_calendar(renamed, original.replace({"when": later}), frozenset({"when"}),
                            marker="m", organizer="o@example.com")
    assert int(icalendar.Calendar.from_ical(moved).walk("VEVENT")[0]["SEQUENCE"]) == 1


tricky = st.lists(st.sampled_from(["BEGIN:VTIMEZONE", "END:VTIMEZONE", "\r\n", "a" * 30,
                                   " ", "é", "\n"]), max_size=10).map("".join)


@given(start=instants, zone=st.sampled_from(ZONES), title=tricky, description=tricky)
def test_our_own_object_reads_the_same_without_its_timezones(
        start: datetime, zone: str, title: str, description: str) -> None:
    when = When(start, start + timedelta(minutes=45), zone)
    body = build_calendar(Projection(title, when, description=description), uid="u@syncd",
                          marker="m", organizer="o@example.com")
    stripped = without_timezones(body)
    assert b"\r\nBEGIN:VTIMEZONE\r\n" not in stripped
    whole = read_event("/c/u.ics", '"e"', body, default_tz=zone, owner="o@example.com")
    assert read_event("/c/u.ics", '"e"', stripped, default_tz=zone,
                      owner="o@example.com") == whole


@given(title=hostile, description=hostile, location=hostile, name=hostile)
def test_every_line_syncd_writes_to_icalendar_ends_in_crlf_and_holds_no_bare_break(
        title: str, description: str, location: str, name: str) -> None:
    # A lenient reader splits lines on a bare CR or LF, some on any control character:
    # the object must hold none outside its CRLF line ends, and read back (by a strict
    # reader) with the same properties, the guest and their name included.
    when = When(datetime(2026, 12, 3, 9, tzinfo=UTC), datetime(2026, 12, 3, 10, tzinfo=UTC))
    guest = "ada@example.com"
    projection = Projection(title, when, description=description, location=location,
                            guests=frozenset({guest}), guest_names={guest: name})
    body = build_calendar(projection, uid="u@syncd", marker="m", organizer="o@example.com")
    # the same fields, in plain words (an empty text writes no property)
    plain = build_calendar(Projection("t", when, description="d" * bool(projection.description),
                                      location="l" * bool(projection.location),
                                      guests=frozenset({guest}), guest_names={guest: "n"}),
                           uid="u@syncd", marker="m", organizer="o@example.com")
    lines = body.split(b"\r\n")
    assert not [line for line in lines if CONTROL.search(line.decode("utf-8"))]
    [vevent] = icalendar.Calendar.from_ical(body).walk("VEVENT")
    [plain_vevent] = icalendar.Calendar.from_ical(plain).walk("VEVENT")
    assert sorted(vevent) == sorted(plain_vevent)
    # the name never swallows the parameters after it (SCHEDULE-AGENT among them)
    attendee, plain_attendee = vevent["ATTENDEE"], plain_vevent["ATTENDEE"]
    assert str(attendee) == f"mailto:{guest}"
    assert {k: v for k, v in attendee.params.items() if k != "CN"} \
        == {k: v for k, v in plain_attendee.params.items() if k != "CN"}
    assert round_trip(projection) == projection
