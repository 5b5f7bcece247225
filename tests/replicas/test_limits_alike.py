"""A single process's limits (connectors.local_limits, in memory) answer as the replicas'
(syncd.store.limits, in the database) do: one script of takes, pauses and slots is played
on both, on one fake clock, and every answer is compared. So a connector driving either
paces alike, and a change to one's arithmetic that the other lacks fails here."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from connectors.local_limits import KEPT_SECONDS, LocalLimits
from syncd.store.db import Database
from syncd.store.limits import LimitStore

MAILBOX = "graph:graph.example|app|ann@example.com"
#: The app registration's line (Graph's requests a second, all its mailboxes) and a second
#: mailbox of the same app.
APP, OTHER = "graph-app:graph.example|app", "graph:graph.example|app|bob@example.com"
USER, PROJECT = "google:ann@example.com", "google-project:p1"


class Clock:
    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def both(tmp_path: Path) -> Iterator[tuple[Clock, LocalLimits, LimitStore]]:
    clock = Clock()
    db = Database(f"sqlite:///{tmp_path / 'state.db'}")
    yield clock, LocalLimits(clock), LimitStore(db, free_every=None, clock=clock)
    db.close()


Step = Callable[[Any], Any]

#: (seconds the clock moves first, what is asked): Graph's mailbox line with its burst,
#: Google's user and project lines together, Graph's mailbox and app lines together,
#: pauses (hostile ones bounded), and slots taken all or none, given back, and expired.
SCRIPT: list[tuple[float, Step]] = [
    (0.0, lambda x: x.pace(MAILBOX, 1.0, burst=3.0)),
    *[(0.0, lambda x: x.pace(MAILBOX, 1.0, burst=3.0)) for _ in range(6)],
    (0.5, lambda x: x.pace(MAILBOX, 20.0, burst=3.0)),  # a batch of twenty
    (30.0, lambda x: x.pace(MAILBOX, 1.0, burst=3.0)),  # idle: the burst is back
    (0.0, lambda x: x.hold(MAILBOX, 7.0, burst=3.0)),
    (1.0, lambda x: x.pace(MAILBOX, 1.0, burst=3.0)),  # the pause, and no burst
    (0.0, lambda x: x.hold(MAILBOX, 10.0 ** 9, burst=3.0)),  # a hostile Retry-After
    (0.0, lambda x: x.pace(MAILBOX, 1.0, burst=3.0)),  # ten minutes, not thirty years
    (700.0, lambda x: x.hold(MAILBOX, float("nan"), burst=3.0)),  # undefined: the longest
    (0.0, lambda x: x.pace(MAILBOX, 1.0, burst=3.0)),
    (700.0, lambda x: x.hold(MAILBOX, -50.0, burst=3.0)),  # negative: none, burst spent
    (0.0, lambda x: x.pace(MAILBOX, 1.0, burst=3.0)),
    (0.0, lambda x: x.pace(USER, 0.2, also=[(PROJECT, 0.01)])),
    *[(0.05, lambda x: x.pace(USER, 0.2, also=[(PROJECT, 0.01)])) for _ in range(3)],
    (0.0, lambda x: x.pace("google:bob@example.com", 0.2, also=[(PROJECT, 0.5)])),
    (0.0, lambda x: x.pace(USER, 0.2, also=[(PROJECT, 0.01)])),  # the project is slower now
    (0.0, lambda x: x.hold(USER, 2.0)),
    (0.0, lambda x: x.pace(USER, 0.2, also=[(PROJECT, 0.01)])),
    # Graph's app line beside each mailbox's: the mailbox's burst lets a request go ahead
    # of its own reservation, never of the app's; two mailboxes queue on one app line.
    (30.0, lambda x: x.pace(MAILBOX, 1.0, burst=3.0, also=[(APP, 0.25)])),
    *[(0.0, lambda x: x.pace(MAILBOX, 1.0, burst=3.0, also=[(APP, 0.25)])) for _ in range(3)],
    *[(0.1, lambda x: x.pace(OTHER, 1.0, burst=3.0, also=[(APP, 0.25)])) for _ in range(3)],
    (0.0, lambda x: x.pace(OTHER, 20.0, burst=3.0, also=[(APP, 5.0)])),  # a batch
    (0.0, lambda x: x.hold(OTHER, 4.0, burst=3.0)),  # a mailbox's pause, not the app's
    (0.0, lambda x: x.pace(MAILBOX, 1.0, burst=3.0, also=[(APP, 0.25)])),
    (0.0, lambda x: x.pace(OTHER, 1.0, burst=3.0, also=[(APP, 0.25)])),
    (0.0, lambda x: x.take_slots(MAILBOX, 4, 3, 60.0) is not None),
    (0.0, lambda x: x.take_slots(MAILBOX, 4, 2, 60.0) is not None),  # one free: none
    (0.0, lambda x: x.take_slots(MAILBOX, 4, 9, 60.0) is not None),  # more than the limit
    (0.0, lambda x: x.take_slots(MAILBOX, 4, 1, 60.0) is not None),
    (61.0, lambda x: x.take_slots(MAILBOX, 4, 4, 60.0) is not None),  # all expired
    (0.0, lambda x: x.take_slots(MAILBOX, 4, 1, 60.0) is not None),
]


def _play(clock: Clock, limits: Any) -> list[Any]:
    start = clock.now
    answers = []
    for moved, step in SCRIPT:
        clock.now += moved
        answer = step(limits)
        answers.append(round(answer, 6) if isinstance(answer, float) else answer)
    # Slots given back by ticket are free again, and only those.
    clock.now += 1.0
    tickets = [t for t in (limits.take_slots("s", 4, 1, 60.0) for _ in range(4)) if t]
    answers.append(len(tickets))
    limits.give_back("s", tickets[0])
    if isinstance(limits, LimitStore):
        limits.flush()
    answers.append(limits.take_slots("s", 4, 2, 60.0) is not None)
    answers.append(limits.take_slots("s", 4, 1, 60.0) is not None)
    clock.now = start
    return answers


def test_the_processs_limits_answer_every_take_as_the_replicas_do(
        both: tuple[Clock, LocalLimits, LimitStore]) -> None:
    clock, local, shared = both
    here, there = _play(clock, local), _play(clock, shared)
    assert here == there
    # and the script did meet each case: a burst, a wait, a refusal
    assert 0.0 in here and max(a for a in here if isinstance(a, float)) >= 600.0
    assert False in here and True in here


def test_lines_idle_an_hour_are_dropped_and_pace_as_new_ones(
        both: tuple[Clock, LocalLimits, LimitStore]) -> None:
    clock, local, _shared = both
    for i in range(50):
        local.pace(f"graph:h|app|user{i}@example.com", 1.0, burst=3.0)
    assert local.lines() == 50
    clock.now += KEPT_SECONDS + 120
    assert local.pace("graph:h|app|user0@example.com", 1.0, burst=3.0) == 0.0
    assert local.lines() == 1
