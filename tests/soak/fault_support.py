"""What the fault tests share: ``syncd`` run in this process, on a CalDAV account whose
server sits behind a fault proxy."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path
from typing import Any

from syncd.cli import main
from syncd_testkit.faults import FaultProxy
from syncd_testkit.servers import DavServer


def dav_config(folder: Path, server: DavServer, proxy: FaultProxy, user: str,
               calendar_url: str, *, request_timeout: int) -> Path:
    """A config with one CalDAV account ("dav") on ``calendar_url`` reached through
    ``proxy``, with ``[syncd] request_timeout_seconds`` = ``request_timeout``."""
    config = folder / "syncd.toml"
    config.write_text(
        f'[syncd]\ndata_dir = "{folder / "data"}"\n'
        f'request_timeout_seconds = {request_timeout}\n'
        f'[[account]]\nname = "dav"\nprovider = "caldav"\nowner = "{user}"\n'
        f'calendar = "{calendar_url.replace(server.origin, proxy.url)}"\n'
        f'[account.auth]\nurl = "{proxy.url}/"\nusername = "{user}"\n')
    return config


def run(config: Path, *args: str) -> tuple[int, Any]:
    """``syncd --json ARGS`` in this process: its exit status and parsed output."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        status = main(["--config", str(config), "--json", *args])
    text = out.getvalue().strip()
    return status, json.loads(text) if text else None
