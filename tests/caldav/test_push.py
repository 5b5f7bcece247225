"""WebDAV-Push on a real Xandikos (``--webdav-push``): the CalDAV connector subscribes,
Xandikos delivers signed Web Push messages to syncd's hook, and our own writes stay quiet;
Radicale has no WebDAV-Push and is polled."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import requests

from connectors.base import DeleteOp
from connectors.caldav_push import NO_PUSH
from syncd.errors import PushRefused
from syncd_testkit.servers import RadicaleServer, XandikosPushServer, XandikosServer
from tests.caldav.push_support import PushReceiver, connector, push_calendar, wait_for, watched
from tests.caldav.test_contract import DavUser
from tests.conftest import fresh_calendar
from tests.contract import create, timed


def test_watch_subscribes_the_calendar_with_the_servers_subscription_url_and_expiry(
        xandikos_push: XandikosPushServer, push_receiver: PushReceiver) -> None:
    calendar = connector(xandikos_push, push_calendar(xandikos_push))
    asked = datetime.now(UTC).replace(microsecond=0) + timedelta(days=2)
    channel = calendar.watch(push_receiver.address, "chan1", "secret-token", asked)
    assert channel.id == "chan1"
    assert channel.expires_at == asked  # Xandikos keeps the expiry asked for
    subscription = urlsplit(channel.resource_id)
    assert f"{subscription.scheme}://{subscription.netloc}" == xandikos_push.origin
    assert "/.subscriptions/" in subscription.path
    assert channel.details["vapid_key"] and channel.details["topic"]
    assert channel.details["audience"] == push_receiver.receiver.url
    assert calendar.subscription == channel.resource_id
    calendar.unwatch(channel)
    assert calendar.subscription is None
    assert requests.delete(channel.resource_id, timeout=10).status_code == 404  # gone
    calendar.unwatch(channel)  # one the server no longer knows is no error


def test_a_change_by_another_client_is_delivered_signed_and_flags_the_account(
        xandikos_push: XandikosPushServer, push_receiver: PushReceiver) -> None:
    url = push_calendar(xandikos_push)
    watched(connector(xandikos_push, url), push_receiver)
    DavUser(xandikos_push, "user", url).create(timed("Call from a phone"))
    assert push_receiver.wait("accepted") == 1
    assert push_receiver.receiver.hints.settle()
    assert push_receiver.dirty.flagged() == {"dav"}
    assert push_receiver.receiver.webdav.counts["forged"] == 0
    row = push_receiver.channels.get("dav")
    assert row is not None and row.last_message_at is not None


def test_our_own_writes_carry_push_dont_notify_and_wake_nobody(
        xandikos_push: XandikosPushServer, push_receiver: PushReceiver) -> None:
    url = push_calendar(xandikos_push)
    calendar = connector(xandikos_push, url)
    watched(calendar, push_receiver)
    event = create(calendar, timed("Ours"))
    [deleted] = calendar.write([_delete(event.event_id, event.etag)])
    assert deleted.error is None
    # Someone else's change after ours: once its message is in, ours would have been too.
    DavUser(xandikos_push, "user", url).create(timed("Theirs"))
    assert push_receiver.wait("accepted") == 1
    assert wait_for(lambda: push_receiver.receiver.webdav.counts["accepted"], 2,
                    timeout=1.0) == 1


def test_a_second_subscriber_is_still_told_of_our_writes(
        xandikos_push: XandikosPushServer, push_receiver: PushReceiver) -> None:
    """Push-Dont-Notify names our subscription only: the owner's phone still hears."""
    url = push_calendar(xandikos_push)
    ours = connector(xandikos_push, url, name="dav")
    phone = connector(xandikos_push, url, name="phone")
    watched(ours, push_receiver, account="dav")
    watched(phone, push_receiver, account="phone")
    create(ours, timed("Ours"))
    assert push_receiver.wait("accepted") == 1
    assert push_receiver.receiver.hints.settle()
    assert push_receiver.dirty.flagged() == {"phone"}


def test_a_delivery_to_a_stopped_channel_is_not_sent(
        xandikos_push: XandikosPushServer, push_receiver: PushReceiver) -> None:
    url = push_calendar(xandikos_push)
    calendar = connector(xandikos_push, url)
    channel, _ = watched(calendar, push_receiver)
    calendar.unwatch(channel)
    user = DavUser(xandikos_push, "user", url)
    user.create(timed("After the stop"))
    # A second, live channel proves deliveries run; the stopped one gets nothing.
    watched(connector(xandikos_push, url, name="other"), push_receiver, account="other")
    user.create(timed("Later"))
    assert push_receiver.wait("accepted") == 1
    assert push_receiver.receiver.hints.settle()
    assert push_receiver.dirty.flagged() == {"other"}


def test_radicale_offers_no_webdav_push_and_is_refused(radicale: RadicaleServer,
                                                        push_receiver: PushReceiver) -> None:
    user, url = fresh_calendar(radicale)
    calendar = connector(radicale, url, user=user)
    with pytest.raises(PushRefused) as refused:
        calendar.watch(push_receiver.address, "c1", "t1",
                       datetime.now(UTC) + timedelta(days=1))
    assert refused.value.reason == NO_PUSH and refused.value.provider == "caldav"


def test_xandikos_without_the_option_offers_no_webdav_push(
        xandikos: XandikosServer, push_receiver: PushReceiver) -> None:
    user, url = fresh_calendar(xandikos)
    with pytest.raises(PushRefused) as refused:
        connector(xandikos, url, user=user).watch(push_receiver.address, "c1", "t1",
                                                 datetime.now(UTC) + timedelta(days=1))
    assert refused.value.reason == NO_PUSH


def test_a_plain_http_address_is_refused_by_the_server(
        xandikos_push: XandikosPushServer) -> None:
    """Web Push needs TLS: Xandikos refuses an http:// push resource, and syncd polls."""
    calendar = connector(xandikos_push, push_calendar(xandikos_push))
    with pytest.raises(PushRefused) as refused:
        calendar.watch("http://127.0.0.1:9/hooks/webdav", "c1", "t1",
                       datetime.now(UTC) + timedelta(days=1))
    assert refused.value.reason == "the server refused the subscription (invalid-subscription)"
    assert refused.value.status == 403


def test_forged_deliveries_to_a_registered_channel_are_refused_with_no_cycle(
        xandikos_push: XandikosPushServer, push_receiver: PushReceiver,
        push_tls: tuple[Path, Path]) -> None:
    url = push_calendar(xandikos_push)
    channel, resource = watched(connector(xandikos_push, url), push_receiver)
    wrong_token = requests.post(f"{push_receiver.address}/{channel.id}/guessed", data=b"x",
                                timeout=10, verify=str(push_tls[0]))
    # The right push resource (leaked from a log, say) without Xandikos's VAPID signature:
    unsigned = requests.post(resource, data=b"x", timeout=10, verify=str(push_tls[0]))
    assert wrong_token.status_code == 403 and unsigned.status_code == 401
    assert push_receiver.receiver.webdav.counts["forged"] == 2
    assert push_receiver.receiver.hints.settle()
    assert push_receiver.dirty.flagged() == set()


def _delete(event_id: str, etag: str | None) -> DeleteOp:
    return DeleteOp(key=uuid.uuid4().hex, event_id=event_id, etag=etag)
