"""What a hostile or broken server's WebDAV-Push answers make of a subscription: nothing is
followed outside the collection's origin, nothing unbounded is read, and every failure
is a refusal (polled) or a transient error (asked again), never a channel that cannot
be verified or stopped."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta

import pytest

from connectors.base import Channel
from connectors.caldav_http import Reply, ReplyTooLarge
from connectors.caldav_push import (
    NO_PUSH,
    NS,
    dont_notify,
    read_expires,
    register,
    unregister,
)
from syncd.errors import AuthFailed, PushRefused, Transient

COLLECTION = "https://dav.example/user/calendars/work/"
ADDRESS = "https://syncd.example/hooks/webdav"
ASKED = datetime(2026, 12, 9, 12, 0, tzinfo=UTC)
KEY = "B" + "A" * 86  # base64url of 65 bytes starting with 0x04


def _offer(key: str | None = KEY, kind: str = "p256ecdsa") -> bytes:
    vapid = f'<P:vapid-public-key type="{kind}">{key}</P:vapid-public-key>' if key else ""
    return (f'<D:multistatus xmlns:D="DAV:" xmlns:P="{NS}"><D:response>'
            "<D:href>/user/calendars/work/</D:href><D:propstat><D:prop>"
            f"<P:transports><P:web-push>{vapid}</P:web-push></P:transports>"
            "<P:topic>abc</P:topic></D:prop><D:status>HTTP/1.1 200 OK</D:status>"
            "</D:propstat></D:response></D:multistatus>").encode()


NO_OFFER = (b'<D:multistatus xmlns:D="DAV:"><D:response><D:href>/x/</D:href><D:propstat>'
            b'<D:prop><transports xmlns="https://bitfire.at/webdav-push"/></D:prop>'
            b"<D:status>HTTP/1.1 404 Not Found</D:status></D:propstat></D:response>"
            b"</D:multistatus>")
CREATED = Reply(201, {"Location": "/.subscriptions/s1",
                      "Expires": "Wed, 09 Dec 2026 12:00:00 GMT"}, b"")


class Scripted:
    """A transport that answers from a script and records what was sent."""

    def __init__(self, *replies: Reply | Exception) -> None:
        self.replies = list(replies)
        self.sent: list[tuple[str, str, bytes, Mapping[str, str]]] = []

    def send(self, method: str, url: str, body: bytes = b"",
             headers: Mapping[str, str] | None = None, *, max_bytes: int = 0) -> Reply:
        self.sent.append((method, url, body, dict(headers or {})))
        reply = self.replies.pop(0)
        if isinstance(reply, Exception):
            raise reply
        return reply


def _register(*replies: Reply | Exception) -> tuple[Channel, Scripted]:
    transport = Scripted(*replies)
    channel = register(transport, COLLECTION, ADDRESS, "ch1", "tok",  # type: ignore[arg-type]
                       ASKED)
    return channel, transport


def test_a_registration_names_our_push_resource_keys_trigger_and_expiry() -> None:
    channel, transport = _register(Reply(207, {}, _offer()), CREATED)
    method, url, body, headers = transport.sent[1]
    assert headers["Content-Type"].startswith("application/xml")
    assert (method, url) == ("POST", COLLECTION)
    text = body.decode()
    assert f"<P:push-resource>{ADDRESS}/ch1/tok</P:push-resource>" in text
    assert '<P:subscription-public-key type="p256dh">B' in text
    assert "<P:auth-secret>" in text and "<P:content-update>" in text
    assert "<P:expires>Wed, 09 Dec 2026 12:00:00 GMT</P:expires>" in text
    assert channel == Channel(id="ch1", expires_at=ASKED,
                              resource_id="https://dav.example/.subscriptions/s1",
                              details={"vapid_key": KEY, "topic": "abc",
                                       "audience": "https://syncd.example"})


@pytest.mark.parametrize("offer", [
    NO_OFFER,
    _offer(key="not base64 !"),
    _offer(key="AAAA"),  # too short for a P-256 point
    _offer(kind="rsa"),
    b'<D:error xmlns:D="DAV:"/>',
])
def test_no_usable_web_push_offer_is_a_refusal(offer: bytes) -> None:
    with pytest.raises(PushRefused) as refused:
        _register(Reply(207, {}, offer))
    assert refused.value.reason == NO_PUSH


def test_an_offer_without_a_vapid_key_subscribes_with_the_token_alone() -> None:
    channel, _ = _register(Reply(207, {}, _offer(key=None)), CREATED)
    assert channel.details["vapid_key"] is None


@pytest.mark.parametrize(("reply", "error"), [
    (Reply(207, {}, b"<not xml"), Transient),
    (Reply(207, {}, b'<!DOCTYPE x [<!ENTITY a "b">]><x>&a;</x>'), PushRefused),  # unexpanded
    (ReplyTooLarge(10**9), Transient),
    (Reply(500, {}, b""), Transient),
    (Reply(401, {}, b""), AuthFailed),
    (Reply(405, {}, b""), PushRefused),
])
def test_a_discovery_that_fails_is_transient_auth_or_refused(reply: Reply | Exception,
                                                             error: type[Exception]) -> None:
    with pytest.raises(error):
        _register(reply)


@pytest.mark.parametrize(("reply", "reason"), [
    (Reply(201, {"Location": "https://evil.example/.subscriptions/s1"}, b""),
     "the server named a subscription URL outside its origin"),
    (Reply(201, {"Location": "http://dav.example/.subscriptions/s1"}, b""),
     "the server named a subscription URL outside its origin"),
    (Reply(201, {"Location": "//dav.example:8443/s1"}, b""),
     "the server named a subscription URL outside its origin"),
    (Reply(201, {}, b""), "the server named no subscription URL"),
    (Reply(403, {}, f'<D:error xmlns:D="DAV:" xmlns:P="{NS}"><P:no-supported-trigger/>'
                    "</D:error>".encode()),
     "the server refused the subscription (no-supported-trigger)"),
    (Reply(403, {}, f'<D:error xmlns:D="DAV:" xmlns:P="{NS}"><P:push-not-available/>'
                    "</D:error>".encode()), NO_PUSH),
    (Reply(400, {}, b"<html>" + b"x" * 1000), "the server refused the subscription (HTTP 400)"),
])
def test_a_registration_answer_that_cannot_be_used_is_refused(reply: Reply,
                                                              reason: str) -> None:
    with pytest.raises(PushRefused) as refused:
        _register(Reply(207, {}, _offer()), reply)
    assert refused.value.reason == reason


def test_a_busy_server_is_asked_again_later() -> None:
    with pytest.raises(Transient):
        _register(Reply(207, {}, _offer()), Reply(503, {}, b""))


@pytest.mark.parametrize("value", [None, "", "garbage", "x" * 500, "Mon, 99 Foo 2026"])
def test_an_expiry_that_cannot_be_read_is_the_one_asked_for(value: str | None) -> None:
    assert read_expires(value, ASKED) == ASKED


def test_an_expiry_without_a_zone_is_utc() -> None:
    assert read_expires("Wed, 09 Dec 2026 10:00:00 -0000", ASKED) == \
        ASKED - timedelta(hours=2)


def test_unregister_deletes_within_the_origin_and_tolerates_a_gone_subscription() -> None:
    transport = Scripted(Reply(204, {}, b""), Reply(404, {}, b""), Reply(410, {}, b""))
    for _ in range(3):
        unregister(transport, COLLECTION,  # type: ignore[arg-type]
                   "https://dav.example/.subscriptions/s1")
    assert [s[0] for s in transport.sent] == ["DELETE"] * 3


def test_unregister_never_sends_outside_the_collections_origin() -> None:
    transport = Scripted()
    for url in ("https://evil.example/s1", "http://dav.example/s1", "", "https://dav.example:x/"):
        unregister(transport, COLLECTION, url)  # type: ignore[arg-type]
    assert transport.sent == []


def test_unregister_failures_are_transient_or_auth() -> None:
    with pytest.raises(Transient):
        unregister(Scripted(Reply(500, {}, b"")), COLLECTION,  # type: ignore[arg-type]
                   "https://dav.example/s1")
    with pytest.raises(AuthFailed):
        unregister(Scripted(Reply(401, {}, b"")), COLLECTION,  # type: ignore[arg-type]
                   "https://dav.example/s1")


def test_push_dont_notify_names_the_subscription_quoted() -> None:
    assert dont_notify("https://dav.example/.subscriptions/s1") == {
        "Push-Dont-Notify": '"https://dav.example/.subscriptions/s1"'}
