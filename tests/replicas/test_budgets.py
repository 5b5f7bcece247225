"""Provider budgets shared by replica processes through PostgreSQL, counted at the
emulators: several replicas acting as one Google user never pass the user's quota in any
sliding window, and several replicas talking to one mailbox never have more than 4
requests in flight there. Each is shown against its control: the same replicas counting
on their own (as a single process does) pass the limit, so the measure can see it.

The window is shortened (Google's is a minute) so that each test stays short; the
arithmetic is the same. The long version is in bench/failover.py.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import NamedTuple

import pytest

from syncd.store.db import Database
from syncd.store.limits import LimitStore
from syncd_testkit.budget_driver import USER, drive, mailboxes
from syncd_testkit.emulators.google import GoogleEmulator
from syncd_testkit.emulators.graph import GraphEmulator

pytestmark = pytest.mark.postgres

REPLICAS = 3
#: syncd's budget and Google's quota per window, in the ratio of the defaults (500 of 600
#: a minute): the gap is what requests reaching Google later than their slot may use.
BUDGET, QUOTA = 20, 24
WINDOW = 2.0  # seconds
SECONDS = 4.0  # each replica's run: two windows and more


class Run(NamedTuple):
    """What the replicas did, counted at the emulator (``refused``, ``peak``: the most
    requests it counted in one window) and by the replicas (``sent``, ``statements``)."""

    sent: int
    refused: int
    peak: int
    statements: int


@pytest.fixture
def google() -> Iterator[GoogleEmulator]:
    with GoogleEmulator(per_user_quota_per_minute=QUOTA, quota_window_seconds=WINDOW) as emu:
        yield emu


@pytest.fixture
def graph() -> Iterator[GraphEmulator]:
    emu = GraphEmulator()
    emu.latency_seconds = 0.05  # each request holds its slot a while: overlaps show
    emu.concurrency_retry_after = 1  # (the control's refused requests wait 1 s)
    emu.add_mailbox(USER)
    with emu:
        yield emu


def _every_replica_sent(results: list[dict[str, int]], *, alone: bool) -> None:
    """Replicas sharing a budget each get their turn, so each sends. Counting alone (the
    controls) they need not: the first replicas of a window may fill the quota and the
    emulator refuse the rest of it, window after window, so one replica can send nothing
    (seen in CI: 40, 0 and 20 sent). The controls assert what they are for, the quota
    passed, at the emulator."""
    if not alone:
        assert all(r.get("sent", 0) > 0 for r in results), results


def _google_run(pg_url: str, google: GoogleEmulator, *, alone: bool) -> Run:
    results = drive("google", pg_url, google.api_endpoint, REPLICAS, threads=2,
                    seconds=SECONDS, per_window=BUDGET, window=WINDOW, alone=alone)
    counter = google.user_quota
    assert counter is not None
    _every_replica_sent(results, alone=alone)
    return Run(sum(r.get("sent", 0) for r in results), sum(counter.refused.values()),
               max(counter.peak.values(), default=0),
               sum(r.get("statements", 0) for r in results))


def test_replicas_acting_as_one_google_user_stay_under_its_quota_in_every_window(
        pg_url: str, pg: Database, google: GoogleEmulator) -> None:
    run = _google_run(pg_url, google, alone=False)
    assert run.refused == 0
    assert run.peak <= QUOTA
    # The budget was spent, not idled: more than a window's worth went out, over
    # several windows.
    assert run.sent > BUDGET
    # One statement per request (each a get here; a batch is one too), and a few per
    # process to connect.
    assert run.statements <= run.sent + 5 * REPLICAS


def test_replicas_counting_alone_pass_the_google_users_quota(
        pg_url: str, pg: Database, google: GoogleEmulator) -> None:
    """The control: each replica's own budget keeps it alone under the quota, not all."""
    run = _google_run(pg_url, google, alone=True)
    assert run.refused > 0 and run.peak == QUOTA


def _graph_run(pg_url: str, graph: GraphEmulator, *, alone: bool) -> Run:
    results = drive("graph", pg_url, graph.base_url, REPLICAS, threads=3, seconds=2.0,
                    mailbox=USER, alone=alone)
    _every_replica_sent(results, alone=alone)
    return Run(sum(r.get("sent", 0) for r in results),
               sum(1 for r in graph.requests if r.status == 429),
               graph.max_in_flight_seen[USER.lower()],
               sum(r.get("statements", 0) for r in results))


def test_replicas_never_have_more_than_four_requests_in_flight_at_one_mailbox(
        pg_url: str, pg: Database, graph: GraphEmulator) -> None:
    run = _graph_run(pg_url, graph, alone=False)
    assert 1 < run.peak <= 4  # requests of several replicas overlapped, four at most
    assert run.refused == 0
    assert LimitStore(pg).held(f"graph:{graph.base_url.split('/')[2]}|driver|{USER}") == 0


def test_replicas_counting_alone_pass_the_mailboxs_concurrency(
        pg_url: str, pg: Database, graph: GraphEmulator) -> None:
    """The control: each replica's own gate allows 4, so three together allow 12."""
    run = _graph_run(pg_url, graph, alone=True)
    assert run.peak > 4 and run.refused > 0


# --- the limits counted for many users or over long windows --------------------------------

#: Google's per-project quota and syncd's budget under it, per WINDOW, in the ratio of
#: the defaults (9,000 of 10,000 a minute); each user's own budget is far above, so only
#: the project's line holds them.
PROJECT_BUDGET, PROJECT_QUOTA = 27, 30
USERS = 6


def _project_run(pg_url: str, google: GoogleEmulator, *, alone: bool) -> Run:
    results = drive("google", pg_url, google.api_endpoint, REPLICAS, threads=2,
                    seconds=SECONDS, per_window=1000, window=WINDOW, users=USERS,
                    project_per_window=PROJECT_BUDGET, alone=alone)
    counter = google.project_quota
    assert counter is not None
    _every_replica_sent(results, alone=alone)
    return Run(sum(r.get("sent", 0) for r in results), sum(counter.refused.values()),
               max(counter.peak.values(), default=0),
               sum(r.get("statements", 0) for r in results))


@pytest.fixture
def google_project() -> Iterator[GoogleEmulator]:
    with GoogleEmulator(per_project_quota_per_minute=PROJECT_QUOTA,
                        quota_window_seconds=WINDOW) as emu:
        yield emu


@pytest.mark.slow  # three replica processes for several windows
def test_replicas_acting_as_many_users_of_one_project_stay_under_its_quota(
        pg_url: str, pg: Database, google_project: GoogleEmulator) -> None:
    run = _project_run(pg_url, google_project, alone=False)
    assert run.refused == 0 and run.peak <= PROJECT_QUOTA
    assert run.sent > PROJECT_BUDGET  # more than a window's worth, over several
    # The user's and the project's lines are reserved in one statement.
    assert run.statements <= run.sent + 5 * REPLICAS


@pytest.mark.slow  # three replica processes for several windows
def test_replicas_counting_the_project_alone_pass_its_quota(
        pg_url: str, pg: Database, google_project: GoogleEmulator) -> None:
    """The control: each replica's own project budget keeps it alone under the quota."""
    run = _project_run(pg_url, google_project, alone=True)
    assert run.refused > 0 and run.peak == PROJECT_QUOTA


#: Graph's requests per mailbox per window (10,000 in 10 minutes, shortened), and the
#: replicas' budget under it.
MAILBOX_BUDGET, MAILBOX_QUOTA = 40, 48


def _window_run(pg_url: str, graph: GraphEmulator, *, alone: bool) -> Run:
    graph.latency_seconds = 0.0
    graph.requests_per_10_min_per_mailbox = MAILBOX_QUOTA
    graph.requests_window_seconds = WINDOW
    results = drive("graph", pg_url, graph.base_url, REPLICAS, threads=2,
                    seconds=3 * WINDOW, mailbox=USER, window=WINDOW,
                    graph_per_window=MAILBOX_BUDGET, alone=alone)
    assert all(r.get("sent", 0) > 0 for r in results), results
    return Run(sum(r.get("sent", 0) for r in results),
               graph.gate.refused_in_window.get(USER.lower(), 0),
               graph.max_in_flight_seen[USER.lower()],
               sum(r.get("statements", 0) for r in results))


@pytest.mark.slow  # three replica processes for several windows
def test_replicas_sending_to_one_mailbox_stay_under_its_requests_per_window(
        pg_url: str, pg: Database, graph: GraphEmulator) -> None:
    run = _window_run(pg_url, graph, alone=False)
    assert run.refused == 0, run
    # They were paced, not stopped: the line's turns over three windows are 52 (a 4
    # burst and one each 0.125 s); on the loaded machine some go unused.
    assert run.sent > MAILBOX_BUDGET // 2, run


@pytest.mark.slow  # three replica processes for several windows
def test_replicas_counting_alone_pass_the_mailboxs_requests_per_window(
        pg_url: str, pg: Database, graph: GraphEmulator) -> None:
    """The control: each replica paces only its own requests (as a single process does),
    so three together send up to three lines' worth into one quota."""
    run = _window_run(pg_url, graph, alone=True)
    assert run.refused > 0, run


#: Graph's requests a second per app (2,000, lowered), syncd's line under it, and the
#: mailboxes the replicas' threads send to: the app's line alone holds them (each
#: mailbox's own is far above). The margin is wider than the defaults' (1,800 of 2,000):
#: a second is short beside the time a request takes to reach the emulator on a loaded
#: machine.
APP_LINE, APP_QUOTA, APP_MAILBOXES = 30, 40, 6


def _app_run(pg_url: str, graph: GraphEmulator, *, alone: bool) -> Run:
    graph.latency_seconds = 0.0
    graph.requests_per_second_per_app = APP_QUOTA
    for mailbox in mailboxes(USER, APP_MAILBOXES)[1:]:
        graph.add_mailbox(mailbox)
    results = drive("graph", pg_url, graph.base_url, REPLICAS, threads=2, seconds=3.0,
                    mailbox=USER, mailboxes=APP_MAILBOXES, graph_app_per_second=APP_LINE,
                    alone=alone)
    _every_replica_sent(results, alone=alone)
    return Run(sum(r.get("sent", 0) for r in results), graph.gate.refused_for_app,
               graph.gate.app_peak, sum(r.get("statements", 0) for r in results))


@pytest.mark.slow  # three replica processes for several seconds
def test_replicas_sending_to_many_mailboxes_of_one_app_stay_under_its_requests_a_second(
        pg_url: str, pg: Database, graph: GraphEmulator) -> None:
    run = _app_run(pg_url, graph, alone=False)
    assert run.refused == 0 and run.peak <= APP_QUOTA, run
    assert run.sent > APP_LINE, run  # more than a second's worth, over several
    # A request's statements, as without the app's line: the mailbox's line and the
    # app's in one, its slots taken in one, given back in one at most (with others'
    # given back meanwhile); and each replica's slot rows made.
    assert run.statements <= 3 * run.sent + 10 * REPLICAS, run


@pytest.mark.slow  # three replica processes for several seconds
def test_replicas_counting_the_app_alone_pass_its_requests_a_second(
        pg_url: str, pg: Database, graph: GraphEmulator) -> None:
    """The control: each replica's own line keeps it alone under the app's second."""
    run = _app_run(pg_url, graph, alone=True)
    assert run.refused > 0 and run.peak == APP_QUOTA, run
