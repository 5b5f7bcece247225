"""/hooks/google: who may notify, what a notification flags, what hostile headers get.

Unit tests call the hook directly; the rest go over real HTTP to the daemon's receiver,
including notifications the emulator itself delivers."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests

from syncd.config import AccountConfig, Config, HttpConfig
from syncd.http.google_hook import GoogleHook, read_notification
from syncd.http.receiver import Receiver
from syncd.http.router import Request
from syncd.push import AccountDirectory, Hints
from syncd.store.channels import ChannelStore
from syncd.store.db import Database
from syncd.store.dirty import DirtyFlags
from syncd_testkit.emulators.google import GoogleEmulator

from .helpers import connector

TOKEN = "the-channel-token"
ACCOUNT = "alice-work"


@dataclass
class Setup:
    db: Database
    channels: ChannelStore
    dirty: DirtyFlags
    hints: Hints
    hook: GoogleHook
    woken: list[set[str]] = field(default_factory=list)

    def post(self, **headers: str) -> int:
        request = Request("POST", "/hooks/google", "", {k.lower(): v for k, v in
                                                        headers.items()}, b"", "127.0.0.1")
        return self.hook.handle(request).status

    def flagged(self) -> set[str]:
        assert self.hints.settle()
        return self.dirty.flagged()


def notification(number: int = 2, state: str = "exists", **override: str | None
                 ) -> dict[str, str]:
    headers: dict[str, str | None] = {
        "X-Goog-Channel-ID": "chan-1", "X-Goog-Channel-Token": TOKEN,
        "X-Goog-Channel-Expiration": "Tue, 08 Dec 2026 10:00:00 GMT",
        "X-Goog-Resource-ID": "res-1",
        "X-Goog-Resource-URI": "https://www.googleapis.com/calendar/v3/calendars/x/events",
        "X-Goog-Resource-State": state, "X-Goog-Message-Number": str(number),
    }
    headers.update({k.replace("_", "-"): v for k, v in override.items()})
    return {k: v for k, v in headers.items() if v is not None}


@pytest.fixture(scope="module")
def database(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Database]:
    db = Database(f"sqlite:///{tmp_path_factory.mktemp('hook') / 'syncd.db'}")
    yield db
    db.close()


@pytest.fixture
def setup(database: Database) -> Iterator[Setup]:
    db = database  # migrated once: each test starts from fresh channel rows and no flag
    channels = ChannelStore(db)
    channels.save(ACCOUNT, "google", channel_id="chan-1", token=TOKEN,
                  expires_at=datetime.now(UTC) + timedelta(days=1), resource_id="res-1")
    channels.save("graph-acct", "graph", channel_id="sub-1", token=TOKEN,
                  expires_at=datetime.now(UTC) + timedelta(days=1), resource_id="res-1")
    dirty = DirtyFlags(db)
    dirty.take(ACCOUNT)
    woken: list[set[str]] = []
    hints = Hints(AccountDirectory(lambda: [], lambda email: None), dirty, woken.append)
    hints.start()
    try:
        yield Setup(db, channels, dirty, hints, GoogleHook(channels, hints), woken)
    finally:
        hints.stop()


def test_a_change_flags_the_channels_account_and_records_the_message(setup: Setup) -> None:
    assert setup.post(**notification(2)) == 200
    assert setup.flagged() == {ACCOUNT}
    assert setup.woken == [{ACCOUNT}]
    row = setup.channels.get(ACCOUNT)
    assert row is not None and row.last_message_number == 2
    assert row.last_message_at is not None
    assert setup.hook.counts == {"accepted": 1}


def test_not_exists_is_a_change_too(setup: Setup) -> None:
    assert setup.post(**notification(2, "not_exists")) == 200
    assert setup.flagged() == {ACCOUNT}


def test_the_sync_message_only_says_the_channel_is_alive(setup: Setup) -> None:
    setup.channels.expect(ACCOUNT, datetime.now(UTC) + timedelta(minutes=5))
    assert setup.post(**notification(1, "sync")) == 200
    assert setup.flagged() == set()
    row = setup.channels.get(ACCOUNT)
    assert row is not None and row.last_message_number == 1 and row.expect_by is None
    assert setup.hook.counts == {"handshake": 1}


def test_a_replayed_or_late_message_makes_no_second_hint(setup: Setup) -> None:
    assert setup.post(**notification(5)) == 200
    assert setup.flagged() == {ACCOUNT}
    setup.dirty.take(ACCOUNT)
    assert setup.post(**notification(5)) == 200  # Google's retry, or a replay
    assert setup.post(**notification(3)) == 200  # arrived after a later one
    assert setup.flagged() == set()
    assert setup.hook.counts == {"accepted": 1, "replayed": 2}


def test_an_unknown_channel_is_counted_answered_200_and_does_nothing(setup: Setup) -> None:
    assert setup.post(**notification(X_Goog_Channel_ID="chan-stopped-long-ago")) == 200
    assert setup.flagged() == set()
    assert setup.hook.counts == {"unknown_channel": 1}


@pytest.mark.parametrize(("override", "status"), [
    ({"X_Goog_Channel_Token": "guessed"}, 401),
    ({"X_Goog_Channel_Token": None}, 401),
    ({"X_Goog_Channel_Token": TOKEN + "x"}, 401),
    ({"X_Goog_Resource_ID": "another-calendar"}, 403),
    ({"X_Goog_Channel_ID": "sub-1"}, 403),  # another provider's channel, its token right
])
def test_forged_notifications_are_refused_counted_and_make_no_cycle(
        setup: Setup, override: dict[str, str | None], status: int) -> None:
    assert setup.post(**notification(**override)) == status
    assert setup.flagged() == set() and setup.woken == []
    assert setup.hook.counts == {"forged": 1}
    row = setup.channels.get(ACCOUNT)
    assert row is not None and row.last_message_number is None


HOSTILE: list[dict[str, Any]] = [
    {"X_Goog_Channel_ID": None}, {"X_Goog_Channel_ID": ""}, {"X_Goog_Channel_ID": "c" * 65},
    {"X_Goog_Channel_ID": "chan-1\x00"}, {"X_Goog_Channel_ID": "chän-1"},
    {"X_Goog_Resource_ID": None}, {"X_Goog_Resource_ID": "r" * 257},
    {"X_Goog_Resource_ID": "res-1\n"},
    {"X_Goog_Resource_State": None}, {"X_Goog_Resource_State": "changed"},
    {"X_Goog_Resource_State": "EXISTS"},
    {"X_Goog_Message_Number": None}, {"X_Goog_Message_Number": ""},
    {"X_Goog_Message_Number": "-1"}, {"X_Goog_Message_Number": "1e3"},
    {"X_Goog_Message_Number": "2.0"}, {"X_Goog_Message_Number": "9" * 20},
    {"X_Goog_Message_Number": "٣"}, {"X_Goog_Message_Number": " 2"},
    {"X_Goog_Channel_Token": ""}, {"X_Goog_Channel_Token": "t" * 257},
    {"X_Goog_Channel_Token": "tok\ten"},
]


@pytest.mark.parametrize("override", HOSTILE)
def test_garbage_headers_are_answered_400_with_no_work(setup: Setup,
                                                       override: dict[str, Any]) -> None:
    assert setup.post(**notification(**override)) == 400
    assert setup.flagged() == set()
    assert setup.hook.counts == {"malformed": 1}
    row = setup.channels.get(ACCOUNT)
    assert row is not None and row.last_message_at is None


def test_the_largest_number_that_fits_is_read() -> None:
    note = read_notification({k.lower(): v for k, v in
                              notification(number=9_223_372_036_854_775_807).items()})
    assert note is not None and note.number == 2**63 - 1


# ---- over real HTTP -------------------------------------------------------------------------


@dataclass
class Live:
    receiver: Receiver
    channels: ChannelStore
    dirty: DirtyFlags

    @property
    def hook(self) -> str:
        return self.receiver.url + "/hooks/google"


@pytest.fixture
def live(tmp_path: Path) -> Iterator[Live]:
    db = Database(f"sqlite:///{tmp_path / 'syncd.db'}")
    config = Config(data_dir=str(tmp_path / "data"),
                    http=HttpConfig(listen="127.0.0.1:8765", max_body_bytes=64 * 1024),
                    accounts=(AccountConfig(ACCOUNT, "google", "alice@example.com"),))
    dirty = DirtyFlags(db)
    receiver = Receiver(config, AccountDirectory(lambda: config.accounts, lambda e: None),
                        dirty, lambda names: None, port=0)
    receiver.start()
    try:
        yield Live(receiver, receiver.channels, dirty)
    finally:
        receiver.stop()
        db.close()


def test_the_receiver_serves_the_hook_and_refuses_what_is_not_a_notification(
        live: Live) -> None:
    live.channels.save(ACCOUNT, "google", channel_id="chan-1", token=TOKEN,
                       expires_at=datetime.now(UTC) + timedelta(days=1), resource_id="res-1")
    ok = requests.post(live.hook, headers=notification(), timeout=10)
    assert ok.status_code == 200
    assert requests.get(live.hook, timeout=10).status_code == 405
    big = requests.post(live.hook, headers=notification(3), data=b"x" * 4096, timeout=10)
    assert big.status_code == 413
    assert requests.post(live.hook, headers={"X-Goog-Channel-ID": "x" * 10_000},
                         timeout=10).status_code in (400, 413, 431)
    assert live.receiver.hints.settle()
    assert live.dirty.flagged() == {ACCOUNT}
    assert live.receiver.google.counts["accepted"] == 1


def test_a_change_in_google_flags_the_account_through_the_emulators_notification(
        live: Live, google_emulator: GoogleEmulator) -> None:
    calendar = connector(google_emulator)
    channel = calendar.watch(live.hook, "chan-9", TOKEN,
                             datetime.now(UTC) + timedelta(hours=1))
    live.channels.save(ACCOUNT, "google", channel_id=channel.id, token=TOKEN,
                       expires_at=channel.expires_at, resource_id=channel.resource_id)
    assert google_emulator.push.wait_idle()
    assert live.receiver.hints.settle()
    assert live.dirty.flagged() == set()  # the sync message is no change
    google_emulator.put_event("primary", {"summary": "x", "start": {"date": "2026-12-02"},
                                          "end": {"date": "2026-12-03"}})
    assert google_emulator.push.wait_idle()
    assert live.receiver.hints.settle()
    assert live.dirty.flagged() == {ACCOUNT}
    assert [d.status for d in google_emulator.push.deliveries] == [200, 200]
    counts = live.receiver.google.counts
    # The sync message may come before the channel is saved: Google sends it at once.
    assert counts["accepted"] == 1 and counts["handshake"] + counts["unknown_channel"] == 1
    calendar.close()
