"""The built-in CRM's check-and-book (``ActivityStore.book_slot``) on SQLite and
PostgreSQL: visitors racing for one slot, from separate connections, make one activity.

On PostgreSQL a SELECT then INSERT in READ COMMITTED would let every racer see the slot
free; the store's writer lock (a transaction-scoped advisory lock taken before the
overlap check) is what serialises them, and this test fails without it.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest

from syncd.crm.builtin.activities import ActivityStore
from syncd.crm.builtin.views import ActivityFilter
from syncd.errors import SlotTaken

SLOT = datetime(2026, 12, 8, 9, 0, tzinfo=UTC)
RACERS = 8


def race(store: ActivityStore, owner: int, starts: list[datetime],
         buffer: timedelta = timedelta(0)) -> list[str]:
    """Each start booked at once from its own thread (and connection); the outcomes."""
    outcomes: list[str] = []
    gate = threading.Barrier(len(starts))

    def visitor(n: int, start: datetime) -> None:
        gate.wait()
        try:
            store.book_slot(f"{n:032x}", owner_id=owner, type="meeting", start=start,
                            end=start + timedelta(minutes=30), subject=f"Booked {n}",
                            clear_before=buffer, clear_after=buffer)
            outcomes.append("booked")
        except SlotTaken:
            outcomes.append("taken")

    threads = [threading.Thread(target=visitor, args=(n, start))
               for n, start in enumerate(starts)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return sorted(outcomes)


@pytest.mark.parametrize("round_", range(3))
def test_visitors_racing_for_one_slot_make_one_activity(store: ActivityStore,
                                                        round_: int) -> None:
    owner = store.add_user("ann@example.com", "Ann", "Europe/Oslo")
    assert race(store, owner, [SLOT] * RACERS) == ["booked"] + ["taken"] * (RACERS - 1)
    assert len(store.list_activities(ActivityFilter(owner_id=owner))) == 1


def test_racers_for_overlapping_slots_make_no_overlap(store: ActivityStore) -> None:
    owner = store.add_user("ann@example.com", "Ann", "Europe/Oslo")
    starts = [SLOT + timedelta(minutes=15 * (n % 3)) for n in range(RACERS)]  # 3 overlapping
    outcomes = race(store, owner, starts)
    made = store.list_activities(ActivityFilter(owner_id=owner))
    assert outcomes.count("booked") == len(made) in (1, 2)  # 09:00 and 09:30 both fit
    spans = sorted((a.due_time, a.duration_minutes) for a in made)
    if len(spans) == 2:
        assert [t.minute for t, _ in spans if t is not None] == [0, 30]  # 10:00, 10:30 Oslo


def test_racers_for_neighbouring_slots_keep_the_owners_buffer(store: ActivityStore) -> None:
    owner = store.add_user("ann@example.com", "Ann", "Europe/Oslo")
    starts = [SLOT + timedelta(minutes=30 * (n % 2)) for n in range(RACERS)]  # 09:00, 09:30
    assert race(store, owner, starts, buffer=timedelta(minutes=10)) == \
        ["booked"] + ["taken"] * (RACERS - 1)  # touching slots would leave no buffer
    [made] = store.list_activities(ActivityFilter(owner_id=owner))
    assert made.due_time is not None
    begins = SLOT + timedelta(minutes=made.due_time.minute)  # 10:00 or 10:30 in Oslo
    later = begins + timedelta(minutes=40)  # 10 minutes after the booking ends: clear
    store.book_slot("f" * 32, owner_id=owner, type="meeting", start=later,
                    end=later + timedelta(minutes=30), subject="Later",
                    clear_before=timedelta(minutes=10))
    with pytest.raises(SlotTaken):  # ending 9 minutes before it starts: inside the buffer
        store.book_slot("e" * 32, owner_id=owner, type="meeting",
                        start=begins - timedelta(minutes=39),
                        end=begins - timedelta(minutes=9), subject="Earlier",
                        clear_after=timedelta(minutes=10))


def test_the_lock_is_what_serialises_them_on_postgresql(
        store: ActivityStore, monkeypatch: pytest.MonkeyPatch, backend: str) -> None:
    """Without the writer lock, READ COMMITTED lets racers both see the slot free (the
    control that shows the race test above can fail)."""
    if backend != "postgresql":
        pytest.skip("SQLite serialises writers by BEGIN IMMEDIATE; the control is for "
                    "PostgreSQL's READ COMMITTED")
    import syncd.crm.builtin.items as items

    owner = store.add_user("ann@example.com", "Ann", "Europe/Oslo")
    overlap = ActivityStore._busy_overlap
    gate = threading.Barrier(2, timeout=10)

    def slow_overlap(*args: object) -> bool:
        found = overlap(*args)  # type: ignore[arg-type]
        gate.wait()  # both have looked before either inserts
        return found

    monkeypatch.setattr(items, "lock_writers", lambda session: None)
    monkeypatch.setattr(ActivityStore, "_busy_overlap", staticmethod(slow_overlap))
    assert race(store, owner, [SLOT, SLOT]) == ["booked", "booked"]
