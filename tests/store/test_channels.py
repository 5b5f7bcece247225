"""The push channel table: tokens kept as hashes, liveness deadlines, refusals."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select, text

from syncd.store.channel_tables import PushChannel
from syncd.store.channels import ACTIVE, DEGRADED, REFUSED, ChannelStore, token_hash
from syncd.store.db import Database
from tests.store.conftest import StoreFactory

T0 = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)


@pytest.fixture
def db(new_store: StoreFactory) -> Database:
    """syncd's state database on this test's backend, with no channels or accounts."""
    database = new_store().db
    with database.session() as s:
        s.execute(text("DELETE FROM push_channels"))
        s.execute(text("DELETE FROM sync_accounts"))
    return database


def _saved(db: Database) -> ChannelStore:
    channels = ChannelStore(db)
    channels.save("alice", "google", channel_id="ch-1", token="s3cret", resource_id="r-1",
                  expires_at=T0 + timedelta(days=7), details={"calendar": "primary"},
                  owner="host:1", now=T0)
    return channels


def test_a_saved_channel_keeps_a_hash_of_its_token_never_the_token(db: Database) -> None:
    channels = _saved(db)
    row = channels.get("alice")
    assert row is not None and row.state == ACTIVE and row.healthy
    assert row.details == {"calendar": "primary"} and row.resource_id == "r-1"
    with db.session() as s:
        stored = s.scalar(select(PushChannel.token_hash).where(PushChannel.account == "alice"))
    assert stored == token_hash("s3cret") != "s3cret"


def test_a_notification_is_verified_by_its_channel_and_token(db: Database) -> None:
    channels = _saved(db)
    assert channels.verify("ch-1", "s3cret") is not None
    assert channels.verify("ch-1", "wrong") is None
    assert channels.verify("ch-1", None) is None
    assert channels.verify("unknown", "s3cret") is None


def test_one_read_tells_an_unknown_channel_from_a_wrong_token(db: Database) -> None:
    channels = _saved(db)
    assert channels.check("ch-1", "s3cret").row is not None
    wrong = channels.check("ch-1", "wrong")
    assert wrong.known and wrong.row is None
    unknown = channels.check("nope", "s3cret")
    assert not unknown.known and unknown.row is None


def test_a_replayed_message_number_is_told_apart_and_any_message_meets_the_deadline(
        db: Database) -> None:
    channels = _saved(db)
    channels.expect("alice", T0 + timedelta(minutes=3))
    assert channels.overdue(T0 + timedelta(minutes=4)) == ["alice"]
    assert channels.heard("ch-1", number=5, now=T0 + timedelta(minutes=1))
    assert channels.overdue(T0 + timedelta(minutes=4)) == []
    assert not channels.heard("ch-1", number=5)
    assert not channels.heard("ch-1", number=4)
    assert channels.heard("ch-1", number=6)
    assert not channels.heard("no-such-channel")


def test_an_earlier_deadline_is_kept_and_only_active_channels_expect(db: Database) -> None:
    channels = _saved(db)
    channels.expect("alice", T0 + timedelta(minutes=3))
    channels.expect("alice", T0 + timedelta(minutes=9))
    row = channels.get("alice")
    assert row is not None and row.expect_by == T0 + timedelta(minutes=3)
    channels.degrade("alice", "no notification after our write")
    channels.expect("alice", T0 + timedelta(minutes=9))
    row = channels.get("alice")
    assert row is not None and row.state == DEGRADED and row.expect_by is None
    assert not row.healthy


def test_a_refusal_forgets_the_channel_and_says_why(db: Database) -> None:
    channels = _saved(db)
    channels.refuse("alice", "graph", "tenant forbids subscriptions")
    row = channels.get("alice")
    assert row is not None and row.state == REFUSED and row.channel_id is None
    assert row.reason == "tenant forbids subscriptions"
    assert channels.verify("ch-1", "s3cret") is None
    channels.remove("alice")
    assert channels.get("alice") is None and channels.all() == []
