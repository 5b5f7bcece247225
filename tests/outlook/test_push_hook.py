"""/hooks/graph and /hooks/graph/lifecycle: the handshake, verified notifications as hints,
forgeries and hostile bodies refused with no work, lifecycle events."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast
from urllib.parse import quote

import pytest
import requests

from syncd.http.graph_hook import (
    LIFECYCLE_PATH,
    MAX_CHANNELS,
    PATH,
    REAUTHORIZE_WITHIN,
    GraphHook,
)
from syncd.http.router import Request, Response
from syncd.push import Hints
from syncd.store.channels import DEGRADED, ChannelStore
from syncd.store.db import Database
from tests.outlook.push_support import Listening, listening

STATE = "client-state-7f1c0e"
LATER = datetime.now(UTC) + timedelta(days=3)


class RecordedHints:
    """Stands in for :class:`Hints`: what the hook asked for."""

    def __init__(self) -> None:
        self.calls: list[set[str]] = []

    def accounts_changed(self, names: Iterable[str]) -> None:
        self.calls.append(set(names))


@pytest.fixture
def channels(tmp_path: Path) -> Iterator[ChannelStore]:
    db = Database(f"sqlite:///{tmp_path / 'syncd.db'}")
    store = ChannelStore(db)
    store.save("alice", "graph", channel_id="sub-alice", token=STATE, expires_at=LATER)
    store.save("bob", "graph", channel_id="sub-bob", token="bobs-state", expires_at=LATER)
    yield store
    db.close()


@pytest.fixture
def hints() -> RecordedHints:
    return RecordedHints()


@pytest.fixture
def hook(channels: ChannelStore, hints: RecordedHints) -> GraphHook:
    return GraphHook(channels, cast(Hints, hints))


def counted_lookups(channels: ChannelStore, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The channel ids the hook looks up (one read each) from now on."""
    lookups: list[str] = []
    check = channels.check

    def counting(channel_id: str, token: str | None) -> Any:
        lookups.append(channel_id)
        return check(channel_id, token)

    monkeypatch.setattr(channels, "check", counting)
    return lookups


def item(sub: str = "sub-alice", state: Any = STATE, **extra: Any) -> dict[str, Any]:
    return {"subscriptionId": sub, "clientState": state, "changeType": "updated",
            "resource": "Users/u/Events/e", "tenantId": "t",
            "subscriptionExpirationDateTime": "2026-12-10T00:00:00.0000000Z", **extra}


def post(hook: GraphHook, body: Any, *, query: str = "", lifecycle: bool = False
         ) -> Response:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    request = Request("POST", LIFECYCLE_PATH if lifecycle else PATH, query,
                      {"content-type": "application/json"}, data, "127.0.0.1")
    return hook.handle_lifecycle(request) if lifecycle else hook.handle(request)


# --- the validation handshake ------------------------------------------------------------


def test_a_handshake_is_answered_200_text_plain_with_exactly_the_token_and_nothing_else(
        hook: GraphHook, hints: RecordedHints, channels: ChannelStore) -> None:
    token = "Validation: Testing client application reachability for subscription Request-Id: 1"
    for lifecycle in (False, True):
        answer = post(hook, b"", query=f"validationToken={quote(token)}", lifecycle=lifecycle)
        assert answer.status == 200 and answer.body == token.encode()
        assert answer.content_type.startswith("text/plain")
        assert ("X-Content-Type-Options", "nosniff") in answer.headers
    assert hook.counts["handshake"] == 2 and hints.calls == []
    row = channels.get("alice")
    assert row is not None and row.last_message_at is None


@pytest.mark.parametrize("query", [
    "validationToken=", "validationToken=" + "a" * 1025, "validationToken=a%0Ab",
    "validationToken=a%00b", "validationToken=a&validationToken=b",
])
def test_a_handshake_with_an_empty_oversized_or_control_character_token_is_refused(
        hook: GraphHook, hints: RecordedHints, query: str) -> None:
    answer = post(hook, item(), query=query)  # the body is never read for a handshake
    assert answer.status == 400
    assert hook.counts["bad_handshake"] == 1 and hints.calls == []


# --- notifications -----------------------------------------------------------------------


def test_a_verified_notification_is_heard_hints_its_account_and_is_answered_202(
        hook: GraphHook, hints: RecordedHints, channels: ChannelStore) -> None:
    answer = post(hook, {"value": [item()]})
    assert answer.status == 202
    assert hints.calls == [{"alice"}] and hook.counts["accepted"] == 1
    row = channels.get("alice")
    assert row is not None and row.last_message_at is not None


def test_a_thousand_notifications_for_one_account_are_one_hint_and_one_lookup(
        hook: GraphHook, hints: RecordedHints, channels: ChannelStore,
        monkeypatch: pytest.MonkeyPatch) -> None:
    lookups = counted_lookups(channels, monkeypatch)
    assert post(hook, {"value": [item() for _ in range(1000)]}).status == 202
    assert hints.calls == [{"alice"}] and lookups == ["sub-alice"]
    assert hook.counts["accepted"] == 1000


def test_a_batch_for_two_accounts_hints_both_at_once(
        hook: GraphHook, hints: RecordedHints) -> None:
    assert post(hook, {"value": [item(), item("sub-bob", "bobs-state")]}).status == 202
    assert hints.calls == [{"alice", "bob"}]


def test_an_unknown_subscription_is_counted_and_answered_202_with_no_hint(
        hook: GraphHook, hints: RecordedHints) -> None:
    assert post(hook, {"value": [item("sub-of-another-app", "x")]}).status == 202
    assert hook.counts["unknown_channel"] == 1 and hints.calls == []


@pytest.mark.parametrize("state", ["guessed", None, "", 42, ["x"], STATE + " ", "x" * 300])
def test_a_wrong_or_missing_client_state_is_forged_refused_403_with_no_hint(
        hook: GraphHook, hints: RecordedHints, channels: ChannelStore, state: Any) -> None:
    answer = post(hook, {"value": [item(state=state), item(state=state)]})
    assert answer.status == 403
    assert hook.counts["forged"] == 2 and hook.counts["accepted"] == 0
    assert hints.calls == []
    row = channels.get("alice")
    assert row is not None and row.last_message_at is None


def test_a_forged_item_beside_genuine_ones_is_refused_alone_and_the_batch_answered_202(
        hook: GraphHook, hints: RecordedHints) -> None:
    body = {"value": [item("sub-bob", "wrong"), item()]}
    assert post(hook, body).status == 202  # Graph must not post the genuine item again
    assert hints.calls == [{"alice"}]
    assert hook.counts["forged"] == 1 and hook.counts["accepted"] == 1


@pytest.mark.parametrize("body", [
    b"", b"not json", b"\xff\xfe", b"[]", b"null", b'"value"', b"{}", b'{"value": {}}',
    b'{"value": []}', b'{"value": "x"}', b"[" * 100_000 + b"]" * 100_000,
    b'{"value": [' + b"[" * 5000 + b"]" * 5000 + b"]}",
])
def test_bodies_that_are_not_notification_collections_are_400_and_make_no_work(
        hook: GraphHook, hints: RecordedHints, body: bytes) -> None:
    assert post(hook, body).status == 400
    assert hook.counts["malformed"] == 1 and hints.calls == []


@pytest.mark.parametrize("bad", [
    None, 1, "sub-alice", ["sub-alice"], {"clientState": STATE},
    {"subscriptionId": 7, "clientState": STATE}, {"subscriptionId": "", "clientState": STATE},
    {"subscriptionId": "a\x00b", "clientState": STATE},
    {"subscriptionId": "s" * 5000, "clientState": STATE},
    {"subscriptionId": {"$ne": None}, "clientState": STATE},
])
def test_items_that_are_not_notifications_are_counted_and_skipped(
        hook: GraphHook, hints: RecordedHints, bad: Any) -> None:
    assert post(hook, {"value": [bad, item()]}).status == 202
    assert hook.counts["malformed"] == 1 and hints.calls == [{"alice"}]


def test_a_body_naming_very_many_subscriptions_costs_a_bounded_number_of_lookups(
        hook: GraphHook, hints: RecordedHints, channels: ChannelStore,
        monkeypatch: pytest.MonkeyPatch) -> None:
    lookups = counted_lookups(channels, monkeypatch)
    body = {"value": [item(f"sub-{n}", "x") for n in range(3000)] + [item()]}
    assert post(hook, body).status == 202
    assert len(lookups) == MAX_CHANNELS
    assert hook.counts["skipped"] == 3001 - MAX_CHANNELS
    assert hook.counts["unknown_channel"] == MAX_CHANNELS


# --- lifecycle events --------------------------------------------------------------------


def lifecycle(event: str, sub: str = "sub-alice", state: Any = STATE) -> dict[str, Any]:
    return {"value": [{"subscriptionId": sub, "clientState": state, "tenantId": "t",
                       "subscriptionExpirationDateTime": "2026-12-10T00:00:00.0000000Z",
                       "lifecycleEvent": event}]}


def test_reauthorization_required_makes_the_channel_due_for_renewal_and_hints_it(
        hook: GraphHook, hints: RecordedHints, channels: ChannelStore) -> None:
    before = datetime.now(UTC)
    assert post(hook, lifecycle("reauthorizationRequired"), lifecycle=True).status == 202
    row = channels.get("alice")
    assert row is not None and row.expires_at is not None and row.healthy
    due = row.expires_at.replace(tzinfo=UTC)
    assert before < due <= datetime.now(UTC) + REAUTHORIZE_WITHIN
    assert hints.calls == [{"alice"}]
    assert hook.counts["lifecycle reauthorizationRequired"] == 1


def test_subscription_removed_degrades_the_channel_and_hints_the_account(
        hook: GraphHook, hints: RecordedHints, channels: ChannelStore) -> None:
    assert post(hook, lifecycle("subscriptionRemoved"), lifecycle=True).status == 202
    row = channels.get("alice")
    assert row is not None and row.state == DEGRADED and not row.healthy
    assert hints.calls == [{"alice"}]


def test_reauthorization_required_never_moves_an_expiry_later(
        hook: GraphHook, channels: ChannelStore) -> None:
    soon = datetime.now(UTC) + timedelta(minutes=2)
    channels.extend("alice", soon)
    assert post(hook, lifecycle("reauthorizationRequired"), lifecycle=True).status == 202
    row = channels.get("alice")
    assert row is not None and row.expires_at is not None
    assert row.expires_at.replace(tzinfo=UTC) == soon


def test_missed_only_asks_for_a_cycle(
        hook: GraphHook, hints: RecordedHints, channels: ChannelStore) -> None:
    assert post(hook, lifecycle("missed"), lifecycle=True).status == 202
    row = channels.get("alice")
    assert row is not None and row.healthy and row.expires_at is not None
    assert hints.calls == [{"alice"}]


def test_a_forged_lifecycle_event_changes_nothing(
        hook: GraphHook, hints: RecordedHints, channels: ChannelStore) -> None:
    before = channels.get("alice")
    body = lifecycle("subscriptionRemoved", state="guessed")
    assert post(hook, body, lifecycle=True).status == 403
    assert channels.get("alice") == before and hints.calls == []


def test_an_unknown_lifecycle_event_is_a_hint_and_changes_no_channel(
        hook: GraphHook, hints: RecordedHints, channels: ChannelStore) -> None:
    before = channels.get("alice")
    assert post(hook, lifecycle("somethingNew"), lifecycle=True).status == 202
    assert channels.get("alice") == before and hints.calls == [{"alice"}]


# --- over HTTP, in the receiver -----------------------------------------------------------


@pytest.fixture
def running(tmp_path: Path) -> Iterator[Listening]:
    yield from listening(tmp_path, max_body_bytes=4096)


def test_the_receiver_serves_both_graph_endpoints_and_caps_their_bodies(
        running: Listening) -> None:
    running.channels.save("alice", "graph", channel_id="sub-1", token=STATE,
                          expires_at=LATER)
    token = "Validation: Testing client application reachability"
    echo = requests.post(running.address, params={"validationToken": token}, timeout=10)
    assert echo.status_code == 200 and echo.text == token
    assert echo.headers["Content-Type"].startswith("text/plain")
    answer = requests.post(running.address, json={"value": [item("sub-1")]}, timeout=10)
    assert answer.status_code == 202
    assert running.flagged() == {"alice"} and running.woken == [{"alice"}]
    later = requests.post(running.address + "/lifecycle", json=lifecycle("missed", "sub-1"),
                          timeout=10)
    assert later.status_code == 202
    huge = requests.post(running.address, data=b"x" * 5000, timeout=10)
    assert huge.status_code == 413
    assert requests.get(running.address, timeout=10).status_code == 405
