"""The reader sandbox: one item that overruns its budget is stopped, the others are read."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from connectors import sandbox
from connectors.sandbox import Overrun, ReaderPool


@pytest.fixture
def pool(monkeypatch: pytest.MonkeyPatch) -> Iterator[ReaderPool]:
    monkeypatch.setitem(sandbox.ALLOWED, "spin", "tests.hostile.burners:spin")
    monkeypatch.setitem(sandbox.ALLOWED, "hog", "tests.hostile.burners:hog")
    monkeypatch.setitem(sandbox.ALLOWED, "crash", "tests.hostile.burners:crash")
    monkeypatch.setitem(sandbox.ALLOWED, "sleep", "tests.hostile.burners:sleep")
    readers = ReaderPool()
    yield readers
    readers.close()


def test_an_item_that_spins_is_stopped_by_the_cpu_budget_and_the_rest_are_read(
        pool: ReaderPool) -> None:
    results = pool.map_with_usage("spin", [("ok",), ("forever",), ("ok",)])
    assert [r for r, _ in results] == [
        "ok", Overrun(f"reading it took more than {sandbox.CPU_BUDGET} s of CPU"), "ok"]
    stopped_usage = results[1][1]
    assert stopped_usage is None


def test_an_item_that_needs_too_much_memory_is_stopped_and_the_rest_are_read(
        pool: ReaderPool) -> None:
    too_much = sandbox.MEMORY_LIMIT // (1024 * 1024) + 64
    results = pool.map("hog", [(1,), (too_much,), (2,)])
    assert results[0] == 1024 * 1024 and results[2] == 2 * 1024 * 1024
    assert isinstance(results[1], Overrun)
    assert "MiB" in results[1].reason


def test_an_item_that_crashes_the_reader_is_set_aside_with_the_signal(
        pool: ReaderPool) -> None:
    assert pool.map("crash", [("ok",), ("boom",), ("ok",)]) == [
        "ok", Overrun("the reader crashed (SIGSEGV)"), "ok"]


def test_an_item_stuck_without_spending_cpu_is_stopped_by_the_wall_limit(
        pool: ReaderPool) -> None:
    results = pool.map("sleep", [(0.0,), (60.0,), (0.0,)], wall_limit=1.0)
    assert results == [0.0, Overrun("reading it took more than 1 s"), 0.0]


def test_a_worker_is_reused_between_calls(pool: ReaderPool) -> None:
    pool.map("spin", [("ok",)])
    first = pool._idle[0].process.pid
    pool.map("spin", [("ok",)])
    assert pool._idle[0].process.pid == first


def test_only_allowed_functions_can_be_called(pool: ReaderPool) -> None:
    with pytest.raises(ValueError, match="not a sandboxed function"):
        pool.map("os:system", [("true",)])


def test_a_reader_that_cannot_start_fails_the_call_and_blames_no_item(
        pool: ReaderPool, monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    from connectors.sandbox import SandboxUnavailable

    starts = {"n": 0}
    real_init = sandbox._Worker.__init__

    def counted_init(self: sandbox._Worker) -> None:
        starts["n"] += 1
        if starts["n"] > 20:
            raise RuntimeError("the pool keeps starting readers that cannot start")
        real_init(self)

    monkeypatch.setattr(sandbox._Worker, "__init__", counted_init)
    # A broken installation: the reader exits before it reads anything.
    monkeypatch.setattr(sys, "executable", "/bin/false")
    with pytest.raises(SandboxUnavailable, match="did not start"):
        pool.map("spin", [("ok",), ("ok",), ("ok",)])
    assert starts["n"] == 1



def test_a_reader_killed_from_outside_is_not_blamed_on_the_cpu_budget(
        pool: ReaderPool) -> None:
    assert pool.map("crash", [("ok",), ("SIGKILL",), ("ok",)]) == [
        "ok", Overrun("the reader was killed (SIGKILL: the system may be out of memory)"), "ok"]
