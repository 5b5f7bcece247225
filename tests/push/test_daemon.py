"""The daemon around the keeper: backstop polls, the liveness tick, accounts that go.

The daemon runs in this process with its scheduler paused: each test runs cycles itself
(``_run_account``, as a job would) and reads the jobs' intervals and next run times. The
accounts sync in-memory calendars (``connectors.memory``), which can be watched.
"""

from __future__ import annotations

import threading
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from connectors.memory import MemoryCalendar
from syncd.store.channels import DEGRADED
from tests.push.daemons import ALICE, BACKSTOP, BOB, CALENDARS, daemon_config


def test_a_healthy_pushed_account_is_polled_only_at_the_backstop(
        start: Any, tmp_path: Path) -> None:
    run = start(daemon_config(tmp_path))
    assert run.interval() == 60
    run.cycle()
    assert len(CALENDARS["alice"].watches) == 1
    assert run.interval() == BACKSTOP
    assert run.status().startswith("push: active until ")
    run.cycle()  # still healthy: the pace stays
    assert run.interval() == BACKSTOP and CALENDARS["alice"].push_calls == ["watch"]


def test_an_account_polled_more_rarely_than_the_backstop_keeps_its_interval(
        start: Any, tmp_path: Path) -> None:
    slow = replace(ALICE, interval_seconds=3600)
    run = start(daemon_config(tmp_path, accounts=(slow,)))
    run.cycle()
    assert CALENDARS["alice"].watches and run.interval() == 3600


def test_a_missed_notification_degrades_the_channel_shortens_the_poll_and_recreates_it(
        start: Any, tmp_path: Path) -> None:
    run = start(daemon_config(tmp_path))
    calendar = CALENDARS.setdefault("alice", MemoryCalendar())
    calendar.deliver = False  # accepted, but never delivers
    run.cycle()
    [first] = calendar.watches
    run.add_activity()
    run.cycle()  # writes the event: its notification is due within 180 s
    assert calendar.live() and run.interval() == BACKSTOP
    row = run.channels.get("alice")
    assert row is not None and row.expect_by is not None

    run.clock.advance(seconds=170)
    assert run.daemon.check_liveness() == []
    run.clock.advance(seconds=20)
    before = datetime.now(UTC)
    assert run.daemon.check_liveness() == ["alice"]
    row = run.channels.get("alice")
    assert row is not None and row.state == DEGRADED
    assert run.interval() == 60  # polled at the normal interval meanwhile
    assert run.next_run() <= before + timedelta(seconds=5)  # and soon
    assert run.status().startswith("push: degraded (no notification after our write)")

    run.cycle()  # re-creates the channel, stops the dead one
    [second] = calendar.watches
    assert second != first and calendar.push_calls == ["watch", "watch", "unwatch"]
    assert run.interval() == BACKSTOP


def test_removing_an_account_stops_its_channel_and_removes_its_row(
        start: Any, tmp_path: Path) -> None:
    config = daemon_config(tmp_path, accounts=(ALICE, BOB))
    run = start(config)
    run.cycle("alice", "bob")
    assert CALENDARS["bob"].watches and run.channels.get("bob") is not None
    smaller = replace(config, accounts=(ALICE,))
    run.daemon.config = run.daemon.service.config = smaller
    run.daemon.refresh_jobs()
    assert run.daemon.scheduler.get_job("account:bob") is None
    assert CALENDARS["bob"].watches == {} and run.channels.get("bob") is None
    assert CALENDARS["alice"].watches and run.channels.get("alice") is not None
    # the account's sync state stays (only the channel is gone)
    assert run.daemon.service.state.account("bob").last_run_at is not None


def test_rows_of_accounts_gone_from_the_config_are_removed_at_start(
        start: Any, tmp_path: Path) -> None:
    config = daemon_config(tmp_path, accounts=(ALICE, BOB))
    run = start(config)
    run.cycle("alice", "bob")
    restarted = start(replace(config, accounts=(BOB,)))
    assert [row.account for row in restarted.channels.all()] == ["bob"]


def test_without_a_public_url_no_channel_is_opened_and_the_status_says_why(
        start: Any, tmp_path: Path) -> None:
    run = start(daemon_config(tmp_path, public_url=None))
    run.cycle()
    assert CALENDARS["alice"].push_calls == [] and run.channels.all() == []
    assert run.interval() == 60
    assert run.status() == "polled: push needs [http] public_url"


def test_a_refused_channel_is_polled_at_the_normal_interval_with_its_reason(
        start: Any, tmp_path: Path) -> None:
    run = start(daemon_config(tmp_path))
    CALENDARS["alice"] = calendar = MemoryCalendar()
    calendar.refuse_push = "tenant forbids subscriptions"
    run.cycle()
    assert run.interval() == 60
    assert run.status() == "polled: tenant forbids subscriptions"
    run.cycle()
    assert calendar.push_calls == ["watch"]  # not asked again every cycle


def test_a_failed_cycle_leaves_the_channel_alone(start: Any, tmp_path: Path) -> None:
    run = start(daemon_config(tmp_path))
    CALENDARS["alice"] = calendar = MemoryCalendar()

    def down(_cursor: object) -> Any:
        raise OSError("connection refused")

    calendar.changes = down  # type: ignore[method-assign]
    run.cycle()
    assert calendar.push_calls == [] and run.interval() == 60  # the keeper was not asked


def test_a_push_run_due_sooner_keeps_its_time_when_the_pace_changes(
        start: Any, tmp_path: Path) -> None:
    run = start(daemon_config(tmp_path))
    soon = time.time() + 5
    run.daemon._run_soon("alice", soon)  # a notification came while the cycle ran
    run.cycle()  # the channel opens: the pace becomes the backstop
    assert run.interval() == BACKSTOP
    assert run.next_run().timestamp() <= soon + 1


def test_an_account_let_go_while_its_cycle_runs_keeps_no_channel(
        start: Any, tmp_path: Path) -> None:
    run = start(daemon_config(tmp_path))
    CALENDARS["alice"] = calendar = MemoryCalendar()
    read = calendar.changes

    def let_go_meanwhile(cursor: str | None) -> Any:
        run.daemon.stop_serving("alice")  # refresh_jobs on another thread, mid-cycle
        return read(cursor)

    calendar.changes = let_go_meanwhile  # type: ignore[method-assign]
    run.cycle()  # the cycle ends with a new channel, then sees it was let go
    assert calendar.push_calls == ["watch", "unwatch"] and calendar.watches == {}
    assert run.channels.get("alice") is None


def test_stopping_while_a_cycle_is_about_to_repace_its_account_waits_for_it_and_ends(
        start: Any, tmp_path: Path) -> None:
    # A cycle ending re-paces its account through the scheduler; APScheduler's waiting
    # shutdown holds the lock that needs while it waits for the cycle: both hung for
    # ever in CI until the daemon stopped the scheduler without waiting.
    run = start(daemon_config(tmp_path))
    daemon = run.daemon
    paced, release = threading.Event(), threading.Event()
    repace = daemon._pace

    def held_pace(account: Any) -> None:
        paced.set()
        release.wait(60)
        repace(account)

    daemon._pace = held_pace  # type: ignore[method-assign]
    cycle = threading.Thread(target=run.cycle)
    cycle.start()
    assert paced.wait(60)
    stopped: list[bool] = []
    stopper = threading.Thread(target=lambda: stopped.append(daemon.stop_cycles(60)))
    stopper.start()
    while not daemon.stopping.is_set():
        time.sleep(0.01)
    assert stopper.is_alive()  # the cycle is in flight: stopping waits for it
    release.set()
    stopper.join(60)
    cycle.join(60)
    assert stopped == [True] and not cycle.is_alive()
