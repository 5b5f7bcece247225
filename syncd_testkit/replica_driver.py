"""One replica for the replica tests: the product's claim, lease and fencing code around a
cycle made of the engine's fenced steps, in its own process so that a test can SIGKILL
and SIGSTOP it.

``python -m syncd_testkit.replica_driver --url URL --owner NAME --accounts N [...]``

The replica enrols ``acc0000 … acc{N-1}`` and runs a :class:`syncd.replica.Dispatcher`
(``--cap`` accounts in flight, a claim every ``--tick`` seconds, leases of ``--ttl``
seconds). Each claimed account gets the cycle the engine gives it, step by step:
``begin_cycle`` under the claim, then per write batch the lease renewed (the fence
before a batch), the calendar request (``--work-ms`` of sleep: the network) and the
finished writes recorded under the token (one link whose etag names this replica and
token), then the cursor commit under the token (the cursor names them too), the status
move, and the account given back due in ``--interval`` seconds. A refused fence ends the
cycle as the engine ends it (lease lost) and is counted. ``--write`` makes each batch's
write another of the cycle's fenced writes instead of the link, its value naming the
replica and token the same way: ``failure`` (an item's failure counted, the reason),
``meeting`` (a meeting claimed, its UID) or ``guests`` (the hour's guest e-mail count,
the token).

It prints ``claimed NAME TOKEN`` and ``refused NAME TOKEN`` lines as they happen, and on
SIGTERM stops claiming, lets its cycles end, and prints ``done {json counts}``.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from types import FrameType

from syncd.errors import LeaseLost
from syncd.pairs import SyncPair
from syncd.replica import Dispatcher
from syncd.store.db import Database
from syncd.store.queue import Claim, WorkQueue
from syncd.store.state import StateStore
from syncd.store.status import CycleEnd, Note, Outcome

BATCHES = 2


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", required=True)
    parser.add_argument("--owner", required=True)
    parser.add_argument("--accounts", type=int, required=True)
    parser.add_argument("--cap", type=int, default=4)
    parser.add_argument("--tick", type=float, default=0.1)
    parser.add_argument("--ttl", type=float, default=2.0)
    parser.add_argument("--interval", type=float, default=1.0)
    parser.add_argument("--work-ms", type=float, default=10.0)
    parser.add_argument("--write", choices=("links", "failure", "meeting", "guests"),
                        default="links")
    args = parser.parse_args(argv)

    db = Database(args.url, run_migrations=False)
    state = StateStore(db)
    queue = WorkQueue(db, args.owner)
    ttl = timedelta(seconds=args.ttl)
    counts: Counter[str] = Counter()
    lock = threading.Lock()
    names = [f"acc{i:04}" for i in range(args.accounts)]

    def say(line: str) -> None:
        with lock:
            print(line, flush=True)

    def write(claim: Claim, batch: int, tag: str) -> None:
        """The batch's fenced write, as ``--write`` chose it."""
        if args.write == "failure":
            state.record_failure(claim.name, f"crm:{batch}", None, tag, token=claim.token)
        elif args.write == "meeting":
            state.claim_meeting(claim.name, f"{tag}|{batch}@example.org", token=claim.token)
        elif args.write == "guests":
            state.record_guest_emails(claim.name, datetime.now(UTC), claim.token,
                                      token=claim.token)
        else:
            link = SyncPair(batch, f"m{batch}", f"e{batch}", f"{tag}|{time.time_ns()}",
                            None, None, 0)
            state.record(claim.name, saves=[link], token=claim.token)

    def cycle(claim: Claim) -> None:
        say(f"claimed {claim.name} {claim.token}")
        start = state.begin_cycle(claim.name, args.owner, ttl, datetime.now(UTC),
                                  claimed=claim.token)
        tag = f"{args.owner}|{claim.token}"
        end = CycleEnd(Outcome.OK)
        try:
            for batch in range(BATCHES):
                if not state.renew_lease(claim.name, claim.token, ttl):
                    raise LeaseLost(account=claim.name)
                time.sleep(args.work_ms / 1000)  # the calendar request
                write(claim, batch, tag)
            if not state.commit_cursors(claim.name, claim.token,
                                        crm_cursor=f"{tag}|{time.time_ns()}"):
                raise LeaseLost(account=claim.name)
            with lock:
                counts["cycles"] += 1
        except LeaseLost:
            end = CycleEnd(Outcome.PARTIAL, note=Note.LEASE_LOST)
            with lock:
                counts["refused"] += 1
            say(f"refused {claim.name} {claim.token}")
        state.finish_cycle(claim.name, claim.token, end, datetime.now(UTC), start.state)
        queue.finish(claim.name, claim.token, args.interval)

    dispatcher = Dispatcher(queue, lambda: names, cycle, cap=args.cap, ttl=ttl)
    stop = threading.Event()

    def on_term(_signum: int, _frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_term)
    say("ready")
    while not stop.is_set():
        dispatcher.tick()
        stop.wait(args.tick)
    dispatcher.stop()
    dispatcher.pool.shutdown(wait=True)
    counts.update(queue.counts)
    say("done " + json.dumps(dict(counts)))
    db.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
