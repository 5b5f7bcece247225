"""The guards on a whole plan (failure modes 4, 5 and 6)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from functools import partial
from pathlib import Path

import pytest

from syncd.engine import guards
from syncd.engine.actions import CreateEvent, DeleteActivity, DeleteEvent, PairPlan, UpdateEvent
from syncd.engine.guards import count_guest_emails, daily_deletion_allowance, deletion_allowance
from tests.engine.factories import activity, proj
from tests.engine.world import START, make_world

check_plan = partial(guards.check_plan, account="alice")


def deletes(n: int) -> list[PairPlan]:
    return [PairPlan(i, f"e{i}", cal_write=DeleteEvent(f"e{i}", "x", False)) for i in range(n)]


def test_deletion_allowance_is_five_or_a_tenth() -> None:
    assert [deletion_allowance(n) for n in (0, 10, 50, 51, 60, 1000)] == [5, 5, 5, 5, 6, 100]


def test_up_to_the_allowance_passes_and_one_more_is_refused() -> None:
    assert check_plan(deletes(5), link_count=20, full_listing_empty=False) is None
    refusal = check_plan(deletes(6), link_count=20, full_listing_empty=False)
    assert refusal is not None and refusal.guard == "mass-deletion"
    assert check_plan(deletes(6), link_count=20, full_listing_empty=False,
                      force_delete=True) is None


def test_crm_side_deletions_count_too() -> None:
    plans = [PairPlan(i, None, crm_write=DeleteActivity(i)) for i in range(7)]
    refusal = check_plan(plans, link_count=10, full_listing_empty=False)
    assert refusal is not None and refusal.guard == "mass-deletion"


def test_a_calendar_that_suddenly_lists_nothing_is_refused() -> None:
    refusal = check_plan([], link_count=3, full_listing_empty=True)
    assert refusal is not None and refusal.guard == "empty-calendar"
    assert check_plan([], link_count=0, full_listing_empty=True) is None


def test_invitation_breaker_counts_the_recipients_of_notifying_writes() -> None:
    a = activity(guests=["g@example.com", "h@example.com"])
    plans = [PairPlan(i, None, cal_write=CreateEvent(f"m{i}", 0, proj(a), notify=i < 3,
                                                     recipients=2))
             for i in range(10)]
    assert count_guest_emails(plans) == 6  # the silent ones count nothing
    assert check_plan(plans, link_count=0, full_listing_empty=False, guest_cap=6) is None
    refusal = check_plan(plans, link_count=0, full_listing_empty=False, guest_cap=5)
    assert refusal is not None and refusal.guard == "guest-updates"
    assert (refusal.count, refusal.limit) == (6, 5)


def test_pointing_an_account_at_another_calendar_is_refused(tmp_path: Path) -> None:
    from dataclasses import replace

    world = make_world(tmp_path)
    world.add("Call")
    world.sync()
    world.account = replace(world.account, calendar="another-calendar")
    report = world.sync()
    assert report.outcome == "refused" and "scope-changed" in (report.message or "")
    assert world.sync(force_delete=True).outcome == "ok"
    assert world.state.account("alice").status == "ok"


def test_invitation_storm_pauses_the_account(tmp_path: Path) -> None:
    world = make_world(tmp_path, invite_guests=True, max_guest_updates_per_hour=3)
    world.sync()  # the first cycle is a backfill: no invitations at all
    for i in range(5):
        world.add(f"Call {i}", guests=["g@example.com"])
    report = world.sync()
    assert report.outcome == "refused" and "guest-updates" in (report.message or "")
    assert world.state.account("alice").status == "paused"
    assert world.calendar.live() == []


# --- the daily deletion budget (a slow wipe) --------------------------------------------

def _hold(plans: list[PairPlan], *, recent: int, links: int, held: datetime | None = None,
          percent: int = 25, force: bool = False) -> guards.DeletionHold | None:
    return guards.deletion_hold(plans, account="alice", held_since=held,
                                recent=lambda: recent, link_count=lambda: links,
                                percent=percent, force_delete=force)


def test_daily_deletion_allowance_is_ten_or_the_share_of_the_days_pairs() -> None:
    assert [daily_deletion_allowance(n, 25) for n in (0, 39, 40, 44, 100, 1000)] == [
        10, 10, 10, 11, 25, 250]
    assert daily_deletion_allowance(1000, 100) == 1000 and daily_deletion_allowance(80, 1) == 10


@pytest.mark.parametrize(("planned", "recent", "links", "held", "force", "expected"), [
    (0, 500, 0, None, False, None),                # nothing to delete: nothing to hold
    (9, 0, 91, None, False, None),                 # a day's first 9 of 100: on
    (7, 17, 83, None, False, None),                # 24 of the day's 100: within 25
    (8, 17, 83, None, False, None),                # 25: the budget itself is allowed
    (9, 17, 83, None, False, (26, 25)),            # 26 of 100 would pass 25: held
    (10, 0, 30, None, False, None),                # small accounts: 10 a day whatever
    (11, 0, 30, None, False, (11, 10)),
    (1, 0, 100, START, False, (0, 0)),             # held already: every deletion waits
    (9, 17, 83, START, True, None),                # the admin's --force-delete
    (0, 0, 100, START, False, None),               # held, but nothing to delete now
])
def test_deletions_past_the_days_budget_wait_for_an_admin(
        planned: int, recent: int, links: int, held: datetime | None, force: bool,
        expected: tuple[int, int] | None) -> None:
    hold = _hold(deletes(planned), recent=recent, links=links, held=held, force=force)
    if expected is None:
        assert hold is None
        return
    assert hold is not None and hold.waiting == planned
    assert (hold.count, hold.limit) == expected and hold.since == held


def test_the_days_figures_are_read_only_when_something_would_be_deleted() -> None:
    asked: list[str] = []

    def count(name: str, value: int) -> Callable[[], int]:
        return lambda: asked.append(name) or value  # type: ignore[func-returns-value]

    plans = [PairPlan(1, "e1", cal_write=UpdateEvent("e1", "x", proj(activity()),
                                                     frozenset({"title"}), "m", False))]
    assert guards.deletion_hold(plans, account="alice", held_since=None,
                                recent=count("recent", 99), link_count=count("links", 1),
                                percent=25) is None
    assert asked == []


def test_while_deletions_wait_the_per_cycle_guard_does_not_count_them() -> None:
    assert check_plan(deletes(50), link_count=20, full_listing_empty=False,
                      deletions_wait=True) is None
    refusal = check_plan([], link_count=3, full_listing_empty=True, deletions_wait=True)
    assert refusal is not None and refusal.guard == "empty-calendar"
