"""The channel keeper with the CalDAV connector on a real Xandikos (``--webdav-push``):
it opens a subscription after a cycle, renews it as a new one and removes the old, stops
it when the account goes, and a restarted daemon's new connector learns its stored
subscription, so its writes still carry Push-Dont-Notify."""

from __future__ import annotations

from pathlib import Path

import requests

from syncd.channels import KEPT, OPENED, RENEWED, ChannelKeeper, PushSettings
from syncd.config import AccountConfig
from syncd_testkit.servers import XandikosPushServer
from tests.caldav.push_support import (
    PushReceiver,
    connector,
    push_calendar,
    stored_subscriptions,
    wait_for,
)
from tests.caldav.test_contract import DavUser
from tests.contract import create, timed


def _keeper(receiver: PushReceiver) -> ChannelKeeper:
    return ChannelKeeper(receiver.channels, PushSettings(receiver.receiver.url),
                         owner="host:1")


def _account(url: str) -> AccountConfig:
    return AccountConfig(name="dav", provider="caldav", owner="user@example.com",
                         calendar=url)


def test_the_keeper_opens_renews_and_stops_the_subscription(
        xandikos_push: XandikosPushServer, push_receiver: PushReceiver) -> None:
    url = push_calendar(xandikos_push)
    calendar, keeper = connector(xandikos_push, url), _keeper(push_receiver)
    assert keeper.maintain(_account(url), calendar, wrote_calendar=False) == OPENED
    first = push_receiver.channels.get("dav")
    assert first is not None and first.kind == "webdav" and first.healthy
    assert first.resource_id == calendar.subscription
    assert len(stored_subscriptions(xandikos_push, url)) == 1

    # Near its end the channel is renewed: a new subscription, the old one DELETEd.
    assert first.expires_at is not None
    keeper.clock = lambda: first.expires_at - (first.expires_at - first.created_at) / 10
    assert keeper.maintain(_account(url), calendar, wrote_calendar=False) == RENEWED
    second = push_receiver.channels.get("dav")
    assert second is not None and second.channel_id != first.channel_id
    assert calendar.subscription == second.resource_id != first.resource_id
    [left] = stored_subscriptions(xandikos_push, url)
    assert f"/{second.channel_id}/" in left

    keeper.forget("dav", calendar)
    assert stored_subscriptions(xandikos_push, url) == []
    assert push_receiver.channels.get("dav") is None
    assert second.resource_id is not None
    assert requests.delete(second.resource_id, timeout=10).status_code == 404


def test_a_restarted_connector_learns_its_subscription_and_stays_quiet(
        xandikos_push: XandikosPushServer, push_receiver: PushReceiver,
        tmp_path: Path) -> None:
    url = push_calendar(xandikos_push)
    keeper = _keeper(push_receiver)
    assert keeper.maintain(_account(url), connector(xandikos_push, url),
                           wrote_calendar=False) == OPENED
    restarted = connector(xandikos_push, url)  # a new process: nothing in memory
    assert restarted.subscription is None
    assert keeper.maintain(_account(url), restarted, wrote_calendar=False) == KEPT
    row = push_receiver.channels.get("dav")
    assert row is not None and restarted.subscription == row.resource_id

    create(restarted, timed("Ours, after the restart"))
    DavUser(xandikos_push, "user", url).create(timed("Theirs"))
    assert push_receiver.wait("accepted") == 1
    assert wait_for(lambda: push_receiver.receiver.webdav.counts["accepted"], 2,
                    timeout=1.0) == 1
