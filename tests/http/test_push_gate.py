"""PushGate and the dirty flag: when a push's cycle is asked for, counted on a fixed clock."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from syncd.push import PushGate
from syncd.store.db import Database
from syncd.store.dirty import DirtyFlags


class Clock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def dirty(tmp_path: Path) -> DirtyFlags:
    return DirtyFlags(Database(f"sqlite:///{tmp_path / 'syncd.db'}"))


def test_the_flag_keeps_the_first_hint_until_a_cycle_takes_it(dirty: DirtyFlags) -> None:
    first, later = datetime(2026, 3, 2, 9, 0, tzinfo=UTC), datetime(2026, 3, 2, 9, 5, tzinfo=UTC)
    dirty.mark(["a"], now=first)
    dirty.mark(["a", "b"], now=later)
    assert dirty.flagged() == {"a", "b"} and dirty.flagged(["b", "c"]) == {"b"}
    assert dirty.take("a") == first
    assert dirty.take("a") is None
    assert dirty.flagged() == {"b"}


def test_a_burst_moves_its_cycle_to_after_the_last_hint_but_not_past_the_cap(
        dirty: DirtyFlags) -> None:
    clock, asked = Clock(), []
    gate = PushGate(dirty, lambda name, when: asked.append((name, when)), delay=2, max_wait=30,
                    clock=clock)
    for _ in range(20):  # a hint a second for 20 s
        dirty.mark(["a"])
        gate.nudge(["a"])
        clock.now += 1
    assert asked[0] == ("a", 1_002.0) and asked[-1] == ("a", 1_021.0)
    for _ in range(10):  # the burst goes on: the cycle is not put off beyond 30 s
        gate.nudge(["a"])
        clock.now += 1
    assert asked[-1] == ("a", 1_030.0)
    assert max(when for _, when in asked) == 1_030.0


def test_hints_during_a_cycle_ask_for_exactly_one_more_when_it_ends(dirty: DirtyFlags) -> None:
    clock, asked = Clock(), []
    gate = PushGate(dirty, lambda name, when: asked.append((name, when)), delay=2, clock=clock)
    dirty.mark(["a"])
    gate.nudge(["a"])
    gate.begin("a")
    assert dirty.flagged() == set()
    for _ in range(50):
        dirty.mark(["a"])
        gate.nudge(["a"])  # in a cycle: nothing asked yet
    assert len(asked) == 1
    clock.now += 5
    gate.end("a")
    assert asked[1:] == [("a", clock.now)]  # the burst's first hint is over 2 s old
    gate.begin("a")
    gate.end("a")
    assert len(asked) == 2  # nothing came during the second cycle


def test_a_cycle_that_found_the_account_held_elsewhere_puts_the_flag_back(
        dirty: DirtyFlags) -> None:
    asked: list[tuple[str, float]] = []
    gate = PushGate(dirty, lambda name, when: asked.append((name, when)), clock=Clock())
    at = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
    dirty.mark(["a"], now=at)
    taken = gate.begin("a")
    assert taken == at and dirty.flagged() == set()
    gate.end("a", unread=taken)  # another replica holds "a": its cycle must read the change
    assert dirty.take("a") == at
    assert asked == []  # not asked again here, where the account is held elsewhere
