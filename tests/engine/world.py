"""A small world for engine tests: a real store on SQLite and an in-memory calendar."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any

from connectors.base import WriteOp, WriteResult
from connectors.memory import MemoryCalendar
from syncd.config import AccountConfig
from syncd.crm.builtin.activities import ActivityStore
from syncd.crm.builtin.source import BuiltinSource
from syncd.engine.runner import CycleReport, sync_account
from syncd.model import Activity
from syncd.store.db import Database
from syncd.store.state import StateStore

START = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)


class RecordingCalendar(MemoryCalendar):
    """A memory calendar that keeps every write op and can be told to refuse writes."""

    def __init__(self) -> None:
        super().__init__()
        self.ops: list[WriteOp] = []
        self.forbid_writes = False
        self.fail_next: list[WriteResult | Exception] = []

    def write(self, ops: Sequence[WriteOp]) -> list[WriteResult]:
        if self.forbid_writes:
            raise AssertionError(f"an idle cycle tried to write: {ops}")
        self.ops.extend(ops)
        results = []
        for op in ops:
            if self.fail_next:
                planned = self.fail_next.pop(0)
                if isinstance(planned, Exception):
                    raise planned
                results.append(replace(planned, key=op.key))
                continue
            results.append(self._write(op))
        return results


@dataclass
class World:
    db: Database
    store: ActivityStore
    state: StateStore
    calendar: RecordingCalendar
    account: AccountConfig
    owner_id: int
    now: datetime = START
    reports: list[CycleReport] = field(default_factory=list)

    def add(self, subject: str = "Call", day: int = 10, hour: int | None = 9, **values: Any
            ) -> Activity:
        values.setdefault("duration_minutes", 30)
        return self.store.add_activity(
            owner_id=values.pop("owner_id", self.owner_id), subject=subject,
            due_date=date(2026, 12, day), due_time=time(hour) if hour is not None else None,
            **values,
        )

    def sync(self, **options: Any) -> CycleReport:
        report = sync_account(self.account, self.calendar, BuiltinSource(self.store), self.state,
                              now=self.now, **options)
        self.reports.append(report)
        return report

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)

    def event_of(self, activity_id: int) -> Any:
        link = self.state.links(self.account.name)[activity_id]
        assert link.event_id is not None
        return self.calendar.store[link.event_id].event


def make_world(tmp_path: Path, name: str = "alice", **account: Any) -> World:
    db = Database(f"sqlite:///{tmp_path / 'syncd.db'}")
    store = ActivityStore(db)
    owner_id = store.add_user(f"{name}@example.com", name.title(), "Europe/Oslo")
    cfg = AccountConfig(name=name, provider="memory", owner=f"{name}@example.com", **account)
    return World(db, store, StateStore(db), RecordingCalendar(), cfg, owner_id)
