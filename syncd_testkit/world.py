"""A world for engine tests and benchmarks: one CRM owner on SQLite, one calendar account.

:class:`World` holds what every provider's world shares (the store, the sync state, the
account, the clock, the reports) and runs one real engine cycle per :meth:`World.sync`.
A provider's world says how it reaches its calendar: :meth:`World.cycle_connector`
returns the connector a cycle uses (the same one each time, or a new one per cycle), and
:meth:`World.release` closes it after the cycle when it was made for that cycle alone.

For the engine-level contract (``tests/sync_contract.py``) a world also tells what its
provider received (:meth:`World.sent`, as :class:`Sent`) and plays the calendar's owner
(:meth:`World.user_edit`, :meth:`World.event_title`, :meth:`World.markers`).
"""

from __future__ import annotations

import os
import uuid
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any, ClassVar

from connectors.base import CalendarConnector, WriteOp, WriteResult
from connectors.caldav import CalDAVCalendar
from syncd.config import AccountConfig
from syncd.crm.builtin import BuiltinSource
from syncd.crm.builtin.activities import ActivityStore
from syncd.crm.builtin.views import ActivityFilter
from syncd.engine.outcome import CycleReport
from syncd.model import Activity
from syncd.service import sync_account
from syncd.store.db import Database
from syncd.store.state import StateStore

#: The engine tests' "now": early December, so December's activities lie ahead.
START = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)
OWNER_TZ = "Europe/Oslo"


@dataclass(frozen=True)
class Sent:
    """One request the provider received: its method, everything it carried (target,
    headers, body) as text, and whether it asked for a change. For the in-memory calendar
    a request is one call of the connector."""

    method: str
    text: str
    write: bool


@dataclass(kw_only=True)
class World:
    """One CRM owner with one calendar account; ``sync`` runs one engine cycle."""

    db: Database
    store: ActivityStore
    state: StateStore
    account: AccountConfig
    owner_id: int
    now: datetime = START
    reports: list[CycleReport] = field(default_factory=list)
    #: Run, in order, just before the next cycle's first write reaches the connector (a
    #: user's edit that lands between the engine's read and its write).
    before_write: list[Callable[[], None]] = field(default_factory=list)

    #: The methods of the requests an idle cycle sends (one listing of changes).
    idle_requests: ClassVar[tuple[str, ...]] = ()
    #: The methods of the requests the cycle that reads back the echo of one edit sends;
    #: None: the listing alone shows it is ours, so it costs what an idle cycle costs.
    echo_requests: ClassVar[tuple[str, ...] | None] = None

    def cycle_connector(self) -> CalendarConnector:
        """The connector the next cycle uses."""
        raise NotImplementedError

    def release(self, connector: CalendarConnector) -> None:
        """Called after every cycle with its connector; a world that makes one per cycle
        closes it here."""

    def sync(self, **options: Any) -> CycleReport:
        connector = self.cycle_connector()
        unhook = self._hook_writes(connector) if self.before_write else None
        try:
            report = sync_account(self.account, connector, BuiltinSource(self.store),
                                  self.state, now=self.now, **options)
        finally:
            if unhook:
                unhook()
            self.release(connector)
        self.reports.append(report)
        return report

    def _hook_writes(self, connector: CalendarConnector) -> Callable[[], None]:
        """Run :attr:`before_write` ahead of the connector's next write; returns the undo."""
        write = connector.write
        shadowed = vars(connector).get("write")  # a test's own patch stays in place

        def hooked(ops: Sequence[WriteOp]) -> list[WriteResult]:
            while self.before_write:
                self.before_write.pop(0)()
            return write(ops)

        def unhook() -> None:
            if shadowed is None:
                delattr(connector, "write")
            else:
                setattr(connector, "write", shadowed)  # noqa: B010 - an instance attribute

        setattr(connector, "write", hooked)  # noqa: B010 - an instance attribute
        return unhook

    def sync_killed_at(self, failpoint: str) -> int:
        """Run one cycle in a child process that kills itself (SIGKILL) at ``failpoint``.

        Returns the child's exit status, ``-SIGKILL`` when it died there. The calendar
        must outlive the child (a server, or an emulator served by this process); the
        database is shared through its file.
        """
        pid = os.fork()
        if pid == 0:  # the child: never returns into the test
            status = 3
            try:
                os.environ["SYNCD_FAILPOINT"] = failpoint
                self.db.engine.dispose(close=False)  # the parent's pooled connections
                status = 0 if self.sync().outcome == "ok" else 1
            finally:
                os._exit(status)
        _, status = os.waitpid(pid, 0)
        return -os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)

    def converge(self) -> None:
        """Two cycles: the first writes, the second reads its own echo back."""
        for _ in range(2):
            report = self.sync()
            assert report.outcome == "ok", report.message
            self.advance(minutes=1)

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)

    def add(self, subject: str = "Call", day: int = 10, hour: int | None = 9, **values: Any
            ) -> Activity:
        """A CRM activity on December ``day`` at ``hour`` (all day when ``hour`` is None),
        unless ``due_date``/``due_time`` say otherwise."""
        values.setdefault("duration_minutes", 30)
        values.setdefault("due_date", date(2026, 12, day))
        values.setdefault("due_time", time(hour) if hour is not None else None)
        values.setdefault("owner_id", self.owner_id)
        return self.store.add_activity(subject=subject, **values)

    def subjects(self) -> list[str]:
        """The owner's live activities' subjects, sorted."""
        return sorted(a.subject for a in self.store.list_activities(ActivityFilter(
            owner_id=self.owner_id)))

    def reasons(self) -> dict[str, str]:
        """event id -> why the item is quarantined."""
        return {q["item"].removeprefix("calendar:"): q["reason"]
                for q in self.state.quarantine_list(self.account.name)}

    def event_id_of(self, activity_id: int) -> str:
        link = self.state.links(self.account.name)[activity_id]
        assert link.event_id is not None
        return link.event_id

    # ---- what the contract asks of each provider's world ------------------------------------

    def sent(self) -> list[Sent]:
        """Every request the provider received since :meth:`forget_sent`."""
        raise NotImplementedError

    def forget_sent(self) -> None:
        raise NotImplementedError

    def user_edit(self, activity_id: int, title: str) -> None:
        """Retitle the activity's event in the calendar, as its owner would in their app."""
        raise NotImplementedError

    def user_delete(self, activity_id: int) -> None:
        """Delete the activity's event in the calendar, as its owner would in their app."""
        raise NotImplementedError

    def event_title(self, activity_id: int) -> str:
        """The title of the activity's event as the calendar holds it."""
        raise NotImplementedError

    def event_location(self, activity_id: int) -> str:
        """The location of the activity's event as the calendar holds it."""
        raise NotImplementedError

    def markers(self) -> Counter[str]:
        """How many live events in the calendar carry each syncd marker."""
        raise NotImplementedError


def open_store(tmp_path: Path, owner: str, db: Database | None = None,
               name: str = "Owner") -> tuple[Database, ActivityStore, int]:
    """A database (a fresh SQLite file unless ``db`` is given), its store, and the owner's
    user id (added unless the database already has them)."""
    db = db or Database(f"sqlite:///{tmp_path / f'{uuid.uuid4().hex}.db'}")
    store = ActivityStore(db)
    user = store.get_user_by_email(owner)
    return db, store, user.id if user else store.add_user(owner, name, OWNER_TZ)


@dataclass(kw_only=True)
class CalDAVWorld(World):
    """The engine against one CalDAV calendar through the real connector."""

    connector: CalDAVCalendar

    def cycle_connector(self) -> CalendarConnector:
        return self.connector


def make_caldav_world(tmp_path: Path, calendar_url: str, user: str = "owner@example.com",
                      server_url: str | None = None, **account: Any) -> CalDAVWorld:
    """A world syncing ``user``'s calendar at ``calendar_url`` (importing its events unless
    told otherwise); ``server_url`` is where discovery starts (the calendar by default)."""
    db, store, owner_id = open_store(tmp_path, user)
    account.setdefault("import_events", True)
    cfg = AccountConfig(name="dav", provider="caldav", owner=user, calendar=calendar_url,
                        auth={"url": server_url or calendar_url, "username": user}, **account)
    return CalDAVWorld(db=db, store=store, state=StateStore(db), account=cfg,
                       owner_id=owner_id, connector=CalDAVCalendar(cfg, owner_tz=OWNER_TZ))
