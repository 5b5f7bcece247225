"""Rehearse the image's install steps without Docker: ``python deploy/rehearse_image.py``.

Where no Docker engine runs (or the base image cannot be pulled), this plays the
Dockerfile's own steps that decide whether the image works, read from the Dockerfile
itself so that the two cannot drift:

1. ``COPY`` of the project's files into an empty build folder (only what the Dockerfile
   copies: a file it forgets is missing here too);
2. every ``pip install`` of a ``RUN`` line, as written (``--require-hashes`` against the
   lock, ``--no-deps``, ``--no-build-isolation``), with the pip of a fresh virtual
   environment of this interpreter, which must be the image's minor version;
3. the image's ``ENTRYPOINT`` with ``--help``, and its ``HEALTHCHECK`` command, run from
   that environment, outside the build folder.

Steps that need the container (``useradd``, ``chmod`` of ``/data``) are left out and named.
It needs the package registry (PyPI) and takes a minute or two; it is a release check,
not part of the test run. Exit status 0 when every step passed.
"""

from __future__ import annotations

import argparse
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import venv
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOCKERFILE = ROOT / "Dockerfile"


@dataclass(frozen=True)
class Instruction:
    """One Dockerfile instruction, its continuation lines joined."""

    keyword: str
    rest: str


def instructions(text: str) -> list[Instruction]:
    """The Dockerfile's instructions in order (comments dropped, ``\\`` lines joined)."""
    found: list[Instruction] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):
            continue  # a comment inside a continued instruction
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        whole = (pending + line).strip()
        pending = ""
        keyword, _, rest = whole.partition(" ")
        found.append(Instruction(keyword.upper(), rest.strip()))
    return found


def base_python(instrs: list[Instruction]) -> str:
    """The base image's Python minor version, e.g. ``3.11`` from ``python:3.11-slim@...``."""
    for ins in instrs:
        if ins.keyword == "FROM":
            match = re.match(r"python:(\d+\.\d+)", ins.rest)
            if match:
                return match.group(1)
    raise SystemExit(f"{DOCKERFILE}: no FROM python:X.Y base found")


def pip_commands(run: str) -> tuple[list[list[str]], list[str]]:
    """A ``RUN`` line's ``pip install`` commands, and the other commands it skips."""
    pips, skipped = [], []
    for part in run.split("&&"):
        words = shlex.split(part)
        if words[:2] == ["pip", "install"]:
            pips.append(words[2:])
        elif words:
            skipped.append(" ".join(words))
    return pips, skipped


def copy_into(build: Path, workdir: str, rest: str) -> None:
    """Play a ``COPY src... dest`` (no flags) from the project root into ``build``."""
    *sources, dest = shlex.split(rest)
    target = build / dest.lstrip("/") if dest.startswith("/") else build / workdir / dest
    for source in sources:
        origin = ROOT / source
        if not origin.exists():
            raise SystemExit(f"{DOCKERFILE}: COPY {source}: no such file in the project")
        if origin.is_dir():
            # a folder's contents go into the destination, as Docker copies them
            shutil.copytree(origin, target, dirs_exist_ok=True,
                            ignore=shutil.ignore_patterns("__pycache__"))
        else:
            into = target / origin.name if dest.endswith("/") else target
            into.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(origin, into)


def run(cmd: list[str], cwd: Path) -> None:
    print("+", " ".join(cmd), flush=True)
    subprocess.run(cmd, cwd=cwd, check=True)


def rehearse(keep: bool) -> int:
    instrs = instructions(DOCKERFILE.read_text(encoding="utf-8"))
    wanted = base_python(instrs)
    here = f"{sys.version_info.major}.{sys.version_info.minor}"
    if here != wanted:
        print(f"the image's Python is {wanted}; run this with python{wanted}, not {here}",
              file=sys.stderr)
        return 2
    top = Path(tempfile.mkdtemp(prefix="syncd-image-"))
    env_dir, build = top / "venv", top / "build"
    venv.EnvBuilder(with_pip=True).create(env_dir)
    python = str(env_dir / "bin" / "python")
    workdir, entry, health = "/", "", ""
    try:
        for ins in instrs:
            if ins.keyword == "WORKDIR":
                workdir = ins.rest.lstrip("/")
                (build / workdir).mkdir(parents=True, exist_ok=True)
            elif ins.keyword == "COPY":
                copy_into(build, workdir, ins.rest)
            elif ins.keyword == "RUN":
                pips, skipped = pip_commands(ins.rest)
                for args in pips:
                    run([python, "-m", "pip", "install", *args], cwd=build / workdir)
                for other in skipped:
                    print(f"- skipped (needs the container): {other}")
            elif ins.keyword == "ENTRYPOINT":
                entry = ins.rest
            elif ins.keyword == "HEALTHCHECK":
                health = ins.rest.split("CMD", 1)[1].strip()
        binaries = env_dir / "bin"
        for word in _exec_form(entry):
            run([str(binaries / word), "--help"], cwd=top)
        check = _exec_form(health)
        if check and check[0] == "python":
            check[0] = python
        run(check, cwd=top)
        print(f"the image's install steps passed ({DOCKERFILE.name}, Python {here})")
        return 0
    except subprocess.CalledProcessError as failed:
        print(f"a step failed with exit status {failed.returncode}: {' '.join(failed.cmd)}",
              file=sys.stderr)
        return 1
    finally:
        if keep:
            print(f"kept: {top}")
        else:
            shutil.rmtree(top, ignore_errors=True)


def _exec_form(value: str) -> list[str]:
    """``["a", "b"]`` (a Dockerfile's exec form) as a list; empty for nothing."""
    value = value.strip()
    if not value:
        return []
    if not value.startswith("["):
        raise SystemExit(f"{DOCKERFILE}: expected the exec form [...], got {value!r}")
    return [w.strip().strip('"') for w in value.strip("[]").split(",")]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", action="store_true", help="keep the build folder and venv")
    return rehearse(parser.parse_args().keep)


if __name__ == "__main__":
    raise SystemExit(main())
