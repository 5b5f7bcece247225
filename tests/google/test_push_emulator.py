"""The emulator's push channels: headers, message numbers, expiry, retries and faults,
delivered over real HTTP to a local receiver."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import pytest
from googleapiclient.errors import HttpError

from syncd_testkit.emulators.google import GoogleEmulator
from syncd_testkit.emulators.google_fixtures import build_service
from syncd_testkit.emulators.google_push import DEFAULT_TTL_S

from .helpers import START
from .push_receiver import Hook


@pytest.fixture
def emu() -> Iterator[GoogleEmulator]:
    with GoogleEmulator() as emulator:
        emulator.push.retry_base = 3600.0  # retries go out only when a test moves the clock
        yield emulator


@pytest.fixture
def svc(emu: GoogleEmulator) -> Any:
    return build_service(emu)


def watch(svc: Any, hook: Hook, channel_id: str = "chan-1", calendar: str = "primary",
          **extra: Any) -> dict[str, Any]:
    body = {"id": channel_id, "type": "web_hook", "address": hook.address, "token": "t0k",
            **extra}
    result: dict[str, Any] = svc.events().watch(calendarId=calendar, body=body).execute()
    return result


def insert(svc: Any, calendar: str = "primary") -> None:
    svc.events().insert(calendarId=calendar, body={
        "summary": "x", "start": {"dateTime": START.isoformat()},
        "end": {"dateTime": START.replace(hour=9).isoformat()}}).execute()


def test_every_documented_header_comes_with_sync_first_then_increasing_numbers(
        emu: GoogleEmulator, svc: Any, hook: Hook) -> None:
    channel = watch(svc, hook)
    insert(svc)
    insert(svc)
    assert emu.push.wait_idle()
    assert hook.states() == [("sync", 1), ("exists", 2), ("exists", 3)]
    first = hook.received[0]
    assert first["x-goog-channel-id"] == "chan-1"
    assert first["x-goog-channel-token"] == "t0k"
    assert first["x-goog-resource-id"] == channel["resourceId"]
    assert first["x-goog-resource-uri"] == channel["resourceUri"]
    expires = parsedate_to_datetime(first["x-goog-channel-expiration"])
    assert int(expires.timestamp()) == int(channel["expiration"]) // 1000
    assert all(h["content-length"] == "0" for h in hook.received)


def test_the_resource_id_names_the_calendar_and_numbers_run_per_channel(
        emu: GoogleEmulator, svc: Any, hook: Hook) -> None:
    one = watch(svc, hook, "chan-1")
    two = watch(svc, hook, "chan-2")
    other = watch(svc, hook, "chan-3", calendar="team@example.com")
    assert one["resourceId"] == two["resourceId"] != other["resourceId"]
    insert(svc)
    assert emu.push.wait_idle()
    by_channel = [(h["x-goog-channel-id"], h["x-goog-message-number"])
                  for h in hook.received if h["x-goog-resource-state"] == "exists"]
    assert sorted(by_channel) == [("chan-1", "2"), ("chan-2", "2")]


def test_a_channel_without_ttl_lasts_the_default_week_and_ttl_and_the_cap_are_honoured(
        emu: GoogleEmulator, svc: Any, hook: Hook) -> None:
    now_ms = emu.push.now() * 1000
    default = int(watch(svc, hook, "a")["expiration"])
    assert abs(default - now_ms - DEFAULT_TTL_S * 1000) < 5000
    asked = int(watch(svc, hook, "b", params={"ttl": "3600"})["expiration"])
    assert abs(asked - now_ms - 3_600_000) < 5000
    emu.push.max_ttl = 600
    capped = int(watch(svc, hook, "c", params={"ttl": "3600"})["expiration"])
    assert abs(capped - now_ms - 600_000) < 5000
    by_time = int(watch(svc, hook, "d", expiration=str(int(now_ms) + 60_000))["expiration"])
    assert abs(by_time - now_ms - 60_000) < 5000


@pytest.mark.parametrize("body", [
    {"params": {"ttl": "soon"}}, {"expiration": "1000"}, {"expiration": "-5"},
    {"id": "x" * 65}, {"type": "email"}, {"address": "https://"}, {"token": 7},
])
def test_a_malformed_watch_is_refused_with_400(svc: Any, hook: Hook,
                                                 body: dict[str, Any]) -> None:
    request = {"id": "chan", "type": "web_hook", "address": hook.address, **body}
    if body.get("address") == "https://":
        request["address"] = "http://example.com/hook"  # not https, not loopback
    with pytest.raises(HttpError) as caught:
        svc.events().watch(calendarId="primary", body=request).execute()
    assert caught.value.resp.status == 400


def test_an_expired_channel_delivers_nothing_and_cannot_be_stopped(
        emu: GoogleEmulator, svc: Any, hook: Hook) -> None:
    channel = watch(svc, hook, params={"ttl": "60"})
    assert emu.push.wait_idle()
    emu.push.advance(61)
    insert(svc)
    assert emu.push.wait_idle()
    assert hook.states() == [("sync", 1)]
    assert emu.push.channels() == []
    with pytest.raises(HttpError) as caught:
        svc.channels().stop(body={"id": "chan-1", "resourceId": channel["resourceId"]}
                            ).execute()
    assert caught.value.resp.status == 404


def test_a_message_queued_before_expiry_is_not_sent_after_it(
        emu: GoogleEmulator, svc: Any, hook: Hook) -> None:
    watch(svc, hook, params={"ttl": "60"})
    assert emu.push.wait_idle()
    emu.push.faults.delay = 30
    insert(svc)
    emu.push.advance(61)
    assert emu.push.wait_idle()
    assert hook.states() == [("sync", 1)]
    assert emu.push.deliveries[-1].outcome == "expired"


def test_stopping_needs_the_id_and_the_resource_id_and_ends_delivery(
        emu: GoogleEmulator, svc: Any, hook: Hook) -> None:
    channel = watch(svc, hook)
    with pytest.raises(HttpError):
        svc.channels().stop(body={"id": "chan-1", "resourceId": "other"}).execute()
    svc.channels().stop(body={"id": "chan-1", "resourceId": channel["resourceId"]}).execute()
    insert(svc)
    assert emu.push.wait_idle()
    assert [s for s, _ in hook.states()] in (["sync"], [])


def test_5xx_and_no_answer_are_retried_with_doubling_waits_then_given_up(
        emu: GoogleEmulator, svc: Any, hook: Hook) -> None:
    emu.push.retry_base = 10.0
    hook.statuses = [200, 503, 500]  # sync fine, then the exists fails twice
    watch(svc, hook)
    insert(svc)
    assert emu.push.wait_idle()
    assert hook.states() == [("sync", 1), ("exists", 2)]
    emu.push.advance(9)
    assert emu.push.wait_idle()
    assert len(hook.received) == 2  # the first retry waits 10 s
    emu.push.advance(1)
    assert emu.push.wait_idle()
    emu.push.advance(20)
    assert emu.push.wait_idle()
    assert hook.states() == [("sync", 1), ("exists", 2), ("exists", 2), ("exists", 2)]
    attempts = [(d.attempt, d.status, d.outcome) for d in emu.push.deliveries
                if d.state == "exists"]
    assert attempts == [(1, 503, "retry"), (2, 500, "retry"), (3, 200, "delivered")]


def test_retries_are_bounded_and_a_4xx_is_not_retried(emu: GoogleEmulator, svc: Any,
                                                       hook: Hook) -> None:
    emu.push.retry_base, emu.push.attempts = 1.0, 3
    watch(svc, hook)
    assert emu.push.wait_idle()
    hook.statuses = [502] * 10
    insert(svc)
    for _ in range(5):
        assert emu.push.wait_idle()
        emu.push.advance(8)
    assert emu.push.wait_idle()
    assert [d.outcome for d in emu.push.deliveries if d.state == "exists"] == [
        "retry", "retry", "failed"]
    hook.statuses = [404]
    insert(svc)
    assert emu.push.wait_idle()
    emu.push.advance(100)
    assert emu.push.wait_idle()
    assert emu.push.deliveries[-1].outcome == "failed" and emu.push.deliveries[-1].status == 404
    assert sum(1 for d in emu.push.deliveries if d.number == 3) == 1


def test_a_receiver_that_is_down_is_retried_like_a_5xx(emu: GoogleEmulator, svc: Any) -> None:
    down = Hook(address="http://127.0.0.1:9/hooks/google")
    emu.push.attempts = 2
    watch(svc, down)
    assert emu.push.wait_idle()
    emu.push.advance(3600)
    assert emu.push.wait_idle()
    assert [(d.status, d.outcome) for d in emu.push.deliveries] == [
        (None, "retry"), (None, "failed")]


def test_dropped_messages_never_arrive_but_use_their_number(
        emu: GoogleEmulator, svc: Any, hook: Hook) -> None:
    watch(svc, hook)
    emu.push.faults.drop_next = 1
    insert(svc)
    insert(svc)
    assert emu.push.wait_idle()
    assert hook.states() == [("sync", 1), ("exists", 3)]
    assert [d.outcome for d in emu.push.deliveries].count("dropped") == 1


def test_a_share_of_messages_is_dropped_with_a_seeded_rng(
        emu: GoogleEmulator, svc: Any, hook: Hook) -> None:
    watch(svc, hook)
    assert emu.push.wait_idle()
    emu.push.faults.drop = 0.5
    calendar = emu.push.channels()[0].calendar_id
    for _ in range(40):
        emu.push.notify(calendar)
    assert emu.push.wait_idle()
    arrived = len(hook.received) - 1
    assert 5 < arrived < 35


def test_duplicated_messages_arrive_twice_with_the_same_number(
        emu: GoogleEmulator, svc: Any, hook: Hook) -> None:
    watch(svc, hook)
    assert emu.push.wait_idle()
    emu.push.faults.duplicate = 1.0
    insert(svc)
    assert emu.push.wait_idle()
    assert hook.states() == [("sync", 1), ("exists", 2), ("exists", 2)]


def test_reordered_messages_arrive_last_first(emu: GoogleEmulator, svc: Any,
                                              hook: Hook) -> None:
    watch(svc, hook)
    assert emu.push.wait_idle()
    emu.push.faults.reorder = 3
    for _ in range(3):
        insert(svc)
    assert emu.push.wait_idle()
    assert hook.states() == [("sync", 1), ("exists", 4), ("exists", 3), ("exists", 2)]


def test_a_lone_held_message_is_released_after_the_hold(emu: GoogleEmulator, svc: Any,
                                                        hook: Hook) -> None:
    watch(svc, hook)
    assert emu.push.wait_idle()
    emu.push.faults.reorder, emu.push.faults.reorder_hold = 5, 30.0
    insert(svc)
    emu.push.advance(31)
    assert emu.push.wait_idle()
    assert hook.states() == [("sync", 1), ("exists", 2)]


def test_delayed_messages_wait_on_the_emulator_clock(emu: GoogleEmulator, svc: Any,
                                                     hook: Hook) -> None:
    watch(svc, hook)
    assert emu.push.wait_idle()
    emu.push.faults.delay = 120
    insert(svc)
    assert emu.push.wait_idle()
    assert len(hook.received) == 1
    emu.push.advance(120)
    assert emu.push.wait_idle()
    assert hook.states() == [("sync", 1), ("exists", 2)]


def test_a_silent_channel_is_accepted_and_never_delivers(emu: GoogleEmulator, svc: Any,
                                                         hook: Hook) -> None:
    emu.push.faults.silent = True
    channel = watch(svc, hook)
    assert channel["expiration"]
    emu.push.faults.silent = False
    insert(svc)
    assert emu.push.wait_idle()
    assert hook.received == []
    watch(svc, hook, "chan-2")
    emu.push.silence("chan-2")
    insert(svc)
    assert emu.push.wait_idle()
    assert [h["x-goog-resource-state"] for h in hook.received] in (["sync"], [])


def test_a_slow_receiver_never_holds_up_the_api(emu: GoogleEmulator, svc: Any,
                                                hook: Hook) -> None:
    hook.gate = threading.Event()
    watch(svc, hook)  # its sync message now hangs in the receiver
    try:
        for _ in range(3):
            insert(svc)  # answered although a delivery is in flight
        assert len(emu.events("primary")) == 3
        assert hook.received == []
    finally:
        hook.gate.set()
    assert emu.push.wait_idle()
    assert [s for s, _ in hook.states()] == ["sync", "exists", "exists", "exists"]


def test_the_clock_only_moves_forward(emu: GoogleEmulator) -> None:
    before = emu.push.now()
    emu.push.advance(10)
    assert emu.push.now() >= before + 10
    assert datetime.fromtimestamp(emu.push.now(), UTC) > datetime.now(UTC)
    with pytest.raises(ValueError):
        emu.push.advance(-1)


def test_several_workers_post_side_by_side_and_every_number_arrives_once(hook: Hook) -> None:
    emulator = GoogleEmulator()
    emulator.push.workers = 4
    with emulator:
        watch(build_service(emulator), hook)
        calendar = emulator.push.channels()[0].calendar_id
        for _ in range(50):
            emulator.push.notify(calendar)
        assert emulator.push.wait_idle()
    assert sorted(n for _, n in hook.states()) == list(range(1, 52))
