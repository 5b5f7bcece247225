"""A receiver on a free loopback port over a fresh SQLite state, with three CRM users;
the Pipedrive emulator's fixture (``pipedrive_emulator``)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests

from syncd.config import AccountConfig, Config, HttpConfig
from syncd.crm.builtin import BuiltinSource
from syncd.crm.builtin.activities import ActivityStore
from syncd.http.basic_auth import BasicAuthSecret
from syncd.http.receiver import Receiver
from syncd.push import AccountDirectory
from syncd.store.db import Database
from syncd.store.dirty import DirtyFlags
from syncd_testkit.emulators.pipedrive_fixtures import pipedrive_emulator  # noqa: F401


@dataclass
class Running:
    receiver: Receiver
    dirty: DirtyFlags
    users: dict[str, int]
    secret: BasicAuthSecret
    woken: list[set[str]] = field(default_factory=list)

    @property
    def hook(self) -> str:
        return self.receiver.url + "/hooks/pipedrive"

    def deliver(self, owner_id: int | None, *, event_id: str | None = None,
                auth: tuple[str, str] | None = None, action: str = "change",
                entity: str = "activity") -> requests.Response:
        """POST one v2 delivery, as Pipedrive would (the installed secret by default)."""
        found = self.secret.read()
        assert found is not None
        return requests.post(self.hook, data=json.dumps(delivery(owner_id, event_id, action,
                                                                   entity)),
                             auth=auth or found, timeout=10,
                             headers={"Content-Type": "application/json"})


def delivery(owner_id: int | None, event_id: str | None = None, action: str = "change",
             entity: str = "activity") -> dict[str, Any]:
    data = None if action == "delete" or owner_id is None else {"id": 41,
                                                               "owner_id": owner_id}
    previous = {"id": 41, "owner_id": owner_id} if action == "delete" else {"subject": "x"}
    return {"meta": {"action": action, "entity": entity, "entity_id": "41",
                     "id": event_id or str(uuid.uuid4()), "attempt": 1, "version": "2.0"},
            "data": data, "previous": previous}


@pytest.fixture
def running(tmp_path: Path) -> Iterator[Running]:
    db = Database(f"sqlite:///{tmp_path / 'syncd.db'}")
    store = ActivityStore(db)
    users = {"alice": store.add_user("alice@example.com", "Alice"),
             "bob": store.add_user("bob@example.com", "Bob"),
             "carol": store.add_user("carol@example.com", "Carol")}  # no account
    config = Config(data_dir=str(tmp_path / "data"),
                    http=HttpConfig(listen="127.0.0.1:8765", max_body_bytes=4096),
                    accounts=(AccountConfig("alice-cal", "caldav", "alice@example.com"),
                              AccountConfig("alice-work", "google", "alice@example.com"),
                              AccountConfig("bob-cal", "caldav", "bob@example.com")))
    source = BuiltinSource(store)

    def user_id(email: str) -> int | None:
        user = source.user(email)
        return user.id if user is not None else None

    dirty = DirtyFlags(db)
    secret = BasicAuthSecret(config.data_path, "pipedrive")
    secret.create()
    woken: list[set[str]] = []
    receiver = Receiver(config, AccountDirectory(lambda: config.accounts, user_id), dirty,
                        woken.append, port=0)
    receiver.start()
    try:
        yield Running(receiver, dirty, users, secret, woken)
    finally:
        receiver.stop()
        db.close()
