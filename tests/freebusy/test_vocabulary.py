"""The free/busy vocabulary of connectors.base: what a busy interval may hold."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from connectors.base import BUSY_KINDS, BusyInterval, FreeBusyReadable, WindowReadable

T0 = datetime(2026, 12, 7, 9, tzinfo=UTC)


def test_a_busy_interval_holds_an_aware_span_and_a_kind() -> None:
    interval = BusyInterval(T0, T0 + timedelta(hours=1), "tentative")
    assert interval.kind in BUSY_KINDS
    assert interval.end - interval.start == timedelta(hours=1)


@pytest.mark.parametrize("start, end, kind", [
    (T0.replace(tzinfo=None), T0 + timedelta(hours=1), "busy"),
    (T0, T0, "busy"),
    (T0 + timedelta(hours=1), T0, "busy"),
    (T0, T0 + timedelta(hours=1), "free"),
])
def test_an_empty_naive_or_free_interval_is_refused(start: datetime, end: datetime,
                                                     kind: str) -> None:
    with pytest.raises(ValueError):
        BusyInterval(start, end, kind)


def test_the_protocols_are_checkable_at_run_time() -> None:
    class Reader:
        def busy_between(self, start: datetime, end: datetime) -> list[BusyInterval]:
            return []

        def events_between(self, start: datetime, end: datetime) -> list[object]:
            return []

    assert isinstance(Reader(), FreeBusyReadable)
    assert isinstance(Reader(), WindowReadable)
    assert not isinstance(object(), FreeBusyReadable)
