"""``syncd verify --repair`` writes only under the account's lease, as a cycle does.

A repair deletes events and rewrites pairs; a cycle of the same account (a replica's, the
daemon's, ``syncd sync``'s) running beside it would be a second writer. So a repair takes
the account's lease first: a live holder's lease leaves the account unrepaired (and says
who holds it and what to do), an expired one is taken over (and its old holder's token
can write no more), each delete batch is fenced, its deletions are recorded with the
token, and the lease goes back with the due time unchanged. On PostgreSQL the replica
tests' audit triggers see every lease take and every fenced write; the calendar's writes
are added to the same audit by the calendar itself (who holds the lease as each lands).
"""

from __future__ import annotations

import argparse
import json
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, text, update

from connectors.base import CreateOp, WriteOp, WriteResult
from connectors.memory import MemoryCalendar
from syncd.cli_verify import _verify
from syncd.config import AccountConfig, Config
from syncd.errors import LeaseLost
from syncd.model import Projection, When
from syncd.pairs import SyncPair
from syncd.repair_lease import LeaseHeld, RepairLease, take_lease
from syncd.service import Service
from syncd.store.db import Database
from syncd.store.queue import WorkQueue
from syncd.store.state_tables import SyncAccount, SyncWrite
from syncd.verify import AccountAudit, verify
from syncd_testkit.replicas import (
    Replica,
    install_audit,
    remove_audit,
    tokens_went_back,
    two_writers,
)

TTL = timedelta(minutes=10)
#: The audit row a calendar write adds: who wrote (the repair's owner, with the newest
#: token it took) and who held the account's lease as the write landed.
AUDIT_CALENDAR = text(
    "INSERT INTO audit_writes (account, kind, writer, token, holder, holder_token, at) "
    "SELECT a.name, 'calendar', :writer, (SELECT max(l.token) FROM audit_leases l "
    "WHERE l.account = a.name AND l.owner = :writer), a.lease_owner, a.lease_token, "
    "clock_timestamp() FROM sync_accounts a WHERE a.name = :account")


class Watched(MemoryCalendar):
    """A memory calendar that notes, for each write batch, who held the account's lease
    (and, with ``audit``, adds the batch to the PostgreSQL audit); ``during`` runs
    after a batch lands (a replica acting meanwhile)."""

    def __init__(self, db: Database, account: str) -> None:
        super().__init__()
        self.db, self.account = db, account
        self.writer: str | None = None  # set to the repair's owner
        self.audit = False
        self.batches: list[tuple[int, str | None, int]] = []  # (ops, holder, token)
        self.during: list[Any] = []

    def write(self, ops: Sequence[WriteOp]) -> list[WriteResult]:
        with self.db.session() as s:
            holder, token = s.execute(select(SyncAccount.lease_owner, SyncAccount.lease_token)
                                      .where(SyncAccount.name == self.account)).one()
            if self.audit:
                s.execute(AUDIT_CALENDAR, {"writer": self.writer, "account": self.account})
        self.batches.append((len(ops), holder, token))
        results = super().write(ops)
        if self.during:
            self.during.pop(0)()
        return results


@dataclass
class Setup:
    """One memory account on ``db`` whose calendar holds ``n`` orphans (events with
    syncd's marker that no activity owns): what ``verify --repair`` deletes."""

    service: Service
    account: AccountConfig
    calendar: Watched
    orphans: list[str]

    @property
    def name(self) -> str:
        return self.account.name

    def live(self) -> set[str]:
        return {e.event_id for e in self.calendar.changes(None).events}

    def row(self) -> Any:
        return self.service.state.account(self.name)

    def deletions_logged(self) -> list[str]:
        with self.service.db.session() as s:
            return list(s.scalars(select(SyncWrite.event_id).where(
                SyncWrite.account == self.name, SyncWrite.op == "delete")))


def setup(db: Database, tmp_path: Path, orphans: int = 2, name: str | None = None) -> Setup:
    owner = f"ann-{uuid.uuid4().hex[:8]}@example.com"  # (PostgreSQL's users outlive a test)
    account = AccountConfig(name=name or f"acc-{uuid.uuid4().hex[:6]}", provider="memory",
                            owner=owner)
    service = Service(Config(data_dir=str(tmp_path), accounts=(account,)), db=db)
    service.store.add_user(owner, "Ann", "UTC")
    calendar = Watched(db, account.name)
    calendar.writer = service.replica
    service._open = (  # type: ignore[method-assign]
        lambda _account, _now, read_only=False: calendar)
    WorkQueue(db, "enrol").enrol([account.name])
    # due a while ago, as a claimed account is (a repair must leave it so)
    service.state.update_account(account.name, due_at=datetime.now(UTC) - timedelta(minutes=5))
    return Setup(service, account, calendar, plant(calendar, orphans))


def plant(calendar: MemoryCalendar, orphans: int) -> list[str]:
    """``orphans`` events carrying markers no activity has (a bug's leftovers); their ids."""
    day = date.today() + timedelta(days=3)
    projection = Projection("Stray", When(datetime.combine(day, time(9), UTC),
                                          datetime.combine(day, time(10), UTC), "UTC"))
    made = MemoryCalendar.write(calendar, [
        CreateOp(f"stray{i}", uuid.uuid4().hex, 0, projection) for i in range(orphans)])
    return sorted(r.event.event_id for r in made if r.event is not None)


def one(audits: list[AccountAudit]) -> AccountAudit:
    (audit,) = audits
    return audit


@pytest.fixture
def audited(pg: Database) -> Iterator[Database]:
    install_audit(pg)
    yield pg
    remove_audit(pg)


def expire(db: Database, name: str) -> None:
    """The holder's lease lapsed (on the database's clock): it never gave it back."""
    with db.session() as s:
        s.execute(update(SyncAccount).where(SyncAccount.name == name)
                  .values(lease_until=text("now() - interval '1 second'")))


# --- a replica holds the account -----------------------------------------------------


@pytest.mark.postgres
def test_a_repair_while_a_replica_holds_the_lease_writes_nothing_and_says_who_holds_it(
        audited: Database, tmp_path: Path) -> None:
    world = setup(audited, tmp_path)
    (claim,) = WorkQueue(audited, "replica-1").claim([world.name], 1, TTL)
    due = world.row().due_at

    audit = one(verify(world.service, repair=True))

    assert audit.held == LeaseHeld(world.name, "replica-1", world.row().lease_until)
    assert audit.busy and audit.removed == [] and len(audit.findings) == 2
    assert world.calendar.batches == [] and world.live() == set(world.orphans)
    assert world.deletions_logged() == []
    row = world.row()  # the replica's lease, untouched
    assert (row.lease_owner, row.lease_token, row.due_at) == ("replica-1", claim.token, due)
    with audited.session() as s:
        assert s.execute(text("SELECT count(*) FROM audit_leases WHERE owner = :me"),
                         {"me": world.service.replica}).scalar_one() == 0


def test_the_busy_line_names_the_account_its_holder_and_what_to_do(
        any_db: Database, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    world = setup(any_db, tmp_path)
    assert WorkQueue(any_db, "replica-1").claim([world.name], 1, TTL)

    class App:
        config, db, json = world.service.config, any_db, False

        def emit(self, data: Any, text: str) -> None:
            print(text)
            self.data = data

    app = App()
    # (the command opens a service of its own: it gets the watched calendar too)
    monkeypatch.setattr(Service, "_open",
                        lambda _self, _account, _now, read_only=False: world.calendar)
    code = _verify(argparse.Namespace(account=[world.name], repair=True, wait=0.0),
                   app)  # type: ignore[arg-type]
    out = capsys.readouterr().out
    assert code == 1
    assert f"{world.name}: 2 finding(s) (2 events, 0 pairs, 0 activities)" in out
    assert (f"not repaired: the lease of {world.name} is held (replica-1, until " in out)
    assert ") by a sync cycle or another repair, and a repair never writes beside one" in out
    assert f"run 'syncd verify --repair --account {world.name}' again once it ends, or " \
           "add --wait SECONDS" in out
    (data,) = app.data
    assert (data["busy"], data["lease_holder"], data["removed"]) == (True, "replica-1", [])
    assert json.dumps(data)  # plain data
    assert world.live() == set(world.orphans)


# --- an expired lease is taken over ----------------------------------------------------


@pytest.mark.postgres
def test_a_repair_takes_over_an_expired_lease_and_the_old_holder_can_no_longer_write(
        audited: Database, tmp_path: Path) -> None:
    world = setup(audited, tmp_path)
    world.calendar.audit = True
    state = world.service.state
    (claim,) = WorkQueue(audited, "replica-1").claim([world.name], 1, TTL)
    # The replica wrote under its token (the audit's writer|token etag), then stalled.
    state.record(world.name, saves=[SyncPair(1, "m1", "e1", f"replica-1|{claim.token}",
                                             None, None, 0)], token=claim.token)
    expire(audited, world.name)
    due = world.row().due_at
    takeovers = world.row().takeovers

    audit = one(verify(world.service, repair=True))

    assert audit.removed == world.orphans and audit.held is None and not audit.busy
    assert world.live() == set() and sorted(world.deletions_logged()) == world.orphans
    row = world.row()
    assert (row.lease_owner, row.lease_until, row.due_at) == (None, None, due)  # given back
    assert row.takeovers == takeovers + 1 and row.lease_token > claim.token
    # The stalled replica wakes up: none of its fenced writes goes through.
    with pytest.raises(LeaseLost):
        state.record(world.name, saves=[SyncPair(2, "m2", "e2", f"replica-1|{claim.token}",
                                                 None, None, 0)], token=claim.token)
    assert not state.renew_lease(world.name, claim.token, TTL)
    assert not state.commit_cursors(world.name, claim.token,
                                    crm_cursor=f"replica-1|{claim.token}|late")
    assert not WorkQueue(audited, "replica-1").finish(world.name, claim.token, 60)
    assert world.row().due_at == due
    with audited.session() as s:
        taken = s.execute(text("SELECT owner, previous FROM audit_leases WHERE account = :a "
                               "ORDER BY id"), {"a": world.name}).all()
        kinds = s.execute(text("SELECT kind, writer FROM audit_writes WHERE account = :a "
                               "ORDER BY id"), {"a": world.name}).all()
    assert taken[-1] == (world.service.replica, "replica-1")
    assert kinds == [("record", "replica-1"), ("calendar", world.service.replica)]
    assert two_writers(audited) == [] and tokens_went_back(audited) == []


@pytest.mark.postgres
@pytest.mark.parametrize("when", ["recorded", "written"])
def test_a_repair_whose_lease_is_taken_over_midway_writes_no_more(
        audited: Database, tmp_path: Path, when: str) -> None:
    """A repair stalled past its lease (here: the lease lapses during its first batch of
    ten deletions and a replica claims the account) writes nothing more: not its next
    batch (the fence before it), and, if the takeover came before the first batch was
    recorded, not that record either (as a cycle's would be refused)."""
    world = setup(audited, tmp_path, orphans=15)  # two batches of at most 10
    world.calendar.audit = True
    state = world.service.state
    taken: list[int] = []

    def replica_takes_over() -> None:
        expire(audited, world.name)
        taken.extend(c.token for c in WorkQueue(audited, "replica-2").claim(
            [world.name], 1, TTL))

    if when == "written":
        world.calendar.during.append(replica_takes_over)
    else:
        record = state.record

        def recorded(*args: Any, **kwargs: Any) -> None:
            record(*args, **kwargs)
            replica_takes_over()

        state.record = recorded  # type: ignore[method-assign]
    audit = one(verify(world.service, repair=True))

    assert audit.lease_lost and len(audit.removed) == 10 and taken
    assert [n for n, _, _ in world.calendar.batches] == [10]
    assert len(world.live()) == 5
    row = world.row()  # the replica's lease, not released by the repair
    assert (row.lease_owner, row.lease_token) == ("replica-2", taken[0])
    logged = (tmp_path / "repairs.jsonl").read_text().splitlines()
    assert len(logged) == 10  # the deletions made are in repairs.jsonl either way
    assert len(world.deletions_logged()) == (10 if when == "recorded" else 0)
    assert two_writers(audited) == []


@pytest.mark.postgres
@pytest.mark.slow  # a replica process cycling the account for several repairs
def test_repairs_beside_a_replica_cycling_the_account_never_make_a_second_writer(
        pg_url: str, audited: Database, tmp_path: Path) -> None:
    """A replica process (the product's claim, lease and fencing code) cycles the account
    over and over while repairs wait for its lease between cycles: every repair deletes
    its orphans, the audit shows no write by anyone but the lease's holder, and the
    replica never had a write refused (no repair took a live lease)."""
    world = setup(audited, tmp_path, orphans=0, name="acc0000")  # the driver's account
    world.calendar.audit = True
    replica = Replica.start(pg_url, "replica-1", 1, ttl=30, tick=0.05, interval=0.2,
                            work_ms=50, cap=1)
    try:
        replica.wait_for("claimed acc0000", timeout=60)
        for _ in range(4):
            strays = plant(world.calendar, 3)
            audit = one(verify(world.service, repair=True, wait=60))
            assert (audit.removed, audit.busy) == (strays, False)
        replica.wait_for("claimed acc0000", timeout=60)  # it goes on after the repairs
    finally:
        counts = replica.stop()
    assert counts["cycles"] >= 2 and counts.get("refused", 0) == 0
    assert world.live() == set()
    with audited.session() as s:
        writers = dict(s.execute(text(
            "SELECT writer, count(*) FROM audit_writes GROUP BY writer")).all())
    assert writers[world.service.replica] == 4 and writers["replica-1"] >= 4
    assert two_writers(audited) == [] and tokens_went_back(audited) == []


# --- SQLite: one daemon, and syncd sync ---------------------------------------------------


def test_a_repair_on_sqlite_deletes_under_its_own_lease_and_gives_it_back(
        tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'state.db'}")
    world = setup(db, tmp_path)
    due = world.row().due_at

    audit = one(verify(world.service, repair=True))

    assert audit.removed == world.orphans and audit.clean and not audit.busy
    assert world.calendar.batches == [(2, world.service.replica, 1)]  # under its lease
    assert sorted(world.deletions_logged()) == world.orphans
    row = world.row()
    assert (row.lease_owner, row.lease_until, row.due_at, row.lease_token) == (
        None, None, due, 1)
    world.service.close()


def test_a_sync_cycle_during_a_repair_on_sqlite_is_busy_and_writes_nothing(
        tmp_path: Path) -> None:
    """The single process's exclusion: ``syncd sync`` (or the daemon's cycle) begins with
    the same lease take, so while a repair holds the account it finds it busy."""
    db = Database(f"sqlite:///{tmp_path / 'state.db'}")
    world = setup(db, tmp_path)
    other = Service(world.service.config, db=db)
    other.replica = f"{socket.gethostname()}:1"  # another live process (pid 1 never dies)
    other._open = (  # type: ignore[method-assign]
        lambda _account, _now, read_only=False: world.calendar)
    reports = []
    world.calendar.during.append(lambda: reports.append(other.sync_one(world.account)))

    audit = one(verify(world.service, repair=True))

    assert audit.removed == world.orphans
    (report,) = reports
    assert (report.outcome, report.note) == ("busy", "lease-busy")
    assert report.line() == (
        f"{world.name}: busy (another syncd process holds the account's lease: the daemon, a "
        "replica, another syncd sync or a verify --repair; nothing was done here, and the "
        "account syncs there or at its next cycle)")
    assert [holder for _, holder, _ in world.calendar.batches] == [world.service.replica]
    world.service.close()


def test_a_repair_on_sqlite_leaves_an_account_a_live_sync_holds_and_takes_a_dead_ones(
        tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'state.db'}")
    world = setup(db, tmp_path)
    live = f"{socket.gethostname()}:1"
    assert world.service.state.acquire_lease(world.name, live, TTL) is not None

    audit = one(verify(world.service, repair=True))
    assert audit.held is not None and audit.held.holder == live
    assert world.live() == set(world.orphans) and world.calendar.batches == []

    # A `syncd sync` killed in its cycle: its lease is taken at once, as the daemon would.
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    dead = f"{socket.gethostname()}:{gone.stdout.strip()}"
    world.service.state.update_account(world.name, lease_owner=dead)
    audit = one(verify(world.service, repair=True))
    assert audit.removed == world.orphans and world.live() == set()
    assert world.row().takeovers == 1
    world.service.close()


def test_waiting_for_a_held_lease_takes_it_once_the_cycle_gives_it_back(
        tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'state.db'}")
    world = setup(db, tmp_path, orphans=0)
    state = world.service.state
    cycle = state.acquire_lease(world.name, f"{socket.gethostname()}:1", TTL)
    assert cycle is not None
    clock = iter(range(100))
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        if len(slept) == 3:
            state.release_lease(world.name, cycle)  # the cycle ends

    lease = take_lease(state, world.name, "verify", TTL, wait=30, sleep=sleep,
                       clock=lambda: float(next(clock)))
    assert isinstance(lease, RepairLease) and lease.token == cycle + 1
    assert slept == [1.0, 1.0, 1.0]
    lease.release()
    assert state.acquire_lease(world.name, f"{socket.gethostname()}:1", TTL) is not None
    assert isinstance(take_lease(state, world.name, "verify", TTL, wait=2, sleep=slept.append,
                                 clock=lambda: float(next(clock))), LeaseHeld)
    world.service.close()


def test_a_repair_stopped_by_a_takeover_says_so_and_what_to_do() -> None:
    from syncd.report import describe_repair_held

    assert describe_repair_held("acc", None) == (
        "repair of acc stopped: another holder took the account's lease midway (the rest "
        "not done); run 'syncd verify --repair --account acc' again")
    assert describe_repair_held("acc", LeaseHeld("acc", None, None)) == (
        "not repaired: the lease of acc is held by a sync cycle or another repair, and a "
        "repair never writes beside one; run 'syncd verify --repair --account acc' again "
        "once it ends, or add --wait SECONDS to wait for it")


@pytest.mark.parametrize("wait", ["nan", "inf", "-5", "3601", "1e9", "ten", ""])
def test_a_wait_that_is_not_seconds_from_0_to_3600_is_refused_before_anything_runs(
        wait: str, capsys: pytest.CaptureFixture[str]) -> None:
    from syncd.cli import main

    assert main(["verify", "--repair", "--wait", wait]) == 2
    assert "is not a number of seconds from 0 to 3600" in capsys.readouterr().err
