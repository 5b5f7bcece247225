"""The guest-mail breaker counts e-mails, one per recipient (docs/guest-mail.md)."""

from __future__ import annotations

from pathlib import Path

from connectors.base import CreateOp, UpdateOp
from syncd.engine.actions import UpdateEvent
from syncd.engine.guards import count_guest_emails
from tests.engine.world import World, make_world


def _settled(tmp_path: Path, cap: int) -> World:
    world = make_world(tmp_path, invite_guests=True, max_guest_updates_per_hour=cap)
    assert world.sync().outcome == "ok"  # the first sync: nothing to invite anyone to
    return world


def test_ten_thousand_attendees_on_one_event_count_as_ten_thousand(tmp_path: Path) -> None:
    world = _settled(tmp_path, cap=10_000)
    guests = [f"guest{i:05}@example.org" for i in range(10_000)]
    big = world.add("All hands", guests=guests)
    report = world.sync(keep_plans=True)
    assert report.outcome == "ok"
    [plan] = [p for p in report.plans if p.activity_id == big.id]
    assert count_guest_emails([plan]) == 10_000
    assert report.counts["guest_emails"] == 10_000
    assert world.state.account("alice").guest_window_count == 10_000
    # The hour is spent: one more invitation waits, it is not sent.
    late = world.add("Follow-up", day=11, guests=["ada@example.org"])
    world.advance(minutes=5)
    report = world.sync()
    assert report.counts["held_by_guest_cap"] == 1 and report.outcome == "partial"
    assert not [op for op in world.calendar.ops if isinstance(op, CreateOp)
                and op.marker == late.sync_uid]
    world.advance(hours=1)
    assert world.sync().counts["guest_emails"] == 1  # a new hour: it goes out


def test_an_event_with_more_attendees_than_the_hourly_cap_pauses_the_account(
        tmp_path: Path) -> None:
    world = _settled(tmp_path, cap=20)
    world.add("All hands", guests=[f"guest{i:05}@example.org" for i in range(10_000)])
    report = world.sync()
    assert report.outcome == "refused"
    assert "10000 guest e-mails planned, over the hourly cap of 20" in (report.message or "")
    assert world.state.account("alice").status == "paused"
    assert world.calendar.live() == []


def test_a_pair_that_would_pass_what_is_left_of_the_hour_waits_and_the_rest_go_on(
        tmp_path: Path) -> None:
    world = _settled(tmp_path, cap=5)
    three = world.add("Three", guests=["a@x.org", "b@x.org", "c@x.org"])
    assert world.sync().counts["guest_emails"] == 3
    world.advance(minutes=1)
    world.sync()  # the echo
    world.store.edit_activity(three.id, location="Room 1")  # 3 more: over the 2 left
    quiet = world.add("Prep")  # no guests: e-mails nobody
    two = world.add("Two", day=12, guests=["d@x.org", "e@x.org"])  # exactly the 2 left
    world.advance(minutes=1)
    report = world.sync()
    assert report.counts["held_by_guest_cap"] == 1 and report.outcome == "partial"
    assert report.counts["guest_emails"] == 2
    created = {op.marker for op in world.calendar.ops if isinstance(op, CreateOp)}
    assert {quiet.sync_uid, two.sync_uid} <= created
    assert not [op for op in world.calendar.ops
                if isinstance(op, UpdateOp) and op.projection.location == "Room 1"]
    world.advance(hours=1)
    report = world.sync()
    assert report.counts["guest_emails"] == 3 and report.outcome == "ok"


def test_a_write_counts_each_invitation_update_and_cancellation() -> None:
    from tests.engine.factories import activity, proj

    plan_write = UpdateEvent("e", None, proj(activity(guests=["a@x.org"])), frozenset(),
                             None, notify=True, recipients=3)
    from syncd.engine.actions import PairPlan

    assert count_guest_emails([PairPlan(1, "e", cal_write=plan_write)]) == 3
    silent = UpdateEvent("e", None, proj(activity()), frozenset(), None, notify=False,
                         recipients=0)
    assert count_guest_emails([PairPlan(1, "e", cal_write=silent)]) == 0
