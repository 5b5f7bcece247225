"""What reading each hostile object costs: CPU and peak memory per item, as a pass/fail table.

Every object of the CalDAV corpus (``syncd_testkit/ics_corpus.py``), plus oversized ones,
is read the way the connector reads what a server sends: in the reader sandbox
(``connectors/sandbox.py``), one item at a time. A row passes when the outcome is the one
the corpus expects, the item took less CPU than the budget and the reader's peak RSS
stayed under its memory limit.

Two more rows show the sandbox itself at work on readers that do not defend themselves:
the rule bomb decoded the naive way (icalendar and dateutil evaluate the server's
VTIMEZONE, walking its rule second by second) and an allocation past the memory limit.
Both must be stopped, by the CPU budget and the memory limit, while the items after them
are read.

Then the memory of a whole sync against a server holding 20 objects of 8 MB among 100
small ones (the case that used to cost 860 MB): once with the sizes listed honestly
(the large objects are never downloaded) and once with the listing lying about them
(the streamed cap stops each reply), in a child process whose peak RSS is measured.

    .venv/bin/python -m bench.hostile [--out bench/results/hostile.md]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from typing import Any

from connectors import sandbox
from connectors.base import RemoteEvent
from connectors.sandbox import Overrun, ReaderPool, Usage
from syncd_testkit.ics_corpus import CORPUS, SKIPPED_RECURRING, SYNCED, Hostile, oversized

MIB = 1024 * 1024


def naive_offset(data: bytes) -> str:
    """Decode DTSTART with the object's own VTIMEZONE, as a reader without defences would."""
    import icalendar

    event = icalendar.Calendar.from_ical(data).walk("VEVENT")[0]
    return str(event.decoded("DTSTART").utcoffset())


def allocate(megabytes: int) -> int:
    return len(bytearray(megabytes * MIB))


def _outcome(result: Any) -> str:
    if isinstance(result, Overrun):
        return f"stopped: {result.reason}"
    if isinstance(result, RemoteEvent):
        if result.problem:
            return f"quarantined: {result.problem}"
        return SKIPPED_RECURRING if result.recurring else SYNCED
    return f"returned {result!r}"[:60]


def _row(name: str, size: int, expect: str, result: Any, usage: Usage | None,
         wall: float) -> tuple[str, ...]:
    outcome = _outcome(result)
    cpu = usage.cpu_seconds if usage else None
    rss = usage.peak_rss if usage else None
    ok = (expect in outcome and (cpu is None or cpu < sandbox.CPU_BUDGET)
          and (rss is None or rss < sandbox.MEMORY_LIMIT))
    return (name, f"{size:,}", outcome[:70], "-" if cpu is None else f"{cpu:.3f}",
            "-" if rss is None else f"{rss / MIB:.0f}", f"{wall:.2f}", "pass" if ok else "FAIL")


def run() -> list[tuple[str, ...]]:
    pool = ReaderPool()
    rows = []
    items: list[Hostile] = [*CORPUS, oversized("big-2mb", 2), oversized("big-12mb", 12)]
    try:
        for item in items:
            started = time.monotonic()
            [(result, usage)] = pool.map_with_usage(
                "ical.read_event", [(f"/cal/{item.name}.ics", "etag", item.data)],
                default_tz="Europe/Oslo", owner="owner@example.com")
            rows.append(_row(item.name, len(item.data), item.expect, result, usage,
                             time.monotonic() - started))
        sandbox.ALLOWED["bench.naive"] = "bench.hostile:naive_offset"
        sandbox.ALLOWED["bench.allocate"] = "bench.hostile:allocate"
        bomb = next(i for i in CORPUS if i.name == "tz-secondly")
        calm = bomb.data.replace(b"FREQ=SECONDLY;INTERVAL=2", b"FREQ=YEARLY;BYMONTH=3;BYDAY=-1SU")
        for name, function, bad, good, expect in (
                ("naive reader, rule bomb", "bench.naive", bomb.data, calm, "CPU"),
                ("allocation past the limit", "bench.allocate",
                 sandbox.MEMORY_LIMIT // MIB + 100, 1, "MiB")):
            started = time.monotonic()
            (result, usage), (after, _) = pool.map_with_usage(function, [(bad,), (good,)])
            wall = time.monotonic() - started
            row = _row(name, len(bad) if isinstance(bad, bytes) else 0, expect, result,
                       usage, wall)
            next_read = not isinstance(after, Overrun)
            rows.append((*row[:2], row[2] + ("; the next item read" if next_read else ""),
                         *row[3:6], row[6] if next_read else "FAIL"))
    finally:
        pool.close()
    return rows


_SYNC_CHILD = """
import json, resource, sys
from pathlib import Path
from syncd_testkit.world import make_caldav_world
world = make_caldav_world(Path(sys.argv[2]), sys.argv[1])
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
report = world.sync()
print(json.dumps({"outcome": report.outcome, "imported": len(world.subjects()),
                  "quarantined": len(world.reasons()), "rss_before": before,
                  "rss_peak": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}))
"""


def sync_memory(lie: bool, count: int = 20, megabytes: int = 8, goods: int = 100
                ) -> tuple[str, ...]:
    """Peak RSS of one sync (in a child process) against ``count`` large objects."""
    server = subprocess.Popen(
        [sys.executable, "-c", "import sys; from syncd_testkit.dav_responder import "
         "serve_oversized as s; s(*map(int, sys.argv[1:4]), sys.argv[4] == '1')",
         str(count), str(megabytes), str(goods), "1" if lie else "0"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert server.stdout is not None
        url = server.stdout.readline().strip()
        with tempfile.TemporaryDirectory() as folder:
            started = time.monotonic()
            done = subprocess.run([sys.executable, "-c", _SYNC_CHILD, url, folder],
                                  capture_output=True, text=True, check=True)
            wall = time.monotonic() - started
        found = json.loads(done.stdout.strip().splitlines()[-1])
    finally:
        server.communicate("", timeout=30)
    peak = found["rss_peak"] * 1024
    ok = (found["outcome"] == "ok" and found["imported"] == goods
          and found["quarantined"] == count and peak < 300 * MIB)
    name = f"sync: {count} x {megabytes} MB, sizes {'lying' if lie else 'listed'}"
    outcome = (f"{found['imported']} imported, {found['quarantined']} quarantined; "
               f"{found['rss_before'] // 1024} MiB before the sync")
    return (name, f"{count * megabytes * 1024 * 1024:,}", outcome, "-", f"{peak / MIB:.0f}",
            f"{wall:.2f}", "pass" if ok else "FAIL")


def render(rows: list[tuple[str, ...]]) -> str:
    head = ("item", "bytes", "outcome", "CPU s", "peak RSS MiB", "wall s", "result")
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    passed = sum(row[-1] == "pass" for row in rows)
    lines.append(f"\n{passed} of {len(rows)} pass (CPU budget {sandbox.CPU_BUDGET} s, memory "
                 f"limit {sandbox.MEMORY_LIMIT // MIB} MiB per reader process; a sync's "
                 "peak RSS under 300 MiB).")
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", help="also write the Markdown table here")
    args = parser.parse_args()
    rows = [*run(), sync_memory(lie=False), sync_memory(lie=True)]
    text = render(rows)
    print(text)
    if args.out:
        with open(args.out, "w", encoding="utf-8") as out:
            out.write(text)
    return 0 if all(row[-1] == "pass" for row in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
