"""The seams of a cycle: the fetch phase's CycleInput and the executor's per-pair results."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from connectors.base import WriteOp, WriteResult
from syncd.crm.builtin import BuiltinSource
from syncd.engine.actions import PairPlan
from syncd.engine.execute import LEASE_TTL, Executor, Lease
from syncd.engine.fetch import CycleInput, Fetcher
from syncd.engine.outcome import PairResult, PairStatus, tally
from syncd.engine.plan import PlanPolicy, plan_account
from syncd.engine.record import Bookkeeper
from syncd.errors import ItemRejected, LeaseLost, RateLimited, Transient
from syncd.pairs import SyncPair
from syncd.service import account_policy
from tests.engine.world import World, make_world


@pytest.fixture
def world(tmp_path: Path) -> World:
    return make_world(tmp_path)


def converged(world: World) -> None:
    world.sync()
    world.advance(minutes=1)
    world.sync()
    world.advance(minutes=1)


def fetch(world: World) -> tuple[CycleInput, Counter[str]]:
    """One round's input, read the way a cycle reads it (nothing is written)."""
    policy = account_policy(world.account)
    counts: Counter[str] = Counter()
    fetcher = Fetcher(policy, world.calendar, BuiltinSource(world.store), world.state, counts)
    acct = world.state.account(world.account.name)
    window = policy.window(world.now)
    read = fetcher.read_slice(acct.crm_cursor, world.owner_id, None,
                              calendar_cursor=acct.calendar_cursor, first=True,
                              window=window, window_end=acct.window_end)
    plan_policy = PlanPolicy(owner_id=world.owner_id, owner_tz="Europe/Oslo", window=window,
                             now=world.now, backfill=not acct.initial_done)
    return fetcher.cycle_input(plan_policy, read), counts


def test_a_first_cycle_input_holds_every_activity_and_no_links(world: World) -> None:
    a, b = world.add("Call Ada"), world.add("Lunch", day=11)
    data, counts = fetch(world)
    assert set(data.plan.crm) == {a.id, b.id} and data.plan.links == {}
    assert (data.crm_changes, data.calendar_changes, data.full_listing_empty) == (2, 0, True)
    assert data.plan.policy.backfill and not counts


def test_the_echo_of_our_own_write_is_listed_but_not_planned(world: World) -> None:
    a, b = world.add("Call Ada"), world.add("Lunch", day=11)
    world.sync()  # creates both events; their echoes come with the next listing
    world.calendar.user_edit(world.event_of(b.id).event_id, title="Lunch, moved")
    data, _ = fetch(world)
    assert data.calendar_changes == 2  # both listed...
    assert [e.event_id for e in data.plan.calendar] == [world.event_of(b.id).event_id]
    assert set(data.plan.crm) == {b.id}  # ...only the edited pair is loaded and planned
    # The links of everything listed are loaded: that is how an echo is recognised.
    assert set(data.plan.links) == {a.id, b.id}


def test_a_pending_create_that_reached_the_server_is_found_before_planning(
        world: World) -> None:
    a = world.add("Call Ada")
    world.sync()
    event = world.event_of(a.id)
    link = world.state.links(world.account.name)[a.id]
    # As if the answer to the create was lost: the intent is still pending.
    world.state.save_link(world.account.name, SyncPair(
        a.id, link.sync_uid, None, None, link.crm_base, None, link.generation, pending=True))
    data, counts = fetch(world)
    assert counts["recovered_creates"] == 1
    assert event.event_id in [e.event_id for e in data.plan.calendar]
    assert data.plan.links[a.id].pending and a.id in data.plan.crm


def executor(world: World, counts: Counter[str]) -> Executor:
    books = Bookkeeper(world.account.name, world.state, account_policy(world.account).done_style)
    return Executor(Lease(world.account.name, None, world.now), world.calendar,
                    BuiltinSource(world.store), world.state, books, counts,
                    planner=plan_account, wording=lambda exc: f"worded {type(exc).__name__}",
                    past_deadline=lambda: False, guest_left=None)


def planned(world: World) -> tuple[list[PairPlan], PlanPolicy]:
    data, _ = fetch(world)
    return plan_account(data.plan), data.plan.policy


def test_the_executor_returns_one_result_per_pair_and_counts_what_was_done(
        world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    ok, bad, flaky = world.add("Fine"), world.add("Too big", day=11), world.add("Flaky", day=12)
    plans, policy = planned(world)

    def first_passes(ops: Sequence[WriteOp]) -> list[WriteResult]:
        return [world.calendar._write(ops[0]),
                WriteResult(ops[1].key, error=ItemRejected(event_id="x", reason="too large")),
                WriteResult(ops[2].key, error=Transient(reason="HTTP 503"))]

    monkeypatch.setattr(world.calendar, "write", first_passes)
    counts: Counter[str] = Counter()
    results = executor(world, counts).run(plans, policy)
    by_id = {r.plan.activity_id: r for r in results}
    assert [by_id[a.id].status for a in (ok, bad, flaky)] == [
        PairStatus.DONE, PairStatus.QUARANTINED, PairStatus.FAILED]
    assert isinstance(by_id[bad.id].error, ItemRejected)
    assert counts == Counter(events_created=1, quarantined=1, failed=1)
    assert world.state.links(world.account.name)[ok.id].event_id is not None
    reasons = {q["item"]: q["reason"] for q in world.state.quarantine_list()}
    assert reasons[f"crm:{flaky.id}"] == "worded Transient"  # the caller's wording


def test_a_stale_pair_is_planned_again_and_has_a_result_per_round(world: World) -> None:
    a = world.add("Call Ada")
    converged(world)
    world.store.edit_activity(a.id, location="Room 1")
    plans, policy = planned(world)
    world.calendar.user_edit(world.event_of(a.id).event_id, title="Renamed in the app")
    counts: Counter[str] = Counter()
    results = executor(world, counts).run(plans, policy)
    assert [r.status for r in results] == [PairStatus.STALE, PairStatus.DONE]
    assert counts["stale_etag"] == 1 and counts["replanned"] == 1
    assert world.store.get(a.id).subject == "Renamed in the app"


def test_pairs_left_by_a_rate_limit_are_unsent_and_the_executor_says_retry(
        world: World) -> None:
    for day in (10, 11, 12):
        world.add(f"Call {day}", day=day)
    plans, policy = planned(world)
    world.calendar.capabilities = replace(world.calendar.capabilities, max_batch=1)
    world.calendar.fail_next = [WriteResult("", error=RateLimited(retry_after=5, reason="429"))]
    counts: Counter[str] = Counter()
    run = executor(world, counts)
    results = run.run(plans, policy)
    assert [r.status for r in results] == [PairStatus.FAILED, PairStatus.UNSENT,
                                           PairStatus.UNSENT]
    assert run.failed and counts == Counter(failed=1)


@pytest.mark.parametrize(("result", "counted"), [
    (PairResult(PairPlan(1, "e", skip="foreign"), PairStatus.SKIPPED), {"skipped_foreign": 1}),
    (PairResult(PairPlan(1, "e"), PairStatus.HELD), {"held_by_guest_cap": 1}),
    (PairResult(PairPlan(1, "e"), PairStatus.UNSENT), {}),
])
def test_each_result_adds_its_own_count(result: PairResult, counted: dict[str, int]) -> None:
    counts: Counter[str] = Counter()
    tally(counts, result)
    assert counts == Counter(counted)


def test_lease_is_renewed_before_every_batch(world: World) -> None:
    world.add("Call Ada")
    token = world.state.acquire_lease(world.account.name, "me:1", timedelta(minutes=1),
                                      world.now)
    plans, policy = planned(world)
    counts: Counter[str] = Counter()
    run = executor(world, counts)
    run.lease = Lease(world.account.name, token, world.now)
    run.run(plans, policy)
    held = world.state.account(world.account.name).lease_until
    assert held is not None and held > world.now + timedelta(minutes=5)


def test_a_cycle_whose_lease_is_taken_during_a_write_records_none_of_it(world: World) -> None:
    world.add("Call Ada")
    name = world.account.name
    token = world.state.acquire_lease(name, "me:1", timedelta(minutes=1), world.now)
    plans, policy = planned(world)
    counts: Counter[str] = Counter()
    books = Bookkeeper(name, world.state, account_policy(world.account).done_style,
                       token=token)
    run = Executor(Lease(name, token, world.now), world.calendar, BuiltinSource(world.store),
                   world.state, books, counts, planner=plan_account,
                   wording=lambda exc: f"worded {type(exc).__name__}",
                   past_deadline=lambda: False, guest_left=None)
    send = world.calendar.write

    def paused_past_the_lease(ops: Sequence[WriteOp]) -> list[WriteResult]:
        # The request goes out; meanwhile the lease (renewed on the clock) lapsed and
        # another replica took it.
        lapsed = datetime.now(UTC) + LEASE_TTL + timedelta(minutes=1)
        assert world.state.acquire_lease(name, "other:2", LEASE_TTL, lapsed) is not None
        return send(ops)

    world.calendar.write = paused_past_the_lease  # type: ignore[method-assign]
    with pytest.raises(LeaseLost):
        run.run(plans, policy)
    # Only the create intent, written before the request under the live lease, is there.
    assert [link.pending for link in world.state.links(name).values()] == [True]
    assert world.state.account(name).lease_owner == "other:2"
