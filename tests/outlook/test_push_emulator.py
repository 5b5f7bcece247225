"""The Graph emulator's subscriptions: the handshake and its deadline, expiry clocks,
notification shape, retries, lifecycle events and the fault knobs."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import requests

from syncd_testkit.emulators.graph import GraphEmulator
from tests.outlook.push_support import ScriptedReceiver

USER = "alice@contoso.test"
AUTH = {"Authorization": "Bearer any"}
EVENT = {"subject": "Call", "start": {"dateTime": "2026-12-08T10:00:00", "timeZone": "UTC"},
         "end": {"dateTime": "2026-12-08T11:00:00", "timeZone": "UTC"}}


@pytest.fixture
def graph(graph_emulator: GraphEmulator) -> GraphEmulator:
    graph_emulator.add_mailbox(USER)
    graph_emulator.push.retry_delays = (0.01, 0.02)
    return graph_emulator


@pytest.fixture
def receiver() -> Iterator[ScriptedReceiver]:
    with ScriptedReceiver() as stub:
        yield stub


def subscribe(graph: GraphEmulator, address: str, **fields: Any) -> requests.Response:
    body = {"changeType": "created,updated,deleted", "notificationUrl": address,
            "lifecycleNotificationUrl": address + "/lifecycle",
            "resource": f"users/{USER}/events", "clientState": "state-1",
            "expirationDateTime": (datetime.now(UTC) + timedelta(days=2)).isoformat()}
    body.update({k: (datetime.now(UTC) + v).isoformat() if isinstance(v, timedelta) else v
                 for k, v in fields.items()})
    body = {k: v for k, v in body.items() if v is not None}
    return requests.post(f"{graph.base_url}/subscriptions", json=body, headers=AUTH,
                         timeout=30)


def created(graph: GraphEmulator, address: str, **fields: Any) -> str:
    answer = subscribe(graph, address, **fields)
    assert answer.status_code == 201, answer.text
    return str(answer.json()["id"])


def change(graph: GraphEmulator) -> str:
    return str(graph.create_event_as_user(USER, EVENT)["id"])


# --- create and the handshake ------------------------------------------------------------


def test_creating_validates_both_addresses_and_answers_the_subscription(
        graph: GraphEmulator, receiver: ScriptedReceiver) -> None:
    answer = subscribe(graph, receiver.address)
    assert answer.status_code == 201
    sub = answer.json()
    assert sub["clientState"] == "state-1" and sub["changeType"] == "created,deleted,updated"
    assert sub["lifecycleNotificationUrl"] == receiver.address + "/lifecycle"
    assert [p.path for p in receiver.posted] == ["/hooks/graph", "/hooks/graph/lifecycle"]
    tokens = [p.query["validationToken"][0] for p in receiver.posted]
    assert all(t.startswith("Validation: ") for t in tokens) and receiver.posted[0].body == b""
    assert graph.push.counts["handshakes"] == 2 and graph.push.counts["handshake_failed"] == 0
    assert [s.id for s in graph.push.subscriptions()] == [sub["id"]]


@pytest.mark.parametrize("echo", [
    lambda token: (200, "text/plain", b"something else"),
    lambda token: (200, "application/json", token.encode()),
    lambda token: (202, "text/plain", token.encode()),
    lambda token: (500, "text/plain", b""),
    lambda token: (200, "text/plain", token.encode() + b"\n"),
])
def test_a_wrong_handshake_answer_fails_the_create_with_400_and_no_subscription(
        graph: GraphEmulator, receiver: ScriptedReceiver, echo: Any) -> None:
    receiver.echo = echo
    answer = subscribe(graph, receiver.address)
    assert answer.status_code == 400 and answer.json()["error"]["code"] == "ValidationError"
    assert graph.push.subscriptions() == [] and graph.push.counts["handshake_failed"] == 1


def test_a_handshake_answered_after_the_deadline_fails_the_create(
        graph: GraphEmulator, receiver: ScriptedReceiver) -> None:
    graph.push.handshake_deadline = 0.2
    receiver.handshake_delay_seconds = 0.6
    assert subscribe(graph, receiver.address).status_code == 400
    assert graph.push.counts["handshake_failed"] == 1
    assert graph.push.deliveries[0].late


def test_an_unreachable_address_fails_the_create(graph: GraphEmulator) -> None:
    with ScriptedReceiver() as gone:
        address = gone.address
    assert subscribe(graph, address).status_code == 400


@pytest.mark.parametrize(("fields", "status"), [
    ({"notificationUrl": "http://example.com/hooks/graph"}, 400),
    ({"changeType": "created,moved"}, 400),
    ({"changeType": None}, 400),
    ({"clientState": "x" * 129}, 400),
    ({"expirationDateTime": "soon"}, 400),
    ({"expirationDateTime": "2020-01-01T00:00:00Z"}, 400),
    ({"expirationDateTime": timedelta(minutes=10_081)}, 400),
    ({"resource": "users/nobody@contoso.test/events"}, 404),
    ({"resource": "users/alice@contoso.test/calendars/nope/events"}, 404),
    ({"resource": "users/alice@contoso.test"}, 400),
])
def test_invalid_creates_are_refused_before_any_handshake(
        graph: GraphEmulator, receiver: ScriptedReceiver, fields: dict[str, Any],
        status: int) -> None:
    assert subscribe(graph, receiver.address, **fields).status_code == status
    assert receiver.posted == []


def test_a_tenant_that_forbids_subscriptions_answers_403(
        graph: GraphEmulator, receiver: ScriptedReceiver) -> None:
    graph.push.faults.forbid = True
    answer = subscribe(graph, receiver.address)
    assert answer.status_code == 403 and receiver.posted == []


# --- expiry, renewal, deletion -----------------------------------------------------------


def test_a_subscription_is_gone_once_its_expiry_passes_and_notifies_nothing(
        graph: GraphEmulator, receiver: ScriptedReceiver) -> None:
    sub = created(graph, receiver.address)
    graph.push.advance(timedelta(days=2, minutes=1))
    url = f"{graph.base_url}/subscriptions/{sub}"
    assert requests.get(url, headers=AUTH, timeout=10).status_code == 404
    later = (graph.push.now() + timedelta(days=1)).isoformat()
    patched = requests.patch(url, json={"expirationDateTime": later}, headers=AUTH, timeout=10)
    assert patched.status_code == 404
    change(graph)
    assert graph.push.wait_idle() and receiver.notifications() == []


def test_a_patch_extends_the_same_subscription_up_to_the_maximum(
        graph: GraphEmulator, receiver: ScriptedReceiver) -> None:
    sub = created(graph, receiver.address)
    url = f"{graph.base_url}/subscriptions/{sub}"
    far = (datetime.now(UTC) + timedelta(days=8)).isoformat()
    assert requests.patch(url, json={"expirationDateTime": far}, headers=AUTH,
                          timeout=10).status_code == 400
    week = datetime.now(UTC) + timedelta(days=6)
    answer = requests.patch(url, json={"expirationDateTime": week.isoformat()}, headers=AUTH,
                            timeout=10)
    assert answer.status_code == 200 and answer.json()["id"] == sub
    graph.push.advance(timedelta(days=3))
    assert requests.get(url, headers=AUTH, timeout=10).status_code == 200


def test_delete_ends_a_subscription_and_a_second_delete_is_404(
        graph: GraphEmulator, receiver: ScriptedReceiver) -> None:
    url = f"{graph.base_url}/subscriptions/{created(graph, receiver.address)}"
    assert requests.delete(url, headers=AUTH, timeout=10).status_code == 204
    assert requests.delete(url, headers=AUTH, timeout=10).status_code == 404
    listed = requests.get(f"{graph.base_url}/subscriptions", headers=AUTH, timeout=10)
    assert listed.json()["value"] == []


def test_subscriptions_need_a_token(graph: GraphEmulator, receiver: ScriptedReceiver) -> None:
    answer = requests.get(f"{graph.base_url}/subscriptions", timeout=10)
    assert answer.status_code == 401


# --- notifications -----------------------------------------------------------------------


def test_each_change_is_notified_with_graphs_fields_from_the_delivery_thread(
        graph: GraphEmulator, receiver: ScriptedReceiver) -> None:
    sub = created(graph, receiver.address)
    event_id = change(graph)
    graph.put_event(USER, event_id, {"subject": "Moved"})
    graph.delete_event_as_user(USER, event_id)
    assert graph.push.wait_idle()
    items = receiver.items()
    assert [i["changeType"] for i in items] == ["created", "updated", "deleted"]
    first = items[0]
    assert first["subscriptionId"] == sub and first["clientState"] == "state-1"
    assert first["tenantId"] == graph.push.tenant_id
    assert first["resourceData"]["id"] == event_id and event_id in first["resource"]
    assert first["subscriptionExpirationDateTime"].endswith("Z")
    assert graph.push.counts["delivered"] == 3


def test_only_the_subscribed_change_types_and_calendar_are_notified(
        graph: GraphEmulator, receiver: ScriptedReceiver) -> None:
    other = graph.add_calendar(USER, "Other")
    created(graph, receiver.address, changeType="deleted")
    event_id = change(graph)
    graph.put_event(USER, event_id, {"subject": "Moved"})
    graph.create_event_as_user(USER, EVENT, calendar_id=other)
    graph.delete_event_as_user(USER, event_id)
    assert graph.push.wait_idle()
    assert [i["changeType"] for i in receiver.items()] == ["deleted"]


def test_a_calendar_scoped_subscription_sees_only_its_calendar(
        graph: GraphEmulator, receiver: ScriptedReceiver) -> None:
    other = graph.add_calendar(USER, "Other")
    created(graph, receiver.address, resource=f"users/{USER}/calendars/{other}/events")
    change(graph)
    graph.create_event_as_user(USER, EVENT, calendar_id=other)
    assert graph.push.wait_idle()
    assert len(receiver.items()) == 1


def test_a_failing_receiver_is_retried_and_then_the_notification_is_lost(
        graph: GraphEmulator, receiver: ScriptedReceiver) -> None:
    created(graph, receiver.address)
    receiver.answer = lambda _: 503
    change(graph)
    assert graph.push.wait_idle()
    attempts = [d.attempt for d in graph.push.deliveries if d.kind == "notification"]
    assert attempts == [0, 1, 2]
    assert graph.push.counts["lost"] == 1 and graph.push.counts["delivered"] == 0


def test_a_receiver_that_recovers_gets_the_notification_on_a_retry(
        graph: GraphEmulator, receiver: ScriptedReceiver) -> None:
    created(graph, receiver.address)
    answers = iter([500, 404])
    receiver.answer = lambda _: next(answers, None)
    change(graph)
    assert graph.push.wait_idle()
    assert graph.push.counts["retried"] == 2 and graph.push.counts["delivered"] == 1


def test_a_receiver_slower_than_the_deadline_is_retried_as_if_it_failed(
        graph: GraphEmulator, receiver: ScriptedReceiver) -> None:
    created(graph, receiver.address)
    graph.push.notify_deadline = 0.1
    receiver.delay_seconds = 0.3
    change(graph)
    assert graph.push.wait_idle()
    assert graph.push.counts["late"] == 3 and graph.push.counts["lost"] == 1


def test_notifications_due_together_go_out_in_one_value_array(
        graph: GraphEmulator, receiver: ScriptedReceiver) -> None:
    created(graph, receiver.address)
    graph.push.faults.delay_seconds = 0.3  # all five are due at about the same time
    for _ in range(5):
        change(graph)
    assert graph.push.wait_idle()
    assert len(receiver.items()) == 5 and len(receiver.notifications()) < 5


# --- fault knobs -------------------------------------------------------------------------


def test_drop_and_duplicate_knobs(graph: GraphEmulator, receiver: ScriptedReceiver) -> None:
    created(graph, receiver.address)
    graph.push.faults.drop = 1
    graph.push.faults.duplicate = 1
    change(graph)  # dropped
    second = change(graph)  # sent twice
    assert graph.push.wait_idle()
    assert [i["resourceData"]["id"] for i in receiver.items()] == [second, second]
    assert graph.push.counts["dropped"] == 1 and graph.push.counts["duplicated"] == 1


def test_reorder_sends_what_is_due_together_newest_first(
        graph: GraphEmulator, receiver: ScriptedReceiver) -> None:
    created(graph, receiver.address)
    graph.push.faults.reorder = True
    graph.push.faults.delay_seconds = 0.3
    ids = [change(graph) for _ in range(3)]
    assert graph.push.wait_idle()
    assert [i["resourceData"]["id"] for i in receiver.items()] == ids[::-1]


def test_a_silent_subscription_is_accepted_and_never_delivers(
        graph: GraphEmulator, receiver: ScriptedReceiver) -> None:
    graph.push.faults.silent = True
    sub = created(graph, receiver.address)
    change(graph)
    assert graph.push.wait_idle()
    assert receiver.notifications() == [] and graph.push.counts["muted"] == 1
    assert graph.push.get(sub) is not None


# --- lifecycle events --------------------------------------------------------------------


@pytest.mark.parametrize("event", ["reauthorizationRequired", "subscriptionRemoved", "missed"])
def test_lifecycle_events_go_to_the_lifecycle_address(
        graph: GraphEmulator, receiver: ScriptedReceiver, event: str) -> None:
    sub = created(graph, receiver.address)
    graph.push.lifecycle(sub, event)
    assert graph.push.wait_idle()
    [posted] = receiver.notifications()
    assert posted.path == "/hooks/graph/lifecycle"
    [item] = posted.items()
    assert item["lifecycleEvent"] == event and item["clientState"] == "state-1"
    assert item["subscriptionId"] == sub
    live = graph.push.get(sub)
    assert (live is None) == (event == "subscriptionRemoved")
    if event == "reauthorizationRequired":
        assert live is not None and live.needs_reauth
        answer = requests.post(f"{graph.base_url}/subscriptions/{sub}/reauthorize",
                               headers=AUTH, timeout=10)
        assert answer.status_code == 204
        again = graph.push.get(sub)
        assert again is not None and not again.needs_reauth
