"""Hostile free/busy answers: every reader is bounded, sets a broken item aside with its
reason, and never reports busy time as free because an answer was cut short.

CalDAV replies come from the corpus (``ics_corpus.FREE_BUSY_CORPUS``), read directly and
served over HTTP by the misbehaving responder; Google freeBusy and Graph getSchedule
answers are mapped directly (their transport is the JSON reader the other hostile suites
cover).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from connectors.base import BusyInterval
from connectors.busy import MAX_ITEMS, BusyTally
from connectors.caldav import CalDAVCalendar
from connectors.caldav_busy import NoFreeBusy, read_vfreebusy
from connectors.google_map import read_free_busy
from connectors.outlook_map import read_schedule
from syncd.config import AccountConfig
from syncd.errors import CalendarMissing, Transient
from syncd_testkit.dav_responder import MisbehavingDav
from syncd_testkit.ics_corpus import CORPUS, FREE_BUSY_CORPUS, HostileFreeBusy

DAY = datetime(2026, 12, 8, tzinfo=UTC)
OWNER = "owner@example.com"
log = logging.getLogger("test")


def at(hour: float) -> datetime:
    return DAY + timedelta(hours=hour)


@pytest.mark.parametrize("item", FREE_BUSY_CORPUS, ids=lambda i: i.name)
def test_each_free_busy_reply_is_read_or_refused_as_a_whole(item: HostileFreeBusy) -> None:
    tally = BusyTally("corpus")
    if item.refused is not None:
        with pytest.raises((NoFreeBusy, Transient), match=item.refused):
            read_vfreebusy(item.data, tally)
        return
    read_vfreebusy(item.data, tally)
    assert (len(tally.result(log)), tally.skipped) == (item.busy, item.skipped)


@pytest.fixture
def responder() -> Iterator[MisbehavingDav]:
    server = MisbehavingDav().start()
    yield server
    server.stop()


def connector(responder: MisbehavingDav) -> CalDAVCalendar:
    account = AccountConfig(name="hostile", provider="caldav", owner=OWNER,
                            calendar=responder.url, auth={"url": responder.url})
    return CalDAVCalendar(account, owner_tz="Europe/Oslo")


def event(name: str, start: str, end: str, *extra: str) -> bytes:
    return "\r\n".join(["BEGIN:VCALENDAR", "VERSION:2.0", "PRODID:-//x//EN", "BEGIN:VEVENT",
                        f"UID:{name}", "DTSTAMP:20261201T000000Z", f"DTSTART:{start}",
                        f"DTEND:{end}", f"SUMMARY:{name}", *extra, "END:VEVENT",
                        "END:VCALENDAR", ""]).encode()


def test_a_server_without_free_busy_query_is_read_from_its_events_safely(
        responder: MisbehavingDav) -> None:
    responder.put("good.ics", event("good", "20261208T090000Z", "20261208T100000Z"))
    responder.put("later.ics", event("later", "20261220T090000Z", "20261220T100000Z"))
    responder.put("free.ics", event("free", "20261208T110000Z", "20261208T120000Z",
                                    "TRANSP:TRANSPARENT"))
    for hostile in CORPUS[:6]:
        responder.put(f"{hostile.name}.ics", hostile.data)
    responder.outside = ["/other/steal.ics", "http://evil.example/cal/x.ics", "/cal/a/b.ics"]
    conn = connector(responder)
    busy = conn.busy_between(at(0), at(24))
    # The corpus's events are at 2026-12-10 (outside the span) or unreadable: only the
    # good event is busy; the one the server sent although it is outside is dropped.
    assert busy == [BusyInterval(at(9), at(10))]
    reports = [r for r in responder.requests if r[0] == "REPORT"]
    assert len(reports) == 2  # the refused free-busy-query, then the calendar-query
    conn.busy_between(at(0), at(24))
    assert len([r for r in responder.requests if r[0] == "REPORT"]) == 3  # not asked again
    assert not [r for r in responder.requests if r[0] == "GET"]  # no href followed


@pytest.mark.parametrize("item", FREE_BUSY_CORPUS, ids=lambda i: i.name)
def test_each_free_busy_reply_over_http(responder: MisbehavingDav,
                                        item: HostileFreeBusy) -> None:
    responder.free_busy = item.data
    responder.put("good.ics", event("good", "20261208T090000Z", "20261208T100000Z"))
    conn = connector(responder)
    if item.refused and "no VFREEBUSY" not in item.refused:
        with pytest.raises(Transient):
            conn.busy_between(at(0), at(24))
        return
    busy = conn.busy_between(at(0), at(24))
    assert len(busy) == (1 if item.refused else item.busy)


def test_a_free_busy_reply_over_its_byte_cap_is_refused(responder: MisbehavingDav) -> None:
    responder.free_busy = b"BEGIN:VFREEBUSY\r\n" + b"X-FILL:" + b"x" * (5 * 1024 * 1024)
    with pytest.raises(Transient, match="too large"):
        connector(responder).busy_between(at(0), at(24))


# --- Google freeBusy and Graph getSchedule answers ---------------------------------------


GOOGLE_CASES: list[tuple[str, Any, int, int]] = [
    ("good", {"busy": [{"start": "2026-12-08T09:00:00Z", "end": "2026-12-08T10:00:00Z"}]},
     1, 0),
    ("offsets", {"busy": [{"start": "2026-12-08T10:00:00+01:00",
                           "end": "2026-12-08T11:00:00+01:00"}]}, 1, 0),
    ("junk-blocks", {"busy": [None, 7, "x", [], {"start": "2026-12-08T09:00:00Z"},
                              {"start": "yesterday", "end": "today"},
                              {"start": "2026-12-08T09:00:00", "end": "2026-12-08T10:00:00"},
                              {"start": "2026-12-08T10:00:00Z", "end": "2026-12-08T09:00:00Z"},
                              {"start": "9" * 10_000, "end": {"x": 1}},
                              {"start": "2026-12-08T09:00:00Z",
                               "end": "2026-12-08T10:00:00Z"}]}, 1, 9),
]


@pytest.mark.parametrize("name, entry, busy, skipped", GOOGLE_CASES,
                         ids=[c[0] for c in GOOGLE_CASES])
def test_google_free_busy_blocks_are_read_or_skipped(name: str, entry: Any, busy: int,
                                                     skipped: int) -> None:
    tally = BusyTally("google")
    read_free_busy({"calendars": {"primary": entry}}, "primary", tally)
    assert (len(tally.result(log)), tally.skipped) == (busy, skipped)


@pytest.mark.parametrize("answer", [
    None, [], "x", {"calendars": []}, {"calendars": {"other": {"busy": []}}},
    {"calendars": {"primary": {"busy": "all day"}}},
    {"calendars": {"primary": {"errors": [{"reason": "backendError"}], "busy": []}}},
    {"calendars": {"primary": {"errors": "yes"}}},
    {"calendars": {"primary": {"busy": [{"start": "2026-12-08T09:00:00Z",
                                         "end": "2026-12-08T10:00:00Z"}] * (MAX_ITEMS + 1)}}},
])
def test_a_google_answer_that_says_nothing_of_the_calendar_is_never_free_time(
        answer: Any) -> None:
    with pytest.raises(Transient):
        read_free_busy(answer, "primary", BusyTally("google"))


def test_a_google_not_found_calendar_is_missing() -> None:
    with pytest.raises(CalendarMissing):
        read_free_busy({"calendars": {"primary": {"errors": [
            {"domain": "global", "reason": "notFound"}], "busy": []}}},
            "primary", BusyTally("google"))


def _item(status: Any, start: Any = "2026-12-08T09:00:00.0000000",
          end: Any = "2026-12-08T10:00:00.0000000", zone: Any = "UTC") -> Any:
    return {"status": status, "start": {"dateTime": start, "timeZone": zone},
            "end": {"dateTime": end, "timeZone": zone}}


GRAPH_CASES: list[tuple[str, list[Any], list[str], int]] = [
    ("kinds", [_item("busy"), _item("tentative"), _item("oof"), _item("workingElsewhere"),
               _item("unknown"), _item("free")],
     ["busy", "tentative", "oof", "elsewhere", "busy"], 0),
    ("windows-zone", [_item("busy", zone="W. Europe Standard Time")], ["busy"], 0),
    ("junk", [None, 3, [], _item("sleeping"), _item(None), _item("busy", start="noon"),
              _item("busy", zone="Mars/Olympus"), _item("busy", start={"x": 1}),
              _item("busy", start="2026-12-08T10:00:00", end="2026-12-08T09:00:00"),
              _item("busy", start="9999-12-31T23:59:59", end="9999-12-31T23:59:59",
                    zone="Pacific/Kiritimati"),
              {"status": "busy"}, _item("busy")], ["busy"], 11),
]


@pytest.mark.parametrize("name, items, kinds, skipped", GRAPH_CASES,
                         ids=[c[0] for c in GRAPH_CASES])
def test_graph_schedule_items_are_read_or_skipped(name: str, items: list[Any],
                                                  kinds: list[str], skipped: int) -> None:
    tally = BusyTally("graph")
    read_schedule({"value": [{"scheduleId": OWNER.upper(), "scheduleItems": items}]}, OWNER,
                  tally)
    assert sorted(b.kind for b in tally.result(log)) == sorted(kinds)
    assert tally.skipped == skipped


@pytest.mark.parametrize("answer", [
    None, {"value": "x"}, {"value": [None, {"scheduleId": "other@example.com"}]},
    {"value": [{"scheduleId": OWNER, "scheduleItems": {"a": 1}}]},
    {"value": [{"scheduleId": OWNER, "error": "nope"}]},
    {"value": [{"scheduleId": OWNER, "scheduleItems": [_item("busy")] * (MAX_ITEMS + 1)}]},
])
def test_a_graph_answer_that_says_nothing_of_the_mailbox_is_never_free_time(
        answer: Any) -> None:
    with pytest.raises(Transient):
        read_schedule(answer, OWNER, BusyTally("graph"))
