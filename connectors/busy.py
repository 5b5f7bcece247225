"""Free/busy answers reduced to :class:`~connectors.base.BusyInterval` lists.

Pure helpers every provider's free/busy reader shares: the span asked for is checked and
cut into pieces a provider accepts, and each item of an answer is added through a
:class:`BusyTally`, which keeps the answer bounded and sets aside what it cannot read. An
item that cannot be read is skipped with its reason (logged, never the item's content),
so one broken item does not lose the others. An answer with more items than any calendar
could hold is refused as a whole: cutting it short would report busy time as free.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from connectors.base import BUSY_KINDS, BusyInterval
from syncd.errors import Transient
from syncd.model import When

#: Busy items one answer may carry: one every five minutes for the longest span asked in
#: one request (Graph's 62 days) is under 18,000; more is a hostile or broken server.
MAX_ITEMS = 20_000
#: Reasons kept (and logged) per answer; the rest are only counted.
MAX_REASONS = 5


def check_span(start: datetime, end: datetime) -> tuple[datetime, datetime]:
    """``start`` and ``end`` in UTC; ValueError unless both are aware and start < end."""
    if start.tzinfo is None or end.tzinfo is None:
        raise ValueError("the span's start and end must be aware datetimes")
    if not start < end:
        raise ValueError("the span must end after it starts")
    return start.astimezone(UTC), end.astimezone(UTC)


def pieces(start: datetime, end: datetime,
           longest: timedelta) -> Iterator[tuple[datetime, datetime]]:
    """[start, end) cut into consecutive spans of at most ``longest``."""
    at = start
    while at < end:
        stop = min(at + longest, end)
        yield at, stop
        at = stop


def parse_instant(value: object) -> datetime:
    """An RFC 3339 timestamp with an offset (``Z`` or ``+hh:mm``), in UTC.

    ValueError for anything else, a date or a time without an offset included: a free/busy
    answer always says which instant it means.
    """
    if not isinstance(value, str) or not 10 < len(value) <= 40:
        raise ValueError("not a timestamp")
    moment = datetime.fromisoformat(value)
    if moment.tzinfo is None:
        raise ValueError("a timestamp without an offset")
    return moment.astimezone(UTC)


@dataclass
class BusyTally:
    """The busy intervals of one answer, as they are read, and what was skipped.

    ``source`` names the answer in the log (a provider and calendar, never a secret).
    """

    source: str
    intervals: list[BusyInterval] = field(default_factory=list)
    reasons: list[str] = field(default_factory=list)
    skipped: int = 0
    seen: int = 0

    def item(self) -> None:
        """Count one item of the answer; refuse the answer past :data:`MAX_ITEMS`."""
        self.seen += 1
        if self.seen > MAX_ITEMS:
            raise Transient(reason=f"{self.source}: the free/busy answer holds over "
                            f"{MAX_ITEMS} items", status=200)

    def each(self, items: object, what: str) -> Iterator[Mapping[str, Any]]:
        """The JSON objects of ``items`` (a JSON list of ``what``), each counted; anything
        else in the list is skipped. A value that is no list refuses the answer."""
        if not isinstance(items, list):
            raise Transient(reason=f"{self.source}: the {what}s are not a list", status=200)
        for item in items:
            self.item()
            if isinstance(item, Mapping):
                yield item
            else:
                self.skip(f"a {what} that is not an object")

    def add(self, start: datetime, end: datetime, kind: str) -> None:
        """Keep [start, end) as ``kind``; an empty or inverted span is skipped."""
        if kind not in BUSY_KINDS:
            self.skip(f"unknown kind {kind[:20]!r}")
        elif not start < end:
            self.skip("the interval ends before it starts")
        else:
            self.intervals.append(BusyInterval(start.astimezone(UTC), end.astimezone(UTC),
                                               kind))

    def skip(self, reason: str) -> None:
        """Set one item aside with ``reason`` (a short sentence without its content)."""
        self.skipped += 1
        if len(self.reasons) < MAX_REASONS:
            self.reasons.append(reason)

    def result(self, log: logging.Logger) -> list[BusyInterval]:
        """The intervals sorted by start (then end), after logging what was skipped."""
        if self.skipped:
            log.warning("%s: %d free/busy item(s) skipped: %s", self.source, self.skipped,
                        "; ".join(self.reasons))
        return sorted(self.intervals, key=lambda i: (i.start, i.end, i.kind))


def all_day_span(start: date, end: date, tz: str) -> tuple[datetime, datetime]:
    """The instants of an all-day span [start, end) in zone ``tz`` (midnight to midnight)."""
    zone = ZoneInfo(tz)
    return (datetime.combine(start, datetime.min.time(), zone).astimezone(UTC),
            datetime.combine(end, datetime.min.time(), zone).astimezone(UTC))


def instants(when: When, zone: str) -> tuple[datetime, datetime]:
    """A span as instants; an all-day one from midnight to midnight in ``zone``."""
    if when.all_day:
        assert isinstance(when.start, date) and isinstance(when.end, date)
        return all_day_span(when.start, when.end, zone)
    assert isinstance(when.start, datetime) and isinstance(when.end, datetime)
    return when.start, when.end


def overlaps(span: tuple[datetime, datetime], start: datetime, end: datetime) -> bool:
    """Whether ``span`` overlaps [start, end); an empty span counts where it lies."""
    first, last = span
    return start <= first < end if first == last else first < end and last > start
