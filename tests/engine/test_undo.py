"""Undo through the engine on the memory calendar: conflicts resolved either way, items
released from quarantine, purged activities; each followed by real cycles."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path

import pytest

from connectors.base import WriteResult
from syncd.admin import Resolution, Side, purge_expired, resolve_conflict
from syncd.cli_admin import value_text
from syncd.config_types import AccountConfig
from syncd.crm.builtin import BuiltinSource
from syncd.errors import ConflictUnresolvable, Transient
from syncd.model import When
from syncd.pairs import Conflict
from syncd.report import describe
from syncd.store.state import MAX_ATTEMPTS
from tests.engine.world import World, make_world


def _resolve(world: World, conflict_id: int, take: Side,
             accounts: Mapping[str, AccountConfig] | None = None) -> Resolution:
    return resolve_conflict(BuiltinSource(world.store), world.state, conflict_id, take,
                            accounts or {})


def converge(world: World) -> None:
    world.sync()
    world.advance(minutes=1)
    world.sync()


def _quiet(world: World) -> None:
    """The next cycle writes nothing at all."""
    world.calendar.forbid_writes = True
    report = world.sync()
    world.calendar.forbid_writes = False
    assert report.outcome == "ok" and not report.counts["conflicts"]


def test_taking_the_crm_side_of_a_time_conflict_won_by_the_calendar(tmp_path: Path) -> None:
    world = make_world(tmp_path, conflict_policy="calendar_wins")
    a = world.add("Review", hour=9)
    converge(world)
    crm_when = world.event_of(a.id).projection.when
    world.store.edit_activity(a.id, due_time=datetime(2026, 1, 1, 11).time())
    moved = When(datetime(2026, 12, 10, 14, tzinfo=UTC), datetime(2026, 12, 10, 15, tzinfo=UTC),
                 "Europe/Oslo")
    world.calendar.user_edit(world.event_of(a.id).event_id, when=moved)
    world.advance(minutes=1)
    assert world.sync().counts["conflicts"] == 1
    [conflict] = world.state.conflicts(world.account.name)
    assert (conflict["field"], conflict["winner"]) == ("when", "calendar")
    assert value_text("when", conflict["crm_value"]) == "2026-12-10 11:00-11:30 Europe/Oslo"
    assert value_text("when", conflict["calendar_value"]) == (
        "2026-12-10 15:00-16:00 Europe/Oslo")
    assert world.store.get(a.id).due_time == datetime(2026, 1, 1, 15).time()  # Oslo, +1

    done = _resolve(world, conflict["id"], "crm",
                            {world.account.name: world.account})
    assert done.applied and world.state.conflicts(world.account.name) == []
    assert world.store.get(a.id).due_time == datetime(2026, 1, 1, 11).time()
    assert world.event_of(a.id).projection.when == moved  # not written directly
    world.advance(minutes=1)
    assert world.sync().counts["events_updated"] == 1
    assert world.event_of(a.id).projection.when != crm_when  # 11:00, not the old 09:00
    assert world.event_of(a.id).projection.when.local_start().hour == 11
    world.advance(minutes=1)
    _quiet(world)


def test_guests_conflict_resolved_for_the_calendar_reaches_the_crm(tmp_path: Path) -> None:
    world = make_world(tmp_path)
    a = world.add("Meeting", guests=["ann@example.com"])
    converge(world)
    world.store.edit_activity(a.id, guests=["bob@example.com"])
    world.calendar.user_edit(world.event_of(a.id).event_id,
                             guests=frozenset({"cy@example.com", "ann@example.com"}))
    world.advance(minutes=1)
    world.sync()
    [conflict] = world.state.conflicts(world.account.name)
    assert conflict["calendar_value"] == ["ann@example.com", "cy@example.com"]
    assert value_text("guests", conflict["crm_value"]) == "bob@example.com"
    _resolve(world, conflict["id"], "calendar", {})
    assert {g.email for g in world.store.get(a.id).guests} == {"ann@example.com",
                                                               "cy@example.com"}
    world.advance(minutes=1)
    world.sync()
    assert world.event_of(a.id).projection.guests == {"ann@example.com", "cy@example.com"}
    world.advance(minutes=1)
    _quiet(world)


def test_a_conflict_lost_to_a_crm_delete_is_applied_once_the_activity_is_restored(
        tmp_path: Path) -> None:
    world = make_world(tmp_path)
    a = world.add("Call")
    converge(world)
    world.calendar.user_edit(world.event_of(a.id).event_id, location="Room 2")
    world.store.delete_activity(a.id)
    world.advance(minutes=1)
    assert world.sync().counts["events_deleted"] == 1
    [conflict] = world.state.conflicts(world.account.name)
    assert (conflict["field"], conflict["crm_value"], conflict["policy"]) == (
        "location", None, "crm_delete")
    with pytest.raises(ConflictUnresolvable) as refused:
        _resolve(world, conflict["id"], "calendar", {})
    assert refused.value.cause == "deleted"
    world.store.restore_activity(a.id, new_sync_uid=True)
    _resolve(world, conflict["id"], "calendar", {})
    world.advance(minutes=1)
    assert world.sync().counts["events_created"] == 1
    [event] = world.calendar.live()
    assert event.projection is not None and event.projection.location == "Room 2"


def _fail_until_quarantined(world: World, reason: str) -> None:
    """Every write fails until the item is given up (MAX_ATTEMPTS cycles)."""
    world.calendar.fail_next = [WriteResult("", error=Transient(reason=reason))
                                for _ in range(MAX_ATTEMPTS)]
    for _ in range(MAX_ATTEMPTS):
        world.sync()
        world.advance(minutes=1)


def test_a_create_quarantined_after_failing_is_made_by_the_cycle_after_retry(
        tmp_path: Path) -> None:
    world = make_world(tmp_path)
    a = world.add("Flaky")
    _fail_until_quarantined(world, "server said no")
    [item] = world.state.quarantine_list(world.account.name)
    assert (item["item"], item["state"], item["attempts"]) == (
        f"crm:{a.id}", "quarantined", MAX_ATTEMPTS)
    assert "server said no" in item["reason"]
    assert world.sync().counts["skipped_quarantined"] == 1  # set aside: no create sent
    assert world.calendar.live() == []

    world.state.retry_item(item["id"])
    report = world.sync()
    assert (report.counts["retried"], report.counts["events_created"]) == (1, 1)
    assert world.state.quarantine_list(world.account.name) == []
    assert [e.projection.title for e in world.calendar.live() if e.projection] == ["Flaky"]
    world.advance(minutes=1)
    _quiet(world)


def test_retrying_an_item_whose_activity_was_purged_just_clears_it(tmp_path: Path) -> None:
    world = make_world(tmp_path)
    a = world.add("Doomed")
    _fail_until_quarantined(world, "no")
    world.store.delete_activity(a.id)
    [item] = world.state.quarantine_list(world.account.name)
    world.state.retry_item(item["id"])
    assert purge_expired(world.store, world.state, 0) == [a.id]
    assert world.state.quarantine_list(world.account.name) == []  # went with the purge
    report = world.sync()
    assert report.outcome == "ok" and world.calendar.live() == []


@pytest.mark.parametrize("deleted", [True, False])
def test_taking_the_crm_side_of_a_kept_event_is_refused_with_a_sentence(
        tmp_path: Path, deleted: bool) -> None:
    # A delete withheld so that guests get no cancellation is a conflict about the event
    # itself, not a field: there is no CRM value to write, whether or not the activity
    # was restored as the "deleted" refusal suggests.
    world = make_world(tmp_path)
    a = world.add("Board meeting", guests=["ann@example.com"])
    converge(world)
    world.state.record(world.account.name, conflicts=[(a.id, world.event_of(a.id).event_id,
        Conflict("event", None, "kept in the calendar: deleting it would e-mail 1 invited "
                 "guest(s) a cancellation", "calendar", "guest_mail"))])
    if deleted:
        world.store.delete_activity(a.id)
    [conflict] = world.state.conflicts(world.account.name)
    before = world.store.get(a.id, include_deleted=True)
    with pytest.raises(ConflictUnresolvable) as refused:
        _resolve(world, conflict["id"], "crm", {})
    assert refused.value.cause == "event"
    sentence = describe(refused.value)
    assert "Nothing was changed" in sentence and "restore" not in sentence
    assert world.store.get(a.id, include_deleted=True) == before
    assert world.state.conflicts(world.account.name) != []  # still open
    assert _resolve(world, conflict["id"], "calendar", {}).applied \
        is False
    assert world.state.conflicts(world.account.name) == []
