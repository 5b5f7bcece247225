"""What one idle cycle of the daemon costs: SQL statements, database round trips,
requests and CPU, with a profile of where the CPU goes (issue 16 item 4).

``.venv/bin/python -m bench.idle --providers caldav,google,outlook --owners 20
--rounds 5 --profile /tmp/idle-profile --out bench/results/idle.md``

Per provider: the serving process of :mod:`bench.sync` (the provider's server behind the
latency proxy), a fresh PostgreSQL database, ``--owners`` calendars of ``--events``
events each, seeded and synced once. Then, in one child process, the daemon's own
replica path (:class:`syncd.daemon.Daemon` with ``[syncd] replica``: a claim from the
work queue, ``Daemon._run_account`` with the push gate, the channel keeper and the
metrics, the account given back to the queue) runs each account's idle cycle one after
the other, ``--rounds`` times, on one thread, so that the figures are per cycle and
exact: statements as the driver runs them, connection checkouts (each a ``SELECT 1``
with ``pool_pre_ping``), transactions, HTTP requests at the proxy, and the thread's CPU.
Counts are stable from run to run; the CPU figures depend on the machine's load, which
is printed beside them. With ``--profile``, the Python function calls per cycle are
counted too: a measure of the CPU's work that the load does not move (the thread CPU of
that run is the profiler's as much as the cycle's), with those made in the database
libraries and in the HTTP libraries apart (:data:`AREAS`).
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import io
import json
import os
import pstats
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

from bench.control import ROOT, Control, ServerInfo
from bench.providers import account, install
from bench.sync import child, log, seeded


class DbCounter:
    """Statements by verb, checkouts and commits of one engine (all threads)."""

    def __init__(self, engine: Any) -> None:
        from sqlalchemy import event

        self.counts: Counter[str] = Counter()
        self.seen: list[str] = []  # the statements, while ``keep`` is set
        self.keep = False
        self._lock = threading.Lock()
        event.listen(engine, "before_cursor_execute", self._statement)
        event.listen(engine, "commit", lambda conn: self._add("commits"))
        event.listen(engine.pool, "checkout", lambda *args: self._add("checkouts"))
        self.pre_ping = bool(getattr(engine.pool, "_pre_ping", False))

    def _add(self, key: str) -> None:
        with self._lock:
            self.counts[key] += 1

    def _statement(self, conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        verb = statement.lstrip().split(None, 1)[0].upper() if statement.strip() else "?"
        self._add(f"stmt {verb}")
        if self.keep:
            self.seen.append(" ".join(statement.split())[:160])

    def take(self) -> Counter[str]:
        with self._lock:
            data = Counter(self.counts)
            self.counts.clear()
        if self.pre_ping:
            data["pings"] = data["checkouts"]
        return data


def footprint() -> tuple[int, int]:
    """This process's resident set (KiB, from /proc) and the objects the collector tracks,
    after a full collection."""
    gc.collect()
    status = Path("/proc/self/status").read_text()
    rss = next(int(line.split()[1]) for line in status.splitlines()
               if line.startswith("VmRSS:"))
    return rss, len(gc.get_objects())


#: Where a Python call is counted, by the file of the function called (the first match of
#: a path part): what the database driver and SQLAlchemy do, what the HTTP libraries do,
#: the rest (syncd's own code, the standard library, builtins called from anywhere).
AREAS = (("database", ("/sqlalchemy/", "/psycopg/", "/psycopg_binary/")),
         ("http", ("/requests/", "/urllib3/", "/urllib3_future/", "/h11/", "/niquests/",
                   "/httplib2/", "/http/client.py", "/http/cookiejar.py")))


def calls_by_area(stats: pstats.Stats) -> dict[str, int]:
    """The profile's calls by :data:`AREAS`; a builtin (``len``, a lock's ``__enter__``:
    cProfile names no file for them) counts in the area of the function that called it."""

    def area(path: str) -> str:
        return next((name for name, parts in AREAS if any(p in path for p in parts)),
                    "other")

    counts: Counter[str] = Counter()
    for (path, _line, _name), row in stats.stats.items():  # type: ignore[attr-defined]
        callers = row[4]
        if path == "~" and callers:
            for (caller, _cline, _cname), made in callers.items():
                counts[area(caller)] += made[1]
        else:
            counts[area(path)] += row[1]
    return dict(counts)


def cycles(args: argparse.Namespace) -> dict[str, Any]:
    """The child: first sync, one warm idle round, then ``rounds`` measured."""
    from datetime import timedelta

    from syncd.config import Config
    from syncd.daemon import Daemon

    server = ServerInfo.from_json(args.server)
    data = json.loads((args.folder / "owners.json").read_text())
    install(args.provider, server)
    accounts = [account(args.provider, server, o, data["calendars"][o]) for o in data["owners"]]
    config = Config(database=args.database, workers=1, replica=True, interval_seconds=0,
                    jitter_seconds=0, accounts=tuple(accounts),
                    data_dir=str(args.folder / "data"), default_time_zone="Europe/Oslo")
    daemon = Daemon(config)
    daemon.start_push()  # cycles look after their push channel, as in `syncd run`
    queue = daemon.queue
    assert queue is not None
    queue.enrol(a.name for a in accounts)
    control = Control(server.control)
    counter = DbCounter(daemon.service.db.engine)
    ttl = timedelta(minutes=10)

    def one(name: str) -> None:
        claims = queue.claim([name], 1, ttl)
        assert claims, f"{name} was not claimable"
        daemon._run_account(name, claims[0])

    # What an account holds once synced: RSS and the objects the collector tracks, taken
    # when half of the accounts had their first cycle and when all had, so the process's
    # own (the interpreter, the modules, one-time clients) cancels out.
    half = len(accounts) // 2
    marks: list[tuple[int, int]] = []
    for rnd in range(2):  # the first sync, then the cycle reading back its echo
        for i, acct in enumerate(accounts):
            if rnd == 0 and i == half:
                marks.append(footprint())
            one(acct.name)
        if rnd == 0:
            marks.append(footprint())
    per_account = max(1, len(accounts) - half)
    memory: dict[str, Any] = {
        "rss_kib_per_account": round((marks[1][0] - marks[0][0]) / per_account, 1),
        "gc_objects_per_account": round((marks[1][1] - marks[0][1]) / per_account),
        "rss_mib_end": round(footprint()[0] / 1024, 1)}
    for acct in accounts:  # warm: every statement compiled and cached, sessions open
        one(acct.name)
    counter.take()
    control.call("stats", reset=True)
    profiler = cProfile.Profile(time.thread_time) if args.profile else None
    collections = [g["collections"] for g in gc.get_stats()]
    cpu, wall = time.thread_time(), time.perf_counter()
    if profiler is not None:
        profiler.enable()
    for _ in range(args.rounds):
        for acct in accounts:
            one(acct.name)
    if profiler is not None:
        profiler.disable()
    cpu, wall = time.thread_time() - cpu, time.perf_counter() - wall
    n = args.rounds * len(accounts)
    # Collections of each generation per 1,000 cycles: a full (generation 2) one walks
    # every object the process holds, so its cost grows with the accounts held.
    memory["gc_per_1000_cycles"] = [round(1000 * (g["collections"] - c) / n, 1)
                                    for g, c in zip(gc.get_stats(), collections, strict=True)]
    db = counter.take()
    counter.keep = True  # one more cycle, to list its statements
    one(accounts[0].name)
    counter.take()
    http = control.call("stats", reset=True)["requests"].get("http", {})
    top, calls, areas = "", None, {}
    if profiler is not None:
        args.profile.mkdir(parents=True, exist_ok=True)
        path = args.profile / f"{args.provider}.pstats"
        profiler.dump_stats(path)
        out = io.StringIO()
        stats = pstats.Stats(str(path), stream=out)
        # Python function calls per cycle: the CPU figure's stand-in that the machine's
        # load does not move (the thread CPU under the profiler is not the cycle's own)
        calls = round(stats.total_calls / n)  # type: ignore[attr-defined]
        areas = {area: round(count / n) for area, count in calls_by_area(stats).items()}
        stats.sort_stats("cumulative").print_stats(45)
        top = out.getvalue()
    daemon.service.close()
    statements = {k.removeprefix("stmt "): round(v / n, 2) for k, v in sorted(db.items())
                  if k.startswith("stmt ")}
    per = {k: round(v / n, 2) for k, v in sorted(db.items()) if not k.startswith("stmt ")}
    return {"provider": args.provider, "accounts": len(accounts), "cycles": n,
            "statements": statements,
            "statements_total": round(sum(statements.values()), 2), **per,
            "requests": {k: round(v / n, 2) for k, v in sorted(http.items())},
            "cpu_ms_per_cycle": round(1000 * cpu / n, 2), "python_calls_per_cycle": calls,
            "python_calls_by_area": areas,
            "wall_ms_per_cycle": round(1000 * wall / n, 2),
            "load_average": round(os.getloadavg()[0], 1), **memory, "profile_top": top,
            "one_cycle": counter.seen}


def run_provider(provider: str, args: argparse.Namespace) -> dict[str, Any]:
    with seeded(provider, args.latency_ms, args.database, args.owners,
                args.owners * args.events, "syncd-idle") as (_server, _url, _folder, own):
        log(f"{provider}: idle cycles")
        extra = ["--profile", str(args.profile)] if args.profile else []
        return child("bench.idle", "cycles", *own, "--rounds", str(args.rounds), *extra,
                     timeout=1800)


def markdown(results: list[dict[str, Any]], code: dict[str, Any]) -> str:
    lines = [f"# One idle cycle of the daemon (bench/idle.py, code {code['commit']}"
             + (", uncommitted changes" if code["uncommitted"] else "") + ")", "",
             "Per cycle, on PostgreSQL, the daemon's replica path, cycles one after the "
             "other on one thread. Round trips to the database = statements + pings + "
             "2 x commits (psycopg sends each transaction's BEGIN on its own; a read "
             "outside a transaction has neither).", "",
             "| provider | statements | of which | checkouts | pings | commits | "
             "requests | thread CPU ms | Python calls | of which | load avg |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    memory = ["", "What an account holds once synced (RSS and the objects the collector "
              "tracks, from half of the accounts synced to all of them), and the "
              "collections per 1,000 idle cycles (generations 0, 1, 2):", "",
              "| provider | accounts | RSS KiB per account | MiB per 1,000 | objects per "
              "account | collections per 1,000 cycles | RSS MiB at the end |",
              "|---|---:|---:|---:|---:|---|---:|"]
    for r in results:
        kinds = ", ".join(f"{k} {v:g}" for k, v in r["statements"].items())
        requests = ", ".join(f"{k} {v:g}" for k, v in r["requests"].items())
        lines.append(f"| {r['provider']} | {r['statements_total']:g} | {kinds} | "
                     f"{r.get('checkouts', 0):g} | {r.get('pings', 0):g} | "
                     f"{r.get('commits', 0):g} | {requests} | {r['cpu_ms_per_cycle']} | "
                     f"{r.get('python_calls_per_cycle') or '-'} | "
                     + (", ".join(f"{k} {v:,}" for k, v in sorted(
                         r.get("python_calls_by_area", {}).items())) or "-")
                     + f" | {r['load_average']} |")
        if "rss_kib_per_account" in r:
            memory.append(f"| {r['provider']} | {r['accounts']} | {r['rss_kib_per_account']:g}"
                          f" | {r['rss_kib_per_account'] * 1000 / 1024:.0f} | "
                          f"{r['gc_objects_per_account']} | "
                          f"{' / '.join(f'{c:g}' for c in r['gc_per_1000_cycles'])} | "
                          f"{r['rss_mib_end']:g} |")
    return "\n".join(lines + memory) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("step", nargs="?", choices=("all", "cycles"), default="all")
    parser.add_argument("--database", default="postgresql+psycopg://postgres@127.0.0.1/test",
                        help="a PostgreSQL server; a temporary database is made on it")
    parser.add_argument("--providers", default="caldav,google,outlook")
    parser.add_argument("--owners", type=int, default=20)
    parser.add_argument("--events", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--latency-ms", type=float, default=0.0)
    parser.add_argument("--profile", type=Path, help="a folder for one .pstats per provider")
    parser.add_argument("--statements", action="store_true",
                        help="print the SQL of one idle cycle (on standard error)")
    parser.add_argument("--out", type=Path)
    parser.add_argument("--provider")
    parser.add_argument("--server")
    parser.add_argument("--folder", type=Path)
    args = parser.parse_args(argv)
    if args.step == "cycles":
        print(json.dumps(cycles(args)))
        return 0
    from bench.report import code_version

    results = [run_provider(p, args) for p in args.providers.split(",") if p]
    code = code_version(str(ROOT))
    text = markdown(results, code)
    for r in results:
        if args.profile:
            print(r["profile_top"], file=sys.stderr)
        if args.statements:
            print("\n".join(r["one_cycle"]), file=sys.stderr)
    if args.out:
        args.out.write_text(text)
        args.out.with_suffix(".json").write_text(json.dumps(
            {"code": code, "results": [{k: v for k, v in r.items()
                                        if k not in ("profile_top", "one_cycle")}
                                       for r in results]}, indent=1))
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
