"""The provider budgets' rows stay bounded: send lines idle for an hour, concurrency slots
unused as long and Pipedrive days reset as long ago are deleted (syncd.store.limits
``prune``), while a line, slot or day in use is kept and keeps counting."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import delete, func, select

from syncd.store.budget_tables import BudgetBurst, BudgetDay, BudgetSlot
from syncd.store.budgets import BudgetLedger
from syncd.store.db import Database
from syncd.store.limits import KEPT_SECONDS, MADE_FOR, LimitStore

MINUTES = 130  # simulated: two hours and more
#: Each minute: new Google users paced, new mailboxes' slots taken, a Pipedrive company's
#: calls, as a team whose members come and go would make them.
USERS, MAILBOXES = 3, 2


class Clock:
    """Seconds since the epoch that move only when told (SQLite's store uses it)."""

    def __init__(self) -> None:
        self.now = datetime(2026, 12, 1, tzinfo=UTC).timestamp()

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def sqlite(tmp_path: object) -> Iterator[Database]:
    db = Database(f"sqlite:///{tmp_path}/state.db")
    yield db
    db.close()


def _minute(limits: LimitStore, ledger: BudgetLedger, clock: Clock, minute: int) -> None:
    for user in range(USERS):
        limits.pace(f"google:u{minute}-{user}@example.com", 0.1,
                    also=(("google-project:p", 0.01),))
    for box in range(MAILBOXES):
        scope = f"graph:graph.example|app|m{minute}-{box}@example.com"
        ticket = limits.take_slots(scope, 4, 1, hold=120)
        assert ticket is not None
        limits.give_back(scope, ticket)
    limits.flush()
    now = datetime.fromtimestamp(clock.now, UTC)
    day = now.strftime("%Y-%m-%d")
    grant = ledger.reserve("pipedrive:acme", day, cost=1, allowance=10_000,
                           resets_at=now.replace(hour=0, minute=0) + timedelta(days=1),
                           now=now, token_key=f"t{minute % 3}", spacing=0.2)
    assert grant.granted


@pytest.mark.slow  # two simulated hours on SQLite, a commit per statement
def test_budget_rows_stay_bounded_over_hours_of_new_users_and_mailboxes(
        sqlite: Database) -> None:
    clock = Clock()
    limits = LimitStore(sqlite, free_every=None, clock=clock)
    ledger = BudgetLedger(sqlite)
    counts = []
    for minute in range(MINUTES):
        _minute(limits, ledger, clock, minute)
        limits.prune()  # as the daemon does once a minute
        if minute % 5 == 0 or minute == MINUTES - 1:
            counts.append(limits.rows())
        clock.now += 60
    # the minutes whose rows are still in their hour (a slot taken lasts its hold more)
    kept = int(KEPT_SECONDS // 60) + 3
    per_minute = USERS + MAILBOXES * 4
    # the project's line, three Pipedrive tokens' lines, today's and yesterday's day
    bound = kept * per_minute + 1 + 3 + 2
    assert max(counts) <= bound
    assert counts[-1] == counts[-10]  # flat for the last 45 minutes: as many go as come
    assert bound < MINUTES * per_minute  # kept all, there would be more (and growing)


def test_a_line_in_use_keeps_its_reservations_and_a_pruned_one_paces_as_new(
        sqlite: Database) -> None:
    clock = Clock()
    limits = LimitStore(sqlite, free_every=None, clock=clock)
    limits.pace("google:ann@example.com", 600.0)  # reserved up to ten minutes ahead
    limits.hold("google:bob@example.com", 300.0)
    clock.now += KEPT_SECONDS - 1
    assert limits.prune() == 0  # ann's line ended 600 s in: not idle an hour yet
    clock.now += 700
    assert limits.prune() == 2
    assert limits.pace("google:ann@example.com", 1.0) == 0.0


def test_slot_rows_go_only_once_no_process_counts_on_them_and_come_back_when_needed(
        sqlite: Database) -> None:
    clock = Clock()
    limits = LimitStore(sqlite, free_every=None, clock=clock)
    scope = "graph:graph.example|app|ann@example.com"
    ticket = limits.take_slots(scope, 4, 4, hold=120)
    assert ticket is not None
    limits.give_back(scope, ticket)
    limits.flush()
    clock.now += MADE_FOR
    assert limits.prune() == 0  # this process counted on them until now
    clock.now += KEPT_SECONDS
    assert limits.prune() == 4
    assert limits.take_slots(scope, 4, 4, hold=120) is not None  # made again, all four
    # A holder killed with all four: they go once expired and unused for the hour.
    clock.now += 2 * KEPT_SECONDS
    assert limits.prune() == 4
    other = LimitStore(sqlite, free_every=None, clock=clock)  # another replica, later
    assert other.take_slots(scope, 4, 4, hold=120) is not None


@pytest.mark.postgres
def test_rows_older_than_their_window_are_pruned_on_postgresql(pg: Database) -> None:
    """The database's own clock decides there: rows written as of two hours ago go, the
    ones of now stay."""
    limits = LimitStore(pg, free_every=None)
    with pg.session() as s:
        for table in (BudgetBurst, BudgetSlot, BudgetDay):
            s.execute(delete(table))
        now = s.scalar(select(func.now()))
        assert now is not None
        old = now - timedelta(hours=2)
        s.add_all([
            BudgetBurst(scope="google:old@example.com", token_key="requests",
                        next_at=old.timestamp()),
            BudgetSlot(scope="graph:h|a|old@example.com", slot=0, ticket=None, until=old),
            BudgetSlot(scope="graph:h|a|old@example.com", slot=1, ticket="dead", until=old),
            BudgetDay(scope="pipedrive:old", day="2026-01-01", used=1, allowance=10,
                      resets_at=old, throttled=0),
        ])
    limits.pace("google:new@example.com", 1.0)
    assert limits.take_slots("graph:h|a|new@example.com", 4, 1, hold=120) is not None
    assert limits.prune() == 4
    assert limits.rows() == 1 + 4


def test_a_single_process_prunes_pipedrives_old_days_too(tmp_path: Path) -> None:
    """Without replicas there are no lines or slots in the database, but Pipedrive's
    days are: the daemon's prune job deletes those reset an hour ago."""
    from syncd.config import Config
    from syncd.daemon import Daemon

    daemon = Daemon(Config(data_dir=str(tmp_path)))
    try:
        ledger = BudgetLedger(daemon.service.db)
        now = datetime.now(UTC)
        for days_ago in (3, 0):
            then = now - timedelta(days=days_ago)
            ledger.reserve("pipedrive:acme", then.strftime("%Y-%m-%d"), cost=1,
                           allowance=10, resets_at=then + timedelta(hours=1), now=then,
                           token_key="t", spacing=0.2)
        daemon.prune_budgets()
        assert [d.day for d in ledger.current(now)] == [now.strftime("%Y-%m-%d")]
        with daemon.service.db.session() as s:
            assert s.scalar(select(func.count()).select_from(BudgetDay)) == 1
    finally:
        daemon.service.close()
