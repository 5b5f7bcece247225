"""The state database's invariants (failure mode 29): each one planted and found, in a
counted number of statements, and what the daemon does about it (the account paused, or
the start refused), at start and after a cycle that wrote."""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import event, text

from connectors.memory import MemoryCalendar
from syncd.config import AccountConfig, Config
from syncd.daemon import Daemon
from syncd.errors import SchemaNotCurrent
from syncd.model import Projection, When
from syncd.pairs import SyncPair
from syncd.report import describe
from syncd.store.db import Database
from syncd.store.invariants import Violation, check_account, check_database
from syncd.store.lite import head_revision
from syncd.store.state import StateStore


@contextmanager
def statements(db: Database) -> Iterator[list[str]]:
    """The SQL statements ``db`` runs inside the block."""
    seen: list[str] = []

    def count(_conn: object, _cursor: object, statement: str, *_args: object) -> None:
        seen.append(statement)

    event.listen(db.engine, "before_cursor_execute", count)
    try:
        yield seen
    finally:
        event.remove(db.engine, "before_cursor_execute", count)


def pair(activity: int, marker: str, event_id: str | None, *, pending: bool = False
         ) -> SyncPair:
    return SyncPair(activity, marker, event_id, "e1", None, None, 0, pending)


@pytest.fixture
def state(tmp_path: Path) -> StateStore:
    state = StateStore(Database(f"sqlite:///{tmp_path / 'state.db'}"))
    for name in ("ann", "bob"):
        state.account(name)
        state.record(name, saves=[pair(1, f"{name}-m1", f"{name}-e1"),
                                  pair(2, f"{name}-m2", f"{name}-e2"),
                                  pair(3, f"{name}-m3", None, pending=True),
                                  pair(4, f"{name}-m4", None, pending=True)])
    return state


def test_sound_pairs_break_no_invariant_in_one_statement_per_account_three_in_all(
        state: StateStore) -> None:
    with statements(state.db) as ran:
        assert check_account(state.db, "ann") == []
    assert len(ran) == 1
    with statements(state.db) as ran:
        assert check_database(state.db) == []
    assert len(ran) == 3


def test_an_event_linked_to_two_activities_is_found_in_its_account_only(
        state: StateStore) -> None:
    state.record("ann", saves=[pair(5, "ann-m5", "ann-e1")])  # ann-e1 is activity 1's
    # (two pending creates without an event yet are no violation)
    assert check_account(state.db, "ann") == [Violation("event_linked_twice", "ann", 1)]
    assert check_account(state.db, "bob") == []
    assert check_database(state.db) == [Violation("event_linked_twice", "ann", 1)]


def test_a_marker_carried_by_two_pairs_is_found(state: StateStore) -> None:
    state.record("bob", saves=[pair(6, "bob-m2", "bob-e6"), pair(7, "bob-m7", "bob-e7"),
                               pair(8, "bob-m7", None, pending=True)])
    assert check_account(state.db, "bob") == [Violation("marker_linked_twice", "bob", 2)]


def test_pairs_without_an_account_and_a_schema_of_another_release_are_found(
        state: StateStore, tmp_path: Path) -> None:
    # (SQLite enforces the foreign key only where syncd turns it on: a copy made
    # without it, or a hand edit, can leave such pairs)
    with sqlite3.connect(tmp_path / "state.db") as raw:
        raw.execute("INSERT INTO sync_links (account, activity_id, sync_uid, generation, "
                    "pending, updated_at) VALUES ('gone', 1, 'x', 0, 0, '2026-12-07')")
        raw.execute("UPDATE alembic_version SET version_num = '0009'")
    raw.close()
    assert check_database(state.db) == [
        Violation("link_without_account", None, 1, "gone"),
        Violation("schema_not_current", None, 1, f"0009 (this release: {head_revision()})")]


# --- what the daemon does ---------------------------------------------------------------


def daemon(tmp_path: Path) -> Daemon:
    accounts = tuple(AccountConfig(name=n, provider="memory", owner=f"{n}@example.com",
                                   import_events=True) for n in ("ann", "bob"))
    made = Daemon(Config(data_dir=str(tmp_path), accounts=accounts))
    calendars = {n: MemoryCalendar() for n in ("ann", "bob")}
    for n in calendars:
        made.service.store.add_user(f"{n}@example.com", n.title(), "UTC")
    made.service._open = (  # type: ignore[method-assign]
        lambda account, _now, read_only=False: calendars[account.name])
    made.calendars = calendars  # type: ignore[attr-defined]
    return made


def violations(made: Daemon, invariant: str) -> float:
    text_ = made.metrics.render().decode()
    line = next(x for x in text_.splitlines()
                if x.startswith(f'syncd_invariant_violations_total{{invariant="{invariant}"}}'))
    return float(line.rsplit(" ", 1)[1])


def test_at_start_an_account_whose_pairs_break_an_invariant_is_paused_and_the_other_syncs(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    made = daemon(tmp_path)
    state = made.service.state
    state.account("ann")
    state.record("ann", saves=[pair(1, "m1", "e1"), pair(2, "m2", "e1")])
    with caplog.at_level(logging.WARNING, "syncd.invariants"):
        found = made.invariants.at_start()
    assert found == [Violation("event_linked_twice", "ann", 1)]
    assert (state.account("ann").status, state.account("ann").status_reason) == (
        "paused", "invariant: event_linked_twice")
    [record] = caplog.records
    message = record.getMessage()
    assert message.startswith("ann is paused: its sync state breaks an invariant (1 event(s)")
    assert "'syncd verify --account ann'" in message and "'syncd resume ann'" in message
    assert violations(made, "event_linked_twice") == 1
    assert violations(made, "marker_linked_twice") == 0
    by_name = {a.name: a for a in made.service.accounts()}
    assert made.service.sync_one(by_name["ann"]).outcome == "skipped"
    assert made.service.sync_one(by_name["bob"]).outcome == "ok"
    made.service.close()


def test_a_schema_of_another_release_refuses_the_start_in_one_sentence(
        tmp_path: Path) -> None:
    made = daemon(tmp_path)
    with made.service.db.single() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '0009'"))
    with pytest.raises(SchemaNotCurrent) as info:
        made.invariants.at_start()
    assert info.value.found == "0009" and info.value.expected == head_revision()
    sentence = describe(info.value)
    assert "revision 0009" in sentence and "did not start" in sentence
    assert sentence.count(". ") == 0 and sentence.endswith(".")
    made.service.close()


def test_after_a_cycle_that_wrote_the_account_is_checked_in_one_statement_and_idle_ones_not(
        tmp_path: Path) -> None:
    made = daemon(tmp_path)
    calendars = made.calendars  # type: ignore[attr-defined]
    ann = calendars["ann"]
    db = made.service.db
    # An idle cycle writes nothing: no check.
    made._run_account("ann")
    with statements(db) as ran:
        made._run_account("ann")
    assert not any("GROUP BY" in s and "sync_links" in s for s in ran)
    # A cycle that imports an event writes: one statement checks the account.
    start = datetime.now(UTC).replace(microsecond=0) + timedelta(days=2)
    ann.user_create("app-1", Projection("Lunch", When(start, start + timedelta(hours=1),
                                                      "UTC")))
    with statements(db) as ran:
        made._run_account("ann")
    assert len([s for s in ran if "GROUP BY" in s and "sync_links" in s]) == 1
    assert made.service.state.account("ann").status == "ok"
    # The same check, finding a pair planted on that event, pauses the account alone.
    made.service.state.record("ann", saves=[pair(99, "planted", "app-1")])
    made._check_invariants("ann")
    assert made.service.state.account("ann").status == "paused"
    assert made.service.state.account("bob").status == "ok"
    assert violations(made, "event_linked_twice") == 1
    made.service.close()
