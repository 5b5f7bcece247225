"""Fuzzing the free/busy readers: whatever an answer holds, they return intervals (each
aware, non-empty, of a known kind) or refuse the answer with a connector error; they never
crash and never return more than their bound."""

from __future__ import annotations

import logging
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from connectors.base import BUSY_KINDS
from connectors.busy import MAX_ITEMS, BusyTally
from connectors.caldav_busy import NoFreeBusy, read_vfreebusy
from connectors.google_map import read_free_busy
from connectors.outlook_map import busy_of_event, read_schedule
from syncd.errors import ConnectorError

FUZZ = settings(suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
log = logging.getLogger("fuzz")

STAMPS = st.sampled_from(["20261208T090000Z", "20261208T100000Z", "20261208T090000",
                          "20261208", "P1D", "PT90M", "-PT1H", "99991231T235959Z",
                          "00010101T000000Z", ""]) | st.text(max_size=20)
PERIODS = st.builds(lambda a, b, sep: f"{a}{sep}{b}", STAMPS, STAMPS,
                    st.sampled_from(["/", "//", "", ","]))
LINES = st.one_of(
    st.builds(lambda fb, ps: f"FREEBUSY{fb}:{','.join(ps)}",
              st.sampled_from(["", ";FBTYPE=BUSY", ";FBTYPE=FREE", ";FBTYPE=BUSY-TENTATIVE",
                               ";FBTYPE=X-Y", ';X="a:b"', ";FBTYPE"]),
              st.lists(PERIODS, max_size=4)),
    st.sampled_from(["BEGIN:VFREEBUSY", "END:VFREEBUSY", "BEGIN:VCALENDAR", " folded",
                     "\tfolded", ""]),
    st.text(max_size=40),
)
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=30)
    | st.sampled_from(["2026-12-08T09:00:00Z", "2026-12-08T10:00:00+01:00",
                       "2026-12-08T09:00:00.0000000", "busy", "tentative", "oof", "free",
                       "UTC", "W. Europe Standard Time", "owner@example.com"]),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(
        st.sampled_from(["busy", "start", "end", "errors", "reason", "calendars", "primary",
                         "value", "scheduleId", "scheduleItems", "status", "dateTime",
                         "timeZone", "error"]), inner, max_size=5),
    max_leaves=30)


def check(tally: BusyTally) -> None:
    intervals = tally.result(log)
    assert len(intervals) <= MAX_ITEMS
    for interval in intervals:
        assert interval.start < interval.end and interval.kind in BUSY_KINDS
        assert interval.start.tzinfo is not None


@FUZZ
@given(st.lists(LINES, max_size=30))
def test_fuzz_vfreebusy_reader_reads_or_refuses(lines: list[str]) -> None:
    tally = BusyTally("fuzz")
    try:
        read_vfreebusy("\r\n".join(lines).encode("utf-8", "surrogatepass"), tally)
    except (NoFreeBusy, ConnectorError):
        return
    check(tally)


@FUZZ
@given(JSON, st.sampled_from(["primary", "owner@example.com"]))
def test_fuzz_google_free_busy_reader_reads_or_refuses(answer: Any, calendar: str) -> None:
    tally = BusyTally("fuzz")
    try:
        read_free_busy({"calendars": {calendar: answer}} if isinstance(answer, dict)
                       else answer, calendar, tally)
    except ConnectorError:
        return
    check(tally)


@FUZZ
@given(JSON)
def test_fuzz_graph_schedule_reader_reads_or_refuses(items: Any) -> None:
    tally = BusyTally("fuzz")
    try:
        read_schedule({"value": [{"scheduleId": "owner@example.com", "scheduleItems": items}]},
                      "owner@example.com", tally)
    except ConnectorError:
        return
    check(tally)


@FUZZ
@given(st.dictionaries(st.sampled_from(["showAs", "isCancelled", "isAllDay", "start", "end",
                                        "originalStartTimeZone"]), JSON, max_size=6))
def test_fuzz_graph_event_busy_reader_reads_or_skips(event: dict[str, Any]) -> None:
    tally = BusyTally("fuzz")
    busy_of_event(event, "Europe/Oslo", tally)
    check(tally)
    assert len(tally.intervals) + tally.skipped <= 1
