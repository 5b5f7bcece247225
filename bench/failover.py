"""Replicas under SIGKILL and SIGSTOP at the Show's size (issue 16): 2,000 accounts, 3
replicas, on PostgreSQL.

``.venv/bin/python -m bench.failover --database postgresql+psycopg://postgres@127.0.0.1/test
--accounts 2000 --out bench/results/failover.md``

The scenario of tests/replicas/test_failover.py (which runs it at 200 accounts), from
:func:`syncd_testkit.replicas.chaos`: driver processes running the product's claim, lease
and fencing code, one SIGKILLed and replaced, one SIGSTOPped for twice the lease, one
SIGKILLed, with PostgreSQL triggers auditing every write in the transaction that makes
it. It reports the writes audited, writes by anyone but the lease holder (must be 0),
tokens that went back (must be 0), and the seconds from each lapsed lease to its takeover
(the promise: within a tick, plus what a busy machine adds). Measured, never asserted.

``--budgets`` runs instead the shared provider budgets of tests/replicas/test_budgets.py
at their real sizes (``--out bench/results/budgets.md``): replica processes
(syncd_testkit/budget_driver.py) as one Google user at syncd's default 500 requests a
minute against the emulator's 600 per sliding minute, single reads and 50-part batches,
for ``--seconds`` (2.5 minutes by default); and replicas sending to one mailbox of the
Graph emulator (20 ms per request) for a minute, then one replica's 16 threads each on
a mailbox of its own (no contention: what the slots cost an ordinary replica); and
replicas acting as 12 users of one Google project whose quota is scaled to 1,200 a
minute (what this machine's replicas can send; Google's is 10,000), syncd's budget 1,080
(the default 9,000 of 10,000, scaled), every user under its own 500. The
contended runs are run with the budgets shared and, as the control, with each replica
counting alone. It reports what the emulators counted
(refusals, the busiest sliding minute, the most requests in flight) and what sharing cost
(database statements per request).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

from bench.control import ROOT
from bench.report import code_version
from bench.sync import database, log
from syncd.store.db import Database
from syncd_testkit.budget_driver import USER, drive, mailboxes
from syncd_testkit.emulators.google import GoogleEmulator
from syncd_testkit.emulators.graph import GraphEmulator
from syncd_testkit.replicas import chaos, install_audit

#: Google's per-user quota a minute, and syncd's default budget under it.
GOOGLE_QUOTA, GOOGLE_BUDGET = 600, 500


def _google(url: str, replicas: int, seconds: float, *, batch: int, alone: bool
            ) -> dict[str, object]:
    with GoogleEmulator(per_user_quota_per_minute=GOOGLE_QUOTA) as emu:
        results = drive("google", url, emu.api_endpoint, replicas, threads=4,
                        seconds=seconds, per_window=GOOGLE_BUDGET, window=60.0,
                        batch=batch, alone=alone)
        counter = emu.user_quota
        assert counter is not None
        sent = sum(r.get("sent", 0) for r in results)
        ran = max(r.get("ran_ms", 0) for r in results) / 1000
        return {"provider": "google", "shared": not alone, "replicas": replicas,
                "parts_per_request": batch, "seconds": round(ran, 1),
                "reads_answered": sent,
                "reads_per_minute": round(sent / ran * 60),
                "refused_by_google": sum(counter.refused.values()),
                "busiest_sliding_minute": max(counter.peak.values(), default=0),
                "db_statements_per_request": round(
                    sum(r.get("statements", 0) for r in results) / max(1, sent / batch), 2)}


#: A project's quota a minute scaled to what this machine's replicas can send (Google's is
#: 10,000, syncd's default budget 9,000: the same ratio), and the users sending.
PROJECT_QUOTA, PROJECT_BUDGET, PROJECT_USERS = 1200, 1080, 12


def _project(url: str, replicas: int, seconds: float, *, alone: bool) -> dict[str, object]:
    """Replicas acting as many users of one project: each user under its own 500 a
    minute, all of them together over the project's budget unless it is shared."""
    with GoogleEmulator(per_project_quota_per_minute=PROJECT_QUOTA) as emu:
        results = drive("google", url, emu.api_endpoint, replicas, threads=4,
                        seconds=seconds, per_window=GOOGLE_BUDGET, window=60.0,
                        users=PROJECT_USERS, project_per_window=PROJECT_BUDGET,
                        alone=alone)
        counter = emu.project_quota
        assert counter is not None
        sent = sum(r.get("sent", 0) for r in results)
        ran = max(r.get("ran_ms", 0) for r in results) / 1000
        return {"provider": "google-project", "shared": not alone, "replicas": replicas,
                "users": PROJECT_USERS, "seconds": round(ran, 1), "reads_answered": sent,
                "reads_per_minute": round(sent / ran * 60),
                "refused_by_google": sum(counter.refused.values()),
                "busiest_sliding_minute": max(counter.peak.values(), default=0),
                "db_statements_per_request": round(
                    sum(r.get("statements", 0) for r in results) / max(1, sent), 2)}


def _paces(url: str, replica: int, threads: int, seconds: float, project: str,
            out: Any) -> None:
    """One process's threads pacing as users of their own, as fast as the database lets
    them (no request is sent): how many reservations a second the lines take. ``project``:
    "one" (every thread's second line is the project's one row), "own" (a second line of
    each thread's own: the same work, no row shared), "none"."""
    import threading
    import time

    from syncd.store.limits import LimitStore

    limits = LimitStore(Database(url, run_migrations=False))
    counts = [0] * threads
    until = time.monotonic() + seconds

    def loop(i: int) -> None:
        second = {"one": "google-project:bench", "own": f"google-project:r{replica}-t{i}"}
        also = ((second[project], 1e-6),) if project in second else ()
        while time.monotonic() < until:
            limits.pace(f"google:r{replica}-t{i}@example.com", 1e-6, also=also)
            counts[i] += 1

    workers = [threading.Thread(target=loop, args=(i,)) for i in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    out.put(sum(counts))


def _contention(url: str, replicas: int, seconds: float, *, project: str
                ) -> dict[str, object]:
    """Reservations a second when every one also takes the project's one row, against
    the same work on rows of their own and each user's own row alone."""
    import multiprocessing

    queue: Any = multiprocessing.get_context("spawn").Queue()
    processes = [multiprocessing.get_context("spawn").Process(
        target=_paces, args=(url, r, 8, seconds, project, queue)) for r in range(replicas)]
    for process in processes:
        process.start()
    done = sum(queue.get() for _ in processes)
    for process in processes:
        process.join()
    return {"provider": "google-project-row", "second_line": project, "replicas": replicas,
            "threads_each": 8, "seconds": seconds,
            "reservations_per_second": round(done / seconds)}


def _graph(url: str, replicas: int, seconds: float, *, alone: bool, boxes: int = 1,
           threads: int = 4) -> dict[str, object]:
    emu = GraphEmulator()
    emu.latency_seconds = 0.02
    for box in mailboxes(USER, boxes):
        emu.add_mailbox(box)
    with emu:
        results = drive("graph", url, emu.base_url, replicas, threads=threads,
                        seconds=seconds, mailbox=USER, mailboxes=boxes, alone=alone)
        sent = sum(r.get("sent", 0) for r in results)
        ran = max(r.get("ran_ms", 0) for r in results) / 1000
        return {"provider": "graph", "shared": not alone, "replicas": replicas,
                "threads_each": threads, "mailboxes": boxes,
                "seconds": round(ran, 1), "requests_answered": sent,
                "requests_per_second": round(sent / ran, 1),
                "most_in_flight": max(emu.max_in_flight_seen.values(), default=0),
                "refused_429": sum(1 for r in emu.requests if r.status == 429),
                "db_statements_per_request": round(
                    sum(r.get("statements", 0) for r in results) / max(1, sent), 2)}


def budgets(args: argparse.Namespace) -> int:
    """The shared budgets at their real sizes (see the module docstring)."""
    rows: list[dict[str, object]] = []
    with tempfile.TemporaryDirectory() as tmp, database(args.database, Path(tmp)) as url:
        Database(url).close()  # migrated
        for batch in (1, 50) if "google" in args.providers else ():
            for alone in (False, True):
                log(f"google: {args.replicas} replicas, batches of {batch}, alone={alone}")
                rows.append(_google(url, args.replicas, args.seconds, batch=batch,
                                    alone=alone))
        for alone in (False, True) if "project" in args.providers else ():
            log(f"google project: {args.replicas} replicas, {PROJECT_USERS} users, "
                f"alone={alone}")
            rows.append(_project(url, args.replicas, args.seconds, alone=alone))
        for project in ("one", "own", "none") if "contention" in args.providers else ():
            log(f"the project's row: {args.replicas} replicas x 8 threads, project={project}")
            rows.append(_contention(url, args.replicas, min(20.0, args.seconds),
                                    project=project))
        for alone in (False, True) if "graph" in args.providers else ():
            log(f"graph: {args.replicas} replicas, alone={alone}")
            rows.append(_graph(url, args.replicas, min(60.0, args.seconds), alone=alone))
        if "graph" in args.providers:  # no contention: one replica's 16 accounts
            log("graph: 1 replica, 16 threads on 16 mailboxes")
            rows.append(_graph(url, 1, min(60.0, args.seconds), alone=False, boxes=16,
                               threads=16))
    code = code_version(str(ROOT))
    lines = ["# Provider budgets shared by replicas (bench/failover.py --budgets)", "",
             f"Load average {os.getloadavg()[0]:.1f}, code {code['commit']}.", ""]
    for provider in ("google", "google-project", "google-project-row", "graph"):
        mine = [r for r in rows if r["provider"] == provider]
        if not mine:
            continue
        keys = list(mine[0])
        lines += ["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
        lines += ["| " + " | ".join(str(r[k]) for k in keys) + " |" for r in mine]
        lines.append("")
    text = "\n".join(lines)
    Path(args.out).write_text(text)
    Path(args.out).with_suffix(".json").write_text(json.dumps(rows, indent=1))
    print(text)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database", default="postgresql+psycopg://postgres@127.0.0.1/test")
    parser.add_argument("--accounts", type=int, default=2000)
    parser.add_argument("--replicas", type=int, default=3)
    parser.add_argument("--ttl", type=float, default=3.0, help="lease seconds")
    parser.add_argument("--tick", type=float, default=0.2)
    parser.add_argument("--interval", type=float, default=5.0)
    parser.add_argument("--work-ms", type=float, default=20.0)
    parser.add_argument("--cap", type=int, default=16)
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "failover.md"))
    parser.add_argument("--budgets", action="store_true",
                        help="run the shared provider budgets instead (see above)")
    parser.add_argument("--seconds", type=float, default=150.0,
                        help="with --budgets: each Google run's length")
    parser.add_argument("--providers", default="google,project,graph",
                        help="with --budgets: which providers' budgets (project: Google's "
                             "per-project minute, many users; contention: reservations a "
                             "second with and without the project's row)")
    args = parser.parse_args(argv)
    if args.budgets:
        return budgets(args)
    with tempfile.TemporaryDirectory() as tmp, database(args.database, Path(tmp)) as url:
        db = Database(url)
        install_audit(db)
        log(f"{args.accounts} accounts, {args.replicas} replicas, lease {args.ttl} s")
        result = chaos(url, db, args.accounts, ttl=args.ttl, replicas=args.replicas,
                       timeout=600, tick=args.tick, interval=args.interval,
                       work_ms=args.work_ms, cap=args.cap)
        db.close()
    delays = sorted(result.takeover_delays)
    code = code_version(str(ROOT))
    figures = {
        "accounts": args.accounts, "replicas": args.replicas, "lease_s": args.ttl,
        "tick_s": args.tick, "writes_audited": result.writes,
        "writes_by_a_non_holder": len(result.two_writers),
        "tokens_gone_back": len(result.tokens_went_back), "takeovers": len(delays),
        "takeover_delay_p50_s": round(statistics.median(delays), 2) if delays else None,
        "takeover_delay_max_s": round(delays[-1], 2) if delays else None,
        "refused_after_waking": sum(d.get("refused", 0) for d in result.done.values()),
        "run_s": round(result.seconds, 1), "load_average": round(os.getloadavg()[0], 1),
        "code": code["commit"],
    }
    lines = ["# Replica failover (bench/failover.py)", "",
             "| figure | value |", "|---|---|"]
    lines += [f"| {k} | {v} |" for k, v in figures.items()]
    text = "\n".join(lines) + "\n"
    Path(args.out).write_text(text)
    Path(args.out).with_suffix(".json").write_text(json.dumps(figures, indent=1))
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
