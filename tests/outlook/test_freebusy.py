"""Free/busy and window listings of an Outlook calendar through the Graph emulator and
real HTTP: getSchedule for busy time, calendarView for the agenda."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from connectors import outlook
from connectors.base import BusyInterval
from connectors.busy import BusyTally
from connectors.outlook import OutlookCalendar
from connectors.outlook_map import read_schedule
from syncd.errors import Transient
from tests.freebusy.checks import check_weekly_meeting_across_the_clock_change
from tests.outlook.conftest import ALICE, Env

DAY = datetime(2026, 12, 8, tzinfo=UTC)  # a Tuesday


@pytest.fixture
def conn(env: Env) -> Iterator[OutlookCalendar]:
    c = env.connector(env.account())
    yield c
    c.close()


def at(hour: float, day: datetime = DAY) -> datetime:
    return day + timedelta(hours=hour)


def put(env: Env, title: str, start: datetime, end: datetime, **extra: Any) -> str:
    event = {"subject": title,
             "start": {"dateTime": start.replace(tzinfo=None).isoformat(), "timeZone": "UTC"},
             "end": {"dateTime": end.replace(tzinfo=None).isoformat(), "timeZone": "UTC"},
             **extra}
    return str(env.graph.create_event_as_user(ALICE, event)["id"])


def schedule_posts(env: Env) -> list[Any]:
    return [r for r in env.graph.requests if r.path.endswith("/getSchedule")]


def test_a_busy_event_is_busy_and_a_free_one_is_not(env: Env, conn: OutlookCalendar) -> None:
    put(env, "Call", at(9), at(10))
    put(env, "Reading", at(11), at(12), showAs="free")
    assert conn.busy_between(at(0), at(24)) == [BusyInterval(at(9), at(10), "busy")]
    assert len(schedule_posts(env)) == 1  # one request for one calendar


def test_tentative_out_of_office_and_elsewhere_keep_their_kinds(
        env: Env, conn: OutlookCalendar) -> None:
    put(env, "Maybe", at(9), at(10), showAs="tentative")
    put(env, "Away", at(13), at(14), showAs="oof")
    put(env, "Home office", at(15), at(16), showAs="workingElsewhere")
    assert [(b.start, b.kind) for b in conn.busy_between(at(0), at(24))] == [
        (at(9), "tentative"), (at(13), "oof"), (at(15), "elsewhere")]


def test_an_answer_in_another_zone_means_the_same_instants(env: Env) -> None:
    put(env, "Call", at(9), at(10))
    conn = env.connector(env.account(), response_zone="W. Europe Standard Time")
    assert conn.busy_between(at(0), at(24)) == [BusyInterval(at(9), at(10))]
    [view] = conn.events_between(at(0), at(24))
    assert view.projection is not None and view.projection.when.start == at(9)


def test_an_all_day_event_is_busy_for_its_whole_day(env: Env, conn: OutlookCalendar) -> None:
    env.graph.create_event_as_user(ALICE, {
        "subject": "Offsite", "isAllDay": True,
        "start": {"dateTime": "2026-12-09T00:00:00", "timeZone": "UTC"},
        "end": {"dateTime": "2026-12-10T00:00:00", "timeZone": "UTC"}})
    assert conn.busy_between(at(0), at(72)) == [BusyInterval(at(24), at(48))]


def test_a_recurring_event_is_busy_at_each_occurrence_in_range(
        env: Env, conn: OutlookCalendar) -> None:
    put(env, "Standup", at(9), at(9.25), recurrence={
        "pattern": {"type": "daily", "interval": 1},
        "range": {"type": "numbered", "startDate": "2026-12-08", "numberOfOccurrences": 10}})
    busy = conn.busy_between(at(0, DAY + timedelta(days=2)), at(0, DAY + timedelta(days=4)))
    assert [(b.start, b.end) for b in busy] == [
        (at(9, DAY + timedelta(days=d)), at(9.25, DAY + timedelta(days=d))) for d in (2, 3)]


def test_busy_time_at_the_edges_of_the_span(env: Env, conn: OutlookCalendar) -> None:
    put(env, "Overnight", at(-1), at(1))
    put(env, "Ends as we start", at(-2), at(0))
    put(env, "Starts as we end", at(6), at(7))
    assert conn.busy_between(at(0), at(6)) == [BusyInterval(at(-1), at(1))]


def test_a_span_over_62_days_is_asked_in_pieces(env: Env, conn: OutlookCalendar) -> None:
    put(env, "Early", at(9), at(10))
    put(env, "Late", at(9, DAY + timedelta(days=100)), at(10, DAY + timedelta(days=100)))
    busy = conn.busy_between(at(0), at(0, DAY + timedelta(days=130)))
    assert [b.start for b in busy] == [at(9), at(9, DAY + timedelta(days=100))]
    assert len(schedule_posts(env)) == 3


def test_the_emulator_refuses_a_span_over_62_days_and_an_inverted_one(
        env: Env, conn: OutlookCalendar) -> None:
    def ask(start: str, end: str) -> Any:
        return conn.http.request("POST", f"/users/{ALICE}/calendar/getSchedule", json={
            "schedules": [ALICE], "startTime": {"dateTime": start, "timeZone": "UTC"},
            "endTime": {"dateTime": end, "timeZone": "UTC"}}, idempotent=True)

    too_long = ask("2026-01-01T00:00:00", "2026-03-05T00:00:00")
    assert (too_long.status, too_long.code) == (400, "ErrorTimeIntervalTooBig")
    inverted = ask("2026-01-02T00:00:00", "2026-01-01T00:00:00")
    assert inverted.status == 400


def test_a_schedule_answered_with_an_error_is_not_free_time() -> None:
    answer = {"value": [{"scheduleId": ALICE, "scheduleItems": [], "error": {
        "message": "The recipient could not be found.",
        "responseCode": "ErrorMailRecipientNotFound"}}]}
    with pytest.raises(Transient, match="ErrorMailRecipientNotFound"):
        read_schedule(answer, ALICE, BusyTally("test"))
    with pytest.raises(Transient):
        read_schedule({"value": []}, ALICE, BusyTally("test"))


def test_the_emulator_answers_an_unknown_address_in_its_own_schedule(
        env: Env, conn: OutlookCalendar) -> None:
    reply = conn.http.request("POST", f"/users/{ALICE}/calendar/getSchedule", json={
        "schedules": [ALICE, "nobody@contoso.test"],
        "startTime": {"dateTime": "2026-12-08T00:00:00", "timeZone": "UTC"},
        "endTime": {"dateTime": "2026-12-09T00:00:00", "timeZone": "UTC"},
        "availabilityViewInterval": 60}, idempotent=True)
    mine, unknown = reply.body["value"]
    assert mine["availabilityView"] == "0" * 24 and "error" not in mine
    assert unknown["error"]["responseCode"] == "ErrorMailRecipientNotFound"


def test_the_agenda_lists_occurrences_not_series_masters(env: Env,
                                                         conn: OutlookCalendar) -> None:
    put(env, "Call", at(9), at(10))
    put(env, "Reading", at(11), at(12), showAs="free")
    put(env, "Standup", at(8), at(8.25), recurrence={
        "pattern": {"type": "weekly", "interval": 1, "daysOfWeek": ["tuesday", "wednesday"]},
        "range": {"type": "noEnd", "startDate": "2026-12-01"}})
    put(env, "Tomorrow", at(32), at(33))
    events = conn.events_between(at(0), at(24))
    assert [(e.projection.title, e.projection.busy, e.recurring)
            for e in events if e.projection] == [
        ("Standup", True, True), ("Call", True, False), ("Reading", False, False)]
    week = conn.events_between(at(0), at(0, DAY + timedelta(days=7)))
    assert sum(1 for e in week if e.projection and e.projection.title == "Standup") == 2


def test_the_agenda_follows_every_next_link(env: Env, conn: OutlookCalendar,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    for i in range(5):
        put(env, f"E{i}", at(9 + i), at(9.5 + i))
    monkeypatch.setattr(outlook, "PAGE_SIZE", 2)
    before = len(env.graph.requests)
    events = conn.events_between(at(0), at(24))
    assert [e.projection.title for e in events if e.projection] == [f"E{i}" for i in range(5)]
    views = [r for r in env.graph.requests[before:] if "calendarview" in r.path.lower()]
    assert len(views) == 3


def test_free_busy_and_the_agenda_send_no_write(env: Env, conn: OutlookCalendar) -> None:
    put(env, "Call", at(9), at(10))
    before = len(env.graph.requests)
    conn.events_between(at(0), at(24))
    conn.busy_between(at(0), at(24))
    sent = env.graph.requests[before:]
    assert [r.path for r in sent if r.method != "GET"] == [
        f"/users/{ALICE}/calendar/getSchedule"]


def test_a_weekly_meeting_keeps_its_wall_time_across_the_clock_change(
        env: Env, conn: OutlookCalendar) -> None:
    env.graph.create_event_as_user(ALICE, {
        "subject": "Weekly", "recurrence": {
            "pattern": {"type": "weekly", "interval": 1, "daysOfWeek": ["tuesday"]},
            "range": {"type": "noEnd", "startDate": "2026-10-20"}},
        "start": {"dateTime": "2026-10-20T09:00:00", "timeZone": "W. Europe Standard Time"},
        "end": {"dateTime": "2026-10-20T10:00:00", "timeZone": "W. Europe Standard Time"}})
    check_weekly_meeting_across_the_clock_change(conn)



def test_busy_time_from_the_events_where_get_schedule_is_refused(
        env: Env, conn: OutlookCalendar) -> None:
    env.graph.schedule_refused = True  # a personal Microsoft account
    put(env, "Call", at(9), at(10))
    put(env, "Reading", at(11), at(12), showAs="free")
    put(env, "Maybe", at(13), at(14), showAs="tentative")
    put(env, "Standup", at(8), at(8.25), recurrence={
        "pattern": {"type": "daily", "interval": 1},
        "range": {"type": "numbered", "startDate": "2026-12-07", "numberOfOccurrences": 3}})
    env.graph.create_event_as_user(ALICE, {
        "subject": "Offsite", "isAllDay": True,
        "start": {"dateTime": "2026-12-09T00:00:00", "timeZone": "UTC"},
        "end": {"dateTime": "2026-12-10T00:00:00", "timeZone": "UTC"}})
    before = len(env.graph.requests)
    busy = conn.busy_between(at(0), at(48))
    assert busy == [BusyInterval(at(8), at(8.25)), BusyInterval(at(9), at(10)),
                    BusyInterval(at(13), at(14), "tentative"), BusyInterval(at(24), at(48)),
                    BusyInterval(at(32), at(32.25))]
    first = [r.path for r in env.graph.requests[before:]]
    assert first[0].endswith("/getSchedule") and "calendarView" in first[1]
    before = len(env.graph.requests)
    conn.busy_between(at(0), at(48))
    assert not any(r.path.endswith("/getSchedule") for r in env.graph.requests[before:])


def test_a_schedule_graph_cannot_resolve_is_read_from_the_events(
        env: Env, conn: OutlookCalendar) -> None:
    put(env, "Call", at(9), at(10))
    put(env, "Reading", at(11), at(12), showAs="free")
    conn.mailbox = "0f3a9c1d-user-id"  # a user id where getSchedule wants an SMTP address
    before = len(env.graph.requests)
    assert conn.busy_between(at(0), at(24)) == [BusyInterval(at(9), at(10))]
    sent = [r.path for r in env.graph.requests[before:]]
    assert sent[0].endswith("/getSchedule") and "calendarView" in sent[1] and len(sent) == 2
