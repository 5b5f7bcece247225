"""Time zones of untrusted objects: the IANA database first, custom rules in closed form."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from connectors.ical import read_event

OWNER_TZ = "Europe/Oslo"


def _object(tzid: str, start: str, end: str, vtimezone: str = "") -> bytes:
    lines = ["BEGIN:VCALENDAR", "VERSION:2.0", "PRODID:-//test//EN"]
    lines += [line for line in vtimezone.strip().splitlines() if line]
    lines += ["BEGIN:VEVENT", "UID:zone@test", "DTSTAMP:20261201T000000Z",
              f"DTSTART;TZID={tzid}:{start}", f"DTEND;TZID={tzid}:{end}", "SUMMARY:zone",
              "END:VEVENT", "END:VCALENDAR", ""]
    return "\r\n".join(lines).encode()


def _vtimezone(tzid: str, standard_rule: str, daylight_rule: str) -> str:
    return f"""
BEGIN:VTIMEZONE
TZID:{tzid}
BEGIN:STANDARD
DTSTART:16010101T030000
TZOFFSETFROM:+0200
TZOFFSETTO:+0100
{standard_rule}
END:STANDARD
BEGIN:DAYLIGHT
DTSTART:16010101T020000
TZOFFSETFROM:+0100
TZOFFSETTO:+0200
{daylight_rule}
END:DAYLIGHT
END:VTIMEZONE
"""


BERLIN_LIKE = _vtimezone("Custom Berlin", "RRULE:FREQ=YEARLY;BYMONTH=10;BYDAY=-1SU",
                         "RRULE:FREQ=YEARLY;BYMONTH=3;BYDAY=-1SU")
# The "second Sunday" spelling some exporters use: a weekday among a range of month days.
SECOND_SUNDAY = _vtimezone("Custom Range", "RRULE:FREQ=YEARLY;BYMONTH=11;BYDAY=SU;"
                           "BYMONTHDAY=1,2,3,4,5,6,7",
                           "RRULE:FREQ=YEARLY;BYMONTH=3;BYDAY=SU;BYMONTHDAY=8,9,10,11,12,13,14")
ENDED = _vtimezone("Custom Ended", "RRULE:FREQ=YEARLY;BYMONTH=10;BYDAY=-1SU;UNTIL=20001029T010000Z",
                   "RRULE:FREQ=YEARLY;BYMONTH=3;BYDAY=-1SU;COUNT=1000")


def _utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


@pytest.mark.parametrize(("tzid", "vtimezone", "start", "expected_start", "zone"), [
    # An IANA TZID is read from the database even when the object defines it otherwise.
    ("Europe/Berlin", _vtimezone("Europe/Berlin", "RRULE:FREQ=SECONDLY", "RRULE:FREQ=SECONDLY"),
     "20260710T100000", _utc(2026, 7, 10, 8), "Europe/Berlin"),
    ("W. Europe Standard Time", "", "20261210T100000", _utc(2026, 12, 10, 9), "Europe/Berlin"),
    ("/mozilla.org/20050126_1/America/New_York", "", "20260710T100000", _utc(2026, 7, 10, 14),
     "America/New_York"),
    ("Custom Berlin", BERLIN_LIKE, "20260710T100000", _utc(2026, 7, 10, 8), OWNER_TZ),
    ("Custom Berlin", BERLIN_LIKE, "20261210T100000", _utc(2026, 12, 10, 9), OWNER_TZ),
    ("Custom Berlin", BERLIN_LIKE, "20260328T100000", _utc(2026, 3, 28, 9), OWNER_TZ),
    ("Custom Berlin", BERLIN_LIKE, "20260329T100000", _utc(2026, 3, 29, 8), OWNER_TZ),
    ("Custom Range", SECOND_SUNDAY, "20260307T100000", _utc(2026, 3, 7, 9), OWNER_TZ),
    ("Custom Range", SECOND_SUNDAY, "20260308T100000", _utc(2026, 3, 8, 8), OWNER_TZ),
    # The standard rule ended in 2000: summer time ever after.
    ("Custom Ended", ENDED, "20261210T100000", _utc(2026, 12, 10, 8), OWNER_TZ),
])
def test_a_date_time_with_a_tzid_is_read_at_the_instant_its_zone_gives(
        tzid: str, vtimezone: str, start: str, expected_start: datetime, zone: str) -> None:
    event = read_event("/cal/x.ics", "e", _object(tzid, start, start, vtimezone),
                       default_tz=OWNER_TZ, owner="owner@example.com")
    assert event.problem is None
    assert event.projection is not None
    assert event.projection.when.start == expected_start
    assert event.projection.when.tz == zone


@pytest.mark.parametrize(("rule", "reason"), [
    ("RRULE:FREQ=SECONDLY", "FREQ=SECONDLY is not yearly"),
    ("RRULE:FREQ=MINUTELY;INTERVAL=1", "FREQ=MINUTELY is not yearly"),
    ("RRULE:FREQ=YEARLY;BYMONTH=3;BYDAY=-1SU;BYHOUR=0,1,2,3", "uses BYHOUR"),
    ("RRULE:FREQ=YEARLY;BYMONTH=1,2,3,4,5,6,7,8,9,10,11,12;BYDAY=SU", "one month"),
    ("RRULE:FREQ=YEARLY;BYMONTH=3;BYDAY=MO,TU,WE,TH,FR,SA,SU", "one weekday"),
    ("RRULE:FREQ=YEARLY;INTERVAL=2;BYMONTH=3;BYDAY=-1SU", "INTERVAL"),
    ("RRULE:FREQ=YEARLY;BYMONTH=3;BYDAY=9SU", "ordinal"),
])
def test_a_custom_zone_with_a_rule_no_real_zone_uses_sets_the_event_aside(
        rule: str, reason: str) -> None:
    vtimezone = _vtimezone("Hostile", "RRULE:FREQ=YEARLY;BYMONTH=10;BYDAY=-1SU", rule)
    event = read_event("/cal/x.ics", "e", _object("Hostile", "20261210T100000",
                                                  "20261210T110000", vtimezone),
                       default_tz=OWNER_TZ, owner="owner@example.com")
    assert event.projection is None
    assert event.problem is not None and reason in event.problem


def test_an_unknown_tzid_without_a_vtimezone_is_set_aside_not_read_in_the_owners_zone() -> None:
    event = read_event("/cal/x.ics", "e", _object("Nowhere/Special", "20261210T100000",
                                                  "20261210T110000"),
                       default_tz=OWNER_TZ, owner="owner@example.com")
    assert event.projection is None
    assert event.problem == "unknown time zone 'Nowhere/Special'"


def test_a_zone_one_object_defines_is_not_used_for_another_that_only_names_it() -> None:
    defined = _object("Shared Name", "20261210T100000", "20261210T110000",
                      _vtimezone("Shared Name", "RRULE:FREQ=YEARLY;BYMONTH=10;BYDAY=-1SU",
                                 "RRULE:FREQ=YEARLY;BYMONTH=3;BYDAY=-1SU"))
    assert read_event("/a.ics", "e", defined, default_tz=OWNER_TZ, owner="o@x.org").projection
    named_only = _object("Shared Name", "20261210T100000", "20261210T110000")
    event = read_event("/b.ics", "e", named_only, default_tz=OWNER_TZ, owner="o@x.org")
    assert event.problem == "unknown time zone 'Shared Name'"
