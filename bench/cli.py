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
(``sqlite``: a SQLite file of the tree's own, as ``database = "sqlite:////..."``;
``postgresql``: a new database of the tree's own on the server ``--pg`` names, as
``database = "postgresql+psycopg://..."``, dropped at the end).

``--instructions`` also counts the instructions each command executes, once per tree,
under valgrind's callgrind: unlike the times, the load of a shared machine does not
move them (another reference row then counts ``import psycopg`` alone).

Each command's figures are printed as soon as they are measured, then the whole table.

    .venv/bin/python -m bench.cli --runs 20 --tree /work/main --tree . \\
        --out bench/results/cli.md
    .venv/bin/python -m bench.cli --runs 10 --tree /tmp/before --tree . --database sqlite
    .venv/bin/python -m bench.cli --runs 10 --database postgresql --instructions
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg

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


#: The PostgreSQL server ``--database postgresql`` makes each tree's database on.
PG_ADMIN = "host=127.0.0.1 port=5432 user=postgres dbname=postgres"


@contextmanager
def pg_databases(admin: str) -> Iterator[list[str]]:
    """A list to which :func:`prepare` adds the URL of each database it makes on the
    server at ``admin`` (a libpq conninfo); every one is dropped at the end."""
    made: list[str] = []
    try:
        yield made
    finally:
        if made:
            with psycopg.connect(admin, autocommit=True) as conn:
                for url in made:
                    name = url.rsplit("/", 1)[1]
                    conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _new_pg_database(admin: str, made: list[str]) -> str:
    name = f"syncd_bench_cli_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
        info = conn.info
        url = f"postgresql+psycopg://{info.user}@{info.host}:{info.port}/{name}"
    made.append(url)
    return url


Command = tuple[list[str], dict[str, str]]  # argv, environment


def prepare(tree: Path, folder: Path, *, embedded: bool = False,
            database: str | None = None, pg: tuple[str, list[str]] | None = None
            ) -> Command:
    """The command prefix and environment for ``tree``, with a config of its own and a
    user made (see the module's docstring for ``embedded`` and ``database``; ``pg``: the
    admin conninfo and the list of :func:`pg_databases`)."""
    folder.mkdir(mode=0o700)
    config = folder / "syncd.toml"
    text = CONFIG.format(data=folder / "data")
    if database == "sqlite":
        text += f'database = "sqlite:///{folder / "other.db"}"\n'
    elif database == "postgresql":
        assert pg is not None
        text += f'database = "{_new_pg_database(*pg)}"\n'
    elif database is not None:
        text += f'database = "{database}"\n'
    if not embedded:
        text += ACCOUNTS.format(config=config)
    config.write_text(text)
    config.chmod(0o600)
    prefix = [interpreter(tree), "-m", "syncd", "--config", str(config)]
    env = {**ENV, "PYTHONPATH": str(tree)}
    # A shared database (a URL given) has the user after the first tree's add.
    subprocess.run([*prefix, "user", "add", "a@example.com"], cwd=tree,
                   check=database in (None, "sqlite", "postgresql"), capture_output=True,
                   env=env)
    return prefix, env


#: Reference commands, run with the first tree's interpreter: the floor, and what
#: importing SQLAlchemy's ORM alone costs (and psycopg, with ``--instructions``).
REFERENCES = (("-c", "pass"), ("-c", "import sqlalchemy.orm"))
PSYCOPG = ("-c", "import psycopg")

#: command, tree, wall min/median, CPU min/median (s), instructions (None: not counted)
Row = tuple[str, str, float, float, float, float, int | None]
_COLLECTED = re.compile(r"Collected : (\d+)")


def _timed(argv: list[str], cwd: Path, env: dict[str, str]) -> tuple[float, float]:
    """(wall, CPU) seconds of one run of ``argv``."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    subprocess.run(argv, cwd=cwd, capture_output=True, env=env)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def instructions(argv: list[str], cwd: Path, env: dict[str, str]) -> int:
    """The instructions one run of ``argv`` executes (valgrind's callgrind)."""
    done = subprocess.run(["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null",
                           *argv], cwd=cwd, capture_output=True, text=True, env=env)
    found = _COLLECTED.search(done.stderr)
    if found is None:
        raise RuntimeError(f"callgrind counted nothing: {done.stderr[-500:]}")
    return int(found[1])


def measure(trees: list[Path], runs: int, *, embedded: bool = False,
            database: str | None = None, count: bool = False,
            pg_admin: str = PG_ADMIN) -> list[Row]:
    """(command, tree, wall min, wall median, CPU min, CPU median, instructions), the
    trees' runs interleaved; each command's rows printed as they are measured."""
    rows: list[Row] = []
    python = interpreter(trees[0])
    with tempfile.TemporaryDirectory() as tmp, pg_databases(pg_admin) as made:
        commands = [prepare(t, Path(tmp) / str(i), embedded=embedded, database=database,
                            pg=(pg_admin, made)) for i, t in enumerate(trees)]
        for tree, (prefix, env) in zip(trees, commands, strict=True):
            # The accounts' rows (made on the first status), by the tree's own code: run
            # from another folder, ``-m syncd`` would import that folder's syncd, which may
            # migrate the database past what the tree knows.
            subprocess.run([*prefix, "status"], cwd=tree, capture_output=True, env=env)
        references = (*REFERENCES, PSYCOPG) if count else REFERENCES
        jobs = [(f"python {' '.join(r)}", [(trees[0], [python, *r], ENV)]) for r in references]
        jobs += [(f"syncd {' '.join(c)}", [(t, [*p, *c], env) for t, (p, env)
                                           in zip(trees, commands, strict=True)])
                 for c in COMMANDS]
        for label, runs_of in jobs:
            times: list[list[tuple[float, float]]] = [[] for _ in runs_of]
            for tree, argv, env in runs_of:  # untimed: writes the bytecode it needs
                _timed(argv, tree, env)
            counted = [instructions(argv, tree, env) if count else None
                       for tree, argv, env in runs_of]
            for _ in range(runs):
                for i, (tree, argv, env) in enumerate(runs_of):
                    times[i].append(_timed(argv, tree, env))
            for (tree, _, _), ts, n in zip(runs_of, times, counted, strict=True):
                walls, cpus = [w for w, _ in ts], [c for _, c in ts]
                rows.append((label, str(tree), min(walls), statistics.median(walls),
                             min(cpus), statistics.median(cpus), n))
                sys.stderr.write(f"{label} [{tree}]: wall min {min(walls):.3f} s, median "
                                 f"{statistics.median(walls):.3f} s; CPU min {min(cpus):.3f} "
                                 f"s, median {statistics.median(cpus):.3f} s"
                                 + (f"; {n / 1e6:,.0f} M instructions" if n else "")
                                 + f" (load {os.getloadavg()[0]:.1f})\n")
    return rows


def render(rows: list[Row], runs: int, load: tuple[str, str], setup: str) -> str:
    counted = any(row[6] is not None for row in rows)
    lines = [f"{setup}. Load average (1 min) {load[0]} before, {load[1]} after, on "
             f"{os.cpu_count()} cores.", "",
             f"| command | tree | wall min of {runs} | wall median | CPU min | CPU median |"
             + (" instructions |" if counted else ""),
             "|---|---|---:|---:|---:|---:|" + ("---:|" if counted else "")]
    lines += [f"| `{c}` | {t} | {lo:.3f} s | {mid:.3f} s | {clo:.3f} s | {cmid:.3f} s |"
              + (f" {n / 1e6:,.0f} M |" if n is not None else " - |" if counted else "")
              for c, t, lo, mid, clo, cmid, n in rows]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--tree", action="append", type=Path,
                        help="a checkout with its own .venv (repeatable; default: this one)")
    parser.add_argument("--embedded", action="store_true",
                        help="no [[account]] in the config: the embedded default")
    parser.add_argument("--database", metavar="URL",
                        help="database = URL in the config ('sqlite': a file of each tree's; "
                             "'postgresql': a new database of each tree's on --pg's server)")
    parser.add_argument("--pg", default=PG_ADMIN, metavar="CONNINFO",
                        help=f"the PostgreSQL server's admin connection (default: {PG_ADMIN})")
    parser.add_argument("--instructions", action="store_true",
                        help="also count each command's instructions under callgrind")
    parser.add_argument("--out", type=Path, help="write the Markdown table here too")
    args = parser.parse_args(argv)
    if args.instructions and shutil.which("valgrind") is None:
        parser.error("--instructions needs valgrind")
    trees = [t.resolve() for t in (args.tree or [Path(".")])]
    before = f"{os.getloadavg()[0]:.1f}"
    rows = measure(trees, args.runs, embedded=args.embedded, database=args.database,
                   count=args.instructions, pg_admin=args.pg)
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
