"""The floor: the same phases as syncd, done by the minimal client, in its own process.

The floor works on its own calendars (owners ``f0000@…``), with the same number of events
per calendar and the same contents as syncd's, and the same share of them changed in each
phase. Calendars are worked on by the same number of threads as syncd's worker pool (one
calendar per thread at a time); what happens inside one calendar is the provider's best
(see :mod:`bench.floor_clients`). Prints the phases as JSON.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

from bench.control import Control, ServerInfo
from bench.floor_clients import Calendar, FloorClient, Spec, floor_client
from bench.measure import Phase, measure, rss_mib
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


class FloorBench:
    """The floor's phases against one provider."""

    def __init__(self, provider: str, server: ServerInfo, workload: Workload, workers: int,
                 caldav_concurrency: int) -> None:
        self.workload = workload
        self.control = Control(server.control)
        self.client: FloorClient = floor_client(provider, server.api, server.info,
                                                caldav_concurrency)
        self.pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="floor")
        owners = workload.owner_emails("f")
        refs = self.control.call("setup", owners=owners)
        self.calendars = [Calendar(owner, refs[owner]) for owner in owners]
        day = first_day(datetime.now(UTC))
        self.indexes: list[list[int]] = [[] for _ in owners]
        for i in range(workload.n):
            o = workload.owner_of(i)
            self.indexes[o].append(i)
            self.calendars[o].specs[i] = Spec.of(workload.activity(i, day))
        self.phases: list[Phase] = []

    def _by_calendar(self, picked: Sequence[int]) -> dict[int, list[int]]:
        out: dict[int, list[int]] = {}
        for i in picked:
            out.setdefault(self.workload.owner_of(i), []).append(i)
        return out

    def cycle(self, name: str, work: Callable[[int, Calendar], None], changes: int) -> None:
        """Read every calendar, then ``work`` on it; measured as phase ``name``."""
        def one(o: int) -> None:
            cal = self.calendars[o]
            self.client.read(cal)
            work(o, cal)

        for cal in self.calendars:
            cal.fetched = 0
        with measure(name, self.control) as phase:
            list(self.pool.map(one, range(len(self.calendars))))
        phase.changes = changes
        phase.counts = {"fetched": sum(c.fetched for c in self.calendars)}
        self.phases.append(phase)

    def as_user(self, method: str, picked: Sequence[int]) -> int:
        done = 0
        for o, indexes in self._by_calendar(picked).items():
            cal = self.calendars[o]
            done += self.control.call(method, calendar=cal.ref,
                                      events=[cal.events[i] for i in indexes],
                                      stamp="edited in the calendar")
            if method == "delete":
                for i in indexes:
                    cal.events.pop(i)
        return done

    @staticmethod
    def _writes(method: Callable[[Calendar, Sequence[int]], None],
                picked: dict[int, list[int]]) -> Callable[[int, Calendar], None]:
        """The per-calendar work of a phase: ``method`` on that calendar's picked events."""
        def work(o: int, cal: Calendar) -> None:
            method(cal, picked.get(o, []))
        return work

    def run(self, phases: Sequence[str]) -> None:
        nothing: Callable[[int, Calendar], None] = lambda o, cal: None  # noqa: E731
        for name in phases:
            if name == "initial":
                self.cycle(name, lambda o, cal: self.client.create(cal, self.indexes[o]),
                           self.workload.n)
            elif name in ("idle",) or name.endswith("settle"):
                self.cycle(name, nothing, 0)
            elif name == "crm edits":
                edits = self._by_calendar(self.workload.pick(self.indexes, SLOT_CRM_EDIT))
                for o, indexes in edits.items():
                    for i in indexes:
                        self.calendars[o].specs[i].title = f"Edited {i}"
                self.cycle(name, self._writes(self.client.update, edits),
                           sum(map(len, edits.values())))
            elif name == "calendar edits":
                done = self.as_user("edit", self.workload.pick(self.indexes, SLOT_CAL_EDIT))
                self.cycle(name, nothing, done)
            elif name == "deletes":
                done = self.as_user("delete", self.workload.pick(self.indexes, SLOT_CAL_DELETE))
                gone = self._by_calendar(self.workload.pick(self.indexes, SLOT_CRM_DELETE))
                self.cycle(name, self._writes(self.client.delete, gone),
                           done + sum(map(len, gone.values())))

    def close(self) -> None:
        self.pool.shutdown()
        self.client.close()
        self.control.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--provider", required=True)
    parser.add_argument("--server", required=True, help="the serving process's JSON line")
    parser.add_argument("--n", type=int, required=True)
    parser.add_argument("--owners", type=int, required=True)
    parser.add_argument("--percent", type=float, default=1.0)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--caldav-concurrency", type=int, default=4)
    parser.add_argument("--phases", choices=("full", "memory"), default="full")
    args = parser.parse_args(argv)
    bench = FloorBench(args.provider, ServerInfo.from_json(args.server),
                       Workload(args.n, args.owners, args.percent), args.workers,
                       args.caldav_concurrency)
    try:
        bench.run(FULL if args.phases == "full" else MEMORY)
    finally:
        bench.close()
    print(json.dumps({"peak_rss_mib": round(rss_mib(), 1),
                      "phases": [p.to_json() for p in bench.phases]}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
