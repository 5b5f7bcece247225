"""The daemon's scheduled audit (failure mode 12): each account audited read-only once per
``verify_hours``, spread out, never beside a cycle of the same account, its findings on
/metrics. The schedule is driven by a clock the test moves; what is counted is the
calendar's listings and writes, never time."""

from __future__ import annotations

import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path

import pytest

from connectors.base import ChangeSet, CreateOp, WriteOp, WriteResult
from connectors.memory import MemoryCalendar
from syncd.config import AccountConfig, Config
from syncd.daemon import Daemon
from syncd.errors import Transient
from syncd.model import Projection, When
from syncd.repair_lease import REPAIR_LEASE_TTL
from syncd.verify_schedule import (
    FIRST_SPREAD,
    RETRY_AFTER,
    Result,
    Ticked,
    VerifySchedule,
    first_due,
)

DAY = timedelta(hours=24)
TTL = timedelta(minutes=10)


class Counted(MemoryCalendar):
    """A memory calendar that counts full listings and write batches (``down``: every
    listing fails as a server would)."""

    def __init__(self) -> None:
        super().__init__()
        self.listings = 0
        self.batches = 0
        self.down = False

    def changes(self, cursor: str | None) -> ChangeSet:
        self.listings += cursor is None
        if self.down:
            raise Transient(reason="HTTP 503")
        return super().changes(cursor)

    def write(self, ops: Sequence[WriteOp]) -> list[WriteResult]:
        self.batches += 1
        return super().write(ops)


class Clock:
    def __init__(self) -> None:
        self.now = datetime.now(UTC).replace(microsecond=0)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, delta: timedelta) -> None:
        self.now += delta


@dataclass
class Setup:
    daemon: Daemon
    calendars: dict[str, Counted]
    clock: Clock

    def tick(self) -> list[Ticked]:
        return self.daemon.verify_due()

    def scrape(self) -> str:
        return self.daemon.metrics.render().decode()

    def listings(self) -> int:
        return sum(c.listings for c in self.calendars.values())


def start(tmp_path: Path, names: Sequence[str] = ("ann",)) -> Setup:
    accounts = tuple(AccountConfig(name=n, provider="memory", owner=f"{n}@example.com")
                     for n in names)
    daemon = Daemon(Config(data_dir=str(tmp_path), accounts=accounts))
    calendars = {n: Counted() for n in names}
    for n in names:
        daemon.service.store.add_user(f"{n}@example.com", n.title(), "UTC")
    daemon.service._open = (  # type: ignore[method-assign]
        lambda account, _now, read_only=False: calendars[account.name])
    clock = Clock()
    assert daemon.verifier is not None and daemon.verifier.every == DAY  # the default
    daemon.verifier = VerifySchedule(daemon.service, DAY, clock=clock)
    return Setup(daemon, calendars, clock)


def plant_duplicate(calendar: MemoryCalendar) -> None:
    """Two events carrying one marker no activity has: one duplicate finding, and each
    copy an orphan."""
    day = date.today() + timedelta(days=3)
    projection = Projection("Stray", When(datetime.combine(day, time(9), UTC),
                                          datetime.combine(day, time(10), UTC), "UTC"))
    marker = uuid.uuid4().hex
    MemoryCalendar.write(calendar, [CreateOp("a", marker, 0, projection),
                                    CreateOp("b", marker, 1, projection)])


def sample(text: str, name: str, **labels: str) -> float | None:
    wanted = ",".join(f'{k}="{v}"' for k, v in labels.items())
    found = re.search(rf"^{name}\{{{re.escape(wanted)}\}} (\S+)$", text, re.M)
    return float(found.group(1)) if found else None


def test_a_planted_duplicate_shows_on_metrics_after_the_scheduled_audit_which_writes_nothing(
        tmp_path: Path) -> None:
    world = start(tmp_path)
    plant_duplicate(world.calendars["ann"])
    assert sample(world.scrape(), "syncd_verify_findings", account="ann", kind="orphan") is None

    world.clock.advance(FIRST_SPREAD)  # every account's first audit is due by then
    assert world.tick() == [Ticked("ann", Result.AUDITED)]

    text = world.scrape()
    assert sample(text, "syncd_verify_findings", account="ann", kind="duplicate") == 1
    assert sample(text, "syncd_verify_findings", account="ann", kind="orphan") == 2
    assert sample(text, "syncd_verify_findings", account="ann", kind="drift") == 0
    assert sample(text, "syncd_verify_last_run_timestamp_seconds",
                  account="ann") == world.clock.now.timestamp()
    calendar = world.calendars["ann"]
    assert (calendar.listings, calendar.batches) == (1, 0)  # read once, never repaired
    assert len(calendar.live()) == 2
    assert world.daemon.service.state.account("ann").lease_owner is None  # given back

    # Not again before a day has passed, then once more.
    world.clock.advance(DAY - timedelta(seconds=1))
    assert world.tick() == [] and calendar.listings == 1
    world.clock.advance(timedelta(seconds=1))
    assert world.tick() == [Ticked("ann", Result.AUDITED)] and calendar.listings == 2


def test_an_account_whose_lease_a_cycle_holds_is_skipped_and_audited_at_a_later_tick(
        tmp_path: Path) -> None:
    world = start(tmp_path)
    plant_duplicate(world.calendars["ann"])
    state = world.daemon.service.state
    cycle = state.begin_cycle("ann", "replica-1", TTL, datetime.now(UTC))
    assert cycle.token is not None
    world.clock.advance(FIRST_SPREAD)

    assert world.tick() == [Ticked("ann", Result.HELD)]
    assert world.tick() == [Ticked("ann", Result.HELD)]
    assert world.listings() == 0  # nothing read beside the cycle
    assert sample(world.scrape(), "syncd_verify_findings", account="ann", kind="orphan") is None
    row = state.account("ann")
    assert (row.lease_owner, row.lease_token) == ("replica-1", cycle.token)  # untouched

    state.release_lease("ann", cycle.token)  # the cycle ends
    assert world.tick() == [Ticked("ann", Result.AUDITED)]
    assert world.listings() == 1
    assert sample(world.scrape(), "syncd_verify_findings", account="ann", kind="orphan") == 2


def test_the_audit_holds_a_short_renewed_lease_not_a_cycles(tmp_path: Path) -> None:
    """A daemon killed mid-audit (nothing gives the lease back) must free the account for
    the replicas within the repair's lease, not after a cycle's lease_seconds (600 s)."""
    world = start(tmp_path)
    state = world.daemon.service.state
    seen: list[tuple[str | None, datetime | None, datetime]] = []
    calendar = world.calendars["ann"]
    listing = calendar.changes

    def watched(cursor: str | None) -> ChangeSet:
        row = state.account("ann")
        seen.append((row.lease_owner, row.lease_until, datetime.now(UTC)))
        return listing(cursor)

    calendar.changes = watched  # type: ignore[method-assign]
    world.clock.advance(FIRST_SPREAD)
    assert world.tick() == [Ticked("ann", Result.AUDITED)]

    [(owner, until, read_at)] = seen
    assert owner == world.daemon.service.replica and until is not None
    assert until <= read_at + REPAIR_LEASE_TTL < read_at + TTL
    assert state.account("ann").lease_owner is None  # given back


def test_a_resting_account_is_not_audited_until_it_may_sync_again(tmp_path: Path) -> None:
    world = start(tmp_path)
    state = world.daemon.service.state
    world.clock.advance(FIRST_SPREAD)
    state.account("ann")
    state.update_account("ann", status="cooldown", cooldown_until=world.clock.now + DAY)
    assert world.tick() == [Ticked("ann", Result.RESTING)] and world.listings() == 0
    world.clock.advance(DAY)
    assert world.tick() == [Ticked("ann", Result.AUDITED)] and world.listings() == 1


def test_an_account_that_cannot_be_read_is_tried_again_an_hour_later_not_every_tick(
        tmp_path: Path) -> None:
    world = start(tmp_path)
    calendar = world.calendars["ann"]
    calendar.down = True
    world.clock.advance(FIRST_SPREAD)
    assert world.tick() == [Ticked("ann", Result.UNREADABLE)]
    assert world.tick() == []
    world.clock.advance(RETRY_AFTER - timedelta(seconds=1))
    assert world.tick() == [] and calendar.listings == 1
    assert sample(world.scrape(), "syncd_verify_last_run_timestamp_seconds",
                  account="ann") is None
    calendar.down = False
    world.clock.advance(timedelta(seconds=1))
    assert world.tick() == [Ticked("ann", Result.AUDITED)] and calendar.listings == 2


def test_audits_are_spread_a_few_accounts_a_tick_never_all_at_once(tmp_path: Path) -> None:
    names = [f"user{i}" for i in range(6)]
    world = start(tmp_path, names)
    verifier = world.daemon.verifier
    assert verifier is not None
    # The first audits are spread over the first hour by name, the same in every process.
    firsts = sorted(first_due(n, verifier.started) - verifier.started for n in names)
    assert all(timedelta(0) <= f < FIRST_SPREAD for f in firsts) and len(set(firsts)) == 6
    assert verifier.share(1_000) == 1 and verifier.share(3_000) == 3  # a day at 60 s ticks
    world.clock.advance(FIRST_SPREAD)  # all six due at once (after a long stop, say)
    per_tick = [len(world.tick()) for _ in range(7)]
    assert per_tick == [1, 1, 1, 1, 1, 1, 0]
    assert world.listings() == 6


def test_verify_hours_zero_schedules_no_audit(tmp_path: Path) -> None:
    daemon = Daemon(Config(data_dir=str(tmp_path), verify_hours=0))
    assert daemon.verifier is None and daemon.verify_due() == []


@pytest.mark.parametrize("hours", [1, 720])
def test_the_interval_is_the_configured_hours(tmp_path: Path, hours: int) -> None:
    daemon = Daemon(Config(data_dir=str(tmp_path), verify_hours=hours))
    assert daemon.verifier is not None and daemon.verifier.every == timedelta(hours=hours)
