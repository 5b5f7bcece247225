"""Free slots as tables: (busy items, working hours, range) -> the slots offered."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from syncd.engine.availability import (
    Busy,
    Slot,
    WorkingHours,
    free_slots,
    in_zone,
    working_spans,
)

OSLO = "Europe/Oslo"
TZ = ZoneInfo(OSLO)
MIN = timedelta(minutes=1)
LONG_AGO = datetime(2000, 1, 1, tzinfo=UTC)
TUESDAY = datetime(2026, 12, 8, tzinfo=TZ)


def at(day: int, hour: int, minute: int = 0, month: int = 12, zone: ZoneInfo = TZ) -> datetime:
    return datetime(2026, month, day, hour, minute, tzinfo=zone)


def starts(slots: list[Slot], zone: ZoneInfo = TZ) -> list[str]:
    return [s.start.astimezone(zone).strftime("%d %H:%M") for s in slots]


def slots(busy: list[Busy], hours: WorkingHours | None = None, *, start: datetime = TUESDAY,
          end: datetime | None = None, minutes: int = 60, now: datetime = LONG_AGO,
          step: int = 60) -> list[Slot]:
    end = end or start + timedelta(days=1)
    return free_slots(busy, hours or WorkingHours(OSLO), start=start, end=end,
                      duration=timedelta(minutes=minutes), now=now,
                      step=timedelta(minutes=step))


DAY = ["08 09:00", "08 10:00", "08 11:00", "08 12:00", "08 13:00", "08 14:00", "08 15:00",
       "08 16:00"]

# (what is in the calendar, the working hours, the starts offered on Tuesday 8 December)
TABLE: list[tuple[str, list[Busy], WorkingHours, list[str]]] = [
    ("an empty Tuesday is free from 09:00 to 17:00", [], WorkingHours(OSLO), DAY),
    ("a busy hour blocks its slot", [Busy(at(8, 10), at(8, 11))], WorkingHours(OSLO),
     [s for s in DAY if s != "08 10:00"]),
    ("a free activity never blocks", [Busy(at(8, 10), at(8, 11), blocks=False)],
     WorkingHours(OSLO), DAY),
    ("a busy half hour blocks both slots it touches", [Busy(at(8, 10, 30), at(8, 11, 30))],
     WorkingHours(OSLO), [s for s in DAY if s not in ("08 10:00", "08 11:00")]),
    ("a busy item that ends as a slot starts does not block it",
     [Busy(at(8, 9), at(8, 10))], WorkingHours(OSLO), DAY[1:]),
    ("a busy all-day item blocks the whole day", [Busy(date(2026, 12, 8), date(2026, 12, 9))],
     WorkingHours(OSLO), []),
    ("a free all-day item blocks nothing",
     [Busy(date(2026, 12, 8), date(2026, 12, 9), blocks=False)], WorkingHours(OSLO), DAY),
    ("an all-day item of the day before blocks nothing",
     [Busy(date(2026, 12, 7), date(2026, 12, 8))], WorkingHours(OSLO), DAY),
    ("a zero-length busy item takes the minute it names", [Busy(at(8, 12), at(8, 12))],
     WorkingHours(OSLO), [s for s in DAY if s != "08 12:00"]),
    ("a buffer after the slot keeps it clear of the next busy item",
     [Busy(at(8, 12), at(8, 13))], WorkingHours(OSLO, buffer_after=15 * MIN),
     [s for s in DAY if s not in ("08 11:00", "08 12:00")]),
    ("a buffer before the slot keeps it clear of the previous busy item",
     [Busy(at(8, 12), at(8, 13))], WorkingHours(OSLO, buffer_before=15 * MIN),
     [s for s in DAY if s not in ("08 12:00", "08 13:00")]),
    ("buffers may reach outside the working hours",
     [], WorkingHours(OSLO, buffer_before=30 * MIN, buffer_after=30 * MIN), DAY),
    ("busy time outside the hours still needs its buffer",
     [Busy(at(8, 8), at(8, 9))], WorkingHours(OSLO, buffer_before=1 * MIN), DAY[1:]),
    ("working hours of 10:30-12:00 on Tuesdays",
     [], WorkingHours(OSLO, days=frozenset({1}), start=time(10, 30), end=time(12)),
     ["08 11:00"]),
    ("Monday only: nothing on a Tuesday", [], WorkingHours(OSLO, days=frozenset({0})), []),
]


@pytest.mark.parametrize(("busy", "hours", "expected"), [row[1:] for row in TABLE],
                         ids=[row[0] for row in TABLE])
def test_slots_offered_on_a_tuesday(busy: list[Busy], hours: WorkingHours,
                                    expected: list[str]) -> None:
    assert starts(slots(busy, hours)) == expected


def test_slots_start_at_every_step_and_may_overlap() -> None:
    got = slots([], WorkingHours(OSLO, start=time(9), end=time(10)), step=15, minutes=30)
    assert starts(got) == ["08 09:00", "08 09:15", "08 09:30"]
    assert all(s.end - s.start == timedelta(minutes=30) for s in got)


def test_minimum_notice_counts_from_now() -> None:
    got = slots([], WorkingHours(OSLO, min_notice=timedelta(hours=2)), now=at(8, 10, 10))
    assert starts(got) == ["08 13:00", "08 14:00", "08 15:00", "08 16:00"]


def test_the_range_cuts_the_day() -> None:
    assert starts(slots([], start=at(8, 15, 30), end=at(8, 17))) == ["08 16:00"]


def test_a_slot_longer_than_the_day_is_never_offered() -> None:
    assert slots([], minutes=9 * 60, start=at(7, 0), end=at(14, 0)) == []


def test_slots_follow_the_owner_wall_clock_in_a_half_hour_zone() -> None:
    kolkata = ZoneInfo("Asia/Kolkata")
    got = slots([], WorkingHours("Asia/Kolkata", start=time(9), end=time(11)),
                start=at(8, 0, zone=kolkata), end=at(9, 0, zone=kolkata))
    assert starts(got, kolkata) == ["08 09:00", "08 10:00"]
    assert got[0].start == datetime(2026, 12, 8, 3, 30, tzinfo=UTC)


# --- clocks changing ---------------------------------------------------------------------


def test_a_working_day_with_the_clocks_going_forward_is_seven_hours() -> None:
    every_day = WorkingHours(OSLO, days=frozenset(range(7)), start=time(1), end=time(9))
    spans = working_spans(every_day, at(29, 0, month=3), at(30, 0, month=3))
    assert sum((e - s for s, e in spans), timedelta()) == timedelta(hours=7)


def test_a_working_day_with_the_clocks_going_back_is_nine_hours() -> None:
    every_day = WorkingHours(OSLO, days=frozenset(range(7)), start=time(1), end=time(9))
    spans = working_spans(every_day, at(25, 0, month=10), at(26, 0, month=10))
    assert sum((e - s for s, e in spans), timedelta()) == timedelta(hours=9)


def test_a_start_in_the_skipped_hour_opens_the_day_at_the_jump() -> None:
    hours = WorkingHours(OSLO, days=frozenset(range(7)), start=time(2, 30), end=time(5))
    got = slots([], hours, start=at(29, 0, month=3), end=at(30, 0, month=3), minutes=30,
                step=30)
    assert starts(got) == ["29 03:00", "29 03:30", "29 04:00", "29 04:30"]
    assert got[0].start == datetime(2026, 3, 29, 1, 0, tzinfo=UTC)


def test_the_repeated_hour_is_offered_twice() -> None:
    hours = WorkingHours(OSLO, days=frozenset(range(7)), start=time(1), end=time(4))
    got = slots([], hours, start=at(25, 0, month=10), end=at(26, 0, month=10))
    utc = [s.start.astimezone(UTC).strftime("%H:%M") for s in got]
    # 01:00 CEST, 02:00 CEST, 02:00 CET, 03:00 CET
    assert utc == ["23:00", "00:00", "01:00", "02:00"]


def test_a_start_inside_the_repeated_hour_leaves_its_second_pass_out() -> None:
    hours = WorkingHours(OSLO, days=frozenset(range(7)), start=time(2, 30), end=time(4))
    spans = working_spans(hours, at(25, 0, month=10), at(26, 0, month=10))
    # 02:30-03:00 CEST, then (after 02:00-02:30 CET, outside) 02:30-04:00 CET
    assert [(s.strftime("%H:%M"), e.strftime("%H:%M")) for s, e in spans] == [
        ("00:30", "01:00"), ("01:30", "03:00")]


def test_lord_howe_half_hour_shift() -> None:
    zone = "Australia/Lord_Howe"
    hours = WorkingHours(zone, days=frozenset(range(7)), start=time(1), end=time(4))
    # 2026-10-04 02:00 -> 02:30 (+10:30 -> +11)
    spans = working_spans(hours, datetime(2026, 10, 4, tzinfo=ZoneInfo(zone)),
                          datetime(2026, 10, 5, tzinfo=ZoneInfo(zone)))
    assert sum((e - s for s, e in spans), timedelta()) == timedelta(hours=2, minutes=30)


# --- refused questions -----------------------------------------------------------------


@pytest.mark.parametrize("bad", [
    {"start": datetime(2026, 12, 8, 9)},
    {"minutes": 0},
    {"step": 0},
    {"end": at(8, 0) + timedelta(days=200)},
])
def test_questions_that_make_no_sense_are_refused(bad: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        slots([], **bad)  # type: ignore[arg-type]


@pytest.mark.parametrize("bad", [
    {"start": time(17), "end": time(9)},
    {"days": frozenset({7})},
    {"days": frozenset()},
    {"buffer_before": timedelta(seconds=30)},
    {"min_notice": -MIN},
])
def test_working_hours_that_make_no_sense_are_refused(bad: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        WorkingHours(OSLO, **bad)  # type: ignore[arg-type]


def test_an_unknown_zone_is_refused() -> None:
    with pytest.raises(Exception):  # noqa: B017 - zoneinfo's own error
        WorkingHours("Mars/Olympus")


def test_steps_count_from_each_local_midnight() -> None:
    round_the_clock = WorkingHours(OSLO, days=frozenset(range(7)), start=time(0), end=time(0))
    got = starts(slots([], round_the_clock, start=at(8, 23), end=at(9, 1), minutes=25, step=25))
    # 23:20 and 23:45 count from the 8th's midnight; 00:00 and 00:25 from the 9th's
    assert got == ["08 23:20", "08 23:45", "09 00:00", "09 00:25"]


def test_an_end_of_midnight_joins_the_days() -> None:
    round_the_clock = WorkingHours(OSLO, days=frozenset(range(7)), start=time(0), end=time(0))
    assert working_spans(round_the_clock, at(8, 0), at(10, 0)) == [(at(8, 0), at(10, 0))]


def test_a_range_outside_the_days_syncd_accepts_is_refused_not_an_overflow() -> None:
    edge = datetime(9999, 12, 31, 12, tzinfo=UTC)
    with pytest.raises(ValueError, match="between"):
        slots([], start=edge - timedelta(days=1), end=edge)


def test_an_all_day_item_can_keep_the_days_of_its_own_zone() -> None:
    # Tuesday in Kolkata is 20:30 Monday to 20:30 Tuesday in Oslo
    [item] = in_zone(Busy(date(2026, 12, 8), date(2026, 12, 9)), "Asia/Kolkata")
    assert (item.start, item.end) == (at(7, 19, 30), at(8, 19, 30))
    assert starts(slots([item])) == []  # the whole Oslo working day is inside it
    assert in_zone(Busy(at(8, 9), at(8, 10)), "Asia/Kolkata") == [Busy(at(8, 9), at(8, 10))]
