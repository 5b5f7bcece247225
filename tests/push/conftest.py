"""A keeper over a fresh SQLite state, a fake clock, and memory calendars that can be
watched (the connector's notifications go to a port nothing listens on unless a test
starts a receiver)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

import connectors
from connectors.memory import MemoryCalendar
from syncd.channels import ChannelKeeper, PushSettings
from syncd.config import AccountConfig, Config
from syncd.store.channels import ChannelStore
from syncd.store.db import Database

if TYPE_CHECKING:
    from tests.push.daemons import Running

T0 = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)
# Notifications to this address are refused at once (nothing listens on port 9 of
# loopback): the keeper tests never need them delivered.
NOWHERE = "http://127.0.0.1:9"
ALICE = AccountConfig("alice", "memory", "alice@example.com", calendar="work")


class Clock:
    """A settable UTC clock."""

    def __init__(self, at: datetime = T0) -> None:
        self.at = at

    def __call__(self) -> datetime:
        return self.at

    def advance(self, **delta: float) -> datetime:
        self.at += timedelta(**delta)
        return self.at


@dataclass
class Keeping:
    keeper: ChannelKeeper
    channels: ChannelStore
    clock: Clock
    calendar: MemoryCalendar

    def maintain(self, *, wrote: bool = False, account: AccountConfig = ALICE,
                 connector: object | None = None) -> str:
        return self.keeper.maintain(account, self.calendar if connector is None else connector,
                                    wrote_calendar=wrote, since=self.clock())


def keeper_for(db: Database, clock: Clock, public_url: str | None = NOWHERE) -> ChannelKeeper:
    return ChannelKeeper(ChannelStore(db), PushSettings(public_url), owner="host:1",
                         clock=clock, lifetime=timedelta(days=4))


@pytest.fixture
def db(tmp_path: Path) -> Database:
    return Database(f"sqlite:///{tmp_path / 'syncd.db'}")


@pytest.fixture
def keeping(db: Database) -> Keeping:
    clock = Clock()
    keeper = keeper_for(db, clock)
    return Keeping(keeper, keeper.channels, clock, MemoryCalendar())


@pytest.fixture
def start(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[Any], Running]]:
    """Start daemons (scheduler paused) over memory calendars; stopped after the test."""
    from syncd.daemon import Daemon
    from tests.push.daemons import CALENDARS, Running

    monkeypatch.setitem(connectors.REGISTRY, "memory", "tests.push.daemons:open_memory")
    CALENDARS.clear()
    started: list[Daemon] = []

    def make(config: Config) -> Running:
        daemon = Daemon(config)
        started.append(daemon)
        running = Running(daemon)
        daemon.start_push()
        daemon.scheduler.start(paused=True)
        daemon.refresh_jobs()
        return running

    yield make
    for daemon in started:
        if daemon.receiver is not None:
            daemon.receiver.stop()
        assert daemon.stop_cycles(60)
        daemon.service.close()
