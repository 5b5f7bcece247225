"""The environment's HTTP settings (proxies, ``no_proxy``, CA bundle), read once per host.

A ``requests.Session`` that trusts the environment (the default, and what an admin behind
a proxy needs) reads it again on every request: ``merge_environment_settings`` walks the
whole environment twice (the proxy variables, then ``no_proxy``'s bypass) and looks up
the CA bundle's variables. On an idle Outlook cycle's one request that was 1,754 of the
cycle's ~10,100 Python calls (``bench/idle.py --profile``). A daemon's environment does
not change while it runs, so :func:`read_environment_once` makes a client's session (the
Graph connector's, the Pipedrive source's) keep what the environment said for each scheme
and host the first time, for as long as the session lives (a connector is made again each
day and on a changed config, a CRM source with the service). What the request and the
session themselves set is merged as requests merges it. It lives in the base layer so
that the CRM sources, which may not import the connectors, share it.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import requests

#: Distinct (host, settings) keys one session keeps before it starts over: a client
#: talks to one API host and one sign-in host, so this is never reached in practice.
MAX_KEPT = 64


class _MergedOnce:
    """A session's ``merge_environment_settings``, remembered per host and settings."""

    def __init__(self, session: requests.Session) -> None:
        self.session = session
        self.merge = session.merge_environment_settings  # the class's, bound
        self.kept: dict[tuple[Any, ...], dict[str, Any]] = {}

    def __call__(self, url: str, proxies: Any, stream: Any, verify: Any,
                 cert: Any) -> dict[str, Any]:
        s = self.session
        parts = urlsplit(url)
        key = (parts.scheme, parts.netloc.lower(), _frozen(proxies), stream, verify, cert,
               _frozen(s.proxies), s.stream, s.verify, s.cert, s.trust_env)
        merged = self.kept.get(key)
        if merged is None:
            merged = self.merge(url, proxies, stream, verify, cert)
            if len(self.kept) >= MAX_KEPT:
                self.kept.clear()
            self.kept[key] = merged
        # a fresh proxies dict each time: requests and adapters may add to it
        return {**merged, "proxies": dict(merged["proxies"])}


def _frozen(mapping: Any) -> Any:
    return tuple(sorted(mapping.items())) if mapping else None


def read_environment_once(session: requests.Session) -> requests.Session:
    """Make ``session`` read the environment's proxies and CA bundle once per scheme and
    host (see the module docstring); returns it. Anything but a ``requests.Session``
    (a test's stand-in) is returned as it is."""
    if isinstance(session, requests.Session) and not isinstance(
            session.__dict__.get("merge_environment_settings"), _MergedOnce):
        session.merge_environment_settings = _MergedOnce(session)  # type: ignore[method-assign]
    return session
