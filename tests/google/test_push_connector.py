"""The Google connector's channels (connectors.base.Watchable) against the emulator over
real HTTP, and its reading of hostile watch answers."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from connectors.base import Channel, Watchable
from connectors.google import GoogleCalendar
from connectors.google_watch import read_channel, refusal, watch_body
from syncd.errors import AuthFailed, PushRefused, Transient
from syncd_testkit.emulators.google import FaultRule, GoogleEmulator

from .helpers import connector
from .push_receiver import Hook

TOKEN = "s3cret-token"


@pytest.fixture
def conn(google_emulator: GoogleEmulator) -> Iterator[GoogleCalendar]:
    calendar = connector(google_emulator, attempts=2)
    yield calendar
    calendar.close()


def in_hours(hours: float) -> datetime:
    return datetime.now(UTC) + timedelta(hours=hours)


def test_the_google_connector_is_watchable_and_its_own_writes_are_notified(
        conn: GoogleCalendar) -> None:
    assert isinstance(conn, Watchable)
    assert conn.push_kind == "google"
    assert conn.notifies_own_writes is True


def test_watch_opens_a_channel_that_notifies_with_our_token(
        google_emulator: GoogleEmulator, conn: GoogleCalendar,
        hook: Hook) -> None:
    url, received = hook.address, hook.received
    channel = conn.watch(url, "chan-1", TOKEN, in_hours(24))
    assert channel.id == "chan-1" and channel.resource_id
    assert abs(channel.expires_at - in_hours(24)) < timedelta(seconds=10)
    sent = next(r for r in google_emulator.requests if r.path.endswith("/events/watch"))
    assert '"ttl"' in sent.body.decode() and '"web_hook"' in sent.body.decode()
    google_emulator.put_event("primary", {"summary": "x", "start": {"date": "2026-12-02"},
                                          "end": {"date": "2026-12-03"}})
    assert google_emulator.push.wait_idle()
    assert [h["x-goog-resource-state"] for h in received] == ["sync", "exists"]
    assert {h["x-goog-channel-token"] for h in received} == {TOKEN}
    assert {h["x-goog-resource-id"] for h in received} == {channel.resource_id}


def test_the_expiry_is_the_one_google_grants_not_the_one_asked(
        google_emulator: GoogleEmulator, conn: GoogleCalendar,
        hook: Hook) -> None:
    google_emulator.push.max_ttl = 3600
    channel = conn.watch(hook.address, "chan-1", TOKEN, in_hours(24 * 60))
    assert abs(channel.expires_at - in_hours(1)) < timedelta(seconds=10)


def test_renew_opens_a_new_channel_and_unwatch_stops_the_old(
        google_emulator: GoogleEmulator, conn: GoogleCalendar,
        hook: Hook) -> None:
    url, received = hook.address, hook.received
    old = conn.watch(url, "chan-1", TOKEN, in_hours(1))
    new = conn.renew(old, url, "chan-2", "new-token", in_hours(2))
    assert new.id == "chan-2" and new.expires_at > old.expires_at
    conn.unwatch(old)
    assert [c.id for c in google_emulator.push.channels()] == ["chan-2"]
    google_emulator.put_event("primary", {"summary": "x", "start": {"date": "2026-12-02"},
                                          "end": {"date": "2026-12-03"}})
    assert google_emulator.push.wait_idle()
    exists = [h for h in received if h["x-goog-resource-state"] == "exists"]
    assert [(h["x-goog-channel-id"], h["x-goog-channel-token"]) for h in exists] == [
        ("chan-2", "new-token")]


def test_unwatch_of_a_channel_google_no_longer_knows_is_not_an_error(
        google_emulator: GoogleEmulator, conn: GoogleCalendar,
        hook: Hook) -> None:
    channel = conn.watch(hook.address, "chan-1", TOKEN, in_hours(1))
    conn.unwatch(channel)
    conn.unwatch(channel)  # stopped already
    conn.unwatch(Channel("never-made", in_hours(1), "nothing"))
    expiring = conn.watch(hook.address, "chan-2", TOKEN, in_hours(1))
    google_emulator.push.advance(2 * 3600)
    conn.unwatch(expiring)  # expired


def test_an_address_google_refuses_means_push_refused(conn: GoogleCalendar) -> None:
    with pytest.raises(PushRefused) as caught:
        conn.watch("http://syncd.example.com/hooks/google", "chan-1", TOKEN, in_hours(1))
    assert caught.value.reason == "push.webhookUrlNotHttps"
    assert caught.value.provider == "google" and caught.value.status == 400


def test_a_calendar_google_will_not_watch_means_push_refused(
        google_emulator: GoogleEmulator, conn: GoogleCalendar,
        hook: Hook) -> None:
    google_emulator.inject(FaultRule(method="POST", path=r"/watch$", status=400,
                                     reason="pushNotSupportedForRequestedResource"))
    with pytest.raises(PushRefused) as caught:
        conn.watch(hook.address, "chan-1", TOKEN, in_hours(1))
    assert caught.value.reason == "pushNotSupportedForRequestedResource"


def test_a_failed_watch_is_not_sent_twice_and_is_tried_again_later(
        google_emulator: GoogleEmulator, conn: GoogleCalendar,
        hook: Hook) -> None:
    google_emulator.inject(FaultRule(method="POST", path=r"/watch$", status=503, count=1))
    with pytest.raises(Transient):
        conn.watch(hook.address, "chan-1", TOKEN, in_hours(1))
    assert len([r for r in google_emulator.requests if r.path.endswith("/watch")]) == 1
    assert conn.watch(hook.address, "chan-2", TOKEN, in_hours(1)).id == "chan-2"


def test_a_throttled_watch_is_retried(google_emulator: GoogleEmulator, conn: GoogleCalendar,
                                      hook: Hook) -> None:
    google_emulator.inject(FaultRule(method="POST", path=r"/watch$", status=403,
                                     reason="rateLimitExceeded", count=1))
    assert conn.watch(hook.address, "chan-1", TOKEN, in_hours(1)).id == "chan-1"


def test_a_watch_on_a_calendar_that_is_not_there_is_an_auth_problem(
        google_emulator: GoogleEmulator, hook: Hook) -> None:
    google_emulator.auto_create_calendars = False
    calendar = connector(google_emulator, calendar="nobody@example.com")
    with pytest.raises(AuthFailed):
        calendar.watch(hook.address, "chan-1", TOKEN, in_hours(1))
    calendar.close()


def test_a_stop_google_fails_is_raised(google_emulator: GoogleEmulator,
                                       conn: GoogleCalendar,
                                       hook: Hook) -> None:
    channel = conn.watch(hook.address, "chan-1", TOKEN, in_hours(1))
    google_emulator.inject(FaultRule(method="POST", path=r"/channels/stop$", status=500,
                                     count=None))
    with pytest.raises(Transient):
        conn.unwatch(channel)


# ---- reading Google's answers -------------------------------------------------------------

ASKED = datetime(2026, 12, 8, tzinfo=UTC)


def test_the_watch_body_asks_a_ttl_in_whole_seconds_never_below_one() -> None:
    now = datetime(2026, 12, 7, tzinfo=UTC)
    body = watch_body("https://x/hooks/google", "c", "t", ASKED, now)
    assert body == {"id": "c", "type": "web_hook", "address": "https://x/hooks/google",
                    "token": "t", "params": {"ttl": "86400"}}
    assert watch_body("a", "c", "t", now - timedelta(hours=1), now)["params"]["ttl"] == "1"


def test_an_answer_without_expiration_keeps_the_expiry_asked() -> None:
    channel = read_channel({"id": "c", "resourceId": "r"}, "c", ASKED)
    assert channel == Channel("c", ASKED, "r")
    assert read_channel({"id": "c", "resourceId": "r", "expiration": 1765152000000}, "c",
                        ASKED).expires_at == datetime(2025, 12, 8, tzinfo=UTC)


@pytest.mark.parametrize("body", [
    None, "text", [], {"resourceId": "r"}, {"id": "other", "resourceId": "r"},
    {"id": "c"}, {"id": "c", "resourceId": ""}, {"id": "c", "resourceId": 5},
    {"id": "c", "resourceId": "r" * 257}, {"id": "c", "resourceId": "r", "expiration": "soon"},
    {"id": "c", "resourceId": "r", "expiration": "9" * 40},
    {"id": "c", "resourceId": "r", "expiration": -1},
    {"id": "c", "resourceId": "r", "expiration": True},
    {"id": "c", "resourceId": "r", "expiration": 1.5},
    {"id": "c", "resourceId": "r", "expiration": "١٢٣"},  # digits, but not ASCII ones
    {"id": "c", "resourceId": "r", "expiration": {"ms": 1}},
])
def test_a_hostile_watch_answer_is_unreadable_never_a_channel(body: Any) -> None:
    with pytest.raises(Transient):
        read_channel(body, "c", ASKED)


@pytest.mark.parametrize(("status", "reason", "refused"), [
    (400, "pushNotSupportedForRequestedResource", True),
    (400, "push.webhookUrlNotHttps", True),
    (401, "push.webhookUrlUnauthorized", True),
    (400, "push.somethingNew", True),
    (500, "push.somethingNew", False),
    (400, "invalid", False),
    (403, "rateLimitExceeded", False),
    (401, "authError", False),
])
def test_which_refusals_mean_polling(status: int, reason: str, refused: bool) -> None:
    assert (refusal(status, reason) is not None) is refused
