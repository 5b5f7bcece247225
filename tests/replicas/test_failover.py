"""Replica processes on PostgreSQL under SIGKILL and SIGSTOP longer than the lease: no
account ever has two writers, every account resumes within the lease and a tick, and a
stopped replica woken up after a takeover cannot write with its old token.

The replicas are driver processes (syncd_testkit/replica_driver.py) running the product's
claim, lease and fencing code; the triggers of syncd_testkit/replicas.py audit every write
in the transaction that makes it. 50 accounts here (enough for every kill to leave claims
to take over, few enough that the replicas do not saturate the machine); the 2,000-account
version is bench/failover.py.
"""

from __future__ import annotations

import signal
from collections.abc import Iterator

import pytest
from sqlalchemy import delete, select

from syncd.store.db import Database
from syncd.store.state_tables import SyncAccount, SyncMeeting, SyncQuarantine
from syncd_testkit.replicas import (
    Replica,
    chaos,
    install_audit,
    remove_audit,
    tokens_went_back,
    two_writers,
)

pytestmark = pytest.mark.postgres


@pytest.fixture
def audited(pg: Database) -> Iterator[Database]:
    """The test database with the audit triggers on, for this test only."""
    install_audit(pg)
    yield pg
    remove_audit(pg)

ACCOUNTS = 50
TTL = 1.5  # seconds
TICK = 0.1
#: What a loaded two-core machine may add to "lease + one tick" (scheduling, a claim
#: waiting for a free slot); the delays measured are usually well under it.
SLACK = 2.0
#: A cycle's calendar request takes 100 ms, so a replica signalled just after it claims
#: is still in that cycle.
OPTIONS = {"ttl": TTL, "tick": TICK, "interval": 1.0, "work_ms": 100, "cap": 4}


@pytest.mark.slow  # the one representative of the scenario (tests/conftest.py)
def test_killed_and_stopped_replicas_never_let_an_account_have_two_writers(
        pg_url: str, audited: Database) -> None:
    result = chaos(pg_url, audited, ACCOUNTS, **OPTIONS)
    assert result.writes > 2 * ACCOUNTS
    assert result.two_writers == []
    assert result.tokens_went_back == []
    assert result.takeover_delays, "no lease was taken over: the kills tested nothing"
    assert max(result.takeover_delays) <= TICK + SLACK, sorted(result.takeover_delays)[-5:]


def _woken_after_a_takeover(pg_url: str, **options: object) -> tuple[dict[str, int], int]:
    """A replica stopped in the middle of its cycle of acc0000, another taking the
    account over once the lease lapsed, the first woken up: its counts when it stopped,
    and the token the second took the account with (checked newer than the first's,
    whose write was refused)."""
    paused = Replica.start(pg_url, "paused", 1, **options)
    other: Replica | None = None
    try:
        token = int(paused.wait_for("claimed acc0000", timeout=30).split()[2])
        paused.signal(signal.SIGSTOP)  # in the middle of its cycle
        other = Replica.start(pg_url, "other", 1, **options)
        taken = int(other.wait_for("claimed acc0000", timeout=30).split()[2])
        assert taken > token
        paused.signal(signal.SIGCONT)
        assert paused.wait_for("refused", timeout=30) == f"refused acc0000 {token}"
    finally:
        counts = paused.stop()
        if other is not None:
            other.stop()
    return counts, taken


def test_a_stopped_replica_woken_after_a_takeover_cannot_write_with_its_old_token(
        pg_url: str, audited: Database) -> None:
    pg = audited
    slow = {"ttl": 1.0, "tick": TICK, "interval": 60, "work_ms": 300, "cap": 1}
    counts, _taken = _woken_after_a_takeover(pg_url, **slow)
    assert counts.get("cycles", 0) == 0 and counts["refused"] == 1
    assert two_writers(pg) == []
    assert tokens_went_back(pg) == []


@pytest.mark.parametrize("write", ["failure", "meeting", "guests"])
def test_a_woken_replica_cannot_count_a_failure_claim_a_meeting_or_guest_emails(
        pg_url: str, pg: Database, write: str) -> None:
    """The cycle's other fenced writes: a replica stopped past its lease and woken after
    a takeover has its write refused, and nothing it tried is in the database; the
    replica that took over wrote its own."""
    with pg.session() as s:
        s.execute(delete(SyncQuarantine))
        s.execute(delete(SyncMeeting))
    # Its calendar request lasts a second: it is stopped well before its first write.
    slow = {"ttl": 1.0, "tick": TICK, "interval": 60, "work_ms": 1000, "cap": 1,
            "write": write}
    counts, taken = _woken_after_a_takeover(pg_url, **slow)
    assert counts.get("cycles", 0) == 0 and counts["refused"] == 1
    with pg.session() as s:
        reasons = set(s.scalars(select(SyncQuarantine.reason)))
        uids = set(s.scalars(select(SyncMeeting.ical_uid)))
        guests = s.scalar(select(SyncAccount.guest_window_count)
                          .where(SyncAccount.name == "acc0000"))
    if write == "failure":
        assert reasons == {f"other|{taken}"}
    elif write == "meeting":
        assert uids == {f"other|{taken}|0@example.org", f"other|{taken}|1@example.org"}
    else:
        assert guests == taken
