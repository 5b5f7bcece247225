"""The network between syncd and a server in the soak: faults when the test kit has them.

:func:`open_proxy` returns the test kit's ``FaultProxy`` (``syncd_testkit/faults.py``)
when it is installed: it answers 5xx, 429 with Retry-After, times out after the server
applied a write, resets connections and expires sync tokens at the rates asked. Without
it, a pass-through (the benchmarks' latency proxy with no delay) stands in, so the soak
still runs its kills and its oracle; its table then says no faults were injected.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterator
from typing import Any

from bench.latency_proxy import LatencyProxy

#: The issue's rates: 5 % 5xx, 5 % 429 with Retry-After, 2 % timeouts after the server
#: applied the write, 1 % connection resets, occasional expired sync tokens (2 % of the
#: requests that carry one); and 1 % answers lost after the server applied the write.
DEFAULT_RATES = {"server_error": 0.05, "throttle": 0.05, "timeout": 0.02, "reset": 0.01,
                 "lost_answer": 0.01, "expired_token": 0.02, "retry_after": 1.0,
                 "hang_seconds": 3.0}
#: syncd's request timeout in the soak: below ``hang_seconds``, so a held answer costs
#: seconds, not the default 30.
REQUEST_TIMEOUT_SECONDS = 2
#: What ``FaultProxy.counts`` reports beside the faults: traffic, not faults.
TRAFFIC = ("received", "requests", "writes")


class PassThrough:
    """Stands in for ``FaultProxy`` until it exists: forwards everything, injects nothing."""

    injecting = False

    def __init__(self, upstream: str) -> None:
        host, _, port = upstream.removeprefix("http://").rstrip("/").partition(":")
        self._proxy = LatencyProxy(host, int(port.split("/", 1)[0]), 0.0)

    @property
    def url(self) -> str:
        return self._proxy.url

    def start(self) -> PassThrough:
        self._proxy.start()
        return self

    def stop(self) -> None:
        self._proxy.stop()

    def set_rates(self, rates: Any) -> None:
        """Nothing to set: this proxy injects nothing."""

    @contextlib.contextmanager
    def quiet(self) -> Iterator[None]:
        yield

    def counts(self) -> dict[str, int]:
        return {}


def open_proxy(upstream: str, *, provider: str, seed: int, rates: dict[str, float] | None
               ) -> Any:
    """A started proxy to ``upstream`` (``http://host:port``) for ``provider`` (google,
    graph, caldav or pipedrive); faults at ``rates`` (None: none) when the kit has them."""
    try:
        from syncd_testkit.faults import FaultProxy, FaultRates  # type: ignore[import-not-found]
    except ImportError:
        return PassThrough(upstream).start()
    known = {f.name for f in dataclasses.fields(FaultRates)}
    chosen = FaultRates(**{k: v for k, v in (rates or {}).items() if k in known})
    proxy = FaultProxy(upstream, chosen, seed=seed, provider=provider)  # type: ignore[arg-type]
    proxy.injecting = bool(rates)
    return proxy.start()
