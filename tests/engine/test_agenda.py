"""The agenda as tables: (activities, events, pairs) -> the owner's entries per day."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

from connectors.base import RemoteEvent
from syncd.engine.agenda import CALENDAR, CRM, MAX_CLASHES, SYNCED, AgendaItem, agenda
from syncd.model import Projection, When
from tests.engine.factories import TZ, activity, proj

DAY = date(2026, 12, 10)  # the factories' activities are due then, 09:00-10:00 in Oslo


def ev(event_id: str, start: datetime | date, end: datetime | date, *, busy: bool = True,
       title: str = "", marker: str | None = None, deleted: bool = False) -> RemoteEvent:
    p = None if deleted else Projection(title or event_id, When(start, end, TZ), busy=busy)
    return RemoteEvent(event_id, "e", marker, p, deleted=deleted)


def oslo(hour: int, minute: int = 0, day: date = DAY) -> datetime:
    return datetime.combine(day, time(hour, minute), tzinfo=UTC) - timedelta(hours=1)


def keys(items: list[AgendaItem]) -> list[str]:
    return [i.key for i in items]


def test_a_synced_pair_shows_once_as_the_activity() -> None:
    a = activity(1)
    cal = ev("ev1", oslo(9), oslo(10))
    items = agenda([a], {"work": [cal]}, {("work", "ev1"): 1}, TZ, [DAY])
    assert keys(items) == ["activity:1"]
    assert items[0].source == SYNCED and items[0].calendars == ("work",)


def test_the_marker_pairs_an_event_the_state_does_not_name() -> None:
    a = activity(1)
    cal = RemoteEvent("ev9", "e", a.sync_uid, proj(a))
    items = agenda([a], {"work": [cal]}, {}, TZ, [DAY])
    assert keys(items) == ["activity:1"] and items[0].source == SYNCED


def test_calendar_only_and_crm_only_entries_say_so() -> None:
    items = agenda([activity(1)], {"home": [ev("x", oslo(12), oslo(13))]}, {}, TZ, [DAY])
    assert [(i.key, i.source) for i in items] == [("activity:1", CRM),
                                                  ("event:home:x", CALENDAR)]


def test_two_busy_items_overlapping_are_a_double_booking() -> None:
    a = activity(1, busy=True)
    items = agenda([a], {"home": [ev("x", oslo(9, 30), oslo(11))]}, {}, TZ, [DAY])
    assert {i.key: i.clashes for i in items} == {"activity:1": ("event:home:x",),
                                                 "event:home:x": ("activity:1",)}
    assert all(i.double_booked for i in items)


# (the activity's busy flag, the event's, the event's span) -> whether they clash
CLASHES = [
    (True, True, (oslo(9, 30), oslo(11)), True),
    (False, True, (oslo(9, 30), oslo(11)), False),  # a free activity never clashes
    (True, False, (oslo(9, 30), oslo(11)), False),
    (True, True, (oslo(10), oslo(11)), False),  # touching is not overlapping
    (True, True, (oslo(8), oslo(9)), False),
    (True, True, (DAY, DAY + timedelta(days=1)), True),  # a busy all-day item
    (True, True, (DAY - timedelta(days=1), DAY), False),  # yesterday's all-day item
    (True, True, (oslo(9, 30), oslo(9, 30)), False),  # zero length: no overlap
]


def test_double_bookings_table() -> None:
    for act_busy, ev_busy, (s, e), clash in CLASHES:
        items = agenda([activity(1, busy=act_busy)], {"c": [ev("x", s, e, busy=ev_busy)]},
                       {}, TZ, [DAY])
        got = any(i.double_booked for i in items)
        assert got == clash, (act_busy, ev_busy, s, e)


def test_an_item_over_midnight_is_on_both_days() -> None:
    late = ev("late", oslo(23), oslo(1, day=DAY + timedelta(days=1)))
    items = agenda([], {"c": [late]}, {}, TZ, [DAY, DAY + timedelta(days=1)])
    assert [i.day for i in items] == [DAY, DAY + timedelta(days=1)]
    assert items[0].start == datetime.combine(DAY, time(23), tzinfo=items[0].start.tzinfo)  # type: ignore[arg-type]


def test_days_not_asked_for_are_left_out_and_all_day_comes_first() -> None:
    items = agenda([activity(1), activity(2, due_date=DAY + timedelta(days=3))],
                   {"c": [ev("allday", DAY, DAY + timedelta(days=1), busy=False)]}, {}, TZ,
                   [DAY])
    assert keys(items) == ["event:c:allday", "activity:1"]
    assert items[0].all_day and items[0].start == DAY


def test_deleted_undated_and_unreadable_items_are_left_out() -> None:
    items = agenda([activity(1, deleted=True), activity(2, due_date=None, due_time=None)],
                   {"c": [ev("gone", oslo(9), oslo(10), deleted=True),
                          RemoteEvent("bad", None, None, None, problem="unreadable")]},
                   {}, TZ, [DAY])
    assert items == []


def test_an_event_paired_with_a_deleted_activity_shows_from_the_calendar() -> None:
    items = agenda([activity(1, deleted=True)], {"c": [ev("ev1", oslo(9), oslo(10))]},
                   {("c", "ev1"): 1}, TZ, [DAY])
    assert [(i.key, i.source) for i in items] == [("event:c:ev1", CALENDAR)]


def test_entries_are_in_the_owner_zone_with_the_offset() -> None:
    items = agenda([activity(1)], {}, {}, TZ, [DAY])
    assert isinstance(items[0].start, datetime)
    assert items[0].start.isoformat() == "2026-12-10T09:00:00+01:00"


def test_a_calendar_of_overlapping_invitations_names_a_bounded_number_of_clashes() -> None:
    flood = [ev(f"x{i}", oslo(9), oslo(17)) for i in range(300)]
    items = agenda([], {"c": flood}, {}, TZ, [DAY])
    assert len(items) == 300 and all(i.double_booked for i in items)
    assert max(len(i.clashes) for i in items) == MAX_CLASHES


def test_one_invitation_on_two_calendars_is_one_entry_not_a_double_booking() -> None:
    def copy(event_id: str, start: datetime, busy: bool) -> RemoteEvent:
        p = Projection("Board", When(start, start + timedelta(hours=1), TZ), busy=busy)
        return RemoteEvent(event_id, "e", None, p, ical_uid="board-uid@example.com")

    events = {"work": [copy("w1", oslo(14), True), copy("w2", oslo(14, 30), True)],
              "home": [copy("h1", oslo(14), False)]}
    items = agenda([], events, {}, TZ, [DAY])
    # the two copies at 14:00 are one; the occurrence at 14:30 is another (same UID)
    assert [(i.key, i.calendars, i.busy) for i in items] == [
        ("event:home:h1", ("home", "work"), True), ("event:work:w2", ("work",), True)]
    assert items[0].clashes == ("event:work:w2",)  # not itself: only the other occurrence


def test_a_copy_of_a_synced_meeting_on_another_calendar_joins_the_activity() -> None:
    a = activity(1, busy=True)
    synced = RemoteEvent("ev1", "e", a.sync_uid, proj(a), ical_uid="demo@syncd")
    copy = RemoteEvent("c1", "e", None, proj(a), ical_uid="demo@syncd")
    items = agenda([a], {"work": [synced], "home": [copy]}, {}, TZ, [DAY])
    assert [(i.key, i.calendars, i.double_booked) for i in items] == [
        ("activity:1", ("home", "work"), False)]
