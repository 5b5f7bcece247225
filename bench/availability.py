"""What the availability core costs: CPU per ``free_slots`` and ``agenda`` call.

``.venv/bin/python -m bench.availability --out bench/results/availability.md``

An owner in each zone (one with clock changes inside the span), busy items spread over
the span at random (a fixed seed), a booking page's question (28 days, 30-minute slots on
a 15-minute step) and a 92-day one, and a week's agenda. CPU is the thread's
(``time.thread_time``), the best of ``--rounds`` runs, so the machine's other load counts
little; the slot counts are exact.
"""

from __future__ import annotations

import argparse
import random
import time as clock
from collections.abc import Callable
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any

from connectors.base import RemoteEvent
from syncd.engine.agenda import agenda
from syncd.engine.availability import Busy, WorkingHours, free_slots
from syncd.model import Activity, Projection, When

START = datetime(2027, 3, 15, tzinfo=UTC)  # the US change is behind, Europe's ahead
ZONES = ("Europe/Oslo", "America/New_York", "Australia/Lord_Howe", "Asia/Kolkata")


def busy_items(n: int, days: int, rng: random.Random) -> list[Busy]:
    out = []
    for _ in range(n):
        start = START + timedelta(minutes=15 * rng.randrange(days * 96))
        out.append(Busy(start, start + timedelta(minutes=rng.choice((15, 30, 60, 90))),
                        blocks=rng.random() < 0.7))
    return out


def best(rounds: int, call: Callable[[], Any]) -> tuple[float, Any]:
    times, result = [], None
    for _ in range(rounds):
        t0 = clock.thread_time()
        result = call()
        times.append(clock.thread_time() - t0)
    return min(times), result


def agenda_input(n: int, zone: str, rng: random.Random
                 ) -> tuple[list[Activity], dict[str, list[RemoteEvent]], dict[Any, int]]:
    acts, events, pairs = [], [], {}
    for i in range(n):
        day = START.date() + timedelta(days=rng.randrange(7))
        at = time(rng.randrange(8, 18), rng.choice((0, 30)))
        acts.append(Activity(i, f"uid{i}", 1, zone, "meeting", f"A{i}", day, at, 60,
                             rng.random() < 0.5, "", "", (), False, None, False, START))
        start = datetime.combine(day, at, tzinfo=UTC)
        proj = Projection(f"E{i}", When(start, start + timedelta(hours=1), zone),
                          busy=rng.random() < 0.5)
        events.append(RemoteEvent(f"e{i}", None, None, proj))
        if i % 2:
            pairs[("cal", f"e{i}")] = i
    return acts, {"cal": events}, pairs


def run(rounds: int) -> list[str]:
    rng = random.Random(17)
    lines = ["| question | zone | busy items | slots | CPU ms |", "|---|---|---:|---:|---:|"]
    for zone in ZONES:
        hours = WorkingHours(zone, buffer_before=timedelta(minutes=10),
                             buffer_after=timedelta(minutes=10))
        for days, n in ((28, 0), (28, 200), (28, 2000), (92, 2000)):
            items = busy_items(n, days, rng)
            cpu, slots = best(rounds, lambda: free_slots(
                items, hours, start=START, end=START + timedelta(days=days),  # noqa: B023
                duration=timedelta(minutes=30), now=START))  # (called at once, in the loop)
            lines.append(f"| free_slots, {days} days | {zone} | {n} | {len(slots)} | "
                         f"{cpu * 1000:.1f} |")
        acts, events, pairs = agenda_input(200, zone, rng)
        days_wanted = [START.date() + timedelta(days=i) for i in range(7)]
        cpu, items = best(rounds, lambda: agenda(acts, events, pairs, zone,  # noqa: B023
                                                 days_wanted))  # noqa: B023
        lines.append(f"| agenda, 7 days | {zone} | 400 (200 paired) | {len(items)} entries | "
                     f"{cpu * 1000:.1f} |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    lines = run(args.rounds)
    text = "\n".join([f"# Availability core ({date.today()}, best of {args.rounds})", "",
                      *lines, ""])
    print(text)
    if args.out:
        args.out.write_text(text)


if __name__ == "__main__":
    main()
