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
(``--replicas``) at ``--replica-workers`` each. Those rows are CPU-bound on a 2-core
machine (one replica alone can use most of a core, and the provider's server and
PostgreSQL share the cores), so adding replicas cannot show how they scale. The
latency-bound rows do: 1, 2 and 4 replicas (``--bound-replicas``) of few workers each
(``--bound-workers``) at a higher latency (``--bound-latency-ms``, set on the running
proxy; a longer warm-up, ``--bound-warm``, so that each replica's first cycle of every
account, a Google token grant each, ends before the window), so that each replica waits
on the network most of the time and uses a fraction of a core; "x one replica" then
compares each row with the set's first, and "cores used" (with the provider server's
CPU per cycle) tells a reader which rows the CPU bounded. The machine's load average is
recorded with each row: the numbers are measured, never asserted.

Google's rows are capped by the project's quota, not by the process: every idle cycle
sends one request, and syncd spaces a project's requests by its
``project_requests_per_minute`` (9,000 by default, under Google's 10,000), so no number of
processes passes about 9,000 idle Google calendars a minute in one project.
``--google-project-rpm`` gives the project a raised quota (as Google grants on request)
so that the rows measure the process.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.control import ROOT, Control, ServerInfo, ServingProcess
from bench.providers import account, install
from bench.report import code_version
from bench.sync import child, log, seeded


def _accounts(server: ServerInfo, provider: str, folder: Path,
              project_rpm: int | None = None) -> list[Any]:
    """The accounts, with ``project_rpm`` as the Google project's quota when given."""
    data = json.loads((folder / "owners.json").read_text())
    install(provider, server)
    accounts = [account(provider, server, o, data["calendars"][o]) for o in data["owners"]]
    if provider == "google" and project_rpm:
        accounts = [replace(a, auth={**a.auth, "project_requests_per_minute": project_rpm})
                    for a in accounts]
    return accounts


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
    accounts = {a.name: a for a in _accounts(server, args.provider, args.folder,
                                             args.google_project_rpm)}
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


def run_together(procs: list[subprocess.Popen[str]]) -> list[dict[str, Any]]:
    """Start processes that each print ``ready`` and then read their start time (seconds
    since the epoch) from stdin, all at the same time; each one's last line of output, as
    JSON.

    Every process is told the start before any is waited for: ``communicate()`` on each
    in turn told the second only once the first had exited, after its window, so every
    row of N replicas measured one replica.
    """
    for p in procs:  # all set up: they start together
        assert p.stdout is not None
        if p.stdout.readline().strip() != "ready":
            raise RuntimeError("a replica failed to start")
    start_at = time.time() + 1
    for p in procs:
        assert p.stdin is not None
        p.stdin.write(f"{start_at}\n")
        p.stdin.flush()  # (communicate() closes it)
    results = []
    for p in procs:
        out, _ = p.communicate(timeout=600)
        if p.returncode != 0:
            raise RuntimeError(f"a replica failed (exit {p.returncode})")
        results.append(json.loads(out.strip().splitlines()[-1]))
    return results


def measure(server: ServingProcess, provider: str, url: str, folder: Path, replicas: int,
            workers: int, args: argparse.Namespace, warm: float) -> dict[str, Any]:
    """Start ``replicas`` replica processes together; their idle calendars per minute."""
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
         "--warm", str(warm), "--seconds", str(args.seconds)]
        + (["--google-project-rpm", str(args.google_project_rpm)]
           if args.google_project_rpm else []),
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=ROOT)
        for i in range(replicas)]
    results = run_together(procs)
    late = [r for r in results if not r["all"]]
    if late:  # a replica that ran no cycle at all did not run beside the others
        raise RuntimeError(f"{len(late)} of {replicas} replicas ran no cycle")
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
            "all_cycles": sum(r["all"] for r in results),
            "idle_per_minute": round(idle * 60 / args.seconds),
            "load_average": round(os.getloadavg()[0], 1)}


def run_provider(provider: str, args: argparse.Namespace) -> dict[str, Any]:
    with seeded(provider, args.latency_ms, args.database, args.owners,
                args.owners * args.events, "syncd-replicas") as (server, url, folder, own):
        log(f"{provider}: first sync of every calendar")
        child("bench.replicas", "replica", *own, "--workers", "16", "--name", "first",
              "--start-at", str(time.time()), "--warm", "0", "--seconds", "0", "--once",
              *(["--google-project-rpm", str(args.google_project_rpm)]
                if args.google_project_rpm else []),
              timeout=1800)
        rows = []
        plan = [(1, w, args.latency_ms, False) for w in args.concurrency] + [
            (r, args.replica_workers, args.latency_ms, False) for r in args.replicas] + [
            (r, args.bound_workers, args.bound_latency_ms, True) for r in args.bound_replicas]
        control = Control(server.info.control)
        for replicas, workers, latency, bound in plan:
            control.call("latency", ms=latency)
            log(f"{provider}: {replicas} replica(s) x {workers} workers, {latency:g} ms")
            served = control.call("stats", reset=True)["server_cpu_s"]
            row = measure(server, provider, url, folder, replicas, workers, args,
                          args.bound_warm if bound else args.warm)
            # the provider's server (a Python emulator on the same cores): its CPU per
            # cycle of the run, warm-up included, says whether it was the bound
            served = control.call("stats", reset=True)["server_cpu_s"] - served
            row.update(latency_ms=latency, bound=bound,
                       server_cpu_ms_per_cycle=round(1000 * served / max(1, row["all_cycles"]),
                                                     1))
            log(f"{provider}: {row}")
            rows.append(row)
        control.close()
    return {"provider": provider, "owners": args.owners, "events": args.events,
            "google_project_rpm": args.google_project_rpm if provider == "google" else None,
            "latency_ms": args.latency_ms, "bound_latency_ms": args.bound_latency_ms,
            "bound_workers": args.bound_workers, "rows": rows}


def _table(rows: list[dict[str, Any]], *, scaling: bool) -> list[str]:
    """A table of rows; ``scaling``: with each row's idle calendars per minute as a
    multiple of the first row's (the same workers and latency, one replica)."""
    head = ("| replicas | workers each | latency ms | idle calendars/min | "
            + ("x one replica | " if scaling else "")
            + "process CPU ms per cycle | cycle thread CPU ms | per-core ceiling/min | "
            "cores used | server CPU ms per cycle | other cycles | load avg |")
    lines = [head, "|" + "---|" * head.count(" | ") + "---|"]
    first = rows[0]["idle_per_minute"] if rows else 0
    for row in rows:
        ceiling = row["per_core_ceiling_per_minute"]
        times = (f"{row['idle_per_minute'] / first:.2f} | " if first else "- | ") \
            if scaling else ""
        lines.append(f"| {row['replicas']} | {row['workers']} | {row['latency_ms']:g} | "
                     f"{row['idle_per_minute']:,} | {times}{row['cpu_ms_per_cycle']} | "
                     f"{row['cycle_thread_cpu_ms']} | "
                     f"{f'{ceiling:,}' if ceiling else '-'} | {row.get('cores_used', '-')} | "
                     f"{row.get('server_cpu_ms_per_cycle', '-')} | "
                     f"{row['other_cycles']} | {row['load_average']} |")
    return lines


def markdown(results: list[dict[str, Any]], code: dict[str, Any]) -> str:
    lines = [f"# Idle calendars per minute (bench/replicas.py, code {code['commit']}"
             + (", uncommitted changes" if code["uncommitted"] else "") + ")", ""]
    for r in results:
        rows = [row for row in r["rows"] if not row.get("bound")]
        bound = [row for row in r["rows"] if row.get("bound")]
        lines += [f"## {r['provider']}: {r['owners']} calendars of {r['events']} events, "
                  f"{r['latency_ms']:g} ms latency, PostgreSQL"
                  + (f", project quota {r['google_project_rpm']:,} a minute"
                     if r.get("google_project_rpm") else ""), ""]
        lines += _table(rows, scaling=False) if rows else []
        if bound:
            lines += ["", f"Latency-bound: {bound[0]['workers']} workers per replica at "
                      f"{bound[0]['latency_ms']:g} ms, each replica waiting on the network "
                      "most of the time (\"cores used\" near the machine's free CPU means "
                      "the row was CPU-bound after all)", ""]
            lines += _table(bound, scaling=True)
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
    parser.add_argument("--bound-replicas", default="1,2,4",
                        help="the latency-bound rows' replica counts (empty: none)")
    parser.add_argument("--bound-workers", type=int, default=4)
    parser.add_argument("--bound-latency-ms", type=float, default=200.0)
    parser.add_argument("--bound-warm", type=float, default=45.0,
                        help="the latency-bound rows' warm-up: long enough for each "
                             "replica's first cycle of every account (a Google token "
                             "grant each) to end before the window")
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
    parser.add_argument("--google-project-rpm", type=int, default=None,
                        help="the Google project's quota a minute "
                             "([account.auth] project_requests_per_minute); default: syncd's "
                             "(9,000 of Google's 10,000), which caps Google's rows near "
                             "9,000 idle calendars a minute whatever the process can do")
    args = parser.parse_args(argv)
    if args.step == "replica":
        print(json.dumps(replica(args)))
        return 0
    args.concurrency = [int(x) for x in args.concurrency.split(",") if x]
    args.replicas = [int(x) for x in args.replicas.split(",") if x]
    args.bound_replicas = [int(x) for x in args.bound_replicas.split(",") if x]
    results = [run_provider(p, args) for p in args.providers.split(",")]
    code = code_version(str(ROOT))
    out = Path(args.out)
    out.write_text(json.dumps({"code": code, "results": results}, indent=1))
    out.with_suffix(".md").write_text(markdown(results, code))
    print(markdown(results, code))
    return 0


if __name__ == "__main__":
    sys.exit(main())
