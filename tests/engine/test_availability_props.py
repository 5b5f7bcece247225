"""Free slots and double bookings against a brute-force, minute-by-minute oracle.

The oracle knows nothing of spans, offsets or transitions: it walks every UTC minute,
asks zoneinfo what the owner's wall clock shows, and marks the minute working or busy.
A start is bookable when its wall time is on the step, every minute of the slot is
working, none of the slot and its buffers is busy, and the notice is respected. The core
must offer exactly those starts, in zones whose clocks change during the range (Oslo and
New York by an hour, Lord Howe by half an hour) and in zones whose clocks do not.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from itertools import accumulate
from zoneinfo import ZoneInfo

from hypothesis import given
from hypothesis import strategies as st

from connectors.base import RemoteEvent
from syncd.engine.agenda import agenda
from syncd.engine.availability import Busy, WorkingHours, free_slots
from syncd.model import Activity, Projection, When, project_activity
from tests.engine.factories import activity

MIN = timedelta(minutes=1)

#: Each zone with days on which its clocks change (or, without changes, ordinary days).
ZONES: dict[str, list[date]] = {
    "Europe/Oslo": [date(2026, 3, 29), date(2026, 10, 25)],
    "America/New_York": [date(2026, 3, 8), date(2026, 11, 1)],
    "Australia/Lord_Howe": [date(2026, 4, 5), date(2026, 10, 4)],
    "Asia/Kolkata": [date(2026, 3, 29), date(2026, 12, 31)],
    "UTC": [date(2026, 10, 25), date(2028, 2, 29)],
}


@dataclass(frozen=True)
class Case:
    zone: str
    start: datetime  # the range asked for, whole UTC minutes
    end: datetime
    hours: WorkingHours
    items: list[Busy]
    duration: timedelta
    step: timedelta
    now: datetime


@st.composite
def cases(draw: st.DrawFn) -> Case:
    zone = draw(st.sampled_from(sorted(ZONES)))
    day = draw(st.sampled_from(ZONES[zone]))
    tz = ZoneInfo(zone)
    start = datetime.combine(day, time(), tzinfo=tz).astimezone(UTC)
    start += draw(st.integers(-36 * 60, 12 * 60)) * MIN
    end = start + draw(st.one_of(st.integers(1, 60 * 60), st.integers(12 * 60, 60 * 60))) * MIN
    # Mostly wide hours on every day, so that the clock changes fall inside them.
    a = draw(st.one_of(st.just(0), st.integers(0, 12 * 60)))
    b = draw(st.one_of(st.just(24 * 60), st.integers(a + 1, 24 * 60)))
    every_day = frozenset(range(7))
    days = draw(st.one_of(st.just(every_day), st.frozensets(st.integers(0, 6), min_size=1)))
    as_time = lambda m: time(m // 60 % 24, m % 60)  # noqa: E731  (24:00 is time(0))
    hours = WorkingHours(
        zone, days, as_time(a), as_time(b),
        buffer_before=draw(st.integers(0, 90)) * MIN,
        buffer_after=draw(st.integers(0, 90)) * MIN,
        min_notice=draw(st.integers(0, 240)) * MIN)
    timed = st.builds(
        lambda s, length, blocks: Busy(start + s * MIN, start + (s + length) * MIN, blocks),
        st.one_of(st.integers(-24 * 60, 60 * 60), st.integers(-96, 240).map(lambda q: q * 15)),
        st.one_of(st.integers(0, 3 * 60), st.sampled_from([0, 15, 30, 60])), st.booleans())
    all_day = st.builds(
        lambda d, n, blocks: Busy(day + timedelta(days=d), day + timedelta(days=d + n), blocks),
        st.integers(-2, 3), st.integers(1, 2), st.booleans())
    items = draw(st.lists(st.one_of(timed, timed, timed, all_day), max_size=6))
    return Case(zone, start, end, hours, items,
                duration=draw(st.one_of(st.integers(1, 120), st.sampled_from([15, 30, 60]))) * MIN,
                step=draw(st.sampled_from([1, 5, 15, 25, 30, 60])) * MIN,
                now=start + draw(st.integers(-600, 600)) * MIN)


def minutes_of(item: Busy, grid: list[datetime], local_days: list[date]) -> range | set[int]:
    """The indexes of the grid minutes the item takes: a timed item the minutes its span
    touches, an all-day item those whose wall date in the owner's zone it names."""
    if isinstance(item.start, datetime) and isinstance(item.end, datetime):
        first = (item.start - grid[0]) // MIN  # the minute the start falls in
        # a zero-length item takes that minute; a span every minute it reaches into
        last = first + 1 if item.start == item.end else -(-(item.end - grid[0]) // MIN)
        return range(max(0, first), min(len(grid), last))
    return {i for i, d in enumerate(local_days) if item.start <= d < item.end}  # type: ignore[operator]


def oracle(case: Case) -> list[datetime]:
    """Every bookable start, by brute force over UTC minutes."""
    tz, h = ZoneInfo(case.zone), case.hours
    margin = timedelta(days=1)
    grid_start = case.start - margin
    grid = [grid_start + i * MIN for i in range(int((case.end - case.start + 2 * margin) / MIN))]
    local = [m.astimezone(tz) for m in grid]
    local_days = [w.date() for w in local]
    busy = [False] * len(grid)
    for item in case.items:
        if item.blocks:
            for i in minutes_of(item, grid, local_days):
                busy[i] = True
    end_of_day = h.end if h.end != time(0) else time.max
    bad = [not (w.weekday() in h.days and h.start <= w.time() < end_of_day) or not
           (case.start <= m < case.end) for m, w in zip(grid, local, strict=True)]
    # prefix sums: how many busy / non-working minutes before index i
    busy_before = [0, *accumulate(int(x) for x in busy)]
    bad_before = [0, *accumulate(int(x) for x in bad)]
    dur, before, after = (int(x / MIN) for x in (case.duration, h.buffer_before, h.buffer_after))
    step = int(case.step / MIN)
    found = []
    for i, m in enumerate(grid):
        if not case.start <= m < case.end or m < case.now + h.min_notice:
            continue
        w = local[i]
        if (w.hour * 60 + w.minute) % step or w.second:
            continue
        if i + dur > len(grid) or bad_before[i + dur] - bad_before[i]:
            continue
        lo, hi = max(0, i - before), min(len(grid), i + dur + after)
        if busy_before[hi] - busy_before[lo]:
            continue
        found.append(m)
    return found


def offered(case: Case, items: list[Busy] | None = None) -> list[datetime]:
    got = free_slots(case.items if items is None else items, case.hours, start=case.start,
                     end=case.end, duration=case.duration, now=case.now, step=case.step)
    assert all(s.end - s.start == case.duration for s in got)
    return [s.start for s in got]


@given(cases())
def test_the_slots_offered_are_exactly_those_the_oracle_finds(case: Case) -> None:
    expected, got = oracle(case), offered(case)
    offered_busy = sorted(set(got) - set(expected))
    lost = sorted(set(expected) - set(got))
    assert not offered_busy, f"offered but not free: {offered_busy[:3]}"
    assert not lost, f"free but not offered: {lost[:3]}"
    assert got == sorted(got)


@given(cases())
def test_free_items_never_block(case: Case) -> None:
    busy_only = [i for i in case.items if i.blocks]
    assert offered(case) == offered(case, busy_only)


# --- the agenda's double bookings ------------------------------------------------------


@st.composite
def agendas(draw: st.DrawFn) -> tuple[str, date, list[Activity], list[RemoteEvent]]:
    zone = draw(st.sampled_from(sorted(ZONES)))
    day = draw(st.sampled_from(ZONES[zone]))
    acts = []
    for n in range(draw(st.integers(0, 5))):
        timed = draw(st.booleans())
        acts.append(activity(
            n + 1, owner_tz=zone, due_date=day + timedelta(days=draw(st.integers(-1, 1))),
            due_time=time(draw(st.integers(0, 23)), draw(st.sampled_from([0, 30]))) if timed
            else None,
            duration_minutes=draw(st.integers(0, 300)) if timed else 0,
            busy=draw(st.booleans())))
    start = datetime.combine(day, time(), tzinfo=ZoneInfo(zone)).astimezone(UTC)
    events = []
    for n in range(draw(st.integers(0, 5))):
        s = start + draw(st.integers(-24 * 60, 48 * 60)) * MIN
        e = s + draw(st.integers(0, 300)) * MIN
        events.append(RemoteEvent(f"e{n}", None, None,
                                  Projection(f"e{n}", When(s, e, zone), busy=draw(st.booleans()))))
    # Some activities are on the calendar too: their events, paired by marker.
    for a in acts:
        if draw(st.booleans()) and (p := project_activity(a)) is not None:
            events.append(RemoteEvent(f"pair{a.id}", None, a.sync_uid, p))
    return zone, day, acts, events


@given(agendas())
def test_double_bookings_are_exactly_the_busy_items_sharing_a_minute(
        case: tuple[str, date, list[Activity], list[RemoteEvent]]) -> None:
    zone, day, acts, events = case
    days = [day + timedelta(days=d) for d in range(-2, 3)]
    items = agenda(acts, {"c": events}, {}, zone, days)
    grid_start = datetime.combine(days[0], time(), tzinfo=ZoneInfo(zone)).astimezone(UTC)
    grid = [grid_start + i * MIN for i in range(7 * 24 * 60)]
    local_days = [m.astimezone(ZoneInfo(zone)).date() for m in grid]
    taken: dict[str, set[int]] = {}
    for item in {i.key: i for i in items}.values():
        if item.busy:
            start, end = item.start, item.end
            if not item.all_day and start == end:
                continue  # zero length: no minute of its own to share
            taken[item.key] = set(minutes_of(Busy(start, end), grid, local_days))
    for item in items:
        expected = {k for k, ms in taken.items()
                    if k != item.key and item.key in taken and ms & taken[item.key]}
        assert set(item.clashes) == expected, item
    # every dated activity shows, on each of its days, once; its event never apart
    for a in acts:
        shown = [i for i in items if i.key == f"activity:{a.id}"]
        assert len(shown) == len({i.day for i in shown}) >= 1
        assert all(i.source == ("synced" if any(e.event_id == f"pair{a.id}" for e in events)
                                else "crm") for i in shown)
    assert not [i for i in items if i.key.startswith("event:c:pair")]
