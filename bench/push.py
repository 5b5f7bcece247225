"""Push against polling: how long a change takes to show on the other side, and what an
idle calendar costs (issue 15).

For each provider and mode it starts the provider's server behind the latency proxy
(:mod:`bench.serve`), seeds the CRM (``bench.run_syncd seed``), and runs ``syncd run``'s
daemon in a child process (:mod:`bench.run_push`) that times changes made on either side
until the other side shows them, then counts the requests of an idle period::

    .venv/bin/python -m bench.push --owners 50 --latency-ms 20 --providers google,outlook \\
        --out bench/results/push.json
    .venv/bin/python -m bench.push --owners 2 --samples 4 --providers google \\
        --latency-ms 0 --idle-seconds 0 --out /tmp/push-smoke.json

Modes: ``push`` (the receiver on loopback with a public URL the emulators deliver to, the
calendar channels, the built-in CRM's change watch, the backstop poll) and ``poll``
(neither receiver nor watch: every account polled every ``--interval`` seconds, as before
issue 15). Latency is from the edit to the first look (every 0.1 s) that sees it on the
other side, so it includes the watch's tick, the push gate's debounce (2 s after the last
hint) and the cycle. Idle requests are what went through the proxy in ``--idle-seconds``
with nothing changing, per calendar, scaled to an hour; with push the accounts are polled
at the backstop (``--backstop-minutes``), so the window should hold one or more of them.

Results go to ``--out`` (JSON) and the same path with ``.md``. Nothing is asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.control import ROOT, ServingProcess
from bench.providers import chosen
from bench.report import code_version, machine, write
from bench.sync import child, database, log

GOAL_P99_S = 5.0


def percentile(values: list[float], q: float) -> float | None:
    """The ``q``-th percentile (0-100), interpolated between the closest ranks."""
    if not values:
        return None
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def summarise(run: dict[str, Any], owners: int) -> dict[str, Any]:
    """p50, p99, max and losses per direction; idle requests per calendar per hour."""
    out: dict[str, Any] = {}
    samples = run.get("latency", {}).get("samples", [])
    for direction in ("crm->calendar", "calendar->crm"):
        mine = [s["latency_s"] for s in samples if s["direction"] == direction]
        seen = [x for x in mine if x is not None]
        out[direction] = {
            "n": len(mine), "lost": len(mine) - len(seen),
            "p50_s": _round(percentile(seen, 50)), "p99_s": _round(percentile(seen, 99)),
            "max_s": _round(max(seen) if seen else None),
        }
    idle = run.get("idle")
    if idle:
        http = sum(idle["requests"].get("http", {}).values())
        hours = idle["seconds"] / 3600
        out["idle"] = {"seconds": idle["seconds"], "requests": http,
                       "by_method": idle["requests"].get("http", {}),
                       "per_calendar_per_hour": round(http / owners / hours, 2),
                       "cycles": idle["cycles"]}
    return out


def _round(x: float | None) -> float | None:
    return None if x is None else round(x, 2)


def run_one(provider: str, mode: str, args: argparse.Namespace) -> dict[str, Any]:
    """A fresh server and database, the seed, and one measured daemon."""
    n = args.owners * args.per_owner
    with tempfile.TemporaryDirectory(prefix=f"syncd-push-{provider}-{mode}-") as tmp:
        folder = Path(tmp)
        server = ServingProcess(provider, args.latency_ms, folder / "server")
        try:
            with database(args.database, folder) as url:
                common = ["--provider", provider, "--server", server.info.to_json(),
                          "--database", url, "--folder", str(folder)]
                log(f"{provider} {mode}: seeding {n} activities over {args.owners} owners")
                child("bench.run_syncd", "seed", *common, "--n", str(n),
                      "--owners", str(args.owners))
                spread = args.spread if mode == "push" else args.poll_spread
                log(f"{provider} {mode}: {args.samples} changes each way over {spread:.0f} s"
                    + (f", then {args.idle_seconds:.0f} s idle" if args.idle_seconds else ""))
                result = child(
                    "bench.run_push", *common, "--mode", mode,
                    "--workers", str(args.workers), "--interval", str(args.interval),
                    "--backstop-minutes", str(args.backstop_minutes),
                    "--samples", str(args.samples), "--spread", str(spread),
                    "--idle-seconds", str(args.idle_seconds if mode == "push"
                                          else args.poll_idle_seconds),
                    "--give-up", str(args.interval + 60 if mode == "poll" else 60),
                    "--quiet", str(args.quiet), "--channels-timeout", str(args.channels_timeout),
                    # polling: one more poll of every account reads the last changes' echoes
                    "--idle-quiet", str(args.interval + 15 if mode == "poll" else 15),
                    timeout=3600)
        finally:
            server.stop()
    return {"provider": provider, "mode": mode, "code": code_version(str(ROOT)),
            "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            "backstop_minutes": args.backstop_minutes,
            "spread_s": args.spread if mode == "push" else args.poll_spread,
            "summary": summarise(result, args.owners), "raw": result}


def markdown(data: dict[str, Any]) -> str:
    c, m = data["config"], data["machine"]
    lines = [
        "# Push against polling: change-to-visible latency and idle cost (issue 15)",
        "",
        f"{c['owners']} owners (one calendar each, {c['per_owner']} activities each), "
        f"{c['latency_ms']:g} ms added to every request by the proxy, {c['workers']} workers, "
        f"{c['database']}; {c['samples']} changes each way per run, at random times over "
        f"the run's *changes over*; polling interval {c['interval']} s; the push runs' "
        "backstop is in the idle table (it does not change latency). Latency is from the "
        "edit to the first look (every 0.1 s) that sees it on the other side. Machine: "
        f"{m.get('cpu')}, {m.get('nproc')} cores, load {m.get('loadavg_at_end')} at the "
        f"end; {data['date']}; code {data['code']['start'].get('head')}.",
        "",
        "| provider | mode | changes over | channels healthy | CRM->calendar p50 / p99 / max "
        "(s) | calendar->CRM p50 / p99 / max (s) | lost | cycles | p99 < 5 s | run at, code |",
        "|---|---|---:|---:|---|---|---:|---:|---|---|",
    ]
    for run in data["runs"]:
        if run.get("error"):
            lines.append(f"| {run['provider']} | {run['mode']} | failed: "
                         f"{run['error'].splitlines()[0][:120]} |||||")
            continue
        s, raw = run["summary"], run["raw"]
        a, b = s["crm->calendar"], s["calendar->crm"]
        if not a["n"] and not b["n"]:
            continue  # an idle-only run
        worst = max((x for x in (a["p99_s"], b["p99_s"]) if x is not None), default=None)
        goal = "yes" if worst is not None and worst < GOAL_P99_S and not (
            a["lost"] or b["lost"]) else "no"
        channels = (f"{raw.get('channels_healthy', 0)}/{c['owners']}"
                    if run["mode"] == "push" else "-")
        lines.append(
            f"| {run['provider']} | {run['mode']} | {run.get('spread_s', '?')} s | {channels} | "
            f"{a['p50_s']} / {a['p99_s']} / {a['max_s']} | "
            f"{b['p50_s']} / {b['p99_s']} / {b['max_s']} | {a['lost'] + b['lost']} | "
            f"{raw['latency']['cycles']} | {goal} | {run.get('date', '')}, "
            f"{run['code'].get('head')} |")
    idle_rows = [r for r in data["runs"] if not r.get("error") and "idle" in r["summary"]]
    if idle_rows:
        lines += ["", "| provider | mode | backstop | idle window | requests | per calendar "
                  "per hour | cycles | by method |", "|---|---|---:|---:|---:|---:|---:|---|"]
        for run in idle_rows:
            i = run["summary"]["idle"]
            methods = ", ".join(f"{k} {v}" for k, v in sorted(i["by_method"].items()))
            backstop = f"{run.get('backstop_minutes', c['backstop_minutes'])} min" \
                if run["mode"] == "push" else f"- (every {c['interval']} s)"
            lines.append(f"| {run['provider']} | {run['mode']} | {backstop} | {i['seconds']:g} s | "
                         f"{i['requests']} | {i['per_calendar_per_hour']} | {i['cycles']} | "
                         f"{methods or 'none'} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--owners", type=int, default=50)
    parser.add_argument("--per-owner", type=int, default=10,
                        help="activities per owner (at least 2 x samples / owners)")
    parser.add_argument("--latency-ms", type=float, default=20.0)
    parser.add_argument("--providers", default="google,outlook",
                        help="comma-separated: caldav,google,outlook")
    parser.add_argument("--modes", default="push,poll")
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--samples", type=int, default=100, help="changes each way per run")
    parser.add_argument("--spread", type=float, default=30.0,
                        help="seconds the push runs' changes are spread over")
    parser.add_argument("--poll-spread", type=float, default=60.0,
                        help="seconds the polling runs' changes are spread over")
    parser.add_argument("--interval", type=int, default=60, help="[syncd] interval_seconds")
    parser.add_argument("--backstop-minutes", type=int, default=15,
                        help="[push] backstop_minutes")
    parser.add_argument("--idle-seconds", type=float, default=0.0,
                        help="idle window of the push runs (0: none)")
    parser.add_argument("--poll-idle-seconds", type=float, default=0.0,
                        help="idle window of the polling runs (0: none)")
    parser.add_argument("--channels-timeout", type=float, default=60.0,
                        help="seconds to wait for every channel to be healthy before the "
                             "push runs' changes (a provider without channels: measured anyway)")
    parser.add_argument("--quiet", type=float, default=5.0,
                        help="seconds of settling before the changes and before the idle window")
    parser.add_argument("--database", default=None, help="a postgresql+psycopg:// URL")
    parser.add_argument("--add", action="append", default=[], metavar="JSON",
                        help="also list the runs of an earlier result (e.g. the polling runs)")
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "push.json"))
    args = parser.parse_args(argv)

    providers = chosen(parser, args.providers)
    data: dict[str, Any] = {
        "machine": machine(), "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "config": {k: getattr(args, k) for k in (
            "owners", "per_owner", "latency_ms", "workers", "samples", "spread",
            "poll_spread", "interval", "backstop_minutes", "idle_seconds",
            "poll_idle_seconds")} | {"database": "postgresql" if args.database else "sqlite"},
        "runs": [], "code": {"start": code_version(str(ROOT))},
    }
    for provider in providers:
        for mode in [m.strip() for m in args.modes.split(",") if m.strip()]:
            try:
                data["runs"].append(run_one(provider, mode, args))
            except (RuntimeError, subprocess.TimeoutExpired, OSError) as exc:
                log(f"{provider} {mode}: failed: {exc}")
                data["runs"].append({"provider": provider, "mode": mode, "error": str(exc)})
    for earlier in args.add:  # kept with their own code version and date
        more = json.loads(Path(earlier).read_text())
        data["runs"] += [{"date": more["date"], **run} for run in more["runs"]]
    data["machine"]["loadavg_at_end"] = [round(x, 2) for x in os.getloadavg()]
    write(Path(args.out), data, markdown(data))
    return 1 if any(r.get("error") for r in data["runs"]) else 0


if __name__ == "__main__":
    sys.exit(main())
