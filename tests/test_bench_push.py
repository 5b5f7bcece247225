"""bench/push.py: its percentiles, and a smoke run (two owners, two changes each way)."""

from __future__ import annotations

import json
from pathlib import Path

from bench.push import main, percentile, summarise


def test_percentiles_interpolate_between_the_closest_ranks() -> None:
    assert percentile([], 50) is None
    assert percentile([3.0], 99) == 3.0
    assert percentile([4.0, 1.0, 3.0, 2.0], 50) == 2.5
    assert percentile([float(x) for x in range(1, 101)], 99) == 99.01


def test_the_summary_counts_changes_never_seen_as_lost() -> None:
    run = {"latency": {"samples": [
        {"direction": "crm->calendar", "latency_s": 2.0},
        {"direction": "crm->calendar", "latency_s": None},
        {"direction": "calendar->crm", "latency_s": 1.0}]},
        "idle": {"seconds": 1800, "requests": {"http": {"GET": 50}}, "cycles": 50}}
    summary = summarise(run, owners=50)
    assert summary["crm->calendar"] == {"n": 2, "lost": 1, "p50_s": 2.0, "p99_s": 2.0,
                                        "max_s": 2.0}
    assert summary["idle"]["per_calendar_per_hour"] == 2.0


def test_a_smoke_run_times_every_change_each_way(tmp_path: Path) -> None:
    out = tmp_path / "push.json"
    code = main(["--owners", "2", "--per-owner", "4", "--samples", "2", "--spread", "1",
                 "--interval", "3", "--providers", "google", "--modes", "push",
                 "--latency-ms", "0", "--channels-timeout", "0", "--quiet", "0.5",
                 "--out", str(out)])
    assert code == 0
    data = json.loads(out.read_text())
    (run,) = data["runs"]
    for direction in ("crm->calendar", "calendar->crm"):
        assert run["summary"][direction]["n"] == 2
        assert run["summary"][direction]["lost"] == 0
    assert run["raw"]["latency"]["cycles"] >= 1
    assert "| google | push |" in out.with_suffix(".md").read_text()
