"""``python -m bench.soak_cli ARGS``: the real ``syncd`` command line, for the soak's children.

It is ``python -m syncd`` with one difference, for Outlook only: msal knows the identity
emulator by an https host name (``login.emulator.test``), so when ``SOAK_IDENTITY`` names
it the ``outlook`` connector gets a session that routes that host to the emulator's
loopback port (what :mod:`bench.providers` does in the benchmark's own process).
"""

from __future__ import annotations

import json
import os

from syncd.cli import main


def _route_identity() -> None:
    spec = os.environ.get("SOAK_IDENTITY")
    if not spec:
        return
    import connectors
    from bench import providers

    providers._identity.update(json.loads(spec))
    connectors.REGISTRY["outlook"] = "bench.providers:open_outlook"


if __name__ == "__main__":
    _route_identity()
    raise SystemExit(main())
