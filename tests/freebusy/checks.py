"""Checks every provider's free/busy tests share."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from connectors.base import FreeBusyReadable, WindowReadable

#: A Monday in the week Europe leaves summer time (Sunday 25 October 2026).
CLOCK_CHANGE_MONDAY = datetime(2026, 10, 19, tzinfo=UTC)
#: A weekly Tuesday meeting at 09:00-10:00 in Oslo, from 20 October, in those two weeks.
WEEKLY_IN_OSLO = [
    (datetime(2026, 10, 20, 7, tzinfo=UTC), datetime(2026, 10, 20, 8, tzinfo=UTC)),
    (datetime(2026, 10, 27, 8, tzinfo=UTC), datetime(2026, 10, 27, 9, tzinfo=UTC))]


def check_weekly_meeting_across_the_clock_change(conn: object) -> None:
    """``conn``'s calendar holds :data:`WEEKLY_IN_OSLO`'s meeting: both its busy time and
    its agenda show it at 09:00 Oslo time before and after the change."""
    assert isinstance(conn, FreeBusyReadable) and isinstance(conn, WindowReadable)
    end = CLOCK_CHANGE_MONDAY + timedelta(days=14)
    busy = conn.busy_between(CLOCK_CHANGE_MONDAY, end)
    assert [(b.start, b.end) for b in busy] == WEEKLY_IN_OSLO
    events = conn.events_between(CLOCK_CHANGE_MONDAY, end)
    assert [(e.projection.when.start, e.projection.when.end) for e in events
            if e.projection] == WEEKLY_IN_OSLO
