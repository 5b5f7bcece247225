"""The time-zone matrix (T10): instants and all-day dates survive a round trip through Graph.

Each example creates an event through the connector and reads it back twice: once with
Graph answering in UTC (what the connector asks for) and once answering in the zone's
Windows name, as a server may. Wall-clock answers cannot say which of two repeated local
times they mean (Graph sends no offset); that is why the connector asks for UTC, and why
the Windows-named read skips the instants inside a DST fold.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import assume, example, given
from hypothesis import strategies as st

from connectors.base import CreateOp
from connectors.outlook import OutlookCalendar
from syncd.config import AccountConfig
from syncd.model import Projection, When
from syncd_testkit.emulators.graph import GraphEmulator
from tests.outlook.conftest import ALICE, WINDOW, Context

ZONES = {
    "Australia/Lord_Howe": "Lord Howe Standard Time",
    "Asia/Kolkata": "India Standard Time",
    "America/St_Johns": "Newfoundland Standard Time",
    "Pacific/Kiritimati": "Line Islands Standard Time",
    "Europe/Oslo": "W. Europe Standard Time",
    "America/New_York": "Eastern Standard Time",
}
EPOCH = datetime(2025, 1, 1, tzinfo=UTC)
MINUTES = 3 * 365 * 24 * 60  # 2025-2027, across every DST change of those years


class StaticTokens:
    def token(self) -> str:
        return "test-token"

    def invalidate(self) -> None:
        return None


@pytest.fixture(scope="module")
def graph() -> Iterator[GraphEmulator]:
    with GraphEmulator() as emulator:
        emulator.add_mailbox(ALICE)
        yield emulator


def _connector(graph: GraphEmulator, response_zone: str = "UTC") -> OutlookCalendar:
    account = AccountConfig(name="tz", provider="outlook", owner=ALICE,
                            auth={"graph_url": graph.base_url, "user": ALICE})
    return OutlookCalendar(account, Context("Europe/Oslo", WINDOW), tokens=StaticTokens(),
                           response_zone=response_zone)


def _round_trip(graph: GraphEmulator, projection: Projection, zone: str) -> tuple[When, When]:
    [result] = _connector(graph).write([CreateOp("k", uuid.uuid4().hex, 0, projection)])
    assert result.error is None and result.event is not None
    in_utc = _connector(graph).get(result.event.event_id)
    windows = _connector(graph, ZONES[zone]).get(result.event.event_id)
    assert in_utc is not None and in_utc.projection is not None
    assert windows is not None and windows.projection is not None, windows
    return in_utc.projection.when, windows.projection.when


def _ambiguous(instant: datetime, zone: str) -> bool:
    """Whether the instant's wall time occurs twice (a naive time keeps ``fold``: reset it)."""
    local = instant.astimezone(ZoneInfo(zone)).replace(tzinfo=None, fold=0)
    return local.replace(tzinfo=ZoneInfo(zone)).utcoffset() != \
        local.replace(tzinfo=ZoneInfo(zone), fold=1).utcoffset()


def _transitions(zone: str) -> list[datetime]:
    """The zone's UTC-offset changes in 2025-2027, found hour by hour."""
    tz, found = ZoneInfo(zone), []
    previous = EPOCH.astimezone(tz).utcoffset()
    for hour in range(1, MINUTES // 60):
        instant = EPOCH + timedelta(hours=hour)
        offset = instant.astimezone(tz).utcoffset()
        if offset != previous:
            found.append(instant)
            previous = offset
    return found


TRANSITIONS = {zone: _transitions(zone) for zone in ZONES}


@st.composite
def instants(draw: st.DrawFn) -> tuple[str, datetime]:
    """A zone and an instant; half of them within two hours of a DST change (folds, gaps)."""
    zone = draw(st.sampled_from(sorted(ZONES)))
    if TRANSITIONS[zone] and draw(st.booleans()):
        change = draw(st.sampled_from(TRANSITIONS[zone]))
        return zone, change + timedelta(minutes=draw(st.integers(-120, 120)))
    return zone, EPOCH + timedelta(minutes=draw(st.integers(0, MINUTES)))


def test_the_matrix_covers_half_hour_dst_and_zones_without_dst() -> None:
    assert len(TRANSITIONS["Australia/Lord_Howe"]) == 6  # 30-minute shifts, twice a year
    assert TRANSITIONS["Asia/Kolkata"] == TRANSITIONS["Pacific/Kiritimati"] == []


@given(point=instants(), duration=st.integers(1, 600))
# Found by the matrix: an end inside the repeated hour, answered in wall-clock time.
@example(point=("America/New_York", datetime(2025, 11, 2, 5, 59, tzinfo=UTC)), duration=1)
# Lord Howe repeats half an hour: 01:45 (+11:00) to 01:40 (+10:30) lasts 25 minutes.
@example(point=("Australia/Lord_Howe", datetime(2025, 4, 5, 14, 45, tzinfo=UTC)), duration=25)
def test_timed_instants_survive_a_round_trip(graph: GraphEmulator, point: tuple[str, datetime],
                                             duration: int) -> None:
    zone, start = point
    end = start + timedelta(minutes=duration)
    when = When(start, end, zone)
    in_utc, windows = _round_trip(graph, Projection(title="tz", when=when), zone)
    assert in_utc == when
    assume(not _ambiguous(start, ZONES_IANA[zone]) and not _ambiguous(end, ZONES_IANA[zone]))
    assert windows == when


@given(zone=st.sampled_from(sorted(ZONES)),
       day=st.dates(min_value=date(2025, 1, 1), max_value=date(2027, 12, 31)),
       days=st.integers(1, 3))
def test_all_day_dates_never_shift(graph: GraphEmulator, zone: str, day: date,
                                   days: int) -> None:
    when = When(day, day + timedelta(days=days), zone)
    in_utc, windows = _round_trip(graph, Projection(title="all day", when=when, busy=True),
                                  zone)
    assert (in_utc.start, in_utc.end) == (windows.start, windows.end) == (when.start, when.end)
    assert in_utc.all_day and windows.all_day


# The zone the Windows name stands for (CLDR's golden zone), for the fold check.
ZONES_IANA = {zone: {"W. Europe Standard Time": "Europe/Berlin",
                     "India Standard Time": "Asia/Calcutta"}.get(name, zone)
              for zone, name in ZONES.items()}
