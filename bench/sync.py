"""What a sync costs, per provider, against the floor (issue 6).

For each provider it starts the provider's server behind a latency proxy
(:mod:`bench.serve`), seeds the CRM, then runs syncd's phases in one child process and
the floor's in another, so that each one's peak RSS is its own:

1. initial sync of all N activities, then its settle cycle (reading back the echo);
2. an idle cycle;
3. 1 % of activities edited in the CRM (+ settle);
4. 1 % of events edited on the calendar side (+ settle);
5. 1 % deleted on each side (+ settle).

Usage::

    .venv/bin/python -m bench.sync --n 10000 --owners 50 --latency-ms 20 \\
        --providers caldav,google,outlook --out bench/results/latest.json
    .venv/bin/python -m bench.sync --n 200 --owners 4 --latency-ms 0 --providers caldav
    .venv/bin/python -m bench.sync --providers caldav --sweep 10000,100000 --no-main

Results go to ``--out`` (JSON) and the same path with ``.md`` (Markdown).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from bench.control import ROOT, ServingProcess
from bench.providers import PROVIDERS, chosen
from bench.report import (
    capacity,
    code_version,
    combine,
    machine,
    markdown,
    memory_targets,
    targets,
    write,
)


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


@contextmanager
def database(url: str | None, folder: Path) -> Iterator[str]:
    """SQLite in ``folder``, or a fresh database on the PostgreSQL server of ``url``."""
    if not url:
        yield f"sqlite:///{folder / 'syncd.db'}"
        return
    import psycopg
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    name = f"syncd_bench_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    admin = parsed.set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield parsed.set(database=name).render_as_string(hide_password=False)
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextmanager
def seeded(provider: str, latency_ms: float, database_url: str | None, owners: int, n: int,
           prefix: str) -> Iterator[tuple[ServingProcess, str, Path, list[str]]]:
    """A fresh server behind the latency proxy and a fresh database, seeded with ``owners``
    calendars and ``n`` activities: yields the server, the database URL, the folder, and
    the options naming them that a child step takes."""
    with tempfile.TemporaryDirectory(prefix=f"{prefix}-{provider}-") as tmp:
        folder = Path(tmp)
        server = ServingProcess(provider, latency_ms, folder / "server")
        try:
            with database(database_url, folder) as url:
                own = ["--provider", provider, "--server", server.info.to_json(),
                       "--database", url, "--folder", str(folder)]
                log(f"{provider}: seeding {owners} calendars, {n} activities")
                child("bench.run_syncd", "seed", *own, "--n", str(n), "--owners", str(owners))
                yield server, url, folder, own
        finally:
            server.stop()


def child(module: str, *args: str, timeout: float | None = None) -> dict[str, Any]:
    """Run ``python -m module args`` and return the JSON it prints last."""
    proc = subprocess.run([sys.executable, "-m", module, *args], capture_output=True,
                          text=True, cwd=ROOT, timeout=timeout, check=False)
    if proc.returncode != 0 or not proc.stdout.strip():
        tail = "\n".join(proc.stderr.strip().splitlines()[-15:])
        raise RuntimeError(f"{module} failed (exit {proc.returncode}):\n{tail}")
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def run_provider(provider: str, args: argparse.Namespace, n: int, *, phases: str = "full",
                 floor: bool = True, latency_ms: float | None = None) -> dict[str, Any]:
    """Seed, syncd's phases and (optionally) the floor's, against one fresh server."""
    latency = args.latency_ms if latency_ms is None else latency_ms
    with tempfile.TemporaryDirectory(prefix=f"syncd-bench-{provider}-") as tmp:
        folder = Path(tmp)
        server = ServingProcess(provider, latency, folder / "server")
        try:
            with database(args.database, folder) as url:
                common = ["--provider", provider, "--server", server.info.to_json(),
                          "--n", str(n), "--owners", str(args.owners),
                          "--percent", str(args.percent), "--workers", str(args.workers)]
                own = [*common, "--database", url, "--folder", str(folder)]
                log(f"{provider}: seeding {n:,} activities over {args.owners} owners")
                seeded = child("bench.run_syncd", "seed", *own)
                log(f"{provider}: syncd phases ({phases})")
                extra = ["--phases", phases]
                if args.tracemalloc:
                    extra.append("--tracemalloc")
                if args.profile:
                    extra += ["--profile", str(Path(args.profile).resolve() / f"{provider}-{n}")]
                syncd = child("bench.run_syncd", "run", *own, *extra)
                syncd.update(seeded)
                result: dict[str, Any] = {"provider": provider, "n": n, "owners": args.owners,
                                          "code": code_version(str(ROOT)), "syncd": syncd}
                if floor:
                    log(f"{provider}: floor phases")
                    result["floor"] = child(
                        "bench.floor", *common, "--phases", phases,
                        "--caldav-concurrency", str(args.caldav_concurrency))
        finally:
            server.stop()
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=10_000, help="activities (default 10,000)")
    parser.add_argument("--owners", type=int, default=50, help="owners = calendars (50)")
    parser.add_argument("--latency-ms", type=float, default=20.0,
                        help="added to every request by the proxy (20)")
    parser.add_argument("--providers", default=",".join(PROVIDERS),
                        help="comma-separated: caldav,google,outlook")
    parser.add_argument("--workers", type=int, default=4, help="[syncd] workers (4)")
    parser.add_argument("--percent", type=float, default=1.0,
                        help="share of N each change phase touches (1)")
    parser.add_argument("--database", default=None,
                        help="a postgresql+psycopg:// URL; a temporary database is made "
                             "on that server (default: SQLite in a temporary folder)")
    parser.add_argument("--caldav-concurrency", type=int, default=4,
                        help="the CalDAV floor's writes in flight per calendar (4)")
    parser.add_argument("--tracemalloc", action="store_true",
                        help="also trace the Python heap peak (slows syncd down a lot)")
    parser.add_argument("--profile", default=None,
                        help="write cProfile files per phase under this folder")
    parser.add_argument("--sweep", default="",
                        help="comma-separated N values for the memory sweep (initial, settle, "
                             "idle; no floor), e.g. 10000,100000")
    parser.add_argument("--sweep-providers", default="caldav")
    parser.add_argument("--sweep-latency-ms", type=float, default=None,
                        help="latency for the sweep (default: --latency-ms); it does not "
                             "change memory, only how long the sweep takes")
    parser.add_argument("--no-main", action="store_true", help="only run the sweep")
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "latest.json"))
    args = parser.parse_args(argv)

    providers = chosen(parser, args.providers)
    data: dict[str, Any] = {
        "machine": machine(),
        "config": {"n": args.n, "owners": args.owners, "latency_ms": args.latency_ms,
                   "workers": args.workers, "percent": args.percent,
                   "database": "postgresql" if args.database else "sqlite",
                   "caldav_concurrency": args.caldav_concurrency,
                   "tracemalloc": args.tracemalloc},
        "providers": [], "sweep": [], "code": {"start": code_version(str(ROOT))},
    }
    started = time.perf_counter()
    for provider in [] if args.no_main else providers:
        try:
            result = run_provider(provider, args, args.n)
        except (RuntimeError, subprocess.TimeoutExpired, OSError) as exc:
            log(f"{provider}: failed: {exc}")
            data["providers"].append({"provider": provider, "error": str(exc)})
            continue
        result["rows"] = combine(result["syncd"], result.get("floor"))
        phases = {p["name"]: p for p in result["syncd"]["phases"]}
        result["capacity"] = capacity(phases, args.owners, args.workers)
        result["targets"] = targets(provider, result, args.n, args.owners)
        data["providers"].append(result)
    sweep_latency = args.latency_ms if args.sweep_latency_ms is None else args.sweep_latency_ms
    for n in [int(x) for x in args.sweep.split(",") if x.strip()]:
        for provider in [p.strip() for p in args.sweep_providers.split(",") if p.strip()]:
            try:
                result = run_provider(provider, args, n, phases="memory", floor=False,
                                      latency_ms=args.sweep_latency_ms)
                data["sweep"].append({"provider": provider, "n": n, "owners": args.owners,
                                      "latency_ms": sweep_latency, "code": result["code"],
                                      **result["syncd"]})
            except (RuntimeError, subprocess.TimeoutExpired, OSError) as exc:
                log(f"sweep {provider} N={n}: failed: {exc}")
                data["sweep"].append({"provider": provider, "n": n, "owners": args.owners,
                                      "error": str(exc)})
    data["memory_targets"] = memory_targets(data["sweep"])
    data["machine"]["loadavg_at_end"] = [round(x, 2) for x in os.getloadavg()]
    data["code"]["end"] = code_version(str(ROOT))
    data["elapsed_s"] = round(time.perf_counter() - started, 1)

    out = Path(args.out)
    write(out, data, markdown(data))
    log(f"done in {data['elapsed_s']} s; wrote {out} and {out.with_suffix('.md')}")
    failed = [p for p in data["providers"] if p.get("error")]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
