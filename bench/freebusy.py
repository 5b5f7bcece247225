"""What free/busy and the agenda's listing cost per provider (issue 17).

For one owner's calendar filled by another client with ``--events`` single events over
30 days (a third of them free, a tenth tentative) and five daily series, it times
``busy_between`` over 30 days and ``events_between`` over 7 days through the real
connectors: the Google and Graph emulators over loopback HTTP, real Radicale and
Xandikos. Each row: requests sent (the connector's own, counted at its HTTP session or
the emulator), intervals or events returned, and the median wall time of ``--runs``
calls (a shared, loaded machine: compare rows, not machines).

    .venv/bin/python -m bench.freebusy --events 500 --runs 5 --out bench/results/freebusy.md
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, ExitStack, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httplib2
import requests
from caldav.davclient import DAVClient

from connectors.base import Window
from connectors.caldav import CalDAVCalendar
from connectors.google import GoogleCalendar
from connectors.outlook import OutlookCalendar
from syncd.config import AccountConfig, SecretRef
from syncd_testkit.emulators.google import GoogleEmulator
from syncd_testkit.emulators.graph import GraphEmulator
from syncd_testkit.emulators.identity import IdentityEmulator, RoutingSession
from syncd_testkit.servers import DavServer, RadicaleServer, XandikosServer

START = datetime(2026, 12, 7, tzinfo=UTC)  # a Monday
OWNER = "owner@example.com"
TZ = "Europe/Oslo"
SECRET_ENV = "SYNCD_BENCH_FREEBUSY_SECRET"


@dataclass(frozen=True)
class Event:
    start: datetime
    minutes: int
    kind: str  # busy | free | tentative
    daily: int = 0  # occurrences of a daily series (0: a single event)


def workload(count: int) -> list[Event]:
    """``count`` single events over 30 days (09:00-17:00 UTC) and five daily series."""
    events = []
    for n in range(count):
        day, slot = divmod(n, max(1, count // 30))
        start = START + timedelta(days=day % 30, hours=9, minutes=(slot * 37) % 480)
        kind = "free" if n % 3 == 0 else "tentative" if n % 10 == 1 else "busy"
        events.append(Event(start, 30, kind))
    events += [Event(START + timedelta(hours=8, minutes=10 * i), 10, "busy", 60)
               for i in range(5)]
    return events


def _stamp(moment: datetime) -> str:
    return moment.strftime("%Y%m%dT%H%M%SZ")


def ics(uid: str, event: Event) -> bytes:
    lines = ["BEGIN:VCALENDAR", "VERSION:2.0", "PRODID:-//bench//EN", "BEGIN:VEVENT",
             f"UID:{uid}", "DTSTAMP:20261201T000000Z", f"DTSTART:{_stamp(event.start)}",
             f"DTEND:{_stamp(event.start + timedelta(minutes=event.minutes))}",
             f"SUMMARY:{uid}"]
    lines += {"free": ["TRANSP:TRANSPARENT"], "tentative": ["STATUS:TENTATIVE"]}.get(
        event.kind, [])
    if event.daily:
        lines.append(f"RRULE:FREQ=DAILY;COUNT={event.daily}")
    return "\r\n".join([*lines, "END:VEVENT", "END:VCALENDAR", ""]).encode()


@dataclass
class Row:
    provider: str
    call: str
    requests: int
    items: int
    median_ms: float


@dataclass
class Subject:
    """A connector on a filled calendar, and how to count the requests it sends."""

    name: str
    connector: Any
    sent: Callable[[], int]


def _time(subject: Subject, call: str, span: timedelta, runs: int) -> Row:
    method = getattr(subject.connector, call)
    times, items, before = [], 0, subject.sent()
    for _ in range(runs):
        began = time.perf_counter()
        items = len(method(START, START + span))
        times.append((time.perf_counter() - began) * 1000)
    return Row(subject.name, call, (subject.sent() - before) // runs, items,
               statistics.median(times))


@contextmanager
def google(events: list[Event]) -> Iterator[Subject]:
    with GoogleEmulator() as emu:
        emu.add_calendar(OWNER, time_zone="UTC")
        for n, event in enumerate(events):
            body: dict[str, Any] = {
                "id": f"bench{n:05d}", "summary": f"e{n}",
                "start": {"dateTime": event.start.isoformat(), "timeZone": "UTC"},
                "end": {"dateTime": (event.start + timedelta(minutes=event.minutes))
                        .isoformat(), "timeZone": "UTC"}}
            if event.kind == "free":
                body["transparency"] = "transparent"
            if event.kind == "tentative":
                body["status"] = "tentative"
            if event.daily:
                body["recurrence"] = [f"RRULE:FREQ=DAILY;COUNT={event.daily}"]
            emu.put_event(OWNER, body)
        account = AccountConfig(name="g", provider="google", owner=OWNER,
                                auth={"api_endpoint": emu.api_endpoint})
        conn = GoogleCalendar(account, owner_tz=TZ, window=Window(START, START),
                              http=httplib2.Http(timeout=30))
        try:
            yield Subject("google (emulator)", conn, lambda: len(emu.requests))
        finally:
            conn.close()


@contextmanager
def graph(events: list[Event]) -> Iterator[Subject]:
    os.environ[SECRET_ENV] = "bench-secret"
    with IdentityEmulator() as idp, GraphEmulator(identity=idp) as emu, \
            RoutingSession(idp) as session:
        idp.register_app("bench", "bench-secret")
        emu.add_mailbox(OWNER)
        show = {"busy": "busy", "free": "free", "tentative": "tentative"}
        for n, event in enumerate(events):
            body: dict[str, Any] = {
                "subject": f"e{n}", "showAs": show[event.kind],
                "start": {"dateTime": event.start.replace(tzinfo=None).isoformat(),
                          "timeZone": "UTC"},
                "end": {"dateTime": (event.start + timedelta(minutes=event.minutes))
                        .replace(tzinfo=None).isoformat(), "timeZone": "UTC"}}
            if event.daily:
                body["recurrence"] = {
                    "pattern": {"type": "daily", "interval": 1},
                    "range": {"type": "numbered", "startDate": event.start.date().isoformat(),
                              "numberOfOccurrences": event.daily}}
            emu.create_event_as_user(OWNER, body)
        account = AccountConfig(name="o", provider="outlook", owner=OWNER, auth={
            "mode": "app", "tenant": "tenant1", "client_id": "bench", "user": OWNER,
            "authority": idp.authority("tenant1"), "graph_url": emu.base_url,
            "client_secret": SecretRef(f"env:{SECRET_ENV}")})
        context = argparse.Namespace(owner_tz=TZ, window=Window(START, START),
                                     credentials=None)
        conn = OutlookCalendar(account, context, session=session)
        conn.busy_between(START, START + timedelta(hours=1))  # the token, once
        yield Subject("outlook (emulator)", conn,
                      lambda: sum(1 for r in emu.requests if not r.in_batch))


@contextmanager
def dav(kind: type[DavServer], name: str, events: list[Event]) -> Iterator[Subject]:
    with tempfile.TemporaryDirectory() as folder:
        server = kind(Path(folder))
        server.start()
        try:
            user = f"u{uuid.uuid4().hex[:8]}@example.com"
            cal_id = f"c{uuid.uuid4().hex[:8]}"
            client = DAVClient(url=server.url, username=user, password="x")
            url = str(client.principal().make_calendar(name=cal_id, cal_id=cal_id).url)
            with requests.Session() as filler:
                for n, event in enumerate(events):
                    filler.put(f"{url}e{n}.ics", data=ics(f"e{n}", event), auth=(user, "x"),
                               headers={"Content-Type": "text/calendar"}, timeout=30)
            account = AccountConfig(name="d", provider="caldav", owner=user, calendar=url,
                                    auth={"url": server.url, "username": user})
            conn = CalDAVCalendar(account, owner_tz=TZ)
            conn.calendar  # noqa: B018 - found before the requests are counted
            sent = [0]

            def count(request: Any, **_: Any) -> Any:
                sent[0] += 1
                return request

            conn.client.session.hooks["pre_request"].append(count)
            try:
                yield Subject(name, conn, lambda: sent[0])
            finally:
                conn.close()
        finally:
            server.stop()


def run(count: int, runs: int) -> list[Row]:
    events = workload(count)
    rows: list[Row] = []
    setups: list[Callable[[], AbstractContextManager[Subject]]] = [
        lambda: google(events), lambda: graph(events),
              lambda: dav(RadicaleServer, "caldav (Radicale)", events),
              lambda: dav(XandikosServer, "caldav (Xandikos)", events)]
    for setup in setups:
        with ExitStack() as stack:
            subject = stack.enter_context(setup())
            rows.append(_time(subject, "busy_between", timedelta(days=30), runs))
            rows.append(_time(subject, "events_between", timedelta(days=7), runs))
            if isinstance(subject.connector, CalDAVCalendar):
                subject.connector._free_busy_query = False  # as for a server refusing it
                row = _time(subject, "busy_between", timedelta(days=30), runs)
                row.call = "busy_between (from events)"
                rows.append(row)
    return rows


def table(rows: list[Row], count: int, runs: int) -> str:
    out = [f"# Free/busy and the agenda's listing: {count} events + 5 daily series, "
           f"median of {runs}", "",
           "| provider | call | span | requests | returned | median ms |",
           "|---|---|---|---|---|---|"]
    for row in rows:
        span = "7 days" if row.call == "events_between" else "30 days"
        out.append(f"| {row.provider} | {row.call} | {span} | {row.requests} | {row.items} "
                   f"| {row.median_ms:.0f} |")
    return "\n".join(out) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=500)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    text = table(run(args.events, args.runs), args.events, args.runs)
    print(text)
    if args.out:
        args.out.write_text(text)


if __name__ == "__main__":
    main()
