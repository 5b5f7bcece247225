"""``/metrics``, ``/healthz`` and ``/readyz``: what an admin's monitoring reads.

``/metrics`` (:mod:`syncd.metrics`) asks for Basic auth like every other endpoint that
says something (user ``syncd``, the password in ``data_dir/http/metrics.secret``, made
0600 on the daemon's first start with a listener; Prometheus reads it with
``basic_auth.password_file``). ``/healthz`` and ``/readyz`` say only "OK" or "Service
Unavailable", so they stay open for load balancers and container engines:

* ``/healthz``: 200 while the process runs its scheduler (the liveness probe: restart
  syncd when it fails);
* ``/readyz``: 200 while the database answers a ``SELECT 1`` within
  :data:`PROBE_SECONDS` and syncd is not shutting down; 503 otherwise.

The database probe runs on a thread of its own with one probe at a time, so a database
that hangs holds neither a listener thread nor more than one connection attempt.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from pathlib import Path

from syncd.http.basic_auth import BasicAuthSecret
from syncd.http.router import Request, Response, Route, Router
from syncd.metrics import CONTENT_TYPE, CountsOwner, Metrics

log = logging.getLogger("syncd.http")

PROBE_SECONDS = 2.0  # how long /readyz waits for the database's answer


def metrics_secret(data_dir: Path) -> BasicAuthSecret:
    """The password ``/metrics`` asks for: made on first use (0600, in a 0700 folder);
    an admin may write their own into the file (read again when it changes)."""
    secret = BasicAuthSecret(data_dir, "metrics", folder="http")
    if secret.read() is None:
        secret.create()
    return secret


class DatabaseProbe:
    """Whether ``ping`` (a ``SELECT 1``) succeeds within ``timeout`` seconds."""

    def __init__(self, ping: Callable[[], None], timeout: float = PROBE_SECONDS) -> None:
        self.ping, self.timeout = ping, timeout
        self._lock = threading.Lock()
        self._done: threading.Event | None = None  # the probe in flight, if any
        self._ok = False

    def reachable(self) -> bool:
        with self._lock:
            if self._done is None:  # no probe in flight: start one
                self._done = threading.Event()
                threading.Thread(target=self._probe, args=(self._done,),
                                 name="syncd-readyz", daemon=True).start()
            done = self._done
        return done.wait(self.timeout) and self._ok

    def _probe(self, done: threading.Event) -> None:
        try:
            self.ping()
            ok = True
        except Exception:
            log.debug("readyz: the database did not answer", exc_info=True)
            ok = False
        with self._lock:
            self._ok = ok
            self._done = None
        done.set()


class Ops:
    """The three endpoints of one daemon.

    ``alive``: the scheduler runs; ``stopping``: shutdown has begun; ``probe``: the
    database check.
    """

    def __init__(self, metrics: Metrics, secret: BasicAuthSecret, *,
                 alive: Callable[[], bool], stopping: Callable[[], bool],
                 probe: DatabaseProbe) -> None:
        self.metrics, self.secret = metrics, secret
        self.alive, self.stopping, self.probe = alive, stopping, probe

    def routes(self) -> list[Route]:
        return [Route("/metrics", self.scrape, methods=("GET",), max_body=0),
                Route("/healthz", self.healthz, methods=("GET",), max_body=0),
                Route("/readyz", self.readyz, methods=("GET",), max_body=0)]

    def scrape(self, request: Request) -> Response:
        if not self.secret.accepts(request.headers.get("authorization")):
            return Response.text(401, WWW_Authenticate='Basic realm="syncd metrics"')
        return Response(200, self.metrics.render(), content_type=CONTENT_TYPE)

    def watch(self, router: Router, **more: CountsOwner) -> None:
        """Export the counts of every hook ``router`` serves (whenever mounted), and of
        ``more``, by name."""
        self.metrics.watch_hooks(lambda: {**mounted_hooks(router), **more})

    def healthz(self, _request: Request) -> Response:
        return Response.text(200 if self.alive() else 503)

    def readyz(self, _request: Request) -> Response:
        ready = not self.stopping() and self.probe.reachable()
        return Response.text(200 if ready else 503)


def mounted_hooks(router: Router) -> dict[str, CountsOwner]:
    """Every endpoint whose handler's object keeps ``counts`` (a hook), named by the last
    part of its shortest path (``/hooks/graph``, not ``/hooks/graph/lifecycle``: one hook
    with two endpoints is exported once)."""
    found: dict[str, CountsOwner] = {}
    seen: set[int] = set()
    for path in sorted(router.routes, key=lambda p: (len(p), p)):
        owner = getattr(router.routes[path].handler, "__self__", None)
        if id(owner) in seen or not isinstance(getattr(owner, "counts", None), Mapping):
            continue
        seen.add(id(owner))
        found[path.rstrip("/").rsplit("/", 1)[-1]] = owner  # type: ignore[assignment]
    return found
