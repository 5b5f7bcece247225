"""Requests seen by the providers' transports, for whoever listens (the daemon's metrics).

Every transport (Google, Graph, CalDAV, Pipedrive) calls :func:`request_answered` at the
one place it gets an answer or none, so requests are counted in one way everywhere while
the transports stay in their layer: this module imports nothing of syncd. Nothing listens
in a CLI run; the daemon's :class:`syncd.metrics.Metrics` listens while it serves
``/metrics``.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

log = logging.getLogger("syncd.telemetry")

#: (provider, status): the HTTP status, or 0 when no answer came (network failure).
Listener = Callable[[str, int], None]

_lock = threading.Lock()
_listeners: tuple[Listener, ...] = ()  # replaced whole, so callers read it without the lock


def listen(listener: Listener) -> Callable[[], None]:
    """Call ``listener`` for every request answered from now on; returns its removal."""
    global _listeners
    with _lock:
        _listeners = (*_listeners, listener)

    def remove() -> None:
        global _listeners
        with _lock:
            _listeners = tuple(x for x in _listeners if x is not listener)

    return remove


def request_answered(provider: str, status: int) -> None:
    """One request to ``provider`` ended with ``status`` (0: no answer). Never raises:
    counting must not fail a request."""
    for listener in _listeners:
        try:
            listener(provider, status)
        except Exception:
            log.debug("a request listener failed", exc_info=True)
