"""A stand-in for syncd's /hooks/google: answers as told and keeps every notification."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest

from syncd_testkit.loopback import HandlerServer, QuietHandler


@dataclass
class Hook:
    """A receiver answering ``statuses`` in turn (then 200), keeping every request's
    headers (names in lower case); with a ``gate`` it answers only once the gate opens."""

    address: str = ""
    received: list[dict[str, str]] = field(default_factory=list)
    statuses: list[int] = field(default_factory=list)
    gate: threading.Event | None = None

    def states(self) -> list[tuple[str, int]]:
        return [(h["x-goog-resource-state"], int(h["x-goog-message-number"]))
                for h in self.received]


@pytest.fixture
def hook() -> Iterator[Hook]:
    found = Hook()

    class Handler(QuietHandler):
        def do_POST(self) -> None:
            if found.gate is not None:
                found.gate.wait(10)
            found.received.append({k.lower(): v for k, v in self.headers.items()})
            self.reply(found.statuses.pop(0) if found.statuses else 200)

    with HandlerServer(Handler) as server:
        found.address = f"{server.origin}/hooks/google"
        yield found
