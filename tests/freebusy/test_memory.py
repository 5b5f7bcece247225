"""The memory calendar's free/busy and window listing (what engine-level tests of the
agenda and availability read)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from connectors.base import BusyInterval, FreeBusyReadable, WindowReadable
from connectors.memory import MemoryCalendar
from syncd.model import Projection, When

T0 = datetime(2026, 12, 8, tzinfo=UTC)


def at(hour: float) -> datetime:
    return T0 + timedelta(hours=hour)


def test_memory_free_busy_counts_busy_events_and_all_day_ones_in_their_zone() -> None:
    cal = MemoryCalendar()
    assert isinstance(cal, FreeBusyReadable) and isinstance(cal, WindowReadable)
    cal.user_create("a", Projection("Call", When(at(9), at(10)), busy=True))
    cal.user_create("b", Projection("Reading", When(at(11), at(12)), busy=False))
    cal.user_create("c", Projection("Offsite", When(date(2026, 12, 9), date(2026, 12, 10),
                                                    "Europe/Oslo"), busy=True))
    cal.user_create("d", Projection("Before", When(at(-2), at(0)), busy=True))
    cal.user_create("gone", Projection("Gone", When(at(13), at(14)), busy=True))
    cal.user_delete("gone")
    oslo_midnight = datetime(2026, 12, 8, 23, tzinfo=UTC)
    assert cal.busy_between(at(0), at(48)) == [
        BusyInterval(at(9), at(10)),
        BusyInterval(oslo_midnight, oslo_midnight + timedelta(days=1))]
    assert [e.event_id for e in cal.events_between(at(0), at(24))] == ["a", "b", "c"]
