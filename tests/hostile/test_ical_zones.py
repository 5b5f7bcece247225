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


# --- the closed-form evaluator against the IANA database ---------------------------------

#: Zones whose current rules are yearly "nth/last weekday of a month" rules: both
#: hemispheres, a half-hour shift (Lord Howe), a negative one (Dublin), midnight onsets.
RULE_ZONES = ("Europe/Berlin", "America/New_York", "Australia/Sydney", "Pacific/Auckland",
              "Australia/Lord_Howe", "Europe/Dublin", "America/Havana", "Pacific/Chatham")


def _posix_rule(name: str) -> str:
    """The POSIX TZ string at the end of the zone's TZif file: its rules from now on."""
    import zoneinfo
    from importlib import resources
    from pathlib import Path

    for folder in zoneinfo.TZPATH:
        if (path := Path(folder) / name).is_file():
            data = path.read_bytes()
            break
    else:
        data = resources.files("tzdata.zoneinfo").joinpath(*name.split("/")).read_bytes()
    return data.rstrip(b"\n").rsplit(b"\n", 1)[-1].decode()


def _iana_vtimezone(name: str) -> str:
    """A VTIMEZONE spelling the zone's current rules as exporters do (RRULE per onset)."""
    import re

    offset, name_re = r"[+-]?\d+(?::\d+){0,2}", r"(?:<[^>]+>|[A-Za-z]+)"
    rule = rf"M(\d+)\.(\d)\.(\d)(?:/({offset}))?"
    found = re.fullmatch(rf"{name_re}({offset}){name_re}({offset})?,{rule},{rule}",
                         _posix_rule(name))
    assert found is not None, _posix_rule(name)

    def seconds(text: str | None, default: int) -> int:
        if text is None:
            return default
        sign = -1 if text.startswith("-") else 1
        parts = [int(p) for p in text.lstrip("+-").split(":")] + [0, 0]
        return sign * (parts[0] * 3600 + parts[1] * 60 + parts[2])

    def ical_offset(value: int) -> str:
        sign, value = ("-" if value < 0 else "+"), abs(value)
        return f"{sign}{value // 3600:02d}{value % 3600 // 60:02d}"

    standard = -seconds(found.group(1), 0)  # POSIX offsets count west of Greenwich
    summer = -seconds(found.group(2), -(standard + 3600))
    days = ("SU", "MO", "TU", "WE", "TH", "FR", "SA")
    blocks = []
    for kind, first, before, after in (("DAYLIGHT", 3, standard, summer),
                                       ("STANDARD", 7, summer, standard)):
        month, week, day, at = found.group(first, first + 1, first + 2, first + 3)
        onset = seconds(at, 7200)
        ordinal = -1 if week == "5" else int(week)
        blocks += [f"BEGIN:{kind}",
                   f"DTSTART:19700101T{onset // 3600:02d}{onset % 3600 // 60:02d}00",
                   f"TZOFFSETFROM:{ical_offset(before)}", f"TZOFFSETTO:{ical_offset(after)}",
                   f"RRULE:FREQ=YEARLY;BYMONTH={month};BYDAY={ordinal}{days[int(day)]}",
                   f"END:{kind}"]
    return "\n".join(["BEGIN:VTIMEZONE", f"TZID:Copy of {name}", *blocks, "END:VTIMEZONE"])


@pytest.mark.parametrize("name", RULE_ZONES)
def test_a_custom_copy_of_a_real_zone_gives_the_offsets_the_iana_database_gives(
        name: str) -> None:
    from datetime import timedelta
    from zoneinfo import ZoneInfo

    from hypothesis import example, given
    from hypothesis import strategies as st

    vtimezone = _iana_vtimezone(name)
    zone = ZoneInfo(name)

    @given(st.datetimes(min_value=datetime(2030, 1, 1), max_value=datetime(2090, 12, 31)))
    @example(datetime(2036, 4, 6, 2, 0, fold=1))  # once drawn: the fold is not the event's
    def same_instant(wall: datetime) -> None:
        # Hypothesis also draws fold=1; the wall time alone is what the event says.
        wall = wall.replace(microsecond=0, second=0, fold=0)
        first, second = wall.replace(tzinfo=zone), wall.replace(tzinfo=zone, fold=1)
        if first.utcoffset() != second.utcoffset():
            return  # the hour a transition skips or repeats: compared elsewhere
        stamp = wall.strftime("%Y%m%dT%H%M%S")
        end = (wall + timedelta(minutes=1)).strftime("%Y%m%dT%H%M%S")
        event = read_event("/cal/x.ics", "e", _object(f"Copy of {name}", stamp, end, vtimezone),
                           default_tz=OWNER_TZ, owner="owner@example.com")
        assert event.problem is None and event.projection is not None
        assert event.projection.when.start == first.astimezone(UTC)

    same_instant()
