"""bench/replicas.py: the replicas of a row run side by side, not one after another."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from bench.replicas import run_together

#: A stand-in replica: ready, told its start, then it marks itself started and looks
#: (for up to 10 s) for the others' marks, and says how many it saw.
CHILD = """
import json, pathlib, sys, time
folder, name, count = pathlib.Path(sys.argv[1]), sys.argv[2], int(sys.argv[3])
print("ready", flush=True)
float(sys.stdin.readline())
(folder / name).touch()
for _ in range(200):
    seen = len(list(folder.iterdir()))
    if seen == count:
        break
    time.sleep(0.05)
print(json.dumps({"name": name, "seen": seen}))
"""


def test_every_replica_is_told_to_start_before_any_is_waited_for(tmp_path: Path) -> None:
    procs = [subprocess.Popen([sys.executable, "-c", CHILD, str(tmp_path), f"r{i}", "3"],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
             for i in range(3)]
    results = run_together(procs)
    # Told one at a time (each after the previous one exited), the first would see only
    # itself and the second two of three.
    assert [r["seen"] for r in results] == [3, 3, 3]
    assert [r["name"] for r in results] == ["r0", "r1", "r2"]
