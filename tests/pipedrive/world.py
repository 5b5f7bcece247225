"""End-to-end worlds: the engine between the Pipedrive emulator (through the real Pipedrive
source, its budget on the emulator's clock) and one calendar (Radicale, the Google emulator
or the Graph emulator, through the real connectors).

A :class:`CalendarSide` says how to reach one calendar and how a person edits it there;
:class:`PipedriveWorld` runs real engine cycles between the two.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from connectors.base import CalendarConnector, DeleteOp, RemoteEvent, UpdateOp
from syncd.config import AccountConfig
from syncd.crm.pipedrive import PipedriveSource, Settings
from syncd.crm.pipedrive_auth import ApiToken
from syncd.crm.pipedrive_budget import Limits, PipedriveBudget, token_key_of
from syncd.crm.pipedrive_http import PipedriveHttp
from syncd.crm.pipedrive_markers import MarkerStore
from syncd.engine.outcome import CycleReport
from syncd.model import Projection, When
from syncd.service import account_policy, sync_account
from syncd.store.budgets import BudgetLedger
from syncd.store.db import Database
from syncd.store.state import StateStore
from syncd.verify import AccountAudit, audit_calendar
from syncd_testkit.emulators.pipedrive import PipedriveClock, PipedriveEmulator
from syncd_testkit.emulators.pipedrive_model import User

#: The engine's "now" in these worlds (as in the other engine tests): early December 2026.
START = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)


class CalendarSide(Protocol):
    """One calendar provider as the end-to-end tests need it."""

    name: str

    def account(self, owner: str, zone: str, **options: Any) -> AccountConfig:
        """The account of ``owner``'s calendar (made empty on the provider)."""

    def connector(self, account: AccountConfig, zone: str, now: datetime) -> CalendarConnector:
        """A connector for one cycle (closed by the world afterwards)."""

    def user_create(self, account: AccountConfig, title: str, start: datetime,
                    minutes: int) -> str:
        """An event made by the owner in their calendar app (no syncd marker); its id."""

    def sent(self) -> Iterator[str]:
        """Every request syncd sent to the calendar, as text (for the note canary)."""


def company(clock: PipedriveClock | None = None) -> PipedriveEmulator:
    """A started Pipedrive emulator on a frozen clock at :data:`START`."""
    return PipedriveEmulator(clock=clock or PipedriveClock(START, frozen=True)).start()


@dataclass(kw_only=True)
class PipedriveWorld:
    """One Pipedrive user's activities and their calendar; ``sync`` runs one real cycle."""

    emulator: PipedriveEmulator
    db: Database
    side: CalendarSide
    owner: User
    account: AccountConfig
    zone: str
    now: datetime = START
    reports: list[CycleReport] = field(default_factory=list)
    make_source: Callable[[], PipedriveSource] | None = None
    running: PipedriveSource | None = None
    built_by: Callable[[], PipedriveSource] | None = None

    @property
    def state(self) -> StateStore:
        return StateStore(self.db)

    def source(self) -> PipedriveSource:
        """The source the daemon keeps across cycles (built on first use, and again when a
        test sets another :attr:`make_source`)."""
        if self.running is None or self.built_by is not self.make_source:
            self.running, self.built_by = self.new_source(), self.make_source
        return self.running

    def restart(self) -> None:
        """As if syncd restarted: the next cycle builds its source afresh."""
        self.running = None

    def new_source(self) -> PipedriveSource:
        """The source as a freshly started syncd builds it (nothing kept in memory)."""
        if self.make_source is not None:
            return self.make_source()
        token = self.emulator.api_token(self.owner)
        clock = self.emulator.clock
        budget = PipedriveBudget(BudgetLedger(self.db), "acme", Limits.for_plan("growth", 5),
                                 token_key_of(token), clock=clock.now, sleep=clock.advance)
        http = PipedriveHttp(self.emulator.base_url, ApiToken(token), budget=budget,
                             sleep=clock.advance)
        return PipedriveSource(http, MarkerStore(self.db, "acme", clock=clock.now_dt),
                               Settings("acme", "https://acme.pipedrive.com",
                                        reconcile_after=timedelta(hours=1)))

    def sync(self, **options: Any) -> CycleReport:
        connector = self.side.connector(self.account, self.zone, self.now)
        try:
            report = sync_account(self.account, connector, self.source(), self.state,
                                  now=self.now, **options)
        finally:
            connector.close()
        self.reports.append(report)
        return report

    def converge(self) -> None:
        """Cycles until one writes nothing (at most four), each a minute apart."""
        for _ in range(4):
            report = self.sync()
            assert report.outcome == "ok", report.message
            self.advance(minutes=1)
            if not any(v for k, v in report.counts.items()
                       if k not in ("crm_changes", "calendar_changes")):
                return
        raise AssertionError(f"no quiet cycle: {[r.counts for r in self.reports[-4:]]}")

    def advance(self, **delta: float) -> None:
        step = timedelta(**delta)
        self.now += step
        self.emulator.clock.advance(step.total_seconds())

    # --- the Pipedrive side -------------------------------------------------------------------

    def add(self, subject: str, due_date: str, due_time: str | None = "09:00",
            duration: str | None = "00:30", **fields: Any) -> int:
        """An activity the owner makes in Pipedrive's app (``due_time`` in UTC; none: all
        day)."""
        values: dict[str, Any] = {"subject": subject, "type": "meeting", "due_date": due_date,
                                  **fields}
        if due_time is not None:
            values["due_time"] = due_time
        if duration is not None:
            values["duration"] = duration
        return int(self.emulator.create_as_user(self.owner, **values)["id"])

    def edit(self, activity_id: int, **fields: Any) -> None:
        self.emulator.edit_as_user(self.owner, activity_id, **fields)

    def activity(self, activity_id: int) -> dict[str, Any]:
        return self.emulator.activity(activity_id)

    def live_activities(self) -> list[dict[str, Any]]:
        with self.emulator.store.lock:
            ids = list(self.emulator.store.activities)
        return [a for a in map(self.activity, ids) if not a["is_deleted"]]

    # --- the calendar side --------------------------------------------------------------------

    def events(self) -> dict[str, RemoteEvent]:
        """The calendar's live events by id, read by a fresh connector (full listing)."""
        connector = self.side.connector(self.account, self.zone, self.now)
        try:
            listed = connector.changes(None).events
        finally:
            connector.close()
        return {e.event_id: e for e in listed if not e.deleted and e.projection is not None}

    def event_of(self, activity_id: int) -> RemoteEvent:
        link = self.state.links(self.account.name)[activity_id]
        assert link.event_id is not None
        return self.events()[link.event_id]

    def user_edit(self, event_id: str, **values: Any) -> None:
        """The owner edits fields of an event in their calendar app."""
        event = self.events()[event_id]
        assert event.projection is not None
        connector = self.side.connector(self.account, self.zone, self.now)
        try:
            [result] = connector.write([UpdateOp(
                key=f"user:{uuid.uuid4().hex}", event_id=event_id, etag=event.etag,
                projection=replace(event.projection, **values), fields=frozenset(values),
                marker=event.marker or "")])
        finally:
            connector.close()
        assert result.error is None, result.error

    def verify(self) -> tuple[AccountAudit, list[RemoteEvent]]:
        """What ``syncd verify`` finds now (read-only), and the events it read."""
        connector = self.side.connector(self.account, self.zone, self.now)
        try:
            return audit_calendar(self.account, self.source(), self.state, connector,
                                  account_policy(self.account), self.now)
        finally:
            connector.close()

    def user_delete(self, event_id: str) -> None:
        connector = self.side.connector(self.account, self.zone, self.now)
        try:
            [result] = connector.write([DeleteOp(key=f"user:{event_id}", event_id=event_id,
                                                 etag=None)])
        finally:
            connector.close()
        assert result.error is None, result.error


def make_world(emulator: PipedriveEmulator, db: Database, side: CalendarSide, *,
               name: str = "Ada", zone: str = "Europe/Berlin", **options: Any
               ) -> PipedriveWorld:
    """A world for a new Pipedrive user ``name`` in ``zone`` and their calendar."""
    email = f"{name.lower()}-{uuid.uuid4().hex[:6]}@acme.test"
    owner = emulator.add_user(name, email, timezone_name=zone, is_admin=True)
    options.setdefault("import_events", True)
    account = side.account(email, zone, **options)
    return PipedriveWorld(emulator=emulator, db=db, side=side, owner=owner, account=account,
                          zone=zone)


def projection_at(title: str, start: datetime, minutes: int, zone: str) -> Projection:
    """A timed projection starting at the UTC instant ``start``."""
    return Projection(title=title, when=When(start, start + timedelta(minutes=minutes), zone),
                      busy=True)
