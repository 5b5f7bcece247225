"""Two CRM owners, each with a calendar on one provider, and the e-mail each guest got.

Google and Graph count e-mails in their emulators (one per recipient of every mail the
service would send); for CalDAV, :mod:`tests.guests.itip` reads the iTIP parameters of
every object syncd writes to Radicale and counts what an RFC 6638 server would send.
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Any

from connectors.base import CalendarConnector
from connectors.caldav import CalDAVCalendar
from syncd.config import AccountConfig
from syncd.crm.builtin.activities import ActivityStore
from syncd.crm.builtin.source import BuiltinSource
from syncd.engine.outcome import CycleReport
from syncd.model import Activity
from syncd.service import sync_account
from syncd.store.db import Database
from syncd.store.state import StateStore
from syncd_testkit.emulators.google import GoogleEmulator
from syncd_testkit.servers import DavServer
from tests.conftest import fresh_calendar
from tests.google import helpers as google
from tests.guests.itip import messages
from tests.outlook.conftest import Env

TZ = "Europe/Oslo"
START = google.START  # 2026-12-01 08:00 UTC, the meetings are on the 10th
OWNERS = ("alice", "bob")


@dataclass
class GuestWorld:
    """One shared CRM; ``sync`` runs one cycle of every account; ``mail`` counts e-mails."""

    provider: str
    store: ActivityStore
    state: StateStore
    owners: dict[str, int]
    accounts: dict[str, AccountConfig]
    connectors: Mapping[str, CalendarConnector]
    sent: Callable[[], Counter[str]]  # every e-mail so far, per recipient
    now: datetime = START
    _seen: Counter[str] = field(default_factory=Counter)

    def add(self, subject: str = "Product demo", *, owner: str = "alice",
            day: date = date(2026, 12, 10), hour: int = 9, **values: Any) -> Activity:
        return self.store.add_activity(
            owner_id=self.owners[owner], subject=subject, type="meeting", due_date=day,
            due_time=time(hour), duration_minutes=60, **values)

    def sync(self) -> dict[str, CycleReport]:
        reports = {}
        for name, cfg in self.accounts.items():
            reports[name] = sync_account(cfg, self.connectors[name],
                                         BuiltinSource(self.store), self.state,
                                         now=self.now)
        return reports

    def cycle(self) -> Counter[str]:
        """One cycle of every account; the e-mails it sent, per recipient."""
        for name, report in self.sync().items():
            assert report.outcome == "ok", (name, report.outcome, report.message)
        return self.mail()

    def mail(self) -> Counter[str]:
        total = self.sent()
        new = total - self._seen
        self._seen = Counter(total)
        return new

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)

    def close(self) -> None:
        for conn in self.connectors.values():
            conn.close()


def new_crm(tmp_path: Path, emails: dict[str, str]) -> tuple[ActivityStore, StateStore,
                                                           dict[str, int]]:
    db = Database(f"sqlite:///{tmp_path / f'{uuid.uuid4().hex}.db'}")
    store = ActivityStore(db)
    owners = {name: store.add_user(email, name.title(), TZ) for name, email in emails.items()}
    return store, StateStore(db), owners


def google_world(tmp_path: Path, emu: GoogleEmulator, **options: Any) -> GuestWorld:
    emails = {name: f"{name}@example.com" for name in OWNERS}
    store, state, owners = new_crm(tmp_path, emails)
    accounts, connectors = {}, {}
    for name, email in emails.items():
        emu.add_calendar(email, time_zone=TZ)
        accounts[name] = google.account(emu, name=name, owner=email, calendar=email,
                                        **options)
        connectors[name] = google.connector(emu, clock=google.FakeClock(), acct=accounts[name])
    return GuestWorld("google", store, state, owners, accounts, connectors,
                      lambda: Counter(emu.emails_by_recipient))


def outlook_world(tmp_path: Path, env: Env, **options: Any) -> GuestWorld:
    emails = {name: f"{name}@contoso.test" for name in OWNERS}
    store, state, owners = new_crm(tmp_path, emails)
    accounts, connectors = {}, {}
    for name, email in emails.items():
        if email != "alice@contoso.test":  # the env fixture made Alice's mailbox
            env.graph.add_mailbox(email)
        accounts[name] = env.account(name, email, **options)
        connectors[name] = env.connector(accounts[name])
    return GuestWorld("outlook", store, state, owners, accounts, connectors,
                      lambda: Counter(r.recipient for r in env.graph.mail_log))


class SchedulingCalDAV(CalDAVCalendar):
    """The CalDAV connector, counting what an RFC 6638 server would send for its writes."""

    def __init__(self, *args: Any, outbox: Counter[str], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.outbox = outbox

    def _request(self, url: str, method: str, body: bytes = b"",
                 headers: dict[str, str] | None = None, **options: Any) -> Any:
        if method not in ("PUT", "DELETE"):
            return super()._request(url, method, body, headers, **options)
        current = super()._request(url, "GET")
        old = current.body if current.status == 200 else None
        reply = super()._request(url, method, body, headers, **options)
        if reply.status < 300:
            self.outbox.update(messages(old, body if method == "PUT" else None))
        return reply


def caldav_world(tmp_path: Path, server: DavServer, **options: Any) -> GuestWorld:
    calendars = {name: fresh_calendar(server) for name in OWNERS}
    store, state, owners = new_crm(tmp_path, {n: user for n, (user, _) in calendars.items()})
    outbox: Counter[str] = Counter()
    accounts, connectors = {}, {}
    for name, (user, url) in calendars.items():
        accounts[name] = AccountConfig(name=name, provider="caldav", owner=user, calendar=url,
                                       auth={"url": server.url, "username": user}, **options)
        connectors[name] = SchedulingCalDAV(accounts[name], owner_tz=TZ, outbox=outbox)
    return GuestWorld("caldav", store, state, owners, accounts, connectors,
                      lambda: Counter(outbox))
