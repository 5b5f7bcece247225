"""The daily deletion budget against a slow wipe (failure mode 4): a source that loses a
little less than the per-cycle allowance every cycle is stopped before its deletions in
24 hours pass max(10, 25 %) of the account's pairs, while creates and edits go on and
the pairs whose deletions wait keep their state until an admin lets them through."""

from __future__ import annotations

from pathlib import Path

import pytest

from syncd.config import Config
from syncd.model import Activity
from syncd.service import Service
from tests.engine.world import World, make_world

PAIRS = 100


def _synced(tmp_path: Path) -> tuple[World, list[Activity]]:
    world = make_world(tmp_path)
    activities = [world.add(f"A{i}", day=10 + i % 20, hour=8 + i % 9) for i in range(PAIRS)]
    for _ in range(2):
        assert world.sync().outcome == "ok"
        world.advance(minutes=10)
    assert len(world.calendar.live()) == PAIRS
    return world, activities


def _lose(world: World, alive: list[Activity], side: str) -> list[Activity]:
    """The source loses 9 % of what is left: in the CRM, or in the calendar."""
    cut = len(alive) * 9 // 100 or 1
    gone, kept = alive[:cut], alive[cut:]
    for a in gone:
        if side == "crm":
            world.store.delete_activity(a.id)
        else:
            world.calendar.user_delete(world.event_id_of(a.id))
    return kept


def _lost(world: World, activities: list[Activity], side: str) -> int:
    """How many the other side lost: events deleted for the CRM's deletions, or
    activities deleted for the calendar's."""
    if side == "crm":
        return PAIRS - len(world.calendar.live())
    return sum(world.store.get(a.id, include_deleted=True).deleted for a in activities)


@pytest.mark.parametrize("side", ["crm", "calendar"])
def test_a_source_losing_nine_percent_a_cycle_is_stopped_before_the_days_budget(
        tmp_path: Path, side: str) -> None:
    world, activities = _synced(tmp_path)
    alive = activities
    for _ in range(8):  # ten-minute cycles; unchecked, half the pairs would be gone
        alive = _lose(world, alive, side)
        report = world.sync()
        world.advance(minutes=10)
        assert _lost(world, activities, side) <= PAIRS * 25 // 100
    assert report.outcome == "partial" and report.counts["deletions_held"] > 25
    assert "--force-delete" in (report.message or "") and "wait" in (report.message or "")
    account = world.state.account("alice")
    assert account.status == "ok" and account.deletions_held_since is not None
    assert "--force-delete" in (account.last_message or "")
    # Nothing is lost: every pair whose deletion waits keeps its link, base and event.
    links = world.state.links("alice")
    waiting = [a for a in activities if a not in alive and a.id in links]
    assert len(waiting) == report.counts["deletions_held"]
    assert all(links[a.id].crm_base is not None for a in waiting)
    if side == "crm":
        assert all(world.calendar.get(links[a.id].event_id or "") for a in waiting)
    else:
        assert not any(world.store.get(a.id, include_deleted=True).deleted for a in waiting)


def _held(world: World, activities: list[Activity], side: str = "calendar") -> int:
    """Wipe 9 % a cycle until the budget holds the deletions; returns how many wait."""
    alive = activities
    for _ in range(6):
        alive = _lose(world, alive, side)
        report = world.sync()
        world.advance(minutes=10)
        if report.counts["deletions_held"]:
            return int(report.counts["deletions_held"])
    raise AssertionError("the budget never held the deletions")


def test_creates_and_edits_go_on_while_deletions_wait(tmp_path: Path) -> None:
    world, activities = _synced(tmp_path)
    waiting = _held(world, activities)
    new = world.add("New call", day=12)
    world.store.edit_activity(activities[50].id, subject="Renamed in the CRM")
    world.user_edit(activities[60].id, "Renamed in the calendar")
    report = world.sync()
    assert report.outcome == "partial" and report.counts["deletions_held"] == waiting
    assert report.counts["events_created"] == 1 and report.counts["events_updated"] == 1
    assert report.counts["activities_updated"] == 1
    assert world.event_title(new.id) == "New call"
    assert world.event_title(activities[50].id) == "Renamed in the CRM"
    assert world.store.get(activities[60].id).subject == "Renamed in the calendar"
    assert world.state.account("alice").status == "ok"  # not flagged: the rest syncs
    # What `syncd status` shows of the account: the sentence, with the command to run.
    [row] = Service(Config(data_dir=str(tmp_path), accounts=(world.account,)), db=world.db,
                    open_crm=False).status()
    assert (row["status"], row["last_outcome"]) == ("ok", "partial")
    assert row["last_message"].startswith(f"{waiting} deletion(s) wait for an admin")
    assert "'syncd sync --account alice --force-delete'" in row["last_message"]


def test_deletions_piling_up_while_they_wait_never_flag_the_account(tmp_path: Path) -> None:
    world, activities = _synced(tmp_path)
    _held(world, activities)
    for a in activities[50:80]:  # 30 more at once: past the per-cycle allowance too
        world.calendar.user_delete(world.event_id_of(a.id))
    report = world.sync()
    assert report.outcome == "partial" and report.counts["deletions_held"] > 30
    assert world.state.account("alice").status == "ok"
    assert not any(world.store.get(a.id, include_deleted=True).deleted
                   for a in activities[50:80])


def test_force_delete_lets_the_waiting_deletions_through_and_starts_a_new_day(
        tmp_path: Path) -> None:
    world, activities = _synced(tmp_path)
    waiting = _held(world, activities, "crm")
    live = len(world.calendar.live())
    forced = world.sync(force_delete=True)
    assert forced.outcome == "ok" and forced.counts["events_deleted"] == waiting
    assert len(world.calendar.live()) == live - waiting
    assert world.state.account("alice").deletions_held_since is None
    world.advance(minutes=10)
    left = [a for a in activities if a.id in world.state.links("alice")]
    for a in left[:5]:  # the day's earlier deletions, forced ones included, count no more
        world.store.delete_activity(a.id)
    after = world.sync()
    assert after.outcome == "ok" and after.counts["events_deleted"] == 5


def test_a_normal_days_deletions_are_never_held(tmp_path: Path) -> None:
    world = make_world(tmp_path)
    alive = [world.add(f"A{i}", day=10 + i % 20) for i in range(40)]
    world.sync()
    # Three days of a busy owner with 40 pairs (a day's budget: 10): every three hours
    # one activity deleted, one added and one edited; 8 deletions a day, 24 in all.
    for cycle in range(24):
        world.advance(hours=3)
        world.store.delete_activity(alive.pop(0).id)
        alive.append(world.add(f"B{cycle}", day=10 + cycle % 20))
        world.store.edit_activity(alive[cycle % len(alive)].id, subject=f"Edited {cycle}")
        report = world.sync()
        assert report.outcome == "ok", report.message
        assert report.counts["deletions_held"] == 0
    assert world.state.account("alice").deletions_held_since is None
    assert len(world.calendar.live()) == 40
