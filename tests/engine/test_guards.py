"""The guards on a whole plan (failure modes 4, 5 and 6)."""

from __future__ import annotations

from functools import partial
from pathlib import Path

from syncd.engine import guards
from syncd.engine.actions import CreateEvent, DeleteActivity, DeleteEvent, PairPlan
from syncd.engine.guards import count_guest_emails, deletion_allowance
from tests.engine.factories import activity, proj
from tests.engine.world import make_world

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
