"""What code a soak ran: the checkout's commit, and whether its source changed under the run.

The ``syncd sync`` children fork from a process that imported syncd once
(:mod:`bench.soak_zygote`) and import the rest lazily, from disk. A checkout changed while
a soak runs (a rebase, a pull, an edit) gives them a mix of two versions: every cycle then
failed with an ImportError, which is the checkout's doing, not syncd's (2026-12-07: four
soak runs were lost that way). So a soak stamps the source at its start and again
at its end, and a run whose stamp changed is no result.
"""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path

#: The packages a soak and its children import.
PACKAGES = ("syncd", "connectors", "bench", "syncd_testkit")


def source_stamp(root: Path) -> str:
    """A digest of every module's path, size and modification time under ``root``'s
    packages: equal stamps, the same source (as far as a checkout changes it)."""
    digest = hashlib.sha256()
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            info = path.stat()
            digest.update(f"{path.relative_to(root)}\0{info.st_size}\0{info.st_mtime_ns}\n"
                          .encode())
    return digest.hexdigest()


def commit(root: Path) -> str:
    """The checkout's commit, short, with ``+changes`` when tracked files differ from it;
    ``unknown`` where git cannot tell (no git, not a checkout)."""
    def git(*args: str) -> str:
        return subprocess.run(["git", "-C", str(root), *args], capture_output=True,
                              text=True, timeout=60, check=True).stdout.strip()

    try:
        head = git("rev-parse", "--short", "HEAD")
        changed = git("status", "--porcelain", "--untracked-files=no")
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return head + ("+changes" if changed else "")
