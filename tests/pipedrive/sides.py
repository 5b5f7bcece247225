"""The three calendars of the end-to-end tests, each reached through its real connector:
Radicale (behind a recording proxy), the Google emulator and the Graph emulator."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import caldav
import httplib2

from connectors.base import CalendarConnector
from connectors.caldav import CalDAVCalendar
from connectors.google import GoogleCalendar
from connectors.google_http import RetryPolicy
from syncd.config import AccountConfig
from syncd.service import account_policy
from syncd.store.credentials import CredentialStore
from syncd_testkit.emulators.google import GoogleEmulator
from syncd_testkit.servers import DavServer, RecordingProxy
from tests.google.helpers import FakeClock
from tests.outlook.conftest import Env


def _name(owner: str) -> str:
    return "calendar-" + owner.partition("@")[0]


class RadicaleSide:
    """A fresh calendar on the session's Radicale; syncd goes through a recording proxy."""

    name = "radicale"

    def __init__(self, server: DavServer, proxy: RecordingProxy) -> None:
        self.server, self.proxy = server, proxy
        self.users: dict[str, str] = {}  # owner -> calendar URL on the server

    def account(self, owner: str, zone: str, **options: Any) -> AccountConfig:
        client: Any = caldav.DAVClient(url=self.server.url, username=owner, password="x")
        name = f"c{uuid.uuid4().hex[:10]}"
        url = str(client.principal().make_calendar(name=name, cal_id=name).url)
        self.users[owner] = url
        via = url.replace(self.server.url, self.proxy.url)
        return AccountConfig(name=_name(owner), provider="caldav", owner=owner, calendar=via,
                             auth={"url": via, "username": owner}, **options)

    def connector(self, account: AccountConfig, zone: str, now: datetime) -> CalendarConnector:
        return CalDAVCalendar(account, owner_tz=zone)

    def user_create(self, account: AccountConfig, title: str, start: datetime,
                    minutes: int) -> str:
        client: Any = caldav.DAVClient(url=self.server.url, username=account.owner,
                                       password="x")
        calendar = client.calendar(url=self.users[account.owner])
        stamp = "%Y%m%dT%H%M%SZ"
        end = start + timedelta(minutes=minutes)
        event = calendar.save_event(
            "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//phone//EN\r\nBEGIN:VEVENT\r\n"
            f"UID:{uuid.uuid4()}\r\nDTSTAMP:{start.strftime(stamp)}\r\n"
            f"DTSTART:{start.strftime(stamp)}\r\nDTEND:{end.strftime(stamp)}\r\n"
            f"SUMMARY:{title}\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n")
        return str(event.url).replace(self.server.url, self.proxy.url)

    def sent(self) -> Iterator[str]:
        for r in self.proxy.requests:
            yield f"{r.method} {r.path} {r.headers} {r.body!r}"


class GoogleSide:
    """A calendar of the Google emulator (no credentials: the endpoint is local)."""

    name = "google"

    def __init__(self, emulator: GoogleEmulator) -> None:
        self.emulator = emulator
        self.clock = FakeClock()

    def account(self, owner: str, zone: str, **options: Any) -> AccountConfig:
        self.emulator.add_calendar(owner, time_zone=zone)
        return AccountConfig(name=_name(owner), provider="google", owner=owner, calendar=owner,
                             auth={"api_endpoint": self.emulator.api_endpoint}, **options)

    def connector(self, account: AccountConfig, zone: str, now: datetime) -> CalendarConnector:
        return GoogleCalendar(account, owner_tz=zone, window=account_policy(account).window(now),
                              http=httplib2.Http(timeout=10), clock=self.clock.clock,
                              sleep=self.clock.sleep, rng=lambda: 0.5,
                              retry=RetryPolicy(attempts=3))

    def user_create(self, account: AccountConfig, title: str, start: datetime,
                    minutes: int) -> str:
        end = start + timedelta(minutes=minutes)
        event = self.emulator.put_event(str(account.calendar), {
            "id": uuid.uuid4().hex, "summary": title,
            "start": {"dateTime": start.isoformat().replace("+00:00", "Z")},
            "end": {"dateTime": end.isoformat().replace("+00:00", "Z")}})
        return str(event["id"])

    def sent(self) -> Iterator[str]:
        for r in self.emulator.requests:
            yield f"{r.method} {r.path} {r.query} {r.headers} {r.body!r}"


class GraphSide:
    """A mailbox of the Graph emulator, signed in app-only through the identity emulator."""

    name = "graph"

    def __init__(self, env: Env, credentials: CredentialStore) -> None:
        self.env, self.credentials = env, credentials

    def account(self, owner: str, zone: str, **options: Any) -> AccountConfig:
        self.env.graph.add_mailbox(owner)
        return self.env.account(name=_name(owner), user=owner, **options)

    def connector(self, account: AccountConfig, zone: str, now: datetime) -> CalendarConnector:
        return self.env.connector(account, credentials=self.credentials,
                                  window=account_policy(account).window(now), owner_tz=zone)

    def user_create(self, account: AccountConfig, title: str, start: datetime,
                    minutes: int) -> str:
        end = start + timedelta(minutes=minutes)
        event = self.env.graph.create_event_as_user(account.owner, {
            "subject": title, "showAs": "busy",
            "start": {"dateTime": start.replace(tzinfo=None).isoformat(), "timeZone": "UTC"},
            "end": {"dateTime": end.replace(tzinfo=None).isoformat(), "timeZone": "UTC"}})
        return str(event["id"])

    def sent(self) -> Iterator[str]:
        for r in self.env.graph.requests:
            yield f"{r.method} {r.url} {r.headers} {r.body!r}"
