"""A small world for engine tests: a real store on SQLite and an in-memory calendar."""

from __future__ import annotations

import os
import signal
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, ClassVar
from unittest import mock

from connectors.base import ChangeSet, RemoteEvent, WriteOp, WriteResult
from connectors.memory import MemoryCalendar
from syncd.config import AccountConfig
from syncd.store.state import StateStore
from syncd_testkit.world import START, Sent, open_store
from syncd_testkit.world import World as BaseWorld

__all__ = ["START", "RecordingCalendar", "World", "make_world"]


class RecordingCalendar(MemoryCalendar):
    """A memory calendar that keeps every call (as :class:`Sent`) and every write op, and
    can be told to refuse writes or to fail the next ones."""

    def __init__(self) -> None:
        super().__init__()
        self.ops: list[WriteOp] = []
        self.calls: list[Sent] = []
        self.forbid_writes = False
        self.fail_next: list[WriteResult | Exception] = []

    def changes(self, cursor: str | None) -> ChangeSet:
        self.calls.append(Sent("changes", repr(cursor), write=False))
        return super().changes(cursor)

    def get(self, event_id: str) -> RemoteEvent | None:
        self.calls.append(Sent("get", event_id, write=False))
        return super().get(event_id)

    def find(self, marker: str, generation: int) -> RemoteEvent | None:
        self.calls.append(Sent("find", f"{marker} {generation}", write=False))
        return super().find(marker, generation)

    def write(self, ops: Sequence[WriteOp]) -> list[WriteResult]:
        if self.forbid_writes:
            raise AssertionError(f"an idle cycle tried to write: {ops}")
        self.ops.extend(ops)
        self.calls.extend(Sent("write", repr(op), write=True) for op in ops)
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


class Killed(BaseException):
    """Stands for SIGKILL where the calendar lives in this process (see sync_killed_at)."""


@dataclass(kw_only=True)
class World(BaseWorld):
    calendar: RecordingCalendar

    idle_requests: ClassVar[tuple[str, ...]] = ("changes",)

    def cycle_connector(self) -> RecordingCalendar:
        return self.calendar

    def event_of(self, activity_id: int) -> Any:
        return self.calendar.store[self.event_id_of(activity_id)].event

    def sync_killed_at(self, failpoint: str) -> int:
        """The memory calendar lives in this process, so a killed child would take its
        writes with it: here the failpoint stops the cycle by raising instead (no code after
        it runs; ``finally`` blocks do), and -SIGKILL is returned as if it had died."""
        real_kill = os.kill

        def kill(pid: int, sig: int) -> None:
            if pid == os.getpid() and sig == signal.SIGKILL:
                raise Killed(failpoint)
            real_kill(pid, sig)

        with mock.patch.dict(os.environ, {"SYNCD_FAILPOINT": failpoint}), \
                mock.patch.object(os, "kill", kill):
            try:
                report = self.sync()
            except Killed:
                return -signal.SIGKILL
        return 0 if report.outcome == "ok" else 1

    def sent(self) -> list[Sent]:
        return list(self.calendar.calls)

    def forget_sent(self) -> None:
        self.calendar.calls.clear()

    def user_edit(self, activity_id: int, title: str) -> None:
        self.calendar.user_edit(self.event_id_of(activity_id), title=title)

    def user_delete(self, activity_id: int) -> None:
        self.calendar.user_delete(self.event_id_of(activity_id))

    def event_title(self, activity_id: int) -> str:
        return str(self.event_of(activity_id).projection.title)

    def event_location(self, activity_id: int) -> str:
        return str(self.event_of(activity_id).projection.location)

    def markers(self) -> Counter[str]:
        return Counter(str(e.marker) for e in self.calendar.live())


def make_world(tmp_path: Path, name: str = "alice", **account: Any) -> World:
    owner = f"{name}@example.com"
    db, store, owner_id = open_store(tmp_path, owner, name=name.title())
    cfg = AccountConfig(name=name, provider="memory", owner=owner, **account)
    return World(db=db, store=store, state=StateStore(db), calendar=RecordingCalendar(),
                 account=cfg, owner_id=owner_id)
