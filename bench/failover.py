"""Replicas under SIGKILL and SIGSTOP at the Show's size (issue 16): 2,000 accounts, 3
replicas, on PostgreSQL.

``.venv/bin/python -m bench.failover --database postgresql+psycopg://postgres@127.0.0.1/test
--accounts 2000 --out bench/results/failover.md``

The scenario of tests/replicas/test_failover.py (which runs it at 200 accounts), from
:func:`syncd_testkit.replicas.chaos`: driver processes running the product's claim, lease
and fencing code, one SIGKILLed and replaced, one SIGSTOPped for twice the lease, one
SIGKILLed, with PostgreSQL triggers auditing every write in the transaction that makes
it. It reports the writes audited, writes by anyone but the lease holder (must be 0),
tokens that went back (must be 0), and the seconds from each lapsed lease to its takeover
(the promise: within a tick, plus what a busy machine adds). Measured, never asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
from pathlib import Path

from bench.control import ROOT
from bench.report import code_version
from bench.sync import database, log
from syncd.store.db import Database
from syncd_testkit.replicas import chaos, install_audit


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database", default="postgresql+psycopg://postgres@127.0.0.1/test")
    parser.add_argument("--accounts", type=int, default=2000)
    parser.add_argument("--replicas", type=int, default=3)
    parser.add_argument("--ttl", type=float, default=3.0, help="lease seconds")
    parser.add_argument("--tick", type=float, default=0.2)
    parser.add_argument("--interval", type=float, default=5.0)
    parser.add_argument("--work-ms", type=float, default=20.0)
    parser.add_argument("--cap", type=int, default=16)
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "failover.md"))
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp, database(args.database, Path(tmp)) as url:
        db = Database(url)
        install_audit(db)
        log(f"{args.accounts} accounts, {args.replicas} replicas, lease {args.ttl} s")
        result = chaos(url, db, args.accounts, ttl=args.ttl, replicas=args.replicas,
                       timeout=600, tick=args.tick, interval=args.interval,
                       work_ms=args.work_ms, cap=args.cap)
        db.close()
    delays = sorted(result.takeover_delays)
    code = code_version(str(ROOT))
    figures = {
        "accounts": args.accounts, "replicas": args.replicas, "lease_s": args.ttl,
        "tick_s": args.tick, "writes_audited": result.writes,
        "writes_by_a_non_holder": len(result.two_writers),
        "tokens_gone_back": len(result.tokens_went_back), "takeovers": len(delays),
        "takeover_delay_p50_s": round(statistics.median(delays), 2) if delays else None,
        "takeover_delay_max_s": round(delays[-1], 2) if delays else None,
        "refused_after_waking": sum(d.get("refused", 0) for d in result.done.values()),
        "run_s": round(result.seconds, 1), "load_average": round(os.getloadavg()[0], 1),
        "code": code["commit"],
    }
    lines = ["# Replica failover (bench/failover.py)", "",
             "| figure | value |", "|---|---|"]
    lines += [f"| {k} | {v} |" for k, v in figures.items()]
    text = "\n".join(lines) + "\n"
    Path(args.out).write_text(text)
    Path(args.out).with_suffix(".json").write_text(json.dumps(figures, indent=1))
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
