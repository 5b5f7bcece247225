"""In-process daemons over memory calendars, for the push tests (``start`` in conftest)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from connectors.memory import MemoryCalendar
from syncd.config import AccountConfig, Config, HttpConfig, PushConfig
from syncd.crm.builtin.activities import ActivityStore
from syncd.daemon import Daemon
from syncd.store.channels import ChannelStore
from tests.push.conftest import NOWHERE, Clock

CALENDARS: dict[str, MemoryCalendar] = {}
ALICE = AccountConfig("alice", "memory", "alice@example.com", interval_seconds=60)
BOB = AccountConfig("bob", "memory", "bob@example.com", interval_seconds=60)
BACKSTOP = 15 * 60


def open_memory(account: AccountConfig, _context: Any) -> MemoryCalendar:
    """The connector factory of provider "memory" in these tests."""
    return CALENDARS.setdefault(account.name, MemoryCalendar())


class Running:
    def __init__(self, daemon: Daemon) -> None:
        self.daemon = daemon
        self.clock = Clock(datetime.now(UTC))
        daemon.keeper.clock = self.clock
        self.crm = ActivityStore(daemon.service.db)
        known = {user.email: user.id for user in self.crm.list_users()}
        self.owners = {a.owner: known.get(a.owner) or self.crm.add_user(a.owner, a.name)
                       for a in daemon.config.accounts}

    @property
    def channels(self) -> ChannelStore:
        return self.daemon.keeper.channels

    def cycle(self, *names: str) -> None:
        """A cycle of each account (alice's by default), as their jobs would run them."""
        for name in names or ("alice",):
            self.daemon._run_account(name)

    def interval(self, name: str = "alice") -> float:
        job = self.daemon.scheduler.get_job(f"account:{name}")
        assert job is not None
        return float(job.trigger.interval.total_seconds())

    def next_run(self, name: str = "alice") -> datetime:
        job = self.daemon.scheduler.get_job(f"account:{name}")
        assert job is not None and job.next_run_time is not None
        return job.next_run_time  # type: ignore[no-any-return]

    def add_activity(self, owner: str = "alice@example.com") -> None:
        self.crm.add_activity(owner_id=self.owners[owner], subject="Call",
                              due_date=date.today() + timedelta(days=2))

    def status(self, name: str = "alice") -> str:
        row = next(r for r in self.daemon.service.status() if r["account"] == name)
        return str(row["push"]["line"])


def daemon_config(tmp_path: Path, public_url: str | None = NOWHERE, listen: str | None = None,
            accounts: tuple[AccountConfig, ...] = (ALICE,)) -> Config:
    data = tmp_path / "data"
    data.mkdir(mode=0o700, exist_ok=True)
    return Config(data_dir=str(data), jitter_seconds=0, interval_seconds=60,
                  http=HttpConfig(listen=listen, public_url=public_url),
                  push=PushConfig(backstop_minutes=15, liveness_seconds=180),
                  accounts=accounts)
