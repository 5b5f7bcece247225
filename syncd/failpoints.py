"""Named crash points for the crash-safety tests.

``SYNCD_FAILPOINT=name`` (optionally ``name:N`` to fire on the N-th pass) makes the
process kill itself with SIGKILL when it reaches :func:`failpoint` with that name, the
way a power cut or an OOM kill would stop it: no cleanup, no flush, no ``finally``.
Unset, a failpoint costs one dictionary lookup.
"""

from __future__ import annotations

import os
import signal

_passes: dict[str, int] = {}


def failpoint(name: str) -> None:
    spec = os.environ.get("SYNCD_FAILPOINT")
    if not spec:
        return
    wanted, _, nth = spec.partition(":")
    if wanted != name:
        return
    _passes[name] = _passes.get(name, 0) + 1
    if _passes[name] >= int(nth or 1):
        os.kill(os.getpid(), signal.SIGKILL)
