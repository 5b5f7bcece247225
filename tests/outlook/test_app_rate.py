"""Graph's requests a second per app registration (2,000, all its mailboxes together) are
counted on one line per app, by a single process in memory and by replicas in the
database, reserved in the same take as the mailbox's own line.

The emulator counts the app's requests in every one-second window (by its clock) and
refuses past ``requests_per_second_per_app``, set low here with syncd's line under it (in
the ratio of 1,800 to 2,000). Syncd and the emulator share a fake clock that the
transports' sleeps advance: what is counted is requests at the emulator, never
wall-clock time. The control, the app's line off, sends every account's requests in the
same second and meets the emulator's 429s.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import event

from connectors.base import SharedLimits
from connectors.outlook_http import GraphTransport
from syncd.store.db import Database
from syncd.store.limits import LimitStore
from syncd_testkit.emulators.graph import GraphEmulator
from tests.outlook.test_mailbox_window import FakeClock, Stamping, Tokens

MAILBOXES = [f"user{i}@contoso.test" for i in range(5)]
#: Graph's per-app second (2,000, lowered), syncd's line under it, and what a run sends:
#: five seconds' worth of the quota, all of it at once unless paced.
QUOTA, LINE, SENT = 30, 27, 150


@pytest.fixture
def graph(graph_emulator: GraphEmulator) -> GraphEmulator:
    for mailbox in MAILBOXES:
        graph_emulator.add_mailbox(mailbox)
    graph_emulator.requests_per_second_per_app = QUOTA
    return graph_emulator


class FreedAtOnce(LimitStore):
    """The replicas' store, its slots given back freed at once (the store's thread frees
    them a moment later in real time, which the fake clock does not pass); counts the
    upserts of send lines it runs."""

    def __init__(self, db: Database, clock: FakeClock) -> None:
        super().__init__(db, free_every=None, clock=clock)
        self.line_upserts = 0
        event.listen(db.engine, "before_cursor_execute", self._seen)

    def _seen(self, _conn: object, _cursor: object, statement: str, *_rest: object) -> None:
        self.line_upserts += statement.startswith("INSERT INTO budget_bursts")

    def give_back(self, scope: str, ticket: str) -> None:
        super().give_back(scope, ticket)
        self.flush()


@pytest.fixture(params=["process", "replicas"])
def counted_in(request: pytest.FixtureRequest, tmp_path: Path
               ) -> Iterator[tuple[FakeClock, SharedLimits | None]]:
    """Where the line is kept: this process's memory (no shared limits), or the
    replicas' database (SQLite here, on the same fake clock)."""
    clock = FakeClock()
    if request.param == "process":
        yield clock, None
        return
    db = Database(f"sqlite:///{tmp_path / 'state.db'}")
    try:
        yield clock, FreedAtOnce(db, clock)
    finally:
        db.close()


def _accounts(graph: GraphEmulator, clock: FakeClock, limits: SharedLimits | None, *,
              app_per_second: int) -> list[GraphTransport]:
    """One transport per mailbox, all of one app registration (as one per account)."""
    graph.clock = clock
    session = Stamping(clock)
    return [GraphTransport(session, graph.base_url, Tokens(), mailbox=mailbox,
                           prefer='IdType="ImmutableId"', clock=clock, sleep=clock.sleep,
                           app="app", limits=limits, app_per_second=app_per_second,
                           max_wait=1e6)
            for mailbox in MAILBOXES]


def _send_in_turn(accounts: list[GraphTransport]) -> list[int]:
    """``SENT`` reads, the accounts taking turns."""
    return [accounts[i % len(accounts)].request(
                "GET", f"/users/{MAILBOXES[i % len(accounts)]}/events?$top=1").status
            for i in range(SENT)]


def test_accounts_of_one_app_stay_under_its_requests_a_second(
        graph: GraphEmulator, counted_in: tuple[FakeClock, SharedLimits | None]) -> None:
    clock, limits = counted_in
    statuses = _send_in_turn(_accounts(graph, clock, limits, app_per_second=LINE))
    assert statuses == [200] * SENT
    assert graph.gate.refused_for_app == 0
    # Held under the line, and paced rather than stopped: most seconds were near full.
    assert LINE // 2 < graph.gate.app_peak <= LINE < QUOTA
    if isinstance(limits, FreedAtOnce):
        # the mailbox's line and the app's in one statement a request, as before
        assert limits.line_upserts == SENT


def test_accounts_of_one_app_with_its_line_off_pass_its_requests_a_second(
        graph: GraphEmulator, counted_in: tuple[FakeClock, SharedLimits | None]) -> None:
    """The control: each mailbox's own line lets its burst go at once, so together they
    fill the app's second and are refused."""
    clock, limits = counted_in
    _send_in_turn(_accounts(graph, clock, limits, app_per_second=0))
    assert graph.gate.refused_for_app > 0
    assert graph.gate.app_peak == QUOTA
