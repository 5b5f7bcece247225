"""bench/idle.py's split of a profile's Python calls by area (database, HTTP, other)."""

from __future__ import annotations

import cProfile
import pstats

from requests.structures import CaseInsensitiveDict

from bench.idle import calls_by_area


def _ours() -> int:
    return len([1, 2, 3])


def test_calls_are_split_by_the_library_that_made_them() -> None:
    profiler = cProfile.Profile()
    profiler.enable()
    headers = CaseInsensitiveDict({"A": "1", "B": "2"})  # requests: its calls and builtins
    _ours()
    profiler.disable()
    assert headers["a"] == "1"
    stats = pstats.Stats(profiler)
    areas = calls_by_area(stats)
    assert sum(areas.values()) == stats.total_calls  # type: ignore[attr-defined]
    assert areas.get("http", 0) >= 3  # __init__, update, __setitem__ (and their builtins)
    assert areas.get("other", 0) >= 2  # _ours and the len it called
    assert "database" not in areas
