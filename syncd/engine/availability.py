"""An owner's free slots: working hours minus busy time (pure; seed rules A4 and F).

The rules, in the order they apply:

1. **Working hours** are read off the owner's wall clock in ``WorkingHours.time_zone``: an
   instant is inside them when the clock there shows a working weekday (0 = Monday) and
   a time from ``start`` up to (not including) ``end``; an ``end`` of 00:00 is the
   midnight that ends the day (24:00), so consecutive working days join. Everything else
   follows from that one sentence, on the days clocks change too:

   * a 09:00-17:00 day lasts 8 real hours, but 7 or 9 when the clocks jump inside it;
   * a wall time that does not exist (the hour skipped when clocks go forward) is never
     shown, so a day set to open at 02:30 on a night that jumps from 02:00 to 03:00 opens
     at the jump, 03:00;
   * a wall time shown twice (the hour repeated when clocks go back) is inside the hours
     both times it is shown; with a start inside the repeated hour (01:30, say) the
     second pass through 01:00-01:30 is outside, as the clock then says.

2. **Busy time** blocks slots: a busy activity (A4; a *free* one never blocks), busy,
   tentative or out-of-office calendar time. An all-day busy item blocks the whole of
   its days in the owner's zone (every instant whose wall date is one of them); a timed
   item its span, and a zero-length timed item the minute it names (a busy call with no
   duration still takes its moment).
3. **Buffers**: a slot needs ``buffer_before`` clear of busy time before it and
   ``buffer_after`` after it. The buffers may reach outside the working hours; the slot
   itself may not.
4. **Minimum notice**: a slot starts no earlier than ``now + min_notice``.
5. **Steps**: slots start where the owner's wall clock shows a multiple of ``step`` since
   local midnight (09:00, 09:15, ... with 15 minutes), and last ``duration`` of real
   time. Every such start that fits is offered, overlapping ones included: the visitor
   picks one.

All instants are aware; slots come out in UTC (callers render them in a zone). Nothing
here reads a clock: ``now`` is an argument.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from syncd.model import FIRST_DAY, LAST_DAY, day_in_range

#: The working hours of a user for whom none are configured: Monday to Friday, 09:00-17:00.
DEFAULT_DAYS = frozenset(range(5))
DEFAULT_START = time(9, 0)
DEFAULT_END = time(17, 0)
DEFAULT_STEP = timedelta(minutes=15)
#: The widest span one question may cover: bounds the work an outside caller can ask for.
MAX_RANGE = timedelta(days=92)
MINUTE = timedelta(minutes=1)
#: As ``WorkingHours.end``: the midnight that ends the day (24:00).
MIDNIGHT = time(0)
# No zone's offset changes twice within this long; stepping by it finds every change.
_PROBE = timedelta(hours=1)


@dataclass(frozen=True)
class WorkingHours:
    """When an owner can be booked, in their own zone (rule 1, 3 and 4 of the module)."""

    time_zone: str
    days: frozenset[int] = DEFAULT_DAYS
    start: time = DEFAULT_START
    end: time = DEFAULT_END
    buffer_before: timedelta = timedelta(0)
    buffer_after: timedelta = timedelta(0)
    min_notice: timedelta = timedelta(0)

    def __post_init__(self) -> None:
        ZoneInfo(self.time_zone)  # an unknown zone fails here, not in the middle of a query
        if not (self.start < self.end or self.end == MIDNIGHT):
            raise ValueError("working hours must end after they start")
        if not self.days or not self.days <= frozenset(range(7)):
            raise ValueError("working days are 0 (Monday) to 6 (Sunday), at least one")
        for name in ("buffer_before", "buffer_after", "min_notice"):
            value: timedelta = getattr(self, name)
            if value < timedelta(0) or value % MINUTE:
                raise ValueError(f"{name} must be whole minutes, not negative")


@dataclass(frozen=True)
class Busy:
    """Something in the owner's time: an activity or calendar time.

    Timed: ``start``/``end`` are aware datetimes. All-day: dates, ``end`` exclusive (as in
    iCalendar). ``blocks`` is False for a free item, which is carried (the agenda shows it)
    but never blocks a slot.
    """

    start: date | datetime
    end: date | datetime
    blocks: bool = True
    label: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        if isinstance(self.start, datetime) != isinstance(self.end, datetime):
            raise ValueError("start and end must both be dates or both be datetimes")
        if isinstance(self.start, datetime) and isinstance(self.end, datetime) and (
                self.start.tzinfo is None or self.end.tzinfo is None):
            raise ValueError("timed start and end must carry a time zone")
        if self.end < self.start:
            raise ValueError("end is before start")

    @property
    def all_day(self) -> bool:
        return not isinstance(self.start, datetime)


@dataclass(frozen=True, order=True)
class Slot:
    """A bookable span, in UTC."""

    start: datetime
    end: datetime

    def local(self, zone: str) -> tuple[datetime, datetime]:
        """Start and end as wall-clock times in ``zone`` (with its UTC offset)."""
        tz = ZoneInfo(zone)
        return self.start.astimezone(tz), self.end.astimezone(tz)


Span = tuple[datetime, datetime]  # [start, end) in UTC


# ---------------------------------------------------------------------------------------
# Wall-clock spans -> instants


def _offset_pieces(tz: ZoneInfo, lo: datetime, hi: datetime) -> Iterator[tuple[Span, timedelta]]:
    """[lo, hi) cut where the zone's UTC offset changes, each piece with its offset."""
    piece_start = lo
    offset = lo.astimezone(tz).utcoffset()
    assert offset is not None
    probe = lo.replace(microsecond=0)  # zones change offset on whole seconds
    while probe < hi:
        nxt = min(probe + _PROBE, hi)
        nxt_offset = nxt.astimezone(tz).utcoffset()
        if nxt_offset != offset:
            # The change is in (probe, nxt]: find its first instant, to the second.
            low, high = 0, -(-(nxt - probe) // timedelta(seconds=1))
            while high - low > 1:
                mid = (low + high) // 2
                if (probe + timedelta(seconds=mid)).astimezone(tz).utcoffset() == offset:
                    low = mid
                else:
                    high = mid
            change = max(probe + timedelta(seconds=high), piece_start)
            if change >= hi:
                break
            if change > piece_start:
                yield (piece_start, change), offset
            piece_start = change
            offset = change.astimezone(tz).utcoffset()
            assert offset is not None
            nxt = change
        probe = nxt
    if piece_start < hi:
        yield (piece_start, hi), offset


def wall_span(zone: str, wall_from: datetime, wall_to: datetime) -> list[Span]:
    """The instants (UTC spans) at which the wall clock in ``zone`` shows a time in
    [``wall_from``, ``wall_to``) (naive datetimes).

    Skipped wall times contribute nothing; repeated ones contribute both occurrences.
    """
    tz = ZoneInfo(zone)
    # Offsets on Earth are within +-26 hours: the instants lie inside this UTC range.
    lo = wall_from.replace(tzinfo=UTC) - timedelta(hours=26)
    hi = wall_to.replace(tzinfo=UTC) + timedelta(hours=26)
    spans: list[Span] = []
    for (a, b), offset in _offset_pieces(tz, lo, hi):
        # Within a piece the wall clock is UTC + offset.
        s = max(a, wall_from.replace(tzinfo=UTC) - offset)
        e = min(b, wall_to.replace(tzinfo=UTC) - offset)
        if s < e:
            spans.append((s, e))
    return merge_spans(spans)


def merge_spans(spans: Iterable[Span]) -> list[Span]:
    """Sorted, with overlapping and touching spans joined."""
    out: list[Span] = []
    for s, e in sorted(spans):
        if out and s <= out[-1][1]:
            if e > out[-1][1]:
                out[-1] = (out[-1][0], e)
        else:
            out.append((s, e))
    return out


def subtract_spans(base: Sequence[Span], cut: Sequence[Span]) -> list[Span]:
    """``base`` minus ``cut`` (both merged, sorted)."""
    out: list[Span] = []
    j = 0
    for s, e in base:
        cur = s
        while j < len(cut) and cut[j][1] <= cur:
            j += 1
        k = j
        while k < len(cut) and cut[k][0] < e:
            if cut[k][0] > cur:
                out.append((cur, cut[k][0]))
            cur = max(cur, cut[k][1])
            k += 1
        if cur < e:
            out.append((cur, e))
    return out


def working_spans(hours: WorkingHours, start: datetime, end: datetime) -> list[Span]:
    """The working hours (rule 1) that fall in [start, end), as UTC spans."""
    tz = ZoneInfo(hours.time_zone)
    first = start.astimezone(tz).date() - timedelta(days=1)
    last = end.astimezone(tz).date() + timedelta(days=1)
    spans: list[Span] = []
    day = first
    while day <= last:
        if day.weekday() in hours.days:
            close = day + timedelta(days=1) if hours.end == MIDNIGHT else day
            spans.extend(wall_span(hours.time_zone, datetime.combine(day, hours.start),
                                   datetime.combine(close, hours.end)))
        day += timedelta(days=1)
    lo, hi = start.astimezone(UTC), end.astimezone(UTC)
    return [(max(s, lo), min(e, hi)) for s, e in merge_spans(spans) if s < hi and e > lo]


def busy_span(item: Busy, zone: str) -> list[Span]:
    """The instants ``item`` takes (rule 2), as UTC spans; nothing for a free item."""
    if not item.blocks:
        return []
    if isinstance(item.start, datetime):
        assert isinstance(item.end, datetime)
        s, e = item.start.astimezone(UTC), item.end.astimezone(UTC)
        return [(s, s + MINUTE if e == s else e)]
    assert not isinstance(item.end, datetime)
    last = max(item.end, item.start + timedelta(days=1))  # a zero-day item is its day
    return wall_span(zone, datetime.combine(item.start, time()), datetime.combine(last, time()))


def in_zone(item: Busy, zone: str) -> list[Busy]:
    """``item`` with an all-day item's days read in ``zone`` (the zone its dates belong
    to, say the activity's owner's) rather than in the working hours' zone: as timed
    items. A timed item comes back as it is."""
    if not item.all_day:
        return [item]
    return [Busy(s, e, item.blocks, item.label)
            for s, e in busy_span(Busy(item.start, item.end), zone)]


# ---------------------------------------------------------------------------------------
# Slots


def _aligned_starts(zone: str, span: Span, step: timedelta) -> Iterator[datetime]:
    """Instants in ``span`` where the wall clock shows a multiple of ``step`` since
    local midnight (rule 5)."""
    tz = ZoneInfo(zone)
    for (a, b), offset in _offset_pieces(tz, span[0], span[1]):
        wall = (a + offset).replace(tzinfo=None)
        midnight = datetime.combine(wall.date(), time())
        since = wall - midnight
        k = -(-since // step)  # the first multiple at or after ``wall``
        candidate = midnight + k * step
        while True:
            if candidate.date() != midnight.date():  # counting restarts at each midnight
                midnight = datetime.combine(candidate.date(), time())
                candidate = midnight
            instant = (candidate - offset).replace(tzinfo=UTC)
            if instant >= b:
                break
            yield instant
            candidate += step


def free_slots(
    busy: Sequence[Busy],
    hours: WorkingHours,
    *,
    start: datetime,
    end: datetime,
    duration: timedelta,
    now: datetime,
    step: timedelta = DEFAULT_STEP,
) -> list[Slot]:
    """Every slot of ``duration`` inside [start, end) that the rules of this module allow.

    Raises:
        ValueError: naive datetimes, a range longer than :data:`MAX_RANGE` or outside the
            days syncd accepts (:data:`~syncd.model.FIRST_DAY` to ``LAST_DAY``), or a
            duration or step that is not a positive whole number of minutes.
    """
    for name, value in (("start", start), ("end", end), ("now", now)):
        if value.tzinfo is None:
            raise ValueError(f"{name} must carry a time zone")
    for name, length in (("duration", duration), ("step", step)):
        if length <= timedelta(0) or length % MINUTE:
            raise ValueError(f"{name} must be a positive whole number of minutes")
    if end - start > MAX_RANGE:
        raise ValueError(f"a range may cover at most {MAX_RANGE.days} days")
    if not (day_in_range(start.date()) and day_in_range(end.date())):
        raise ValueError(f"a range lies between {FIRST_DAY} and {LAST_DAY}")
    if end <= start:
        return []
    zone = hours.time_zone
    earliest = max(start.astimezone(UTC), (now + hours.min_notice).astimezone(UTC))
    blocked = merge_spans(
        (s - hours.buffer_after, e + hours.buffer_before)  # rule 3, seen from the slot
        for item in busy for s, e in busy_span(item, zone)
    )
    free = subtract_spans(working_spans(hours, start, end), blocked)
    slots: list[Slot] = []
    for s, e in free:
        if e - max(s, earliest) < duration:
            continue
        for t in _aligned_starts(zone, (max(s, earliest), e), step):
            if t + duration > e:
                break
            slots.append(Slot(t, t + duration))
    return slots
