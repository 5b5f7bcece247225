"""Fault rules and request recording for the Pipedrive emulator's API side.

Delivery-side faults (dropped, duplicated, delayed webhook messages) live in
``pipedrive_webhooks.DeliveryFaults``.
"""

from __future__ import annotations

import json
import re
import threading
from dataclasses import dataclass, field
from typing import Any


@dataclass
class RecordedRequest:
    """One API request: lower-cased header names, every value of each query parameter, the
    status answered (``None`` while running or when the connection was dropped) and the
    tokens it cost."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes
    status: int | None = None
    cost: int = 0

    def param(self, name: str) -> str | None:
        """The first value of query parameter ``name``."""
        values = self.query.get(name)
        return values[0] if values else None

    def json(self) -> Any:
        """The body parsed as JSON (``None`` when empty)."""
        return json.loads(self.body) if self.body else None


@dataclass
class FaultRule:
    """A scripted failure matched on ``method`` (``None`` = any) and ``path`` (a regex searched
    in the path, ``None`` = any); fires ``count`` times (``None`` = forever).

    The effect: ``status`` answers that error with Pipedrive's JSON body (5xx, 401, 403...);
    ``delay_seconds`` waits (real seconds) first, long enough for a client timeout;
    ``drop`` closes the connection without an answer; ``after=True`` runs the call first and
    then fails (the write happened, the client does not know)."""

    method: str | None = None
    path: str | None = None
    count: int | None = 1
    status: int | None = None
    message: str = "Internal server error"
    delay_seconds: float = 0.0
    drop: bool = False
    after: bool = False
    fired: int = field(default=0, init=False)

    def matches(self, method: str, path: str) -> bool:
        """Whether the rule applies (ignores the count)."""
        if self.method is not None and self.method.upper() != method.upper():
            return False
        return self.path is None or re.search(self.path, path) is not None

    @property
    def exhausted(self) -> bool:
        """True once the rule has fired ``count`` times."""
        return self.count is not None and self.fired >= self.count


class FaultInjector:
    """The emulator's rules, tried in the order added; thread-safe."""

    def __init__(self) -> None:
        self._rules: list[FaultRule] = []
        self._lock = threading.Lock()

    def add(self, rule: FaultRule) -> None:
        with self._lock:
            self._rules.append(rule)

    def clear(self) -> None:
        with self._lock:
            self._rules.clear()

    def take(self, method: str, path: str) -> FaultRule | None:
        """The first live rule for the request, counted as fired."""
        with self._lock:
            for rule in self._rules:
                if not rule.exhausted and rule.matches(method, path):
                    rule.fired += 1
                    return rule
        return None
