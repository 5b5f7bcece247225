"""``python -m bench.soak_zygote``: forks the soak's ``syncd`` children from one process
that has imported syncd already.

A ``syncd sync`` child started afresh spends about 2 s of CPU importing (SQLAlchemy, the
Google client, the connectors) before it syncs anything; on the shared 2-core machine
that was most of a cheap round's cost, and a long soak runs thousands of them. This
process imports once, opens nothing (no database, no socket, no thread) and forks a child
per request. The child is an ordinary process running :func:`syncd.cli.main` with the
request's arguments and environment (``SYNCD_FAILPOINT`` included), so a kill, at a
failpoint or by the driver's SIGKILL, stops it exactly as it stops a fresh one.

Protocol, one JSON line each way on stdin/stdout: the driver sends ``{"args": [...],
"env": {...}, "out": PATH}``; the answer is ``{"pid": N}`` as soon as the child runs, then
``{"status": S}`` when it ended (``S`` as :attr:`subprocess.Popen.returncode`: negative
for a signal). The child's stdout goes to ``out``, its stderr to ``out.err``.
"""

from __future__ import annotations

import contextlib
import ctypes
import importlib
import json
import os
import signal
import sys
import traceback
from typing import Any

#: What a ``syncd sync`` or ``verify`` child imports on its way (the CLI imports lazily).
PRELOAD = ("syncd.cli", "syncd.cli_sync", "syncd.cli_verify", "syncd.cli_admin",
           "syncd.service", "syncd.verify", "syncd.engine.runner", "syncd.private",
           "syncd.crm.builtin.source", "connectors.google", "connectors.outlook",
           "connectors.caldav", "bench.providers", "bench.soak_cli")


def die_with_parent() -> None:
    """SIGKILL this process when its parent ends (Linux ``prctl(PR_SET_PDEATHSIG)``): a
    driver stopped mid-run leaves no zygote and no ``syncd`` child writing on."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # 1: PR_SET_PDEATHSIG


def preload() -> None:
    for name in PRELOAD:
        with contextlib.suppress(ImportError):
            importlib.import_module(name)


def child(request: dict[str, Any]) -> int:
    """In the forked child: the request's environment and output, then the CLI."""
    die_with_parent()
    for target, path in ((1, request["out"]), (2, request["out"] + ".err")):
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.dup2(fd, target)
        os.close(fd)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    os.environ.clear()
    os.environ.update(request["env"])
    from bench import soak_cli
    from syncd.cli import main

    soak_cli._route_identity()
    try:
        code = main(request["args"])
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    except BaseException:
        traceback.print_exc()
        code = 1
    with contextlib.suppress(Exception):
        sys.stdout.flush()
        sys.stderr.flush()
    return int(code or 0)


def serve() -> None:
    die_with_parent()
    preload()
    for line in sys.stdin:
        request = json.loads(line)
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            os._exit(child(request))
        print(json.dumps({"pid": pid}), flush=True)
        _, status = os.waitpid(pid, 0)
        print(json.dumps({"status": os.waitstatus_to_exitcode(status)}), flush=True)


if __name__ == "__main__":
    serve()
