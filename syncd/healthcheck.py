"""``python -m syncd.healthcheck [CONFIG]``: a container's health check, on ``/healthz``.

Exit 0 when the daemon's listener answers 200 on ``/healthz`` within a few seconds, 1
otherwise. The config is ``CONFIG``, else ``$SYNCD_CONFIG``; only its ``[http]`` table is
read (no secret is resolved, nothing is written). With no ``[http] listen`` there is no
endpoint to ask (the default image serves the embedded calendar server and listens for no
webhooks), and the check passes: the container engine's own view of the process is all
there is. A listener on every address (``0.0.0.0``, ``::``) is asked on loopback. With TLS
the certificate names the public host, not loopback, so it is not verified: the check sends
no secret and only reads a status.
"""

from __future__ import annotations

import os
import ssl
import sys
import tomllib
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from typing import Any

from syncd.config_checks import parse_listen

TIMEOUT = 4.0  # seconds; Docker's default check timeout is 30 s, ours in the image 5 s
_ANY = {"0.0.0.0": "127.0.0.1", "::": "::1"}


def healthz_url(http: Mapping[str, Any]) -> str | None:
    """The loopback URL of ``/healthz`` for an ``[http]`` table; None: no listener."""
    listen = http.get("listen")
    parsed = parse_listen(listen) if isinstance(listen, str) else None
    if parsed is None:
        return None
    host, port = parsed
    host = _ANY.get(host, host)
    tls = bool(http.get("certificate")) and bool(http.get("private_key"))
    shown = f"[{host}]" if ":" in host else host
    return f"{'https' if tls else 'http'}://{shown}:{port}/healthz"


def check(url: str, timeout: float = TIMEOUT) -> bool:
    """Whether ``url`` answers 200 within ``timeout``."""
    context = ssl._create_unverified_context() if url.startswith("https:") else None
    try:
        with urllib.request.urlopen(url, timeout=timeout, context=context) as answer:
            return int(answer.status) == 200
    except (urllib.error.URLError, OSError, ValueError):
        return False


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    path = args[0] if args else os.environ.get("SYNCD_CONFIG")
    if not path:
        return 0  # the built-in config: no listener
    try:
        with open(path, "rb") as handle:
            config = tomllib.load(handle)
    except (OSError, tomllib.TOMLDecodeError) as exc:
        print(f"syncd healthcheck: cannot read {path}: {exc}", file=sys.stderr)
        return 1
    http = config.get("http")
    url = healthz_url(http) if isinstance(http, dict) else None
    if url is None:
        return 0
    if check(url):
        return 0
    print(f"syncd healthcheck: {url} did not answer 200", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
