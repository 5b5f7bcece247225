"""A provider's Retry-After shared by replica processes through PostgreSQL, counted at
the emulators by time: once one replica has been told to pause (a Google 429 for a user,
a Graph 429 for a mailbox), no replica sends to that user or mailbox until the pause
ends, except the requests already on their way when the pause was recorded (at most one
per sending thread: each holds either a request in flight or its one reservation).
Each is shown against its control: replicas counting alone keep sending through the
pause, each learning of it only from its own 429.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Any, NamedTuple

import pytest

from syncd.errors import MAX_PAUSE_SECONDS
from syncd.store.db import Database
from syncd.store.limits import LimitStore
from syncd_testkit.budget_driver import USER, drive
from syncd_testkit.emulators.google import GoogleEmulator
from syncd_testkit.emulators.google_faults import FaultRule as GoogleFault
from syncd_testkit.emulators.graph import FaultRule as GraphFault
from syncd_testkit.emulators.graph import GraphEmulator

pytestmark = pytest.mark.postgres
slow = pytest.mark.slow  # three replica processes started, then a run through a pause

REPLICAS = 3
THREADS = 2
PAUSE = 2  # the Retry-After, seconds
#: The throttling answer comes once this many requests were answered: mid-run.
AFTER = 10


class Pause(NamedTuple):
    """Requests counted at the emulator: ``during`` the pause (after it was recorded, or
    after the 429 when nothing recorded it), ``after`` it, and the replicas' ``holds``."""

    during: int
    after: int
    holds: int


def _throttle_mid_run(requests: Callable[[], list[Any]], inject: Callable[[], None]
                      ) -> threading.Thread:
    """Injects the throttling answer once ``AFTER`` requests were answered."""
    def watch() -> None:
        deadline = time.monotonic() + 120
        while len(requests()) < AFTER and time.monotonic() < deadline:
            time.sleep(0.01)
        inject()

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    return thread


def _count(records: list[Any], results: list[dict[str, int]]) -> Pause:
    throttled = [r.timestamp for r in records if r.status == 429]
    assert len(throttled) == 1, "the emulator answered one 429"
    told = throttled[0]
    holds = [r["first_hold_ms"] / 1000 for r in results if "first_hold_ms" in r]
    recorded = min(holds, default=told)
    others = [r.timestamp for r in records if r.status != 429]
    return Pause(sum(1 for t in others if recorded < t < told + PAUSE),
                 sum(1 for t in others if t >= told + PAUSE),
                 sum(r.get("holds", 0) for r in results))


@pytest.fixture
def google() -> Iterator[GoogleEmulator]:
    with GoogleEmulator() as emu:
        yield emu


def _google_pause(pg_url: str, google: GoogleEmulator, *, alone: bool) -> Pause:
    watcher = _throttle_mid_run(lambda: google.requests, lambda: google.inject(
        GoogleFault.too_many_requests(count=1, retry_after=PAUSE)))
    # a budget far above what the emulator answers: the pause is all that holds them
    results = drive("google", pg_url, google.api_endpoint, REPLICAS, threads=THREADS,
                    seconds=PAUSE + 5, per_window=6000, window=60.0, alone=alone)
    watcher.join()
    return _count(google.requests, results)


@slow
def test_after_one_replica_is_told_to_pause_no_replica_sends_for_the_google_user(
        pg_url: str, pg: Database, google: GoogleEmulator) -> None:
    run = _google_pause(pg_url, google, alone=False)
    assert run.holds == 1  # recorded once, by the replica that was told
    assert run.during <= REPLICAS * THREADS, run
    assert run.after > 0, run  # and they went on once it ended


@slow
def test_replicas_counting_alone_send_through_a_google_users_pause(
        pg_url: str, pg: Database, google: GoogleEmulator) -> None:
    """The control: only the replica told waits; the others keep sending."""
    run = _google_pause(pg_url, google, alone=True)
    assert run.during > 5 * REPLICAS * THREADS, run


@pytest.fixture
def graph() -> Iterator[GraphEmulator]:
    emu = GraphEmulator()
    emu.add_mailbox(USER)
    with emu:
        yield emu


def _graph_pause(pg_url: str, graph: GraphEmulator, *, alone: bool) -> Pause:
    watcher = _throttle_mid_run(lambda: graph.requests, lambda: graph.inject(GraphFault(
        status=429, code="ApplicationThrottled", message="Application is over its "
        "MailboxConcurrency limit.", retry_after=PAUSE, count=1, mailbox=USER)))
    results = drive("graph", pg_url, graph.base_url, REPLICAS, threads=THREADS,
                    seconds=PAUSE + 5, mailbox=USER, alone=alone)
    watcher.join()
    return _count(graph.requests, results)


@slow
def test_after_one_replica_is_told_to_pause_no_replica_sends_to_the_mailbox(
        pg_url: str, pg: Database, graph: GraphEmulator) -> None:
    run = _graph_pause(pg_url, graph, alone=False)
    assert run.holds == 1
    assert run.during <= REPLICAS * THREADS, run
    assert run.after > 0, run


@slow
def test_replicas_counting_alone_send_through_a_mailboxs_pause(
        pg_url: str, pg: Database, graph: GraphEmulator) -> None:
    run = _graph_pause(pg_url, graph, alone=True)
    assert run.during > 5 * REPLICAS * THREADS, run


def test_a_pause_of_a_year_holds_the_line_for_ten_minutes(any_db: Database) -> None:
    """A hostile Retry-After is bounded: by then every window has room again."""
    limits = LimitStore(any_db)
    scope = f"google:year-{time.time_ns()}@example.com"
    limits.hold(scope, 365 * 24 * 3600.0)
    wait = limits.pace(scope, 0.1)
    assert MAX_PAUSE_SECONDS - 5 < wait <= MAX_PAUSE_SECONDS
    other = f"google:inf-{time.time_ns()}@example.com"
    limits.hold(other, float("inf"))
    assert limits.pace(other, 0.1) <= MAX_PAUSE_SECONDS
