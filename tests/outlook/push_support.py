"""What the Graph push tests share: a receiver on a free loopback port over a fresh SQLite
state, and scripted stand-ins for a notification receiver."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from syncd.config import AccountConfig, Config, HttpConfig
from syncd.http.receiver import Receiver
from syncd.push import AccountDirectory
from syncd.store.channels import ChannelStore
from syncd.store.db import Database
from syncd.store.dirty import DirtyFlags
from syncd_testkit.loopback import QuietHandler, ThreadedHTTPServer, bound


@dataclass
class Listening:
    """A real :class:`Receiver` (so the real ``/hooks/graph``) and what it woke."""

    receiver: Receiver
    db: Database
    woken: list[set[str]] = field(default_factory=list)

    @property
    def channels(self) -> ChannelStore:
        return self.receiver.channels

    @property
    def address(self) -> str:
        return self.receiver.url + "/hooks/graph"

    def flagged(self) -> set[str]:
        assert self.receiver.hints.settle()
        return DirtyFlags(self.db).flagged()


def listening(tmp_path: Path, accounts: tuple[AccountConfig, ...] = (),
              max_body_bytes: int = 1024 * 1024) -> Iterator[Listening]:
    """Start a receiver; a generator for a fixture to yield from."""
    db = Database(f"sqlite:///{tmp_path / 'syncd.db'}")
    config = Config(data_dir=str(tmp_path / "data"), accounts=accounts,
                    http=HttpConfig(listen="127.0.0.1:8765", max_body_bytes=max_body_bytes))
    woken: list[set[str]] = []
    receiver = Receiver(config, AccountDirectory(lambda: config.accounts, lambda _: None),
                        DirtyFlags(db), woken.append, port=0)
    receiver.start()
    try:
        yield Listening(receiver, db, woken)
    finally:
        receiver.stop()
        db.close()


@dataclass
class Posted:
    """One POST a :class:`ScriptedReceiver` got."""

    path: str
    query: dict[str, list[str]]
    body: bytes

    def items(self) -> list[dict[str, Any]]:
        return list(json.loads(self.body)["value"])


class ScriptedReceiver(ThreadedHTTPServer):
    """A notification receiver whose answers a test scripts.

    Handshakes are echoed correctly unless ``echo`` says otherwise; notifications are
    answered by ``answer`` (a status per call, 202 when it returns None) after
    ``delay_seconds``.
    """

    name = "graph-receiver-stub"

    def __init__(self) -> None:
        self.posted: list[Posted] = []
        self.echo: Callable[[str], tuple[int, str, bytes]] = lambda token: (
            200, "text/plain", token.encode())
        self.answer: Callable[[Posted], int | None] = lambda _: None
        self.delay_seconds = 0.0
        self.handshake_delay_seconds = 0.0
        self._lock = threading.Lock()

    def handler(self) -> type[_Handler]:
        return bound(_Handler, stub=self)

    @property
    def address(self) -> str:
        return self.origin + "/hooks/graph"

    def notifications(self) -> list[Posted]:
        with self._lock:
            return [p for p in self.posted if "validationToken" not in p.query]

    def items(self) -> list[dict[str, Any]]:
        return [item for p in self.notifications() for item in p.items()]


class _Handler(QuietHandler):
    stub: ScriptedReceiver

    def do_POST(self) -> None:
        parts = urlsplit(self.path)
        posted = Posted(parts.path, parse_qs(parts.query), self.read_body())
        with self.stub._lock:
            self.stub.posted.append(posted)
        if "validationToken" in posted.query:
            time.sleep(self.stub.handshake_delay_seconds)
            status, kind, body = self.stub.echo(posted.query["validationToken"][0])
            self.reply(status, body, {"Content-Type": kind})
        else:
            time.sleep(self.stub.delay_seconds)
            self.reply(self.stub.answer(posted) or 202)
