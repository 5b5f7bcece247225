"""A ``syncd verify --repair`` killed with SIGKILL on PostgreSQL holds its account for one
short repair lease at most (``REPAIR_LEASE_TTL``), not a cycle's ``lease_seconds``:
nothing can give a killed process's lease back, so only its expiry frees the account
for the replicas. While the repair lives (here: stuck in a delete batch whose request
never returns), its heartbeat keeps the lease, and no replica takes it over.

Timing is judged on the database's clock and the lease's own arithmetic: the loop that
watches the live repair runs for a stretch of database time, and the killed repair's
lease must lapse within one TTL of the kill (it lasted 600 s before).
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from syncd.store.db import Database
from syncd.store.queue import WorkQueue
from syncd.store.state import StateStore
from syncd.store.state_tables import SyncAccount
from syncd_testkit.repair_child import OWNER

TTL = timedelta(seconds=4)  # the child's repair lease (30 s in the product)
CYCLE_TTL = timedelta(minutes=10)


def _db_now(db: Database) -> datetime:
    with db.session() as s:
        return s.scalar(select(func.now()))  # type: ignore[no-any-return]


@pytest.mark.postgres
@pytest.mark.slow  # a repair process kept alive for a few of its lease's lengths
def test_a_killed_repair_frees_its_account_within_one_short_lease_and_a_live_one_keeps_it(
        pg: Database, pg_url: str, tmp_path: Path) -> None:
    name = f"kill-{uuid.uuid4().hex[:8]}"
    state = StateStore(pg)
    WorkQueue(pg, "enrol").enrol([name])
    state.update_account(name, due_at=datetime.now(UTC) - timedelta(minutes=5))
    replica = WorkQueue(pg, "replica-2")
    child = subprocess.Popen(
        [sys.executable, "-m", "syncd_testkit.repair_child", pg_url, name,
         f"ann-{uuid.uuid4().hex[:8]}@example.com", str(tmp_path), str(TTL.total_seconds())],
        stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None and child.stdout.readline() == "writing\n"
        held = state.account(name)
        assert held.lease_owner == OWNER and held.lease_until is not None
        # Alive, stuck in a batch for three lease lengths of database time: its
        # heartbeat keeps the lease, and the replica never gets the account.
        start = _db_now(pg)
        while _db_now(pg) < start + 3 * TTL:
            assert replica.claim([name], 1, CYCLE_TTL) == []
            time.sleep(0.1)
        alive = state.account(name)
        assert (alive.lease_owner, alive.lease_token) == (OWNER, held.lease_token)
        assert alive.lease_until is not None and alive.lease_until > held.lease_until + TTL
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
    with pg.session() as s:
        killed_at, until = s.execute(select(func.now(), SyncAccount.lease_until)
                                     .where(SyncAccount.name == name)).one()
    assert until - killed_at <= TTL  # lapses within one short lease of the kill
    deadline = time.monotonic() + 120  # (a bound on a failing test, not a measurement)
    while not (claims := replica.claim([name], 1, CYCLE_TTL)):
        assert time.monotonic() < deadline, "the killed repair's lease never lapsed"
        time.sleep(0.1)
    (claim,) = claims
    taken = state.account(name)
    assert taken.lease_owner == "replica-2" and claim.token > held.lease_token
    assert taken.takeovers == held.takeovers + 1
    assert not state.renew_lease(name, held.lease_token, TTL)  # the dead repair is fenced
