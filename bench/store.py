"""Benchmark of the built-in activity store: bulk insert, then reading the change feed.

For each backend (SQLite in a temporary file, PostgreSQL in a temporary database) it
inserts ``--n`` activities through ``ActivityStore.add_activities`` in batches (the same
path as ``syncd import``: every activity gets its guests, note, links, change row and
derived dates), then reads the whole change feed in pages of 1,000 as the sync engine
does. It reports rows per second for both phases and the peak memory: the Python heap
peak (tracemalloc) and the process's maximum resident set size (ru_maxrss).

Each backend runs in its own subprocess so that ru_maxrss is that backend's own. The
timed phases run without tracemalloc, which slows Python down several-fold; a second,
smaller pass with tracemalloc on measures the heap peak.

Usage::

    .venv/bin/python bench/store.py                 # 100,000 activities, both backends
    .venv/bin/python bench/store.py --n 20000 --backend sqlite --json
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import tracemalloc
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta
from datetime import time as clock
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from syncd.crm.builtin.activities import ActivityStore  # noqa: E402
from syncd.store.db import Database  # noqa: E402

PG_ADMIN = os.environ.get("SYNCD_BENCH_PG", "postgresql://postgres@127.0.0.1:5432/test")
BATCH = 1000
PAGE = 1000
USERS, DEALS = 10, 100
NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


@contextmanager
def database(backend: str) -> Iterator[Database]:
    """A fresh, migrated database of the given backend, removed afterwards."""
    if backend == "sqlite":
        with tempfile.TemporaryDirectory(prefix="syncd-bench-") as tmp:
            db = Database(f"sqlite:///{tmp}/bench.sqlite")
            try:
                yield db
            finally:
                db.close()
        return
    import psycopg

    name = f"syncd_bench_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    base = PG_ADMIN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://")
    db = Database(f"{base}/{name}")
    try:
        yield db
    finally:
        db.close()
        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def activity(n: int, users: list[int], deals: list[int]) -> dict[str, Any]:
    """A plausible mix: a third on a deal (B1 links, A10 dates), half with a guest,
    a quarter with a private note, most timed, some whole-day."""
    item: dict[str, Any] = {
        "owner_id": users[n % len(users)],
        "subject": f"Activity {n}",
        "type": ("call", "meeting", "task", "email")[n % 4],
        "due_date": date(2026, 1, 1) + timedelta(days=n % 365),
        "duration_minutes": 30,
        "description": "Agenda: pricing and next steps",
        "done": n % 5 == 0,
    }
    if n % 4:
        item["due_time"] = clock(8 + n % 9, (n % 4) * 15)
    if n % 3 == 0:
        item["deal_id"] = deals[n % len(deals)]
    if n % 2 == 0:
        item["guests"] = [f"guest{n % 500}@example.com"]
    if n % 4 == 0:
        item["note"] = f"private remark {n}"
    return item


def seed(store: ActivityStore) -> tuple[list[int], list[int]]:
    users = [store.add_user(f"user{u}@example.com", f"User {u}", "Europe/Oslo")
             for u in range(USERS)]
    deals = []
    for d in range(DEALS):
        org = store.add_org(f"Org {d}")
        person = store.add_person(f"Person {d}", f"person{d}@example.com", org)
        deals.append(store.add_deal(f"Deal {d}", person, org))
    return users, deals


def insert(store: ActivityStore, n: int, users: list[int], deals: list[int]) -> float:
    start = time.perf_counter()
    for first in range(0, n, BATCH):
        batch = [activity(i, users, deals) for i in range(first, min(n, first + BATCH))]
        store.add_activities(batch, now=NOW)
    return time.perf_counter() - start


def read_feed(store: ActivityStore) -> tuple[float, int]:
    start = time.perf_counter()
    cursor, items = 0, 0
    while True:
        page = store.changes_after(cursor, limit=PAGE)
        items += len(page.items)
        cursor = page.last_seq
        if not page.more:
            return time.perf_counter() - start, items


def run_backend(backend: str, n: int, heap_n: int) -> dict[str, Any]:
    """Both phases on one backend, then a smaller traced pass for the heap peak."""
    with database(backend) as db:
        store = ActivityStore(db)
        users, deals = seed(store)
        insert_s = insert(store, n, users, deals)
        feed_s, items = read_feed(store)
    rss_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    with database(backend) as db:
        store = ActivityStore(db)
        users, deals = seed(store)
        tracemalloc.start()
        insert(store, heap_n, users, deals)
        insert_peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.reset_peak()
        read_feed(store)
        feed_peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return {
        "backend": backend,
        "activities": n,
        "batch": BATCH,
        "page": PAGE,
        "insert_seconds": round(insert_s, 2),
        "insert_rows_per_s": round(n / insert_s),
        "feed_seconds": round(feed_s, 2),
        "feed_items": items,
        "feed_rows_per_s": round(items / feed_s),
        "tracemalloc_sample": heap_n,
        "tracemalloc_peak_insert_mib": round(insert_peak / 2**20, 1),
        "tracemalloc_peak_feed_mib": round(feed_peak / 2**20, 1),
        "ru_maxrss_mib": round(rss_kib / 1024, 1),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=100_000, help="activities to insert")
    parser.add_argument("--backend", choices=("sqlite", "postgresql", "both"), default="both")
    parser.add_argument("--heap-n", type=int, default=None,
                        help="activities for the traced heap pass (default: min(n, 20000))")
    parser.add_argument("--json", action="store_true", help="print JSON")
    args = parser.parse_args(argv)
    heap_n = args.heap_n or min(args.n, 20_000)
    if args.backend != "both":
        result = run_backend(args.backend, args.n, heap_n)
        print(json.dumps(result) if args.json else _text(result))
        return 0
    results = []
    for backend in ("sqlite", "postgresql"):
        # A subprocess per backend: ru_maxrss never goes down within a process.
        proc = subprocess.run(
            [sys.executable, __file__, "--n", str(args.n), "--heap-n", str(heap_n),
             "--backend", backend, "--json"],
            capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            print(f"{backend}: failed\n{proc.stderr}", file=sys.stderr)
            return 1
        results.append(json.loads(proc.stdout))
    print(json.dumps(results, indent=2) if args.json else "\n".join(map(_text, results)))
    return 0


def _text(r: dict[str, Any]) -> str:
    return (f"{r['backend']:<10} insert {r['activities']:,} in {r['insert_seconds']} s "
            f"({r['insert_rows_per_s']:,} rows/s, batches of {r['batch']}); "
            f"feed {r['feed_items']:,} in {r['feed_seconds']} s "
            f"({r['feed_rows_per_s']:,} rows/s, pages of {r['page']}); "
            f"heap peak {r['tracemalloc_peak_insert_mib']} MiB insert / "
            f"{r['tracemalloc_peak_feed_mib']} MiB feed "
            f"(tracemalloc, {r['tracemalloc_sample']:,} rows); "
            f"max RSS {r['ru_maxrss_mib']} MiB")


if __name__ == "__main__":
    raise SystemExit(main())
