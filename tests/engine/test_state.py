"""The sync state store: leases, fencing, quarantine, and tokens encrypted at rest."""

from __future__ import annotations

import socket
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from sqlalchemy import text

from syncd.config import SecretRef
from syncd.errors import SecretUnavailable
from syncd.store.credentials import CredentialStore
from syncd.store.db import Database
from syncd.store.state import StateStore, holder_is_dead
from tests.engine.world import START


@pytest.fixture
def db(tmp_path: Path) -> Database:
    return Database(f"sqlite:///{tmp_path / 'state.db'}")


def test_a_live_lease_keeps_other_replicas_out_until_it_expires(db: Database) -> None:
    state = StateStore(db)
    ttl = timedelta(minutes=10)
    token = state.acquire_lease("acc", "host-a:1", ttl, START)
    assert token is not None
    assert state.acquire_lease("acc", "host-b:2", ttl, START + timedelta(minutes=5)) is None
    later = state.acquire_lease("acc", "host-b:2", ttl, START + timedelta(minutes=11))
    assert later is not None and later > token


def test_a_stale_holder_cannot_commit_cursors_after_losing_the_lease(db: Database) -> None:
    state = StateStore(db)
    ttl = timedelta(minutes=1)
    old = state.acquire_lease("acc", "host-a:1", ttl, START)
    new = state.acquire_lease("acc", "host-b:2", ttl, START + timedelta(minutes=2))
    assert old is not None and new is not None
    assert not state.commit_cursors("acc", old, crm_cursor="99")
    assert state.commit_cursors("acc", new, crm_cursor="7")
    assert state.account("acc").crm_cursor == "7"


def test_our_creates_are_looked_for_until_a_committed_listing_covers_them(db: Database
                                                                          ) -> None:
    state = StateStore(db)
    token = state.acquire_lease("acc", "host-a:1", timedelta(minutes=10), START)
    state.record("acc", writes=[("/e0", '"0"', "update")], token=token)
    assert state.account("acc").creates_unlisted_from is None  # only creates are looked for
    state.record("acc", writes=[("/e1", '"1"', "create"), ("/e2", '"2"', "create")],
                 token=token)
    first = state.account("acc").creates_unlisted_from
    assert first is not None
    covered = state.unlisted_creates("acc", first)  # what the next cycle looks for
    assert [event_id for _, event_id in covered] == ["/e1", "/e2"]
    state.record("acc", writes=[("/e3", '"3"', "create")], token=token)  # after its listing
    assert state.account("acc").creates_unlisted_from == first
    assert state.commit_cursors("acc", token, calendar_cursor="t1",
                                listed_upto=max(write_id for write_id, _ in covered))
    later = state.account("acc").creates_unlisted_from
    assert later is not None
    covered = state.unlisted_creates("acc", later)
    assert [event_id for _, event_id in covered] == ["/e3"]
    assert state.commit_cursors("acc", token, calendar_cursor="t2", listed_upto=covered[0][0])
    assert state.account("acc").creates_unlisted_from is None


def test_a_killed_local_holder_is_recognised_at_once(db: Database) -> None:
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    holder = f"{socket.gethostname()}:{dead.pid}"
    assert holder_is_dead(holder)
    assert not holder_is_dead(f"{socket.gethostname()}:1")  # init is alive
    assert not holder_is_dead(f"other-host:{dead.pid}")  # only the TTL can tell
    state = StateStore(db)
    assert state.acquire_lease("acc", holder, timedelta(minutes=10), START) is not None
    assert state.acquire_lease("acc", "me:5", timedelta(minutes=10), START) is not None


def test_failures_are_retried_then_quarantined_and_cleared_on_success(db: Database) -> None:
    state = StateStore(db)
    for attempt in range(1, 5):
        assert not state.record_failure("acc", "crm:1", None, f"HTTP 503 #{attempt}")
    assert state.record_failure("acc", "crm:1", None, "HTTP 503 #5")
    assert state.quarantined("acc") == {"crm:1": None}
    state.clear_failure("acc", "crm:1")
    assert state.quarantined("acc") == {}


def test_tokens_are_stored_encrypted_and_need_the_key(db: Database,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SYNCD_TEST_KEY", Fernet.generate_key().decode())
    creds = CredentialStore(db, SecretRef("env:SYNCD_TEST_KEY"))
    creds.put("acc", "refresh_token", "1//refresh-token-value")
    assert creds.get("acc", "refresh_token") == "1//refresh-token-value"
    with db.engine.connect() as conn:
        raw = conn.execute(text("SELECT ciphertext FROM sync_credentials")).scalar_one()
    assert "refresh-token-value" not in raw
    monkeypatch.setenv("SYNCD_TEST_KEY", Fernet.generate_key().decode())
    with pytest.raises(SecretUnavailable):
        CredentialStore(db, SecretRef("env:SYNCD_TEST_KEY")).get("acc", "refresh_token")
    with pytest.raises(SecretUnavailable):
        CredentialStore(db, None).put("acc", "refresh_token", "x")


def test_renewing_extends_only_the_current_holders_lease(db: Database) -> None:
    state = StateStore(db)
    token = state.acquire_lease("acc", "host-a:1", timedelta(minutes=1), START)
    assert token is not None
    assert state.renew_lease("acc", token, timedelta(minutes=10), START)
    assert state.acquire_lease("acc", "host-b:2", timedelta(minutes=1),
                               START + timedelta(minutes=5)) is None
    assert not state.renew_lease("acc", token + 1, timedelta(minutes=10), START)


def test_a_cycle_loads_only_the_links_it_touches_and_every_pending_create(
        db: Database) -> None:
    from syncd.pairs import SyncPair

    state = StateStore(db)
    state.account("acc")
    state.account("other")
    links = [SyncPair(i, f"uid-{i}", f"ev-{i}", f'"{i}"', None, None) for i in range(1, 1201)]
    links.append(SyncPair(2000, "uid-2000", None, None, None, None, pending=True))
    state.record("acc", saves=links)
    state.record("other", saves=[SyncPair(1, "uid-x", "ev-x", None, None, None, pending=True)])

    found = state.links_touching("acc", activity_ids=[1, 700, 1100, 99999],
                                 event_ids=["ev-5", "ev-gone"], markers=["uid-9"])
    # Activity ids beyond the first IN slice of 500 are found too; "other" stays out.
    assert sorted(found) == [1, 5, 9, 700, 1100, 2000]
    assert found[700].event_id == "ev-700" and found[2000].pending
    assert sorted(state.links_touching("acc")) == [2000]  # an idle cycle: pending only
    assert state.link_count("acc") == 1201 and state.link_count("acc", settled=True) == 1200
