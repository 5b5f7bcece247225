"""What the replica tests (and bench/failover.py) share: replica processes to
start, kill and stop, and the test-side audit that proves who wrote what.

The audit is kept by PostgreSQL triggers, so it sees every write the replicas make, in
the transaction that makes it:

* ``audit_writes``: each record of finished writes (a ``sync_links`` row) and each cursor
  commit, with the writer and token the driver put in the value, and the account's lease
  holder and token at that moment;
* ``audit_leases``: each take of a lease (its token changed), with the holder it replaced
  and when that holder's lease expired.
"""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import text

from syncd.store.db import Database

AUDIT = """
CREATE TABLE IF NOT EXISTS audit_writes (
    id bigserial PRIMARY KEY, account text, kind text, writer text, token bigint,
    holder text, holder_token bigint, at timestamptz);
CREATE TABLE IF NOT EXISTS audit_leases (
    id bigserial PRIMARY KEY, account text, owner text, token bigint, previous text,
    previous_until timestamptz, at timestamptz);
TRUNCATE audit_writes, audit_leases;
CREATE OR REPLACE FUNCTION audit_link() RETURNS trigger AS $$
BEGIN
    INSERT INTO audit_writes (account, kind, writer, token, holder, holder_token, at)
    SELECT NEW.account, 'record', split_part(NEW.etag, '|', 1),
           NULLIF(split_part(NEW.etag, '|', 2), '')::bigint, a.lease_owner, a.lease_token,
           clock_timestamp()
    FROM sync_accounts a WHERE a.name = NEW.account;
    RETURN NEW;
END $$ LANGUAGE plpgsql;
CREATE OR REPLACE FUNCTION audit_account() RETURNS trigger AS $$
BEGIN
    IF NEW.crm_cursor IS DISTINCT FROM OLD.crm_cursor THEN
        INSERT INTO audit_writes (account, kind, writer, token, holder, holder_token, at)
        VALUES (NEW.name, 'cursor', split_part(NEW.crm_cursor, '|', 1),
                NULLIF(split_part(NEW.crm_cursor, '|', 2), '')::bigint, NEW.lease_owner,
                NEW.lease_token, clock_timestamp());
    END IF;
    IF NEW.lease_token IS DISTINCT FROM OLD.lease_token THEN
        INSERT INTO audit_leases (account, owner, token, previous, previous_until, at)
        VALUES (NEW.name, NEW.lease_owner, NEW.lease_token, OLD.lease_owner,
                OLD.lease_until, clock_timestamp());
    END IF;
    RETURN NEW;
END $$ LANGUAGE plpgsql;
DROP TRIGGER IF EXISTS audit_link ON sync_links;
CREATE TRIGGER audit_link AFTER INSERT OR UPDATE ON sync_links
    FOR EACH ROW EXECUTE FUNCTION audit_link();
DROP TRIGGER IF EXISTS audit_account ON sync_accounts;
CREATE TRIGGER audit_account AFTER UPDATE ON sync_accounts
    FOR EACH ROW EXECUTE FUNCTION audit_account();
"""


def install_audit(db: Database) -> None:
    with db.session() as s:
        s.execute(text(AUDIT))


def remove_audit(db: Database) -> None:
    with db.session() as s:
        s.execute(text("DROP TRIGGER IF EXISTS audit_link ON sync_links; "
                       "DROP TRIGGER IF EXISTS audit_account ON sync_accounts"))


@dataclass
class Replica:
    """One driver process (syncd_testkit/replica_driver.py) and the lines it printed."""

    owner: str
    process: subprocess.Popen[str]
    lines: queue.Queue[str] = field(default_factory=queue.Queue)
    done: dict[str, int] | None = None

    @classmethod
    def start(cls, url: str, owner: str, accounts: int, **options: Any) -> Replica:
        """Start one replica and wait until it runs."""
        replica = cls.spawn(url, owner, accounts, **options)
        replica.wait_for("ready", timeout=60)
        return replica

    @classmethod
    def start_all(cls, url: str, owners: list[str], accounts: int, **options: Any
                  ) -> list[Replica]:
        """Start replicas side by side (each one's imports take a while on a busy
        machine) and wait until they all run."""
        replicas = [cls.spawn(url, owner, accounts, **options) for owner in owners]
        for replica in replicas:
            replica.wait_for("ready", timeout=60)
        return replicas

    @classmethod
    def spawn(cls, url: str, owner: str, accounts: int, **options: Any) -> Replica:
        args = [sys.executable, "-m", "syncd_testkit.replica_driver", "--url", url, "--owner",
                owner, "--accounts", str(accounts)]
        for key, value in options.items():
            args += [f"--{key.replace('_', '-')}", str(value)]
        process = subprocess.Popen(args, stdout=subprocess.PIPE, text=True,
                                   cwd=os.path.dirname(os.path.dirname(
                                       os.path.abspath(__file__))))
        replica = cls(owner, process)
        threading.Thread(target=replica._read, daemon=True).start()
        return replica

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.put(line.strip())

    def wait_for(self, prefix: str, timeout: float) -> str:
        """The next line starting with ``prefix`` (others are dropped)."""
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            try:
                line = self.lines.get(timeout=left)
            except queue.Empty:
                break
            if line.startswith(prefix):
                return line
        raise AssertionError(f"{self.owner} printed no {prefix!r} line in {timeout} s")

    def signal(self, signum: int) -> None:
        self.process.send_signal(signum)

    def in_a_cycle(self, timeout: float = 30) -> None:
        """Return once the replica has just claimed an account (a fresh ``claimed`` line,
        older ones dropped): a kill or stop sent now finds it holding a lease."""
        while True:
            try:
                self.lines.get_nowait()
            except queue.Empty:
                break
        self.wait_for("claimed ", timeout)

    def kill(self) -> None:
        self.process.kill()
        self.process.wait()

    def stop(self) -> dict[str, int]:
        """SIGTERM; the counts it printed on its way out."""
        import json

        self.process.send_signal(signal.SIGCONT)
        self.process.send_signal(signal.SIGTERM)
        line = self.wait_for("done ", timeout=60)
        self.process.wait(timeout=30)
        self.done = json.loads(line[5:])
        return self.done


def db_now(db: Database) -> datetime:
    with db.session() as s:
        return s.execute(text("SELECT clock_timestamp()")).scalar_one()


def wait_until(check: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.2)
    raise AssertionError(f"not within {timeout} s: {what}")


def two_writers(db: Database) -> list[Any]:
    """Writes made by anyone but the account's lease holder, under any token but its
    current one: each would be a second writer."""
    with db.session() as s:
        return list(s.execute(text(
            "SELECT * FROM audit_writes WHERE writer IS DISTINCT FROM holder "
            "OR token IS DISTINCT FROM holder_token")))


def tokens_went_back(db: Database) -> list[Any]:
    """Accounts where a write came under an older token than one written before it."""
    with db.session() as s:
        return list(s.execute(text(
            "SELECT account, id, token FROM (SELECT account, id, token, max(token) OVER "
            "(PARTITION BY account ORDER BY id ROWS BETWEEN UNBOUNDED PRECEDING AND 1 "
            "PRECEDING) AS before FROM audit_writes) w WHERE token < before")))


def takeover_delays(db: Database) -> list[float]:
    """Seconds from each lapsed lease's expiry to its takeover by another replica."""
    with db.session() as s:
        return [float(d) for d in s.execute(text(
            "SELECT extract(epoch FROM at - previous_until) FROM audit_leases "
            "WHERE previous IS NOT NULL AND previous <> owner")).scalars()]


def written_since(db: Database, since: datetime) -> int:
    """How many accounts had a cursor committed after ``since``."""
    with db.session() as s:
        return int(s.execute(text(
            "SELECT count(DISTINCT account) FROM audit_writes WHERE kind = 'cursor' "
            "AND at > :since"), {"since": since}).scalar_one())


@dataclass
class ChaosResult:
    """What a chaos run shows: writes by anyone but the lease holder, tokens that went
    back, and the seconds from each lapsed lease to its takeover."""

    writes: int
    two_writers: list[Any]
    tokens_went_back: list[Any]
    takeover_delays: list[float]
    done: dict[str, dict[str, int]]
    seconds: float


def chaos(url: str, db: Database, accounts: int, *, ttl: float, replicas: int = 3,
          timeout: float = 60, **options: Any) -> ChaosResult:
    """Run ``replicas`` replicas over ``accounts`` accounts (the audit installed), and
    once every account has synced: SIGKILL one (and start a new one in its place),
    SIGSTOP another for twice the lease, SIGKILL a third; then wait until every account
    has synced again. Each kill and stop is sent just after its replica printed a claim,
    so that it holds a lease then (with cycles of a few milliseconds, a kill at a random
    moment often finds none, and would test nothing). ``options`` go to each driver
    (tick, interval, work_ms, cap)."""
    began = time.monotonic()
    owners = [f"r{i}" for i in range(replicas)]
    running = Replica.start_all(url, owners, accounts, ttl=ttl, **options)
    done: dict[str, dict[str, int]] = {}
    try:
        started = db_now(db)
        wait_until(lambda: written_since(db, started) == accounts, timeout,
                   "every account synced")

        running[0].in_a_cycle()
        running[0].kill()  # SIGKILL: its claims are left to expire
        running[0] = Replica.start(url, f"r{replicas}", accounts, ttl=ttl, **options)
        time.sleep(ttl + 0.5)

        paused = running[1 % replicas]
        paused.in_a_cycle()
        paused.signal(signal.SIGSTOP)  # stopped longer than its leases
        time.sleep(2 * ttl)
        paused.signal(signal.SIGCONT)
        time.sleep(0.5)

        running[2 % replicas].in_a_cycle()
        running[2 % replicas].kill()
        last = db_now(db)
        wait_until(lambda: written_since(db, last) == accounts, timeout,
                   "every account synced after the last kill")
    finally:
        for r in running:
            if r.process.poll() is None:
                done[r.owner] = r.stop()
    with db.session() as s:
        writes = int(s.execute(text("SELECT count(*) FROM audit_writes")).scalar_one())
    return ChaosResult(writes, two_writers(db), tokens_went_back(db), takeover_delays(db),
                       done, time.monotonic() - began)
