"""Wall time of plain CLI commands, each in a fresh interpreter (issue 16 item 5).

A short command's time is nearly all imports, so every command is run ``--runs`` times
in a new process, interleaved with the other trees given, and the minimum and the median
are reported (the minimum is the least disturbed by other work on a shared machine),
for the wall time and for the CPU time the command used (user + system, which waiting
for a core does not inflate). Two reference rows time the first tree's interpreter alone
(``python -c pass``) and importing SQLAlchemy's ORM; the load average is printed with
the table. Bytecode is written and used, as on an installed syncd (each command runs
once untimed first).

``--tree`` compares checkouts: each is a folder with its own ``.venv`` or, without one,
run by this interpreter with the folder on PYTHONPATH (e.g. ``git worktree add
/tmp/before COMMIT``: the commit's code with this venv's packages). Every tree gets its
own data directory, with one CalDAV, one Google and one Outlook account and a user, made
before timing (so ``status`` opens a database already at the newest revision, as it
would after the first command). ``--embedded`` leaves the accounts out (the embedded
default, one account per user); ``--database URL`` names the database in the config
(``sqlite``: a SQLite file of the tree's own, as ``database = "sqlite:////..."``).

Each command's figures are printed as soon as they are measured, then the whole table.

    .venv/bin/python -m bench.cli --runs 20 --tree /work/main --tree . \\
        --out bench/results/cli.md
    .venv/bin/python -m bench.cli --runs 10 --tree /tmp/before --tree . --database sqlite
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

COMMANDS = (("--help",), ("status", "--help"), ("config", "check"), ("status",),
            ("activity", "list"), ("activity", "add", "Call", "--owner", "a@example.com",
                                   "--due", "2026-12-10"))

#: The commands' environment: bytecode is written and read as on an installed syncd
#: (with PYTHONDONTWRITEBYTECODE, as some shells set it, every run compiled syncd's ~45
#: modules from source: about half of a short command's CPU).
ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


CONFIG = """
[syncd]
data_dir = "{data}"
"""
ACCOUNTS = """
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


def interpreter(tree: Path) -> str:
    """The tree's own interpreter, else this one (the tree then on PYTHONPATH, which every
    run gets, so that a checkout without a venv, e.g. ``git worktree add /tmp/before
    COMMIT``, runs its own code with this venv's packages)."""
    own = tree / ".venv" / "bin" / "python"
    return str(own) if own.exists() else sys.executable


def prepare(tree: Path, folder: Path, *, embedded: bool = False,
            database: str | None = None) -> list[str]:
    """The command prefix for ``tree``, with a config of its own and a user made (see
    the module's docstring for ``embedded`` and ``database``)."""
    folder.mkdir(mode=0o700)
    config = folder / "syncd.toml"
    text = CONFIG.format(data=folder / "data")
    if database is not None:
        url = f"sqlite:///{folder / 'other.db'}" if database == "sqlite" else database
        text += f'database = "{url}"\n'
    if not embedded:
        text += ACCOUNTS.format(config=config)
    config.write_text(text)
    config.chmod(0o600)
    prefix = ["env", f"PYTHONPATH={tree}", interpreter(tree), "-m", "syncd", "--config",
              str(config)]
    # A shared database (a PostgreSQL URL) has the user after the first tree's add.
    subprocess.run([*prefix, "user", "add", "a@example.com"], cwd=tree,
                   check=database in (None, "sqlite"), capture_output=True, env=ENV)
    return prefix


#: Reference commands, run with the first tree's interpreter: the floor, and what
#: importing SQLAlchemy's ORM alone costs.
REFERENCES = (("-c", "pass"), ("-c", "import sqlalchemy.orm"))

Row = tuple[str, str, float, float, float, float]  # command, tree, wall min/median, CPU


def _timed(argv: list[str], cwd: Path) -> tuple[float, float]:
    """(wall, CPU) seconds of one run of ``argv``."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    subprocess.run(argv, cwd=cwd, capture_output=True, env=ENV)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def measure(trees: list[Path], runs: int, *, embedded: bool = False,
            database: str | None = None) -> list[Row]:
    """(command, tree, wall min, wall median, CPU min, CPU median), the trees' runs
    interleaved; each command's rows printed as they are measured."""
    rows: list[Row] = []
    python = interpreter(trees[0])
    with tempfile.TemporaryDirectory() as tmp:
        prefixes = [prepare(t, Path(tmp) / str(i), embedded=embedded, database=database)
                    for i, t in enumerate(trees)]
        for prefix in prefixes:  # the embedded default's account row (made on first status)
            subprocess.run([*prefix, "status"], capture_output=True, env=ENV)
        jobs = [(f"python {' '.join(r)}", [(trees[0], [python, *r])]) for r in REFERENCES]
        jobs += [(f"syncd {' '.join(c)}", [(t, [*p, *c]) for t, p in zip(trees, prefixes,
                                                                        strict=True)])
                 for c in COMMANDS]
        for label, runs_of in jobs:
            times: list[list[tuple[float, float]]] = [[] for _ in runs_of]
            for tree, argv in runs_of:  # untimed: writes the bytecode it needs
                _timed(argv, tree)
            for _ in range(runs):
                for i, (tree, argv) in enumerate(runs_of):
                    times[i].append(_timed(argv, tree))
            for (tree, _), ts in zip(runs_of, times, strict=True):
                walls, cpus = [w for w, _ in ts], [c for _, c in ts]
                rows.append((label, str(tree), min(walls), statistics.median(walls),
                             min(cpus), statistics.median(cpus)))
                sys.stderr.write(f"{label} [{tree}]: wall min {min(walls):.3f} s, median "
                                 f"{statistics.median(walls):.3f} s; CPU min {min(cpus):.3f} "
                                 f"s, median {statistics.median(cpus):.3f} s "
                                 f"(load {os.getloadavg()[0]:.1f})\n")
    return rows


def render(rows: list[Row], runs: int, load: tuple[str, str], setup: str) -> str:
    lines = [f"{setup}. Load average (1 min) {load[0]} before, {load[1]} after, on "
             f"{os.cpu_count()} cores.", "",
             f"| command | tree | wall min of {runs} | wall median | CPU min | CPU median |",
             "|---|---|---:|---:|---:|---:|"]
    lines += [f"| `{c}` | {t} | {lo:.3f} s | {mid:.3f} s | {clo:.3f} s | {cmid:.3f} s |"
              for c, t, lo, mid, clo, cmid in rows]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--tree", action="append", type=Path,
                        help="a checkout with its own .venv (repeatable; default: this one)")
    parser.add_argument("--embedded", action="store_true",
                        help="no [[account]] in the config: the embedded default")
    parser.add_argument("--database", metavar="URL",
                        help="database = URL in the config ('sqlite': a file of each tree's)")
    parser.add_argument("--out", type=Path, help="write the Markdown table here too")
    args = parser.parse_args(argv)
    trees = [t.resolve() for t in (args.tree or [Path(".")])]
    before = f"{os.getloadavg()[0]:.1f}"
    rows = measure(trees, args.runs, embedded=args.embedded, database=args.database)
    setup = ("The embedded default (no accounts)" if args.embedded else
             "One CalDAV, one Google and one Outlook account") + (
        f", database = {args.database!r}" if args.database else ", the default database")
    table = render(rows, args.runs, (before, f"{os.getloadavg()[0]:.1f}"), setup)
    sys.stdout.write(table)
    if args.out:
        args.out.write_text(table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
