"""Wall time of plain CLI commands, each in a fresh interpreter (issue 16 item 5).

A short command's time is nearly all imports, so every command is run ``--runs`` times
in a new process, interleaved with the other trees given, and the minimum and the median
are reported (the minimum is the least disturbed by other work on a shared machine).
``--tree`` compares checkouts: each is a folder with its own ``.venv``, e.g. main and a
branch. Every tree gets its own data directory, with one CalDAV, one Google and one
Outlook account and a user, made before timing (so ``status`` opens a database already
at the newest revision, as it would after the first command).

    .venv/bin/python -m bench.cli --runs 20 --tree /work/main --tree . \\
        --out bench/results/cli.md
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

COMMANDS = (("--help",), ("status", "--help"), ("config", "check"), ("status",),
            ("activity", "list"), ("activity", "add", "Call", "--owner", "a@example.com",
                                   "--due", "2026-12-10"))

CONFIG = """
[syncd]
data_dir = "{data}"
[[account]]
name = "dav"
provider = "caldav"
owner = "a@example.com"
calendar = "https://dav.example.com/a/crm/"
[account.auth]
url = "https://dav.example.com/"
username = "a"
password = "env:HOME"
[[account]]
name = "google"
provider = "google"
owner = "a@example.com"
[account.auth]
mode = "service_account"
service_account_file = "file:{config}"
[[account]]
name = "outlook"
provider = "outlook"
owner = "a@example.com"
[account.auth]
tenant = "contoso.onmicrosoft.com"
client_id = "00000000-0000-0000-0000-000000000000"
client_secret = "env:HOME"
"""


def prepare(tree: Path, folder: Path) -> list[str]:
    """The command prefix for ``tree``, with a config of its own and a user made."""
    folder.mkdir(mode=0o700)
    config = folder / "syncd.toml"
    config.write_text(CONFIG.format(data=folder / "data", config=config))
    config.chmod(0o600)
    prefix = [str(tree / ".venv" / "bin" / "python"), "-m", "syncd", "--config", str(config)]
    subprocess.run([*prefix, "user", "add", "a@example.com"], cwd=tree, check=True,
                   capture_output=True)
    return prefix


def measure(trees: list[Path], runs: int) -> list[tuple[str, str, float, float]]:
    """(command, tree, min, median) seconds, the trees' runs interleaved."""
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        prefixes = [prepare(t, Path(tmp) / str(i)) for i, t in enumerate(trees)]
        for command in COMMANDS:
            times: list[list[float]] = [[] for _ in trees]
            for _ in range(runs):
                for i, (tree, prefix) in enumerate(zip(trees, prefixes, strict=True)):
                    started = time.perf_counter()
                    subprocess.run([*prefix, *command], cwd=tree, capture_output=True)
                    times[i].append(time.perf_counter() - started)
            for tree, ts in zip(trees, times, strict=True):
                rows.append((" ".join(command), str(tree), min(ts), statistics.median(ts)))
    return rows


def render(rows: list[tuple[str, str, float, float]], runs: int) -> str:
    lines = [f"| command | tree | min of {runs} | median |", "|---|---|---:|---:|"]
    lines += [f"| `syncd {c}` | {t} | {lo:.3f} s | {mid:.3f} s |" for c, t, lo, mid in rows]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--tree", action="append", type=Path,
                        help="a checkout with its own .venv (repeatable; default: this one)")
    parser.add_argument("--out", type=Path, help="write the Markdown table here too")
    args = parser.parse_args(argv)
    trees = [t.resolve() for t in (args.tree or [Path(".")])]
    table = render(measure(trees, args.runs), args.runs)
    sys.stdout.write(table)
    if args.out:
        args.out.write_text(table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
