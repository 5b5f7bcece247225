"""Idle calendars per minute as one process's concurrency grows and as replicas are
added (issue 16 items 3 and 4), at an injected network latency.

``.venv/bin/python -m bench.replicas --database postgresql+psycopg://postgres@127.0.0.1/test
--owners 400 --latency-ms 20 --providers google --out bench/results/replicas.json``

Per provider: the serving process of :mod:`bench.sync` (the provider's server behind the
latency proxy), a fresh PostgreSQL database, ``--owners`` calendars of ``--events`` events
each seeded and synced once. Then each measurement starts its replicas side by side
(``bench.replicas replica``, one process each: syncd's own wiring, the
:class:`syncd.replica.Dispatcher` claiming from the work queue with ``[syncd] workers``
as its cap, each cycle ``Service.sync_one`` under the claim) with every account due at
once and due again as soon as its idle cycle ends; after ``--warm`` seconds (connectors
made, connections open) the replicas count the idle cycles that end in ``--seconds``.
Idle calendars per minute = those cycles, all replicas together, per minute.

Rows: one replica at workers 4, 16 and 64 (``--concurrency``), then 1, 2 and 4 replicas
(``--replicas``) at ``--replica-workers`` each. The machine's load average is recorded
with each row: the numbers are measured, never asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.control import ROOT, ServerInfo, ServingProcess
from bench.providers import account, install
from bench.report import code_version
from bench.sync import child, log, seeded


def _accounts(server: ServerInfo, provider: str, folder: Path) -> list[Any]:
    data = json.loads((folder / "owners.json").read_text())
    install(provider, server)
    return [account(provider, server, o, data["calendars"][o]) for o in data["owners"]]


def replica(args: argparse.Namespace) -> dict[str, Any]:
    """One replica: claim and sync idle accounts, counting the cycles that end in the
    measured window.

    The daemon's own replica path (:class:`syncd.daemon.Daemon` with ``[syncd] replica``:
    its dispatcher, ``_run_account`` with the push gate, the channel keeper and the
    metrics, the account given back due again at once), ticked as the daemon ticks it:
    every :data:`syncd.replica.TICK_SECONDS`, and at once when cycles free a batch of
    slots while accounts wait (``Dispatcher.on_free``)."""
    from syncd.config import Config
    from syncd.daemon import Daemon
    from syncd.replica import TICK_SECONDS

    server = ServerInfo.from_json(args.server)
    accounts = {a.name: a for a in _accounts(server, args.provider, args.folder)}
    once = args.once
    config = Config(database=args.database, workers=args.workers, replica=True,
                    interval_seconds=3600 if once else 0, jitter_seconds=0,
                    accounts=tuple(accounts.values()), data_dir=str(args.folder / "data"),
                    default_time_zone="Europe/Oslo")
    daemon = Daemon(config)
    daemon.start_push()
    service, dispatcher = daemon.service, daemon.dispatcher
    assert dispatcher is not None
    lock = threading.Lock()
    counted: dict[str, Any] = {"idle": 0, "other": 0, "all": 0, "cycle_cpu_s": 0.0,
                               "refills": 0}
    window = {"start": float("inf"), "end": float("inf")}
    wake = threading.Event()
    mine = threading.local()  # whether this thread's cycle ended in the window
    run_account = daemon._run_account
    cycle_done = daemon.metrics.cycle_done

    def done(account: Any, report: Any, seconds: float) -> None:
        cycle_done(account, report, seconds)
        ended = time.time()
        with lock:
            counted["all"] += 1
            if window["start"] <= ended < window["end"]:
                quiet = report.outcome == "ok" and not any(
                    v for k, v in report.counts.items() if k.startswith(("events_", "activities_")))
                counted["idle" if quiet else "other"] += 1
                mine.counted = True

    def work(claim: Any) -> None:
        # the cycle's own thread CPU (what bench/sync.py's "CPU bound" figure uses)
        mine.counted = False
        start = time.thread_time()
        run_account(claim.name, claim)
        if mine.counted:
            with lock:
                counted["cycle_cpu_s"] += time.thread_time() - start

    def refill() -> None:  # the daemon's _claim_soon, without its scheduler
        counted["refills"] += 1
        dispatcher.refill()

    daemon.metrics.cycle_done = done  # type: ignore[method-assign]
    dispatcher.work = work
    dispatcher.on_free = refill
    if not once:
        # Every connector made before the start (building a Google client alone takes a
        # good part of a second of CPU): the replicas measure cycles, not set-up.
        now = datetime.now(UTC)
        for acct in accounts.values():
            service._connector(acct, now)
        print("ready", flush=True)
        args.start_at = float(sys.stdin.readline())
    window = {"start": args.start_at + args.warm,
              "end": args.start_at + args.warm + args.seconds}
    time.sleep(max(0.0, args.start_at - time.time()))
    cpu: dict[str, float] = {}
    stop_at = window["end"] if not once else float("inf")
    while time.time() < stop_at:
        if dispatcher.tick() == 0 and once and dispatcher.in_flight == 0:
            break
        if "start" not in cpu and time.time() >= window["start"]:
            cpu["start"] = time.process_time()
        wake.wait(min(TICK_SECONDS, max(0.0, stop_at - time.time())) if not once else 0.2)
    cpu_s = time.process_time() - cpu.get("start", time.process_time())
    dispatcher.stop()
    dispatcher.pool.shutdown(wait=True)
    service.close()
    return {**counted, "seconds": args.seconds, "cpu_s": round(cpu_s, 2)}


def measure(server: ServingProcess, provider: str, url: str, folder: Path, replicas: int,
            workers: int, args: argparse.Namespace) -> dict[str, Any]:
    """Start ``replicas`` replica processes together; their idle calendars per minute."""
    import subprocess

    from syncd.store.db import Database

    db = Database(url, run_migrations=False)
    with db.session() as s:  # every account due now, no lease held
        from sqlalchemy import text

        s.execute(text("UPDATE sync_accounts SET due_at = NULL, lease_owner = NULL, "
                       "lease_until = NULL"))
    db.close()
    procs = [subprocess.Popen(
        [sys.executable, "-m", "bench.replicas", "replica", "--provider", provider,
         "--server", server.info.to_json(), "--database", url, "--folder", str(folder),
         "--workers", str(workers), "--name", f"r{i}",
         "--warm", str(args.warm), "--seconds", str(args.seconds)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=ROOT)
        for i in range(replicas)]
    for p in procs:  # all set up: they start together
        assert p.stdout is not None
        if p.stdout.readline().strip() != "ready":
            raise RuntimeError("a replica failed to start")
    start_at = time.time() + 1
    results = []
    for p in procs:
        out, _ = p.communicate(f"{start_at}\n", timeout=600)
        if p.returncode != 0:
            raise RuntimeError(f"a replica failed (exit {p.returncode})")
        results.append(json.loads(out.strip().splitlines()[-1]))
    idle = sum(r["idle"] for r in results)
    cycles = idle + sum(r["other"] for r in results)
    cpu_ms = 1000 * sum(r["cpu_s"] for r in results) / max(1, cycles)
    cycle_ms = 1000 * sum(r["cycle_cpu_s"] for r in results) / max(1, cycles)
    return {"replicas": replicas, "workers": workers, "idle_cycles": idle,
            # syncd's own CPU per cycle (all threads of the replica processes), and so the
            # most one core could do were nothing else running on it
            "cpu_ms_per_cycle": round(cpu_ms, 1),
            # the cycle's own thread alone (what bench/sync.py's "CPU bound" figure uses)
            "cycle_thread_cpu_ms": round(cycle_ms, 1),
            "per_core_ceiling_per_minute": round(60_000 / cpu_ms) if cpu_ms else None,
            # how much CPU the replicas got, in cores: near 1 per replica means the GIL
            # bound it, well under that means the shared machine's other work did
            "cores_used": round(sum(r["cpu_s"] for r in results) / args.seconds, 2),
            "other_cycles": sum(r["other"] for r in results), "seconds": args.seconds,
            "idle_per_minute": round(idle * 60 / args.seconds),
            "load_average": round(os.getloadavg()[0], 1)}


def run_provider(provider: str, args: argparse.Namespace) -> dict[str, Any]:
    with seeded(provider, args.latency_ms, args.database, args.owners,
                args.owners * args.events, "syncd-replicas") as (server, url, folder, own):
        log(f"{provider}: first sync of every calendar")
        child("bench.replicas", "replica", *own, "--workers", "16", "--name", "first",
              "--start-at", str(time.time()), "--warm", "0", "--seconds", "0", "--once",
              timeout=1800)
        rows = []
        plan = [(1, w) for w in args.concurrency] + [
            (r, args.replica_workers) for r in args.replicas]
        for replicas, workers in plan:
            log(f"{provider}: {replicas} replica(s) x {workers} workers")
            row = measure(server, provider, url, folder, replicas, workers, args)
            log(f"{provider}: {row}")
            rows.append(row)
    return {"provider": provider, "owners": args.owners, "events": args.events,
            "latency_ms": args.latency_ms, "rows": rows}


def markdown(results: list[dict[str, Any]], code: dict[str, Any]) -> str:
    lines = [f"# Idle calendars per minute (bench/replicas.py, code {code['commit']}"
             + (", uncommitted changes" if code["uncommitted"] else "") + ")", ""]
    for r in results:
        lines += [f"## {r['provider']}: {r['owners']} calendars of {r['events']} events, "
                  f"{r['latency_ms']:g} ms latency, PostgreSQL", "",
                  "| replicas | workers each | idle calendars/min | process CPU ms per cycle | "
                  "cycle thread CPU ms | per-core ceiling/min | cores used | other cycles | "
                  "load avg |", "|---|---|---|---|---|---|---|---|---|"]
        lines += [f"| {row['replicas']} | {row['workers']} | {row['idle_per_minute']:,} | "
                  f"{row['cpu_ms_per_cycle']} | {row['cycle_thread_cpu_ms']} | "
                  f"{row['per_core_ceiling_per_minute']:,} | {row.get('cores_used', '-')} | "
                  f"{row['other_cycles']} | {row['load_average']} |" for row in r["rows"]]
        lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("step", nargs="?", choices=("all", "replica"), default="all")
    parser.add_argument("--database", default="postgresql+psycopg://postgres@127.0.0.1/test",
                        help="a PostgreSQL server; a temporary database is made on it")
    parser.add_argument("--providers", default="google")
    parser.add_argument("--owners", type=int, default=400)
    parser.add_argument("--events", type=int, default=5)
    parser.add_argument("--latency-ms", type=float, default=20.0)
    parser.add_argument("--concurrency", default="4,16,64")
    parser.add_argument("--replicas", default="1,2,4")
    parser.add_argument("--replica-workers", type=int, default=16)
    parser.add_argument("--warm", type=float, default=10.0)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "replicas.json"))
    # one replica's own options (the "replica" step)
    parser.add_argument("--provider")
    parser.add_argument("--server")
    parser.add_argument("--folder", type=Path)
    parser.add_argument("--workers", type=int, default=16)
    parser.add_argument("--name", default="r0")
    parser.add_argument("--start-at", type=float, default=0.0)
    parser.add_argument("--once", action="store_true", help="sync every account once")
    args = parser.parse_args(argv)
    if args.step == "replica":
        print(json.dumps(replica(args)))
        return 0
    args.concurrency = [int(x) for x in args.concurrency.split(",") if x]
    args.replicas = [int(x) for x in args.replicas.split(",") if x]
    results = [run_provider(p, args) for p in args.providers.split(",")]
    code = code_version(str(ROOT))
    out = Path(args.out)
    out.write_text(json.dumps({"code": code, "results": results}, indent=1))
    out.with_suffix(".md").write_text(markdown(results, code))
    print(markdown(results, code))
    return 0


if __name__ == "__main__":
    sys.exit(main())
