"""The benchmarks' network: the shared reverse proxy with a fixed latency per request.

The proxy itself (keep-alive on both sides, absolute links rewritten, requests counted
per outer method and per API call inside Google and Graph batches) is
:class:`syncd_testkit.proxy.ReverseProxy`; the chaos soak puts the same proxy, injecting
faults, in front of its servers (:mod:`syncd_testkit.faults`).
"""

from __future__ import annotations

from syncd_testkit.proxy import ReverseProxy


class LatencyProxy(ReverseProxy):
    """Forward everything to ``upstream_host:upstream_port`` after ``latency`` seconds.

    Use :meth:`start`, then clients talk to :attr:`url`; :attr:`traffic` holds the tallies.
    """

    name = "latency-proxy"

    def __init__(self, upstream_host: str, upstream_port: int, latency: float,
                 timeout: float = 120.0) -> None:
        super().__init__(f"http://{upstream_host}:{upstream_port}", latency=latency,
                         timeout=timeout)
