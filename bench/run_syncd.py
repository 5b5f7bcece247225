"""The syncd side of one provider's benchmark, in its own process (so ru_maxrss is its own).

Two steps, each a separate process started by :mod:`bench.sync`:

``seed``
    makes the owners' calendars and the CRM: one user per owner and N activities, in
    batches of 1,000 through ``ActivityStore.add_activities`` (the ``syncd import`` path).
    It writes ``owners.json`` (each owner's activity ids, in creation order).
``run``
    runs the phases through :class:`syncd.service.Service`, the daemon's own wiring: one
    connector per account, kept across cycles, and a pool of ``workers`` threads running
    one cycle per account per phase (what the daemon's APScheduler executor does). Before
    a phase's cycles it makes the phase's changes (CRM edits through the store; calendar
    edits by "the user", directly on the server). Prints the results as JSON.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import os
import pstats
import sys
import threading
import time
import tracemalloc
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.backends import TZ
from bench.control import Control, ServerInfo
from bench.measure import HeapWatcher, Phase, SqlCounter, measure, rss_mib
from bench.providers import account, install
from bench.workload import (
    FULL,
    MEMORY,
    SLOT_CAL_DELETE,
    SLOT_CAL_EDIT,
    SLOT_CRM_DELETE,
    SLOT_CRM_EDIT,
    Workload,
    first_day,
)
from syncd.config import AccountConfig, Config
from syncd.crm.builtin.activities import ActivityStore
from syncd.engine.outcome import CycleReport
from syncd.service import Service
from syncd.store.db import Database

SEED_BATCH = 1000


def seed(workload: Workload, database: str, control: Control, folder: Path) -> dict[str, Any]:
    """Calendars on the server and activities in the CRM; writes ``owners.json``."""
    owners = workload.owner_emails()
    calendars = control.call("setup", owners=owners)
    db = Database(database)
    store = ActivityStore(db)
    user_ids = [store.add_user(owner, owner.split("@")[0], TZ) for owner in owners]
    day = first_day(datetime.now(UTC))
    per_owner: list[list[int]] = [[] for _ in owners]
    start = time.perf_counter()
    for first in range(0, workload.n, SEED_BATCH):
        indexes = range(first, min(workload.n, first + SEED_BATCH))
        items = [{**workload.activity(i, day), "owner_id": user_ids[workload.owner_of(i)]}
                 for i in indexes]
        for i, activity_id in zip(indexes, store.add_activities(items), strict=True):
            per_owner[workload.owner_of(i)].append(activity_id)
    seconds = time.perf_counter() - start
    db.close()
    data = {"owners": owners, "calendars": calendars, "activities": per_owner}
    (folder / "owners.json").write_text(json.dumps(data))
    return {"seed_s": round(seconds, 2)}


class SyncdBench:
    """Phases of syncd against one provider."""

    def __init__(self, provider: str, server: ServerInfo, workload: Workload, database: str,
                 workers: int, folder: Path, profile: Path | None = None) -> None:
        self.provider = provider
        self.profile = profile
        self._profiles: list[cProfile.Profile] = []
        self._profile_lock = threading.Lock()
        self.workload = workload
        self.control = Control(server.control)
        data = json.loads((folder / "owners.json").read_text())
        self.owners: list[str] = data["owners"]
        self.calendars: dict[str, str] = data["calendars"]
        self.activities: list[list[int]] = data["activities"]
        install(provider, server)
        self.accounts = [account(provider, server, o, self.calendars[o]) for o in self.owners]
        config = Config(database=database, workers=workers, accounts=tuple(self.accounts),
                        data_dir=str(folder / "data"), default_time_zone=TZ)
        self.service = Service(config)
        self.store = self.service.store
        self.sql = SqlCounter()
        self.sql.attach(self.service.db.engine)
        self.pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="worker")
        self.phases: list[Phase] = []
        self.checks: list[dict[str, Any]] = []

    # --- running cycles ---------------------------------------------------------------

    def _one(self, acct: AccountConfig) -> tuple[CycleReport, float]:
        # Per-thread CPU time: with several workers, wall time would count the waits.
        profiler = (cProfile.Profile(time.thread_time) if self.profile is not None
                    else None)
        start = time.perf_counter()
        if profiler is not None:
            profiler.enable()
        report = self.service.sync_one(acct)
        if profiler is not None:
            profiler.disable()
            with self._profile_lock:
                self._profiles.append(profiler)
        return report, time.perf_counter() - start

    def _dump_profile(self, name: str) -> None:
        """Merge the phase's per-cycle profiles into ``<profile>/<phase>.pstats``."""
        if self.profile is None or not self._profiles:
            return
        stats = pstats.Stats(self._profiles[0])
        for more in self._profiles[1:]:
            stats.add(more)
        self.profile.mkdir(parents=True, exist_ok=True)
        stats.dump_stats(self.profile / f"{name.replace(' ', '-')}.pstats")
        self._profiles.clear()

    def cycle(self, name: str, changes: int = 0) -> Phase:
        """One cycle of every account on the worker pool, measured as phase ``name``."""
        with measure(name, self.control, self.sql) as phase:
            results = list(self.pool.map(self._one, self.accounts))
        self._dump_profile(name)
        counts: Counter[str] = Counter()
        outcomes: Counter[str] = Counter()
        for report, seconds in results:
            counts.update(report.counts)
            outcomes[report.outcome] += 1
            phase.per_account_s.append(seconds)
            if report.outcome not in ("ok", "skipped", "busy"):
                phase.notes.append(report.line())
        phase.counts = {k: v for k, v in sorted(counts.items()) if v}
        phase.outcomes = dict(outcomes)
        phase.changes = changes
        self.phases.append(phase)
        return phase

    def check(self, phase: Phase, what: str, ok: bool, value: object) -> None:
        self.checks.append({"phase": phase.name, "check": what, "ok": bool(ok),
                            "value": value})

    # --- the phases ---------------------------------------------------------------------

    def events_of(self, activity_ids: Sequence[int]) -> dict[str, list[str]]:
        """calendar -> event ids of the given activities (from syncd's links)."""
        wanted = set(activity_ids)
        out: dict[str, list[str]] = {}
        for acct, owner in zip(self.accounts, self.owners, strict=True):
            for activity_id, link in self.service.state.links(acct.name).items():
                if activity_id in wanted and link.event_id:
                    out.setdefault(self.calendars[owner], []).append(link.event_id)
        return out

    def as_user(self, method: str, activity_ids: Sequence[int]) -> int:
        done = 0
        for calendar, events in self.events_of(activity_ids).items():
            done += self.control.call(method, calendar=calendar, events=events,
                                      stamp="edited in the calendar")
        return done

    def run(self, phases: Sequence[str]) -> None:
        k = self.workload.per_phase
        n = self.workload.n
        u = len(self.accounts)
        idle_budget = u  # one request per calendar
        for name in phases:
            if name == "initial":
                p = self.cycle(name, n)
                self.check(p, "events created = N", p.counts.get("events_created") == n,
                           p.counts.get("events_created"))
            elif name.endswith("settle"):
                p = self.cycle(name)
                self.check(p, "no writes", p.writes == 0, p.writes)
            elif name == "idle":
                p = self.cycle(name)
                http = sum(p.requests.get("http", {}).values())
                self.check(p, "one request per calendar", http <= idle_budget, http)
                self.check(p, "no writes", p.writes == 0, p.writes)
            elif name == "crm edits":
                ids = self.workload.pick(self.activities, SLOT_CRM_EDIT)
                for activity_id in ids:
                    self.store.edit_activity(activity_id, subject=f"Edited {activity_id}")
                p = self.cycle(name, len(ids))
                self.check(p, "events updated = changes", p.counts.get("events_updated") == k,
                           p.counts.get("events_updated"))
            elif name == "calendar edits":
                done = self.as_user("edit", self.workload.pick(self.activities, SLOT_CAL_EDIT))
                p = self.cycle(name, done)
                self.check(p, "activities updated = changes",
                           p.counts.get("activities_updated") == k,
                           p.counts.get("activities_updated"))
            elif name == "deletes":
                crm = self.workload.pick(self.activities, SLOT_CRM_DELETE)
                cal = self.workload.pick(self.activities, SLOT_CAL_DELETE)
                done = self.as_user("delete", cal)
                self.store.delete_activities(crm)
                p = self.cycle(name, len(crm) + done)
                self.check(p, "events deleted = CRM deletes",
                           p.counts.get("events_deleted") == k, p.counts.get("events_deleted"))
                self.check(p, "activities deleted = calendar deletes",
                           p.counts.get("activities_deleted") == k,
                           p.counts.get("activities_deleted"))
        live = sum(self.control.call("count", calendars=list(self.calendars.values())).values())
        expected = n - (2 * k if "deletes" in phases else 0)
        self.checks.append({"phase": "end", "check": "events on the server = live activities",
                            "ok": live == expected, "value": live})

    def close(self) -> None:
        self.pool.shutdown()
        self.service.close()
        self.control.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("step", choices=("seed", "run"))
    parser.add_argument("--provider", required=True)
    parser.add_argument("--server", required=True, help="the serving process's JSON line")
    parser.add_argument("--n", type=int, required=True)
    parser.add_argument("--owners", type=int, required=True)
    parser.add_argument("--percent", type=float, default=1.0)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--database", required=True)
    parser.add_argument("--folder", type=Path, required=True)
    parser.add_argument("--phases", choices=("full", "memory"), default="full")
    parser.add_argument("--tracemalloc", action="store_true")
    parser.add_argument("--profile", type=Path, default=None,
                        help="write one cProfile file (thread CPU time) per phase here")
    args = parser.parse_args(argv)
    server = ServerInfo.from_json(args.server)
    workload = Workload(args.n, args.owners, args.percent)
    if args.step == "seed":
        control = Control(server.control)
        print(json.dumps(seed(workload, args.database, control, args.folder)))
        control.close()
        return 0
    bench = SyncdBench(args.provider, server, workload, args.database, args.workers,
                       args.folder, args.profile)
    baseline = rss_mib()
    watcher = None
    if args.tracemalloc:
        # BENCH_TRACE_FRAMES=8 also reports who called the biggest allocation sites.
        tracemalloc.start(int(os.environ.get("BENCH_TRACE_FRAMES", "1")))
        watcher = HeapWatcher().start()
    try:
        bench.run(FULL if args.phases == "full" else MEMORY)
    finally:
        bench.close()
    result = {
        "baseline_rss_mib": round(baseline, 1), "peak_rss_mib": round(rss_mib(), 1),
        "tracemalloc": args.tracemalloc,
        "phases": [p.to_json() for p in bench.phases], "checks": bench.checks,
    }
    if watcher is not None:
        result["heap_top"] = watcher.stop()
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
