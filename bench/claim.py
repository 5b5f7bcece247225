"""What a replica's claim costs against the accounts it holds (issue 16 item 4).

``.venv/bin/python -m bench.claim --accounts 20,1000 --claims 200``

For each count: a fresh PostgreSQL database with that many accounts enrolled, a
:class:`syncd.replica.Dispatcher` that ticked once (so its set of names is made), then
``--claims`` rounds of what its refills do: a claim of 4 among its names (its cycles in
flight left out) and the 4 accounts given back due at once. Printed per claim: the Python
calls the profiler counted (which the machine's load does not move) and the thread's CPU
of an unprofiled run, with the load average.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import os
import pstats
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

from bench.sync import database

TTL = timedelta(minutes=10)


def measure(url: str, accounts: int, rounds: int) -> dict[str, Any]:
    """Calls and CPU per claim of 4 (and its 4 give-backs) among ``accounts``."""
    from syncd.replica import Dispatcher
    from syncd.store.db import Database
    from syncd.store.queue import WorkQueue

    with database(url, Path(tempfile.mkdtemp())) as fresh:
        db = Database(fresh)
        queue = WorkQueue(db, "bench:1")
        names = [f"google:user{i}@example.com" for i in range(accounts)]
        dispatcher = Dispatcher(queue, lambda: names, lambda claim: None, cap=16, ttl=TTL)
        try:
            dispatcher.tick()  # enrols them (the claims it starts finish at once)

            def loop() -> None:
                for _ in range(rounds):
                    # what Dispatcher.refill passes: its names, its cycles in flight
                    for claim in queue.claim(dispatcher._enrolled, 4, TTL,
                                             busy=tuple(dispatcher._running)):
                        queue.finish(claim.name, claim.token, 0)

            loop()  # warm: statements compiled, connections open
            profile = cProfile.Profile()
            profile.enable()
            loop()
            profile.disable()
            calls = pstats.Stats(profile).total_calls  # type: ignore[attr-defined]
            cpu = time.thread_time()
            loop()
            cpu = time.thread_time() - cpu
        finally:
            dispatcher.stop()
            db.close()
    return {"accounts": accounts, "python_calls_per_claim": round(calls / rounds),
            "cpu_ms_per_claim": round(1000 * cpu / rounds, 2),
            "load_average": round(os.getloadavg()[0], 1)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database", default="postgresql+psycopg://postgres@127.0.0.1/test",
                        help="a PostgreSQL server; a temporary database is made on it")
    parser.add_argument("--accounts", default="20,1000")
    parser.add_argument("--claims", type=int, default=200)
    args = parser.parse_args(argv)
    for count in (int(n) for n in args.accounts.split(",") if n):
        print(json.dumps(measure(args.database, count, args.claims)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
