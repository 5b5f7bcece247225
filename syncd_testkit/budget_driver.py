"""One replica's worth of provider requests for the shared-budget tests: the product's
connector transports, spending from the budgets every replica shares in the database
(``--alone``: from this process's own, as a single process does), in a process of its
own so that several of them are several clients of one provider.

``python -m syncd_testkit.budget_driver google --url URL --endpoint API_ROOT [...]``
sends event reads as one Google user through :class:`connectors.google.GoogleCalendar`
paced by :class:`connectors.google_http.SharedRequestBudget` (``--per-window`` requests
per ``--window`` seconds, the minute shortened so a test stays short).

``python -m syncd_testkit.budget_driver graph --url URL --endpoint GRAPH_ROOT
--mailbox M [...]`` sends event listings to one mailbox through
:class:`connectors.outlook_http.GraphTransport` with the shared mailbox slots.

Each runs ``--threads`` threads for ``--seconds`` (after a ``go`` line on standard
input, so that every replica starts at once) and prints ``done {json counts}``:
``sent`` requests answered 2xx/404, ``refused`` ones the provider throttled (or, for a
mailbox, not sent because its slots stayed busy), ``statements`` the database statements
the process ran (what sharing the budget cost it), ``ran_ms`` how long it sent.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta

import httplib2
import requests
from sqlalchemy import event

from connectors.base import SharedLimits, Window
from connectors.google import GoogleCalendar
from connectors.google_http import (
    BothBudgets,
    Call,
    Pacer,
    RequestBudget,
    RetryPolicy,
    SharedRequestBudget,
)
from connectors.outlook_http import APP_REQUESTS_PER_SECOND, GraphTransport
from syncd.config_types import AccountConfig
from syncd.errors import ConnectorError, RateLimited
from syncd.store.db import Database
from syncd.store.limits import LimitStore

USER = "ann@example.com"


class _Tokens:
    """A bearer token the Graph emulator accepts (it checks none without an identity)."""

    def token(self) -> str:
        return "test-token"

    def invalidate(self) -> None:
        """Nothing to forget."""


class Heard:
    """The shared limits, noting when each pause was recorded (seconds since the epoch,
    after its statement returned): from then on no replica should send to the scope."""

    def __init__(self, limits: LimitStore) -> None:
        self.limits = limits
        self.holds: list[float] = []

    def pace(self, scope: str, seconds: float, *, burst: float = 0.0,
             also: Sequence[tuple[str, float]] = ()) -> float:
        return self.limits.pace(scope, seconds, burst=burst, also=also)

    def hold(self, scope: str, seconds: float, *, burst: float = 0.0) -> None:
        self.limits.hold(scope, seconds, burst=burst)
        self.holds.append(time.time())

    def take_slots(self, scope: str, limit: int, permits: int, hold: float) -> str | None:
        return self.limits.take_slots(scope, limit, permits, hold)

    def give_back(self, scope: str, ticket: str) -> None:
        self.limits.give_back(scope, ticket)


def _google(args: argparse.Namespace, limits: SharedLimits | None
            ) -> Callable[[], tuple[int, int]]:
    users = [USER] + [f"user{i}-{USER}" for i in range(1, args.users)]
    turn = iter(range(1 << 30))
    budgets: dict[str, Pacer] = {}

    def budget_of(name: str) -> Pacer:
        if name not in budgets:
            project = "driver" if args.project_per_window else ""
            budgets[name] = (
                BothBudgets(RequestBudget(args.per_window, window=args.window),
                            project_budget) if limits is None
                else SharedRequestBudget(limits, name, args.per_window, window=args.window,
                                         project=project,
                                         project_per_minute=args.project_per_window))
        return budgets[name]

    project_budget = RequestBudget(args.project_per_window or 1 << 30, window=args.window)
    now = datetime.now(UTC)
    local = threading.local()
    lock = threading.Lock()

    def one() -> tuple[int, int]:
        calendar = getattr(local, "calendar", None)
        if calendar is None:  # one connector per thread, as one per account
            with lock:  # thread i acts as user i (of --users)
                name = users[next(turn) % len(users)]
                budget = budget_of(name)
            account = AccountConfig(name="ann", provider="google", owner=name,
                                    auth={"api_endpoint": args.endpoint})
            calendar = local.calendar = GoogleCalendar(
                account, owner_tz="UTC", window=Window(now - timedelta(days=1), now),
                http=httplib2.Http(timeout=10), budget=budget,
                retry=RetryPolicy(attempts=1))
        if args.batch > 1:  # reads in one batch request, each part counted by Google
            replies = calendar.transport.run(
                [Call(i, calendar._get_request(f"missing{i}event")) for i in range(args.batch)])
            refused = sum(r.error_class is RateLimited for r in replies.values())
            return len(replies) - refused, refused
        try:
            calendar.get("missing0event")
        except ConnectorError:
            return 0, 1
        return 1, 0

    return one


def _graph(args: argparse.Namespace, limits: SharedLimits | None
           ) -> Callable[[], tuple[int, int]]:
    local = threading.local()
    boxes = mailboxes(args.mailbox, args.mailboxes)
    turn = iter(range(1 << 30))

    def one() -> tuple[int, int]:
        transport = getattr(local, "transport", None)
        if transport is None:  # thread i sends to mailbox i (of --mailboxes)
            local.mailbox = boxes[next(turn) % len(boxes)]
            window = ({"per_window": args.graph_per_window, "window": args.window}
                      if args.graph_per_window else {})
            transport = local.transport = GraphTransport(
                requests.Session(), args.endpoint, _Tokens(), mailbox=local.mailbox,
                prefer='IdType="ImmutableId"', limits=limits, app="driver",
                app_per_second=args.graph_app_per_second, **window)
        try:
            answer = transport.request("GET", f"/users/{local.mailbox}/events?$top=1")
        except ConnectorError:
            return 0, 1
        return (0, 1) if answer.status == 429 else (1, 0)

    return one


def drive(provider: str, url: str, endpoint: str, replicas: int, **options: object
          ) -> list[dict[str, int]]:
    """Run ``replicas`` driver processes side by side, started together once all are
    ready; returns each one's counts. ``options`` are the command line's (``alone=True``
    for ``--alone``)."""
    args = [sys.executable, "-m", "syncd_testkit.budget_driver", provider, "--url", url,
            "--endpoint", endpoint]
    for key, value in options.items():
        flag = f"--{key.replace('_', '-')}"
        args += [flag] if value is True else [] if value is False else [flag, str(value)]
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    processes = [subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                  text=True, cwd=root) for _ in range(replicas)]
    try:
        for process in processes:  # imports take a while on a busy machine
            assert process.stdout is not None
            line = process.stdout.readline().strip()
            if line != "ready":
                raise RuntimeError(f"a budget driver did not start: {line!r}")
        for process in processes:
            assert process.stdin is not None
            process.stdin.write("go\n")
            process.stdin.flush()
        results = []
        for process in processes:
            out, _ = process.communicate(timeout=float(str(options.get("seconds", 4))) + 120)
            done = [line for line in out.splitlines() if line.startswith("done ")]
            if not done:
                raise RuntimeError(f"a budget driver ended without its counts: {out!r}")
            results.append(json.loads(done[-1][5:]))
        return results
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.wait()


def mailboxes(first: str, count: int) -> list[str]:
    """``first``, and with ``count`` above one, as many more (``box1-<first>``, ...)."""
    return [first] + [f"box{i}-{first}" for i in range(1, count)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("provider", choices=("google", "graph"))
    parser.add_argument("--url", required=True)
    parser.add_argument("--endpoint", required=True)
    parser.add_argument("--mailbox", default=USER)
    parser.add_argument("--mailboxes", type=int, default=1,
                        help="Graph: the threads spread over this many mailboxes")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--per-window", type=int, default=20)
    parser.add_argument("--window", type=float, default=2.0)
    parser.add_argument("--batch", type=int, default=1, help="Google reads per request")
    parser.add_argument("--users", type=int, default=1,
                        help="Google: the threads act as this many users (in turn)")
    parser.add_argument("--project-per-window", type=int, default=0,
                        help="Google: the users' project's budget per window (0: none)")
    parser.add_argument("--graph-per-window", type=int, default=0,
                        help="Graph: the mailbox's budget per window (0: Graph's 10 minutes)")
    parser.add_argument("--graph-app-per-second", type=int, default=APP_REQUESTS_PER_SECOND,
                        help="Graph: the app's requests a second, all mailboxes (0: none)")
    parser.add_argument("--alone", action="store_true",
                        help="count in this process only, as without [syncd] replica")
    args = parser.parse_args(argv)

    db = Database(args.url, run_migrations=False)
    counts: Counter[str] = Counter()
    lock = threading.Lock()

    def count_statement(*_args: object) -> None:
        with lock:
            counts["statements"] += 1

    event.listen(db.engine, "before_cursor_execute", count_statement)
    limits = None if args.alone else Heard(LimitStore(db))
    one = (_google if args.provider == "google" else _graph)(args, limits)
    print("ready", flush=True)
    sys.stdin.readline()  # "go"
    began = time.monotonic()
    until = began + args.seconds

    def loop() -> None:
        while time.monotonic() < until:
            sent, refused = one()
            with lock:
                counts["sent"] += sent
                counts["refused"] += refused

    threads = [threading.Thread(target=loop) for _ in range(args.threads)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # A request waiting for its turn when the time was up is still sent: the run ends
    # with the last one.
    counts["ran_ms"] = round((time.monotonic() - began) * 1000)
    if limits is not None:
        limits.limits.flush()  # as the service does when it closes
        counts["holds"] = len(limits.holds)
        if limits.holds:
            counts["first_hold_ms"] = round(min(limits.holds) * 1000)
    print("done " + json.dumps(dict(counts)), flush=True)
    db.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
