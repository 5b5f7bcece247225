"""Shared helpers: a fake clock, a hookable HTTP transport, connectors on the emulator."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httplib2

from connectors.base import Window
from connectors.google import GoogleCalendar
from connectors.google_http import RetryPolicy
from syncd.config import AccountConfig
from syncd.model import Projection
from syncd_testkit.emulators.google import GoogleEmulator

OWNER = "alice@example.com"
TZ = "Europe/Oslo"
START = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)
WINDOW = Window(START - timedelta(days=30), START + timedelta(days=365))
WRITE_METHODS = ("POST", "PATCH", "PUT", "DELETE")


@dataclass
class FakeClock:
    """Monotonic time that only moves when someone sleeps; every sleep is recorded."""

    now: float = 1000.0
    sleeps: list[float] = field(default_factory=list)

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


class HookedHttp(httplib2.Http):
    """An httplib2 transport that runs test hooks just before matching requests.

    A hook is (predicate on (method, uri, body), action); each fires once. ``sent`` keeps
    (method, uri) of every request that went out; with a ``clock``, ``calls_at`` keeps
    when each went out and how many API calls it carried.
    """

    def __init__(self, timeout: float = 10, clock: Callable[[], float] | None = None) -> None:
        super().__init__(timeout=timeout)
        self.hooks: list[tuple[Callable[[str, str, str], bool], Callable[[], None]]] = []
        self.sent: list[tuple[str, str]] = []
        self.clock = clock
        self.calls_at: list[tuple[float, int]] = []  # (clock time, API calls carried)

    def before(self, predicate: Callable[[str, str, str], bool], action: Callable[[], None]
               ) -> None:
        self.hooks.append((predicate, action))

    def request(self, uri: str, method: str = "GET", body: Any = None, headers: Any = None,
                **kwargs: Any) -> Any:
        text = body.decode("utf-8", "replace") if isinstance(body, bytes) else str(body or "")
        for hook in list(self.hooks):
            if hook[0](method, uri, text):
                self.hooks.remove(hook)
                hook[1]()
        self.sent.append((method, uri))
        if self.clock is not None:
            # A batch carries one API call per part, and each counts against the quota.
            parts = text.count("Content-ID: <") if "/batch/" in uri else 1
            self.calls_at.append((self.clock(), parts))
        return super().request(uri, method, body=body, headers=headers, **kwargs)


def account(emu: GoogleEmulator, name: str = "alice", owner: str = OWNER,
            calendar: str | None = None, **options: Any) -> AccountConfig:
    """A Google account aimed at the emulator (no credentials: the endpoint is local)."""
    auth = {"api_endpoint": emu.api_endpoint, **options.pop("auth", {})}
    return AccountConfig(name=name, provider="google", owner=owner, calendar=calendar,
                         auth=auth, **options)


def connector(emu: GoogleEmulator, *, clock: FakeClock | None = None,
              http: httplib2.Http | None = None, attempts: int = 5,
              acct: AccountConfig | None = None, **account_options: Any) -> GoogleCalendar:
    """A connector on the emulator whose sleeps only advance ``clock``."""
    clock = clock or FakeClock()
    return GoogleCalendar(acct or account(emu, **account_options), owner_tz=TZ, window=WINDOW,
                          http=http or httplib2.Http(timeout=10), clock=clock.clock,
                          sleep=clock.sleep, rng=lambda: 0.5,
                          retry=RetryPolicy(attempts=attempts))


def user_event(projection: Projection, **extra: Any) -> dict[str, Any]:
    """An event as a person would make it in the Google UI: UTC times, no syncd marker."""
    when = projection.when
    if when.all_day:
        start: dict[str, Any] = {"date": when.start.isoformat()}
        end: dict[str, Any] = {"date": when.end.isoformat()}
    else:
        start = {"dateTime": when.start.isoformat().replace("+00:00", "Z")}
        end = {"dateTime": when.end.isoformat().replace("+00:00", "Z")}
    body: dict[str, Any] = {"id": uuid.uuid4().hex, "summary": projection.title,
                            "start": start, "end": end,
                            "transparency": "opaque" if projection.busy else "transparent"}
    if projection.description:
        body["description"] = projection.description
    if projection.location:
        body["location"] = projection.location
    return {**body, **extra}


def write_requests(emu: GoogleEmulator) -> list[Any]:
    """Recorded API writes (batch parts included, batch envelopes excluded)."""
    return [r for r in emu.requests
            if r.method in WRITE_METHODS and r.path.startswith("/calendar/v3/")]
