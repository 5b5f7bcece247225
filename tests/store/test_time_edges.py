"""Due dates inside the documented range, and the instant of a due time kept across DST.

The range (syncd.model.FIRST_DAY to LAST_DAY, durations up to MAX_SPAN) is the store's
own check, so every writer (the CLI, the import, the engine) gets the same InvalidInput.
A due time in the hour repeated when clocks go back keeps which occurrence it is (the
``due_fold`` column); one in the hour skipped in spring is read forward (wall_time).
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from syncd.crm.builtin.activities import ActivityStore
from syncd.crm.builtin.views import ActivityFilter
from syncd.errors import InvalidInput
from syncd.model import (
    FIRST_DAY,
    LAST_DAY,
    MAX_DURATION_MINUTES,
    When,
    activity_when,
    when_to_activity_fields,
)
from tests.test_time_edges import ALL_TRANSITIONS, ZONES, activity

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
FALL_BACK = date(2027, 10, 31)  # Europe/Oslo: 03:00 CEST -> 02:00 CET
SPRING_FORWARD = date(2027, 3, 28)  # Europe/Oslo: 02:00 CET -> 03:00 CEST


@pytest.fixture
def oslo(store: ActivityStore) -> int:
    return store.add_user("ann@example.com", "Ann", "Europe/Oslo")


@pytest.mark.parametrize("due", [date(9999, 12, 31), date(1, 1, 1), date(1899, 12, 31),
                                 date(2200, 1, 1)])
def test_a_due_date_outside_the_range_is_refused_on_add_edit_and_bulk_add(
        store: ActivityStore, oslo: int, due: date) -> None:
    with pytest.raises(InvalidInput) as caught:
        store.add_activity(owner_id=oslo, subject="Far", due_date=due, now=NOW)
    assert caught.value.field == "due_date" and "1900-01-01 and 2199-12-31" in caught.value.reason
    activity_id = store.add_activity(owner_id=oslo, subject="Near", due_date=date(2027, 1, 1),
                                     now=NOW).id
    with pytest.raises(InvalidInput):
        store.edit_activity(activity_id, due_date=due, now=NOW)
    with pytest.raises(InvalidInput):
        store.add_activities([{"owner_id": oslo, "subject": "ok", "due_date": date(2027, 1, 1)},
                              {"owner_id": oslo, "subject": "far", "due_date": due}], now=NOW)
    assert [a.subject for a in store.list_activities(ActivityFilter())] == ["Near"]


def test_the_edges_of_the_range_are_accepted_and_project_without_overflow(
        store: ActivityStore, oslo: int) -> None:
    for due in (FIRST_DAY, LAST_DAY):
        for due_time in (None, time(0, 0), time(23, 59)):
            activity = store.add_activity(owner_id=oslo, subject="Edge", due_date=due,
                                          due_time=due_time,
                                          duration_minutes=MAX_DURATION_MINUTES, now=NOW)
            when = activity_when(store.get(activity.id))
            assert when is not None
    with pytest.raises(InvalidInput) as caught:
        store.add_activity(owner_id=oslo, subject="Long", due_date=LAST_DAY,
                           duration_minutes=MAX_DURATION_MINUTES + 1, now=NOW)
    assert caught.value.field == "duration_minutes"


def test_the_second_0230_of_the_night_clocks_go_back_is_kept_and_lasts_its_minutes(
        store: ActivityStore, oslo: int) -> None:
    first = store.add_activity(owner_id=oslo, subject="First", due_date=FALL_BACK,
                               due_time=time(2, 30), duration_minutes=60, now=NOW).id
    second = store.add_activity(owner_id=oslo, subject="Second", due_date=FALL_BACK,
                                due_time=time(2, 30, fold=1), duration_minutes=60, now=NOW).id
    a, b = store.get(first), store.get(second)
    assert (a.due_time, b.due_time) == (time(2, 30), time(2, 30))
    assert (a.due_time.fold, b.due_time.fold) == (0, 1)  # type: ignore[union-attr]
    when_a, when_b = activity_when(a), activity_when(b)
    assert when_a is not None and when_b is not None
    assert when_a.start == datetime(2027, 10, 31, 0, 30, tzinfo=UTC)
    assert when_b.start == datetime(2027, 10, 31, 1, 30, tzinfo=UTC)
    assert when_a.end - when_a.start == timedelta(minutes=60)  # type: ignore[operator]
    # Agenda order is the order they happen in.
    assert [x.subject for x in store.list_activities(ActivityFilter())] == ["First", "Second"]


def test_an_edit_changing_only_the_fold_is_an_edit_and_a_new_day_settles_it(
        store: ActivityStore, oslo: int) -> None:
    activity_id = store.add_activity(owner_id=oslo, subject="Call", due_date=FALL_BACK,
                                     due_time=time(2, 30), now=NOW).id
    edited = store.edit_activity(activity_id, due_time=time(2, 30, fold=1), now=NOW)
    assert edited.due_time is not None and edited.due_time.fold == 1
    # 02:30 happens once on the next day: the fold means nothing there and is dropped.
    moved = store.edit_activity(activity_id, due_date=FALL_BACK + timedelta(days=1), now=NOW)
    assert moved.due_time is not None and moved.due_time.fold == 0


def test_a_fold_on_a_time_that_happens_once_is_dropped(store: ActivityStore, oslo: int) -> None:
    for day in (date(2027, 6, 1), SPRING_FORWARD):
        activity_id = store.add_activity(owner_id=oslo, subject="x", due_date=day,
                                         due_time=time(2, 30, fold=1), now=NOW).id
        assert store.get(activity_id).due_time.fold == 0  # type: ignore[union-attr]


def test_a_time_in_the_skipped_hour_is_read_forward_by_the_gap(
        store: ActivityStore, oslo: int) -> None:
    activity_id = store.add_activity(owner_id=oslo, subject="Gap", due_date=SPRING_FORWARD,
                                     due_time=time(2, 30), duration_minutes=30, now=NOW).id
    when = activity_when(store.get(activity_id))
    assert when is not None
    assert when.local_start().replace(tzinfo=None) == datetime(2027, 3, 28, 3, 30)
    assert when.end - when.start == timedelta(minutes=30)  # type: ignore[operator]


def test_reassigning_keeps_the_instant_of_a_second_occurrence(store: ActivityStore,
                                                               oslo: int) -> None:
    utc_user = store.add_user("bob@example.com", "Bob", "UTC")
    activity_id = store.add_activity(owner_id=oslo, subject="Call", due_date=FALL_BACK,
                                     due_time=time(2, 30, fold=1), now=NOW).id
    before = activity_when(store.get(activity_id))
    moved = store.edit_activity(activity_id, owner_id=utc_user, now=NOW)
    assert (moved.due_date, moved.due_time) == (FALL_BACK, time(1, 30))
    back = store.edit_activity(activity_id, owner_id=oslo, now=NOW)
    assert back.due_time is not None and back.due_time.fold == 1
    assert activity_when(back) == before


def test_a_row_from_before_the_range_check_cannot_reach_a_calendar() -> None:
    assert activity_when(activity("Europe/Oslo", date(9999, 12, 31), None, 0)) is None
    assert activity_when(activity("Europe/Oslo", date(9999, 12, 31), time(23, 0), 60)) is None


def test_the_store_keeps_the_instant_of_any_wall_time_near_a_transition(
        store: ActivityStore) -> None:
    """What a user types and what a calendar sends, through the store's columns."""
    owners = {zone: store.add_user(f"u{n}@example.com", zone, zone)
              for n, zone in enumerate(ZONES)}

    @given(st.sampled_from(ALL_TRANSITIONS), st.integers(-180, 180), st.sampled_from((0, 1)),
           st.integers(0, 600))
    def check(transition: tuple[str, datetime], offset: int, fold: int, minutes: int) -> None:
        zone, moment = transition
        wall = (moment.astimezone(ZoneInfo(zone)).replace(tzinfo=None)
                + timedelta(minutes=offset)).replace(fold=fold)
        typed = activity_when(activity(zone, wall.date(), wall.time(), minutes))
        added = store.add_activity(owner_id=owners[zone], subject="x", due_date=wall.date(),
                                   due_time=wall.time(), duration_minutes=minutes, now=NOW)
        assert activity_when(store.get(added.id)) == typed
        # The same instant, as a calendar reports it, an hour later, then back.
        assert typed is not None
        for when in (When(typed.start + timedelta(hours=1),  # type: ignore[operator]
                          typed.end + timedelta(hours=1), zone), typed):  # type: ignore[operator]
            edited = store.edit_activity(added.id, **when_to_activity_fields(when, zone),
                                         now=NOW)
            assert activity_when(edited) == when

    check()
