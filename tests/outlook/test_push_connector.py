"""The Outlook connector's Graph subscriptions against the emulator over real HTTP, with the
real /hooks/graph answering the handshake: watch, renew, unwatch, refusals."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from connectors.base import Channel, Watchable
from connectors.outlook import OutlookCalendar
from connectors.outlook_push import MAX_MINUTES
from syncd.errors import AuthFailed, PushRefused, Transient
from syncd_testkit.emulators.graph import FaultRule
from tests.outlook.conftest import ALICE, Env
from tests.outlook.push_support import Listening, ScriptedReceiver, listening

TOKEN = "channel-token-5b0c2e77"
EVENT = {"subject": "Call", "start": {"dateTime": "2026-12-08T10:00:00", "timeZone": "UTC"},
         "end": {"dateTime": "2026-12-08T11:00:00", "timeZone": "UTC"}}


@pytest.fixture
def running(tmp_path: Path) -> Iterator[Listening]:
    yield from listening(tmp_path)


@pytest.fixture
def conn(env: Env) -> Iterator[OutlookCalendar]:
    connector = env.connector(env.account())
    yield connector
    connector.close()


def soon(days: float = 2) -> datetime:
    return datetime.now(UTC) + timedelta(days=days)


def posts(env: Env, method: str) -> int:
    return sum(1 for r in env.graph.requests
               if r.method == method and r.path.startswith("/subscriptions"))


def test_the_connector_is_watchable_by_graph_and_notifies_its_own_writes(
        conn: OutlookCalendar) -> None:
    assert isinstance(conn, Watchable)
    assert conn.push_kind == "graph" and conn.notifies_own_writes is True


def test_watch_subscribes_to_the_calendars_events_with_both_addresses_and_the_token(
        env: Env, conn: OutlookCalendar, running: Listening) -> None:
    channel = conn.watch(running.address, "unused-id", TOKEN, soon(2))
    [sub] = env.graph.push.subscriptions()
    assert sub.id == channel.id
    assert sub.change_types == {"created", "updated", "deleted"}
    assert sub.notification_url == running.address
    assert sub.lifecycle_url == running.address + "/lifecycle"
    assert sub.client_state == TOKEN
    assert sub.calendar_id == env.graph.default_calendar_id(ALICE)
    assert abs(channel.expires_at - sub.expires_at) < timedelta(seconds=1)
    # Graph validated both addresses against the real hook before answering.
    assert running.receiver.graph.counts["handshake"] == 2


def test_watch_caps_the_expiry_at_graphs_maximum_for_outlook_events(
        env: Env, conn: OutlookCalendar, running: Listening) -> None:
    channel = conn.watch(running.address, "unused-id", TOKEN, soon(30))
    limit = datetime.now(UTC) + timedelta(minutes=MAX_MINUTES)
    assert limit - timedelta(minutes=2) < channel.expires_at <= limit
    assert env.graph.push.max_minutes >= MAX_MINUTES


def test_a_change_in_the_watched_calendar_flags_the_account_through_the_hook(
        env: Env, conn: OutlookCalendar, running: Listening) -> None:
    channel = conn.watch(running.address, "unused-id", TOKEN, soon(2))
    running.channels.save("alice", "graph", channel_id=channel.id, token=TOKEN,
                          expires_at=channel.expires_at)
    env.graph.create_event_as_user(ALICE, EVENT)
    assert env.graph.push.wait_idle()
    assert running.flagged() == {"alice"}
    assert running.receiver.graph.counts["accepted"] == 1


def test_renew_extends_the_same_subscription(
        env: Env, conn: OutlookCalendar, running: Listening) -> None:
    channel = conn.watch(running.address, "unused-id", TOKEN, soon(1))
    renewed = conn.renew(channel, running.address, "unused-id", "another-token", soon(5))
    assert renewed.id == channel.id and renewed.expires_at > channel.expires_at
    [sub] = env.graph.push.subscriptions()
    assert abs(sub.expires_at - renewed.expires_at) < timedelta(seconds=1)
    assert sub.client_state == TOKEN  # a PATCH never changes it
    assert posts(env, "PATCH") == 1 and posts(env, "POST") == 1


@pytest.mark.parametrize("gone", ["expired", "removed"])
def test_renewing_a_subscription_graph_no_longer_has_creates_a_new_one(
        env: Env, conn: OutlookCalendar, running: Listening, gone: str) -> None:
    channel = conn.watch(running.address, "unused-id", TOKEN, soon(1))
    if gone == "expired":
        env.graph.push.expire(channel.id)
    else:
        env.graph.push.lifecycle(channel.id, "subscriptionRemoved")
    renewed = conn.renew(channel, running.address, "unused-id", "new-token", soon(2))
    assert renewed.id != channel.id
    [sub] = env.graph.push.subscriptions()
    assert sub.id == renewed.id and sub.client_state == "new-token"


def test_unwatch_deletes_the_subscription_and_a_gone_one_is_no_error(
        env: Env, conn: OutlookCalendar, running: Listening) -> None:
    channel = conn.watch(running.address, "unused-id", TOKEN, soon(1))
    conn.unwatch(channel)
    assert env.graph.push.subscriptions() == []
    conn.unwatch(channel)
    conn.unwatch(Channel(id="never-existed", expires_at=soon(1)))


def test_a_tenant_that_forbids_subscriptions_is_a_push_refusal(
        env: Env, conn: OutlookCalendar, running: Listening) -> None:
    env.graph.push.faults.forbid = True
    with pytest.raises(PushRefused) as caught:
        conn.watch(running.address, "unused-id", TOKEN, soon(1))
    assert caught.value.status == 403 and caught.value.provider == "outlook"
    assert TOKEN not in str(caught.value)


def test_an_address_graph_cannot_validate_is_a_push_refusal(
        env: Env, conn: OutlookCalendar) -> None:
    with ScriptedReceiver() as wrong:
        wrong.echo = lambda token: (200, "text/plain", b"not the token")
        with pytest.raises(PushRefused) as caught:
            conn.watch(wrong.address, "unused-id", TOKEN, soon(1))
    assert caught.value.status == 400 and env.graph.push.subscriptions() == []


def test_a_server_error_on_create_is_transient_and_the_create_is_not_resent(
        env: Env, conn: OutlookCalendar, running: Listening) -> None:
    env.graph.inject(FaultRule(method="POST", path=r"^/subscriptions$", status=503))
    with pytest.raises(Transient):
        conn.watch(running.address, "unused-id", TOKEN, soon(1))
    assert posts(env, "POST") == 1


def test_a_renewal_refused_by_the_tenant_is_a_push_refusal(
        env: Env, conn: OutlookCalendar, running: Listening) -> None:
    channel = conn.watch(running.address, "unused-id", TOKEN, soon(1))
    env.graph.inject(FaultRule(method="PATCH", path=r"^/subscriptions/", status=403,
                               code="ExtensionError", message="Forbidden"))
    with pytest.raises(PushRefused):
        conn.renew(channel, running.address, "unused-id", TOKEN, soon(2))


def test_a_token_graph_refuses_is_an_auth_failure(
        env: Env, conn: OutlookCalendar, running: Listening) -> None:
    env.graph.inject(FaultRule(path=r"^/subscriptions", status=401, count=None,
                               code="InvalidAuthenticationToken", message="expired"))
    with pytest.raises(AuthFailed):
        conn.watch(running.address, "unused-id", TOKEN, soon(1))


@pytest.mark.parametrize("body", ["not json", "[]", '{"id": 42}', '{"id": ""}',
                                  '{"id": "' + "x" * 5000 + '"}', '{"id": "a\\u0000b"}'])
def test_an_unreadable_create_answer_is_transient(
        env: Env, conn: OutlookCalendar, running: Listening, body: str) -> None:
    env.graph.inject(FaultRule(method="POST", path=r"^/subscriptions$", status=201, body=body))
    with pytest.raises(Transient):
        conn.watch(running.address, "unused-id", TOKEN, soon(1))


@pytest.mark.parametrize("expiry", ['"soon"', "42", '"2026-13-45T00:00:00Z"', "null"])
def test_an_unreadable_expiry_in_the_answer_is_read_as_the_one_asked(
        env: Env, conn: OutlookCalendar, running: Listening, expiry: str) -> None:
    env.graph.inject(FaultRule(method="POST", path=r"^/subscriptions$", status=201,
                               body='{"id": "sub-1", "expirationDateTime": ' + expiry + "}"))
    asked = soon(1)
    channel = conn.watch(running.address, "unused-id", TOKEN, asked)
    assert channel.id == "sub-1"
    assert abs(channel.expires_at - asked) < timedelta(milliseconds=1)


@pytest.mark.parametrize("body", ['{"id": "another-subscription"}', '{"id": null}', "[]"])
def test_a_renewal_answer_for_no_or_another_subscription_is_transient(
        env: Env, conn: OutlookCalendar, running: Listening, body: str) -> None:
    channel = conn.watch(running.address, "unused-id", TOKEN, soon(1))
    env.graph.inject(FaultRule(method="PATCH", path=r"^/subscriptions/", status=200,
                               body=body))
    with pytest.raises(Transient):
        conn.renew(channel, running.address, "unused-id", TOKEN, soon(2))
