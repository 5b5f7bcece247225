"""The limits every replica shares in the database (syncd.store.limits): a send line paced
in one statement per take, and concurrency slots taken all or none, given back by ticket
and freed by their expiry when the holder never gives them back."""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Iterator

import pytest
from sqlalchemy import delete, event, text

from syncd.store.budget_tables import BudgetBurst, BudgetSlot
from syncd.store.db import Database
from syncd.store.limits import LimitStore


@pytest.fixture
def limits(any_db: Database) -> Iterator[LimitStore]:
    """A store over an empty set of lines and slots (the PostgreSQL database is shared)."""
    with any_db.session() as s:
        s.execute(delete(BudgetSlot))
        s.execute(delete(BudgetBurst))
    yield LimitStore(any_db)


def test_takes_on_one_line_wait_for_the_reservations_before_them(limits: LimitStore) -> None:
    waits = [limits.pace("google:ann@example.com", 10.0) for _ in range(4)]
    assert waits[0] == 0.0  # a new line: at once
    # Each reservation begins where the last one ended (less the moments between takes).
    for before, after in itertools.pairwise(waits):
        assert 9.0 < after - before <= 10.0
    assert limits.pace("google:bob@example.com", 10.0) == 0.0  # another user's line


def test_takes_from_many_threads_never_share_a_slot_of_the_line(limits: LimitStore) -> None:
    def take() -> None:
        for _ in range(5):
            limits.pace("google:ann@example.com", 30.0)

    threads = [threading.Thread(target=take) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # Twenty reservations of 30 s from an empty line: the next begins 600 s on (less the
    # moments the takes took). A lost update would have left it 30 s or more short.
    assert 590.0 < limits.pace("google:ann@example.com", 30.0) <= 600.0


def test_slots_are_taken_all_or_none_and_given_back_by_ticket(limits: LimitStore) -> None:
    scope = "graph:graph.example|app|ann@example.com"
    first = limits.take_slots(scope, 4, 3, hold=60)
    assert first is not None and limits.held(scope) == 3
    assert limits.take_slots(scope, 4, 2, hold=60) is None  # one free: nothing taken
    assert limits.held(scope) == 3
    second = limits.take_slots(scope, 4, 1, hold=60)
    assert second is not None and limits.take_slots(scope, 4, 1, hold=60) is None
    limits.give_back(scope, first)
    limits.flush()
    assert limits.held(scope) == 1
    assert limits.take_slots(scope, 4, 3, hold=60) is not None
    assert limits.take_slots("graph:graph.example|app|bob@example.com", 4, 4, hold=60)


def test_slots_a_dead_holder_never_gave_back_free_themselves_at_their_expiry(
        limits: LimitStore) -> None:
    scope = "graph:graph.example|app|ann@example.com"
    assert limits.take_slots(scope, 4, 4, hold=0) is not None  # a replica killed holding all
    assert limits.held(scope) == 0
    assert limits.take_slots(scope, 4, 4, hold=60) is not None


def test_threads_racing_for_slots_never_hold_more_than_the_limit(
        limits: LimitStore) -> None:
    scope = "graph:graph.example|app|ann@example.com"
    peak = 0
    held = 0
    lock = threading.Lock()

    def work() -> None:
        nonlocal peak, held
        for _ in range(15):
            ticket = limits.take_slots(scope, 4, 1, hold=60)
            if ticket is None:
                continue
            with lock:
                held += 1
                peak = max(peak, held)
            with lock:
                held -= 1
            limits.give_back(scope, ticket)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert 1 <= peak <= 4
    limits.flush()
    assert limits.held(scope) == 0


def test_a_take_from_a_line_or_of_slots_is_one_statement(any_db: Database,
                                                         limits: LimitStore) -> None:
    """What sharing costs a request: one statement to pace it (or its batch), one to take
    its slots; the slots given back meanwhile are freed together, in one more (the slot
    rows are made once per process)."""
    statements: list[str] = []
    limits = LimitStore(any_db, free_every=None)  # this test frees them itself

    def seen(_conn: object, _cursor: object, statement: str, *_rest: object) -> None:
        statements.append(statement.split()[0])

    scope = "graph:graph.example|app|ann@example.com"
    limits.give_back(scope, limits.take_slots(scope, 4, 1, hold=60) or "")  # rows made
    limits.flush()
    event.listen(limits.db.engine, "before_cursor_execute", seen)
    try:
        limits.pace("google:ann@example.com", 1.0)
        assert len(statements) == 1
        tickets = [limits.take_slots(scope, 4, 1, hold=60) for _ in range(3)]
        assert None not in tickets and len(statements) == 4
        for ticket in tickets:
            limits.give_back(scope, ticket or "")
        assert len(statements) == 4  # nothing yet
        limits.flush()
        assert len(statements) == 5 and limits.held(scope) == 0
    finally:
        event.remove(limits.db.engine, "before_cursor_execute", seen)


@pytest.mark.postgres
def test_a_take_of_slots_on_postgresql_has_no_transaction_around_it(pg: Database) -> None:
    """On every Graph request's path: one autocommit statement, no BEGIN and COMMIT."""
    limits = LimitStore(pg, free_every=None)
    scope = "graph:graph.example|app|bob@example.com"
    limits.give_back(scope, limits.take_slots(scope, 2, 1, hold=60) or "")  # rows made
    limits.flush()
    commits: list[object] = []

    def committed(conn: object) -> None:
        commits.append(conn)

    event.listen(pg.engine, "commit", committed)
    try:
        first = limits.take_slots(scope, 2, 1, hold=60)
        both = limits.take_slots(scope, 2, 2, hold=60)  # one is held: none taken
        second = limits.take_slots(scope, 2, 1, hold=60)
    finally:
        event.remove(pg.engine, "commit", committed)
    assert first and second and both is None and limits.held(scope) == 2
    assert commits == []


@pytest.mark.postgres
def test_a_reservation_on_postgresql_does_not_wait_for_its_flush_and_nothing_else_stops(
        pg: Database) -> None:
    """A line's upsert turns off its own commit's wait for the WAL flush (its row lock,
    which every request of a Google project queues on, is then released at once); the
    transactions after it on the same connection wait as the server says."""
    limits = LimitStore(pg, free_every=None)
    with pg.engine.connect() as conn:  # the statement's own transaction, made visible
        # (the tests' databases run with it off; a server's default is on)
        conn.execute(text("SET synchronous_commit = on"))
        conn.commit()
        rows = conn.execute(limits._pace_statement(2), {
            "scope0": "google-project:p1", "seconds0": 0.5,
            "scope1": "google:ann@example.com", "seconds1": 1.0}).all()
        assert conn.execute(text("SHOW synchronous_commit")).scalar() == "off"
        conn.commit()
        assert [r[0] for r in rows] == ["google-project:p1", "google:ann@example.com"]
        assert conn.execute(text("SHOW synchronous_commit")).scalar() == "on"
        conn.execute(text("RESET synchronous_commit"))
        conn.commit()
    # The lines it made pace as before: the next reservation begins where it ended.
    assert 0.4 < limits.pace("google-project:p1", 0.5) <= 0.5


def test_slots_given_back_are_freed_by_the_stores_thread(limits: LimitStore) -> None:
    scope = "graph:graph.example|app|ann@example.com"
    ticket = limits.take_slots(scope, 4, 4, hold=60)
    assert ticket is not None
    limits.give_back(scope, ticket)  # returns at once; freed a moment later
    deadline = time.monotonic() + 30
    while limits.held(scope) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert limits.held(scope) == 0
    assert limits.take_slots(scope, 4, 4, hold=60) is not None
