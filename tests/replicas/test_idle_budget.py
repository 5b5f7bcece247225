"""What an idle cycle costs the database (issue 16 item 4): a budget of statements and
transactions, counted, never timed.

An idle cycle waits on the network, so the CPU it spends is most of what limits the
calendars one process keeps; nearly all of that CPU is database round trips. These tests
run the daemon's replica path (claim, ``_run_account`` with the push gate and the channel
keeper, give back) on SQLite and PostgreSQL and count what reaches the driver.
"""

from __future__ import annotations

import threading
import uuid
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, text

from connectors.base import ChangeSet
from connectors.memory import MemoryCalendar
from syncd.config import AccountConfig, Config
from syncd.daemon import Daemon
from syncd.store import db as db_module
from syncd.store.db import Database

#: Statements of one idle cycle, the claim from the work queue aside: the account's
#: row, the CRM owner, the CRM feed, the quarantine, the pending links, the status
#: written, the account given back, the push flag looked at again. (The flag's first
#: look comes back with the claim.)
IDLE_STATEMENTS = 8
#: Transactions (each a BEGIN and a COMMIT round trip more), the claim aside: none. The
#: reads run outside any transaction (one statement is consistent by itself), and so do
#: the status and the give-back (one statement each, atomic by itself).
IDLE_TRANSACTIONS = 0
#: The claim, made once per tick for as many accounts as the replica has room for, as
#: (statements, transactions): on PostgreSQL one statement (the rows chosen with FOR
#: UPDATE SKIP LOCKED in a CTE of the UPDATE that takes their leases); on SQLite a
#: SELECT and its UPDATE in one transaction.
CLAIM = {"postgresql": (1, 0), "sqlite": (2, 1)}


class Listing(MemoryCalendar):
    """A memory calendar that counts its listings of changes (its "requests")."""

    def __init__(self) -> None:
        super().__init__()
        self.listings = 0

    def changes(self, cursor: str | None) -> ChangeSet:
        self.listings += 1
        return super().changes(cursor)


class Counted:
    """Statements (by verb), checkouts and commits of one engine."""

    def __init__(self, db: Database) -> None:
        self.counts: Counter[str] = Counter()
        self.lock = threading.Lock()
        event.listen(db.engine, "before_cursor_execute", self._statement)
        event.listen(db.engine, "commit", lambda _conn: self._add("commit"))

    def _add(self, key: str) -> None:
        with self.lock:
            self.counts[key] += 1

    def _statement(self, _conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        self._add(statement.split(None, 1)[0].upper())

    def take(self) -> Counter[str]:
        with self.lock:
            taken, self.counts = self.counts, Counter()
        return taken


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'syncd.db'}"
    pg = request.getfixturevalue("pg")
    return str(pg.url)


@pytest.fixture
def daemon(url: str, tmp_path: Path) -> Iterator[Daemon]:
    owner = f"ann-{uuid.uuid4().hex[:8]}@example.com"  # the PostgreSQL CRM is shared
    accounts = tuple(AccountConfig(name=f"a{i}", provider="memory", owner=owner)
                     for i in range(3))
    daemon = Daemon(Config(database=url, data_dir=str(tmp_path), accounts=accounts,
                           replica=True, workers=2, interval_seconds=0, jitter_seconds=0))
    daemon.service.store.add_user(owner, "Ann", "UTC")
    calendars: dict[str, Listing] = {}
    daemon.service._connector = (  # type: ignore[method-assign]
        lambda account, _now: calendars.setdefault(account.name, Listing()))
    assert daemon.queue is not None
    daemon.queue.enrol(a.name for a in accounts)
    daemon.start_push()  # as `syncd run` does: the keeper looks after each cycle
    daemon.calendars = calendars  # type: ignore[attr-defined]
    try:
        yield daemon
    finally:
        daemon.service.close()


def cycle(daemon: Daemon, name: str) -> None:
    """One cycle of ``name`` as the replica's work: claimed, run, given back."""
    assert daemon.queue is not None
    claims = daemon.queue.claim([name], 1, timedelta(minutes=10))
    assert [c.name for c in claims] == [name]
    daemon._run_account(name, claims[0])


def test_an_idle_cycle_stays_within_its_statement_budget(daemon: Daemon) -> None:
    store = daemon.service.store
    owner = store.get_user_by_email(daemon.config.accounts[0].owner)
    assert owner is not None
    store.add_activity(owner_id=owner.id, subject="Call",
                       due_date=datetime.now(UTC).date() + timedelta(days=3))
    counted = Counted(daemon.service.db)
    for _ in range(2):  # the first sync, then the cycle reading back its echo
        cycle(daemon, "a0")
    calendar = daemon.calendars["a0"]  # type: ignore[attr-defined]
    assert calendar.listings == 2 and len(calendar.store) == 1
    busy = sum(v for k, v in counted.take().items() if k != "commit")
    claim_statements, claim_transactions = CLAIM[daemon.service.db.dialect]
    for _ in range(3):
        cycle(daemon, "a0")
        spent = counted.take()
        statements = sum(v for k, v in spent.items() if k != "commit")
        assert statements <= IDLE_STATEMENTS + claim_statements, spent
        assert spent["commit"] <= IDLE_TRANSACTIONS + claim_transactions, spent
        assert spent["INSERT"] == spent["DELETE"] == 0, spent
    assert calendar.listings == 5  # one listing of changes per cycle, nothing else
    assert busy > statements  # the first cycles did write: the count is not vacuous
    state = daemon.service.state.account("a0")
    assert state.last_outcome == "ok" and state.lease_owner is None


def test_an_idle_cycle_stores_no_cursor_that_did_not_move(daemon: Daemon) -> None:
    counted = Counted(daemon.service.db)
    cycle(daemon, "a1")
    before = daemon.service.state.account("a1")
    counted.take()
    cycle(daemon, "a1")
    after = daemon.service.state.account("a1")
    # the status is written (last run), the cursors are not written again
    # the claim, the status with the lease released, the give-back; no cursor (on
    # PostgreSQL the claim's UPDATE begins with its CTE)
    spent = counted.take()
    assert spent["UPDATE"] + spent["WITH"] == 3, spent
    assert (after.crm_cursor, after.calendar_cursor, after.window_end) == (
        before.crm_cursor, before.calendar_cursor, before.window_end)
    assert after.last_run_at is not None and before.last_run_at is not None
    assert after.last_run_at >= before.last_run_at


def test_a_claimed_cycle_takes_the_push_flag_its_claim_found(daemon: Daemon) -> None:
    dirty = daemon.push.dirty
    cycle(daemon, "a2")
    dirty.mark(["a2"])  # a hint came while the account rested
    counted = Counted(daemon.service.db)
    cycle(daemon, "a2")
    spent = counted.take()
    assert dirty.flagged(["a2"]) == set()  # taken: the cycle read after the hint
    # the flag read with the claim, cleared by one UPDATE more than an idle cycle's
    claim_statements, _ = CLAIM[daemon.service.db.dialect]
    assert sum(v for k, v in spent.items() if k != "commit") == \
        IDLE_STATEMENTS + claim_statements + 1, spent
    counted.take()
    cycle(daemon, "a2")  # nothing flagged now: nothing cleared
    spent = counted.take()
    assert sum(v for k, v in spent.items() if k != "commit") == \
        IDLE_STATEMENTS + claim_statements, spent


@pytest.mark.postgres
def test_a_connection_in_steady_use_is_not_pinged(pg: Database) -> None:
    pings = Counter[str]()
    dialect = pg.engine.dialect
    real = dialect.do_ping

    def ping(conn: Any) -> bool:
        pings["ping"] += 1
        return bool(real(conn))

    dialect.do_ping = ping  # type: ignore[method-assign]
    try:
        for _ in range(20):
            pg.ping()
    finally:
        del dialect.do_ping
    assert pings["ping"] == 0


@pytest.mark.postgres
def test_a_connection_the_server_closed_while_idle_is_replaced(
        pg_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    db = Database(pg_url, run_migrations=False)
    try:
        with db.engine.connect() as conn:
            pid = conn.execute(text("SELECT pg_backend_pid()")).scalar_one()
        # the server drops the pooled connection (a restart, an idle timeout)
        other = Database(pg_url, run_migrations=False)
        with other.engine.connect() as conn:
            conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
            conn.commit()
        other.close()
        monkeypatch.setattr(db_module, "PING_AFTER_IDLE_SECONDS", 0.0)
        with db.engine.connect() as conn:  # checked on checkout, and replaced
            assert conn.execute(text("SELECT pg_backend_pid()")).scalar_one() != pid
    finally:
        db.close()
