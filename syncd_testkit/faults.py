"""A loopback reverse proxy that injects faults between syncd and a server, seeded and counted.

Put :class:`FaultProxy` in front of a test server (Radicale, Xandikos, an emulator) and
point syncd at :attr:`FaultProxy.url`. Each request is decided on its own from a seeded
random generator, so a seed and the order of requests give the same faults again:

* ``server_error``: 503 in the provider's own error shape; the server never sees it.
* ``throttle``: 429 with ``Retry-After``; the server never sees it. Inside a Google batch
  or a Graph ``$batch`` each call may also be refused on its own (Google 429 or 403
  ``rateLimitExceeded``, Graph 429 and 424 for what depends on it), as those providers do:
  counted as ``throttle_parts``.
* ``lost_answer``: forwarded and applied, then the client's connection is closed with no
  answer: the ambiguous failure after a write.
* ``timeout``: forwarded and applied, then the answer is held ``hang_seconds`` and the
  connection closed: the client's read timeout fires first if it is shorter.
* ``reset``: the connection is reset (TCP RST) before forwarding.
* ``expired_token``: a request carrying a sync token gets the provider's expired-token
  answer (see :func:`syncd_testkit.fault_answers.expired_token`); only such requests.

At most one fault per request; each kind that applies to a request has its own rate, so
the rates of one request must add up to 1 or less. :meth:`FaultProxy.quiet` turns faults
off (the soak's final fault-free cycles) and :meth:`FaultProxy.counts` says what was
injected and what reached the server. The proxy underneath is
:class:`syncd_testkit.proxy.ReverseProxy` (keep-alive, link rewriting, request counts in
``proxy.traffic``, bounded bodies), shared with the benchmarks' latency proxy.

In a soak (what the tests in ``tests/soak/test_faults*.py`` found):

* syncd's clients give up on a silent server after ``[syncd] request_timeout_seconds``
  (30 by default; msal's token requests too); set it below ``hang_seconds`` so a
  ``timeout`` costs seconds, and say ``allow_insecure_http = true`` where credentials go
  to the proxy's ``http://`` URL.
* A failed cycle rests its account (60 s, doubling: ``syncd.store.status.backoff``); a
  soak that compresses time runs ``syncd resume NAME`` before the next cycle, or waits.
* A failed cycle keeps no new sync token, so ``expired_token`` only fires in cycles that
  follow one that got through: alternate heavy and light rates, or keep them moderate.
* httplib2 (Google) sends any request once more by itself after a lost answer, so the
  server may see a write twice (a 409 ``duplicate`` for an insert, which syncd adopts).
* One proxy per server: for Graph, the proxy fronts Graph; msal reaches the identity
  emulator through its own session (another proxy there faults sign-in).
"""

from __future__ import annotations

import random
import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from urllib.parse import parse_qs, urlsplit

from syncd_testkit import fault_answers, fault_batches
from syncd_testkit.fault_answers import PROVIDERS, Provider
from syncd_testkit.proxy import (
    READS,
    Plan,
    ProxyRequest,
    ReverseProxy,
    inner_calls,
    is_google_batch,
    is_graph_batch,
)

#: The kinds of fault, in the order their rate bands are laid out for one draw.
KINDS = ("expired_token", "server_error", "throttle", "reset", "lost_answer", "timeout")


@dataclass(frozen=True)
class FaultRates:
    """How often each fault hits a request it applies to (0 to 1 each; all six add up to 1
    at most, as a sync-token request may meet any of them)."""

    server_error: float = 0.0   # 503 before the server sees the request
    throttle: float = 0.0       # 429 + Retry-After before the server sees it (batches: per call)
    lost_answer: float = 0.0    # forwarded and applied, then the connection closed, no answer
    timeout: float = 0.0        # forwarded and applied, answer held hang_seconds, then closed
    reset: float = 0.0          # TCP reset before forwarding
    expired_token: float = 0.0  # a sync-token request answered as an expired token
    retry_after: float = 1.0    # seconds, in every Retry-After sent
    hang_seconds: float = 5.0   # how long a timeout holds the answer

    def __post_init__(self) -> None:
        for name in KINDS:
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"FaultRates.{name} = {value} is not between 0 and 1")
        if sum(getattr(self, name) for name in KINDS) > 1.0 + 1e-9:
            raise ValueError("FaultRates: the rates add up to more than 1 (at most one "
                             "fault per request)")
        if self.retry_after < 0 or self.hang_seconds < 0:
            raise ValueError("FaultRates: retry_after and hang_seconds must not be negative")



class FaultProxy(ReverseProxy):
    """A reverse proxy to ``upstream`` (``http://host:port``) that injects faults.

    ``provider`` says how the server words its answers (and which requests carry a sync
    token); ``seed`` makes the faults reproducible; ``latency`` delays every request.
    Safe for many client threads at once. Use as ``with FaultProxy(...) as proxy:`` or
    :meth:`start`/:meth:`stop`.
    """

    name = "fault-proxy"

    def __init__(self, upstream: str, rates: FaultRates, *, seed: int, provider: Provider,
                 latency: float = 0.0, timeout: float = 120.0) -> None:
        if provider not in PROVIDERS:
            raise ValueError(f"provider {provider!r} is not one of {', '.join(PROVIDERS)}")
        super().__init__(upstream, latency=latency, timeout=timeout)
        self.provider: Provider = provider
        self.seed = seed
        self._rates = rates
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self._quiet = 0
        self._counts: Counter[str] = Counter()
        self._delta_starts: dict[str, str] = {}  # Graph: delta path -> its chain's first URL

    # --- the agreed interface --------------------------------------------------------------

    def set_rates(self, rates: FaultRates) -> None:
        """Use ``rates`` from the next request on."""
        with self._lock:
            self._rates = rates

    @contextmanager
    def quiet(self) -> Iterator[None]:
        """No faults inside (nestable; for every thread while any quiet block is open)."""
        with self._lock:
            self._quiet += 1
        try:
            yield
        finally:
            with self._lock:
                self._quiet -= 1

    def counts(self) -> dict[str, int]:
        """Faults injected by kind (and ``throttle_parts``: calls refused inside batches),
        ``received``: requests the proxy got, ``requests``: requests forwarded to the
        server, ``writes``: write calls forwarded (each call of a batch counts).

        ``received`` = ``requests`` + ``server_error`` + ``throttle`` + ``reset`` +
        ``expired_token`` + ``batches_refused`` (batches whose every call was refused);
        ``lost_answer`` and ``timeout`` were forwarded (counted in ``requests`` too).
        """
        with self._lock:
            counted = dict.fromkeys((*KINDS, "throttle_parts", "batches_refused", "received",
                                     "requests", "writes"), 0)
            counted.update(self._counts)
            return counted

    # --- deciding ----------------------------------------------------------------------------

    def _applies(self, kind: str, request: ProxyRequest) -> bool:
        if kind == "expired_token":
            return fault_answers.carries_sync_token(self.provider, request)
        return True

    def _draw(self, request: ProxyRequest) -> tuple[str | None, list[bool], list[bool], float]:
        """(the request's fault kind, calls of a batch to refuse, which of them as 403, a
        variant draw), all from the generator under the lock."""
        rates = self._rates
        self._counts["received"] += 1
        if self._quiet:
            return None, [], [], 0.0
        draw = self._rng.random()
        kind = None
        for name in KINDS:
            rate = getattr(rates, name) if self._applies(name, request) else 0.0
            if draw < rate:
                kind = name
                break
            draw -= rate
        variant = self._rng.random()
        refuse: list[bool] = []
        forbidden: list[bool] = []
        calls = self._batch_size(request) if kind is None and rates.throttle else 0
        for _ in range(calls):
            refuse.append(self._rng.random() < rates.throttle)
            forbidden.append(self._rng.random() < 0.5)
        return kind, refuse, forbidden, variant

    def _batch_size(self, request: ProxyRequest) -> int:
        if self.provider == "google" and is_google_batch(request.method, request.path):
            return fault_batches.google_part_count(request)
        if self.provider == "graph" and is_graph_batch(request.method, request.path):
            return len(fault_batches.graph_items(request) or [])
        return 0

    def plan(self, request: ProxyRequest) -> Plan:
        self._remember_delta_start(request)
        with self._lock:
            kind, refuse, forbidden, variant = self._draw(request)
            rates = self._rates
            if kind is not None:
                self._counts[kind] += 1
        plan = self._plan_for(kind, request, rates, variant)
        cut = None
        if kind is None and any(refuse):
            cut = (fault_batches.google_cut(request, refuse, forbidden)
                   if self.provider == "google"
                   else fault_batches.graph_cut(request, refuse, rates.retry_after))
        if cut is not None:
            with self._lock:
                self._counts["throttle_parts"] += cut.refused
            if cut.body is None:
                with self._lock:
                    self._counts["batches_refused"] += 1
                return Plan(answer=cut.answer)
            plan = Plan(body=cut.body, rewrite=cut.merge)
        if plan.answer is None and not plan.reset:
            self._count_forwarded(request, plan.body)
        return plan

    def _plan_for(self, kind: str | None, request: ProxyRequest, rates: FaultRates,
                  variant: float) -> Plan:
        provider = self.provider
        if kind == "server_error":
            return Plan(answer=fault_answers.server_error(provider, request))
        if kind == "throttle":
            return Plan(answer=fault_answers.throttled(provider, request, rates.retry_after))
        if kind == "reset":
            return Plan(reset=True)
        if kind == "expired_token":
            restart = self._delta_restart(request) if variant < 0.5 else None
            return Plan(answer=fault_answers.expired_token(provider, request, restart=restart))
        if kind == "lost_answer":
            return Plan(then="close")
        if kind == "timeout":
            return Plan(then="hold", hold=rates.hang_seconds)
        return Plan()

    def _count_forwarded(self, request: ProxyRequest, body: bytes | None) -> None:
        calls, _ = inner_calls(request.method, request.path,
                               request.body if body is None else body)
        with self._lock:
            self._counts["requests"] += 1
            self._counts["writes"] += sum(n for m, n in calls.items() if m not in READS)

    # --- Graph's 410 Location: the delta chain's first URL -------------------------------------

    def _remember_delta_start(self, request: ProxyRequest) -> None:
        if self.provider != "graph" or request.method != "GET":
            return
        parts = urlsplit(request.path)
        if not parts.path.endswith("/delta"):
            return
        query = parse_qs(parts.query, keep_blank_values=True)
        if "$deltatoken" not in query and "$skiptoken" not in query:
            with self._lock:
                self._delta_starts[parts.path] = request.path

    def _delta_restart(self, request: ProxyRequest) -> str | None:
        if self.provider != "graph":
            return None
        with self._lock:
            start = self._delta_starts.get(urlsplit(request.path).path)
        if start is None:
            return None
        joiner = "&" if "?" in start else "?"
        return f"{self.url}{start}{joiner}$deltatoken="

