"""A world for engine tests and benchmarks: one CRM owner on SQLite, one calendar account.

:class:`World` holds what every provider's world shares (the store, the sync state, the
account, the clock, the reports) and runs one real engine cycle per :meth:`World.sync`.
A provider's world says only how it reaches its calendar: :meth:`World.cycle_connector`
returns the connector a cycle uses (the same one each time, or a new one per cycle), and
:meth:`World.release` closes it after the cycle when it was made for that cycle alone.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any

from connectors.base import CalendarConnector
from connectors.caldav import CalDAVCalendar
from syncd.config import AccountConfig
from syncd.crm.builtin import BuiltinSource
from syncd.crm.builtin.activities import ActivityStore
from syncd.crm.builtin.views import ActivityFilter
from syncd.engine.runner import CycleReport, sync_account
from syncd.model import Activity
from syncd.store.db import Database
from syncd.store.state import StateStore

#: The engine tests' "now": early December, so December's activities lie ahead.
START = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)
OWNER_TZ = "Europe/Oslo"


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

    def cycle_connector(self) -> CalendarConnector:
        """The connector the next cycle uses."""
        raise NotImplementedError

    def release(self, connector: CalendarConnector) -> None:
        """Called after every cycle with its connector; a world that makes one per cycle
        closes it here."""

    def sync(self, **options: Any) -> CycleReport:
        connector = self.cycle_connector()
        try:
            report = sync_account(self.account, connector, BuiltinSource(self.store),
                                  self.state, now=self.now, **options)
        finally:
            self.release(connector)
        self.reports.append(report)
        return report

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
        """A CRM activity on December ``day`` at ``hour`` (all day when ``hour`` is None)."""
        values.setdefault("duration_minutes", 30)
        return self.store.add_activity(
            owner_id=values.pop("owner_id", self.owner_id), subject=subject,
            due_date=date(2026, 12, day), due_time=time(hour) if hour is not None else None,
            **values)

    def subjects(self) -> list[str]:
        """The owner's live activities' subjects, sorted."""
        return sorted(a.subject for a in self.store.list_activities(ActivityFilter(
            owner_id=self.owner_id)))

    def reasons(self) -> dict[str, str]:
        """event id -> why the item is quarantined."""
        return {q["item"].removeprefix("calendar:"): q["reason"]
                for q in self.state.quarantine_list(self.account.name)}


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
