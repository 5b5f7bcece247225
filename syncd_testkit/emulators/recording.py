"""What the emulators share: the record of a request they received, the book of scripted
faults they consult before answering one, and the record of a meeting mail they would send."""

from __future__ import annotations

import json
import re
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar


@dataclass(frozen=True)
class MailRecord:
    """One message the service would have sent to an attendee: ``kind`` is invite, update or
    cancel; ``organizer`` the calendar's owner (the mailbox, or the Google calendar's owner)
    in whose name it goes out."""

    kind: str
    recipient: str
    event_id: str
    subject: str
    organizer: str = ""


@dataclass
class RecordedRequest:
    """One request: lower-cased header names, every value of each query parameter, and the
    status answered (``None`` while running or when the connection was dropped)."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes
    status: int | None = None
    #: When it arrived (seconds since the epoch, as the Graph emulator's records).
    timestamp: float = field(default_factory=time.time)

    def param(self, name: str) -> str | None:
        """The first value of query parameter ``name``."""
        values = self.query.get(name)
        return values[0] if values else None

    def json(self) -> Any:
        """The body parsed as JSON (``None`` when empty)."""
        return json.loads(self.body) if self.body else None


@dataclass
class MatchRule:
    """Which requests a scripted fault applies to: ``method`` (``None`` = any) and ``path``
    (a regex searched in the raw path, ``None`` = any); it fires ``count`` times (``None`` =
    forever). An emulator's rule adds what the fault does."""

    method: str | None = None
    path: str | None = None
    count: int | None = 1
    fired: int = field(default=0, init=False)

    def matches(self, method: str, path: str, inner: bool = False) -> bool:
        """Whether the rule applies to the request (ignores the remaining count)."""
        if self.method is not None and self.method.upper() != method.upper():
            return False
        return self.path is None or re.search(self.path, path) is not None

    @property
    def exhausted(self) -> bool:
        """True once the rule has fired ``count`` times."""
        return self.count is not None and self.fired >= self.count


R = TypeVar("R", bound=MatchRule)


class FaultBook(Generic[R]):
    """An emulator's rules, tried in the order added; thread-safe."""

    def __init__(self) -> None:
        self._rules: list[R] = []
        self._lock = threading.Lock()

    def add(self, rule: R) -> None:
        with self._lock:
            self._rules.append(rule)

    def clear(self) -> None:
        with self._lock:
            self._rules.clear()

    def take(self, method: str, path: str, inner: bool = False) -> R | None:
        """The first live rule matching the request, counted as fired."""
        with self._lock:
            for rule in self._rules:
                if not rule.exhausted and rule.matches(method, path, inner):
                    rule.fired += 1
                    return rule
        return None
