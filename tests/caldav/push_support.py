"""What the WebDAV-Push tests share: Xandikos with ``--webdav-push``, a TLS receiver on
loopback it can deliver to, and a wait on what the receiver counted."""

from __future__ import annotations

import json
import secrets
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from connectors.base import Channel
from connectors.caldav import CalDAVCalendar
from syncd.config import AccountConfig, Config, HttpConfig
from syncd.http.receiver import Receiver
from syncd.push import AccountDirectory
from syncd.store.channels import ChannelStore
from syncd.store.db import Database
from syncd.store.dirty import DirtyFlags
from syncd_testkit.servers import DavServer, XandikosPushServer
from syncd_testkit.tls import self_signed

DELIVERY_WAIT = 30.0  # seconds a delivery may take on a loaded machine


@pytest.fixture(scope="session")
def push_tls(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(certificate, key) of the loopback receiver; Xandikos trusts the certificate."""
    return self_signed(tmp_path_factory.mktemp("push-tls"))


@pytest.fixture(scope="session")
def xandikos_push(tmp_path_factory: pytest.TempPathFactory,
                  push_tls: tuple[Path, Path]) -> Iterator[XandikosPushServer]:
    server = XandikosPushServer(tmp_path_factory.mktemp("xandikos-push"), push_tls[0])
    server.start()
    yield server
    server.stop()


@dataclass
class PushReceiver:
    """syncd's receiver serving TLS on a free loopback port, over a fresh SQLite state."""

    receiver: Receiver
    channels: ChannelStore
    dirty: DirtyFlags
    woken: list[set[str]] = field(default_factory=list)

    @property
    def address(self) -> str:
        return f"{self.receiver.url}/hooks/webdav"

    def wait(self, what: str, at_least: int = 1, timeout: float = DELIVERY_WAIT) -> int:
        """The hook's count of ``what`` once it reaches ``at_least`` (or the timeout)."""
        return wait_for(lambda: self.receiver.webdav.counts[what], at_least, timeout)


def wait_for(count: Callable[[], int], at_least: int, timeout: float = DELIVERY_WAIT) -> int:
    deadline = time.monotonic() + timeout
    while count() < at_least and time.monotonic() < deadline:
        time.sleep(0.05)
    return count()


@pytest.fixture
def push_receiver(tmp_path: Path, push_tls: tuple[Path, Path]) -> Iterator[PushReceiver]:
    db = Database(f"sqlite:///{tmp_path / 'syncd.db'}")
    config = Config(data_dir=str(tmp_path / "data"),
                    http=HttpConfig(listen="127.0.0.1:8765", certificate=str(push_tls[0]),
                                    private_key=str(push_tls[1])))
    dirty = DirtyFlags(db)
    woken: list[set[str]] = []
    receiver = Receiver(config, AccountDirectory(lambda: (), lambda _: None), dirty,
                        woken.append, port=0)
    receiver.start()
    try:
        yield PushReceiver(receiver, ChannelStore(db), dirty, woken)
    finally:
        receiver.stop()
        db.close()


def push_calendar(server: XandikosPushServer) -> str:
    """A new, empty calendar on the push-enabled Xandikos; its URL."""
    import caldav

    client = caldav.DAVClient(url=server.url, username="user", password="x")
    name = f"c{uuid.uuid4().hex[:10]}"
    return str(client.principal().make_calendar(name=name, cal_id=name).url)


def connector(server: DavServer, calendar_url: str, name: str = "dav",
              user: str = "user") -> CalDAVCalendar:
    account = AccountConfig(name=name, provider="caldav", owner="user@example.com",
                            calendar=calendar_url, auth={"url": server.url, "username": user})
    return CalDAVCalendar(account, owner_tz="Europe/Oslo")


def watched(calendar: CalDAVCalendar, receiver: PushReceiver, account: str = "dav",
            days: int = 2) -> tuple[Channel, str]:
    """Open a channel for ``calendar`` and save it as the keeper would; the channel and
    the push resource Xandikos delivers to."""
    channel_id, token = uuid.uuid4().hex, secrets.token_urlsafe(32)
    asked = datetime.now(UTC).replace(microsecond=0) + timedelta(days=days)
    channel = calendar.watch(receiver.address, channel_id, token, asked)
    receiver.channels.save(account, "webdav", channel_id=channel.id, token=token,
                           expires_at=channel.expires_at, resource_id=channel.resource_id,
                           details=channel.details)
    return channel, f"{receiver.address}/{channel.id}/{token}"


def stored_subscriptions(server: XandikosPushServer, calendar_url: str) -> list[str]:
    """The push resources Xandikos holds for the calendar (from its own store file)."""
    name = calendar_url.rstrip("/").rsplit("/", 1)[-1]
    stored = next((server.folder / "data").rglob(f"{name}/push-subscriptions.json"), None)
    if stored is None:
        return []
    subs = json.loads(stored.read_text()).get("subscriptions", {}).values()
    return sorted(str(s["push_resource"]) for s in subs)
