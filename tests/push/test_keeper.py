"""The channel keeper after each cycle: open, renew, stop, refusals, failures, liveness."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from connectors.base import Channel, Watchable
from connectors.memory import MemoryCalendar
from syncd import channels as keeping_
from syncd.channels import ChannelKeeper, PushSettings, renewal_margin
from syncd.config import AccountConfig
from syncd.report import push_status
from syncd.store.channels import ACTIVE, DEGRADED, REFUSED, ChannelStore
from syncd.store.db import Database
from tests.push.conftest import ALICE, NOWHERE, Clock, Keeping, keeper_for


def _only_watch(calendar: MemoryCalendar) -> Any:
    [watch] = calendar.watches.values()
    return watch


def test_a_watchable_calendar_gets_a_channel_with_a_fresh_token_at_the_public_url(
        keeping: Keeping) -> None:
    assert keeping.maintain() == keeping_.OPENED
    watch = _only_watch(keeping.calendar)
    assert watch.address == f"{NOWHERE}/hooks/memory"
    assert len(watch.token) >= 40 and len(watch.channel.id) == 32
    row = keeping.channels.get("alice")
    assert row is not None and row.state == ACTIVE and row.healthy
    assert (row.channel_id, row.kind, row.owner) == (watch.channel.id, "memory", "host:1")
    assert row.resource_id == f"resource-{watch.channel.id}"
    assert row.details == {"calendar": "memory"}
    assert keeping.channels.verify(watch.channel.id, watch.token) is not None
    assert push_status(row, public_url=NOWHERE).startswith("push: active until ")

    assert keeping.maintain() == keeping_.KEPT  # the next cycle: nothing to do
    assert keeping.calendar.push_calls == ["watch"]


def test_each_channel_gets_its_own_token_and_id(db: Database) -> None:
    clock = Clock()
    keeper = keeper_for(db, clock)
    first, second = MemoryCalendar(), MemoryCalendar()
    keeper.maintain(ALICE, first, wrote_calendar=False)
    keeper.maintain(replace(ALICE, name="bob"), second, wrote_calendar=False)
    a, b = _only_watch(first), _only_watch(second)
    assert a.token != b.token and a.channel.id != b.channel.id
    assert keeper.channels.verify(a.channel.id, b.token) is None


def test_a_channel_is_renewed_a_quarter_of_its_lifetime_before_it_ends(
        keeping: Keeping) -> None:
    keeping.maintain()
    old = _only_watch(keeping.calendar)
    row = keeping.channels.get("alice")
    assert row is not None
    assert renewal_margin(row, timedelta(minutes=15)) == timedelta(days=1)
    keeping.clock.advance(days=2, hours=23)  # 25 h left: not yet
    assert keeping.maintain() == keeping_.KEPT
    keeping.clock.advance(hours=2)  # 23 h left
    assert keeping.maintain() == keeping_.RENEWED
    new = _only_watch(keeping.calendar)  # the old one was stopped
    assert new.channel.id != old.channel.id
    assert keeping.calendar.push_calls == ["watch", "watch", "unwatch"]
    row = keeping.channels.get("alice")
    assert row is not None and row.channel_id == new.channel.id
    assert keeping.channels.verify(new.channel.id, new.token) is not None
    assert keeping.channels.verify(old.channel.id, old.token) is None
    assert row.expires_at == keeping.clock() + timedelta(days=4)


def test_a_short_channel_is_renewed_two_backstops_before_it_ends(db: Database) -> None:
    clock = Clock()
    keeper = ChannelKeeper(ChannelStore(db), PushSettings(NOWHERE), owner="h:1", clock=clock,
                           lifetime=timedelta(hours=1))
    calendar = MemoryCalendar()
    keeper.maintain(ALICE, calendar, wrote_calendar=False)
    clock.advance(minutes=29)  # 31 min left: more than two 15-minute backstops
    assert keeper.maintain(ALICE, calendar, wrote_calendar=False) == keeping_.KEPT
    clock.advance(minutes=2)
    assert keeper.maintain(ALICE, calendar, wrote_calendar=False) == keeping_.RENEWED


def test_a_channel_renewed_in_place_keeps_its_id_and_token(keeping: Keeping) -> None:
    keeping.calendar.renews_in_place = True
    keeping.maintain()
    watch = _only_watch(keeping.calendar)
    keeping.clock.advance(days=3, hours=1)
    assert keeping.maintain() == keeping_.EXTENDED
    row = keeping.channels.get("alice")
    assert row is not None and row.channel_id == watch.channel.id
    assert row.expires_at == keeping.clock() + timedelta(days=4)
    # the provider goes on echoing the token it was given first
    assert keeping.channels.verify(watch.channel.id, watch.token) is not None
    assert keeping.calendar.push_calls == ["watch", "renew"]


def test_an_old_channel_that_cannot_be_stopped_does_not_stop_the_renewal(
        keeping: Keeping) -> None:
    keeping.maintain()

    def refuse(_channel: object) -> None:
        raise OSError("connection reset")

    keeping.calendar.unwatch = refuse  # type: ignore[method-assign]
    keeping.clock.advance(days=3, hours=1)
    assert keeping.maintain() == keeping_.RENEWED
    row = keeping.channels.get("alice")
    assert row is not None and row.healthy and len(keeping.calendar.watches) == 2


def test_an_expired_channel_is_replaced_not_renewed_or_stopped(keeping: Keeping) -> None:
    keeping.calendar.renews_in_place = True
    keeping.maintain()
    keeping.clock.advance(days=5)  # the daemon was down past its end
    assert keeping.maintain() == keeping_.OPENED
    assert keeping.calendar.push_calls == ["watch", "watch"]


def test_a_refusal_polls_the_account_and_says_why(keeping: Keeping) -> None:
    keeping.calendar.refuse_push = "tenant forbids subscriptions"
    assert keeping.maintain() == keeping_.REFUSED_NOW
    row = keeping.channels.get("alice")
    assert row is not None and row.state == REFUSED and not row.healthy
    assert push_status(row, public_url=NOWHERE) == "polled: tenant forbids subscriptions"


def test_a_refused_account_is_asked_again_after_a_day_or_a_config_change(
        keeping: Keeping, db: Database) -> None:
    keeping.calendar.refuse_push = "no WebDAV-Push"
    keeping.maintain()
    keeping.clock.advance(hours=23)
    assert keeping.maintain() == keeping_.STILL_REFUSED
    changed = replace(ALICE, auth={"url": "https://other.example.com/dav/"})
    assert keeping.maintain(account=changed) == keeping_.REFUSED_NOW  # asked at once
    assert keeping.calendar.push_calls == ["watch", "watch"]
    elsewhere = keeper_for(db, keeping.clock, "https://syncd2.example.com")
    assert elsewhere.maintain(changed, keeping.calendar, wrote_calendar=False) \
        == keeping_.REFUSED_NOW  # a new public URL: asked again too
    keeping.calendar.refuse_push = None
    assert elsewhere.maintain(changed, keeping.calendar, wrote_calendar=False) \
        == keeping_.STILL_REFUSED
    keeping.clock.advance(days=1)
    assert elsewhere.maintain(changed, keeping.calendar, wrote_calendar=False) \
        == keeping_.OPENED


def test_a_refusal_at_renewal_stops_the_old_channel(keeping: Keeping) -> None:
    keeping.maintain()
    keeping.calendar.refuse_push = "subscriptions now forbidden"
    keeping.clock.advance(days=3, hours=1)
    assert keeping.maintain() == keeping_.REFUSED_NOW
    assert keeping.calendar.watches == {}
    row = keeping.channels.get("alice")
    assert row is not None and row.channel_id is None and row.state == REFUSED


def test_a_failed_request_is_retried_at_the_next_cycle_and_never_raises(
        keeping: Keeping) -> None:
    keeping.calendar.fail_push = True
    assert keeping.maintain() == keeping_.FAILED
    assert keeping.channels.get("alice") is None
    assert push_status(None, public_url=NOWHERE).startswith("polled: no push channel yet")
    keeping.calendar.fail_push = False
    assert keeping.maintain() == keeping_.OPENED


def test_a_failed_renewal_degrades_the_channel_and_the_next_cycle_replaces_it(
        keeping: Keeping) -> None:
    keeping.calendar.renews_in_place = True
    keeping.maintain()
    old = _only_watch(keeping.calendar)
    keeping.calendar.fail_push = True
    keeping.clock.advance(days=3, hours=1)
    assert keeping.maintain() == keeping_.FAILED
    row = keeping.channels.get("alice")
    assert row is not None and row.state == DEGRADED and not row.healthy
    assert push_status(row, public_url=NOWHERE).startswith(
        "push: degraded (its renewal failed)")
    keeping.calendar.fail_push = False
    assert keeping.maintain() == keeping_.OPENED
    new = _only_watch(keeping.calendar)
    assert new.channel.id != old.channel.id  # the old one was stopped


def test_a_degraded_channel_is_recreated_and_the_dead_one_stopped(keeping: Keeping) -> None:
    keeping.maintain()
    old = _only_watch(keeping.calendar)
    keeping.channels.expect("alice", keeping.clock() + timedelta(minutes=3))
    keeping.clock.advance(minutes=4)
    assert keeping.keeper.missed() == ["alice"]
    row = keeping.channels.get("alice")
    assert row is not None and row.state == DEGRADED
    assert push_status(row, public_url=NOWHERE).startswith(
        "push: degraded (no notification after our write)")
    assert keeping.maintain() == keeping_.OPENED
    new = _only_watch(keeping.calendar)
    assert new.channel.id != old.channel.id
    row = keeping.channels.get("alice")
    assert row is not None and row.healthy and row.expect_by is None


def test_a_write_to_the_calendar_expects_a_notification_when_the_provider_sends_one(
        keeping: Keeping) -> None:
    keeping.maintain()
    assert keeping.maintain(wrote=False) == keeping_.KEPT
    row = keeping.channels.get("alice")
    assert row is not None and row.expect_by is None
    keeping.maintain(wrote=True)
    row = keeping.channels.get("alice")
    assert row is not None and row.expect_by == keeping.clock() + timedelta(seconds=180)
    assert keeping.keeper.missed(keeping.clock() + timedelta(seconds=179)) == []
    assert keeping.keeper.missed(keeping.clock() + timedelta(seconds=181)) == ["alice"]


def test_a_notification_heard_during_the_cycle_already_answers_its_writes(
        keeping: Keeping) -> None:
    keeping.maintain()
    watch = _only_watch(keeping.calendar)
    started = keeping.clock()
    keeping.channels.heard(watch.channel.id, now=started + timedelta(seconds=1))
    keeping.keeper.maintain(ALICE, keeping.calendar, wrote_calendar=True, since=started)
    row = keeping.channels.get("alice")
    assert row is not None and row.expect_by is None


def test_no_notification_is_expected_of_a_provider_that_does_not_notify_our_writes(
        keeping: Keeping) -> None:
    keeping.calendar.notifies_own_writes = False  # WebDAV-Push with Push-Dont-Notify
    keeping.maintain()
    keeping.maintain(wrote=True)
    row = keeping.channels.get("alice")
    assert row is not None and row.expect_by is None


def test_a_channel_opened_after_the_writes_expects_nothing_of_them(keeping: Keeping) -> None:
    assert keeping.maintain(wrote=True) == keeping_.OPENED
    row = keeping.channels.get("alice")
    assert row is not None and row.expect_by is None


def test_without_a_public_url_nothing_is_opened_and_an_old_channel_is_stopped(
        db: Database) -> None:
    clock, calendar = Clock(), MemoryCalendar()
    keeper_for(db, clock).maintain(ALICE, calendar, wrote_calendar=False)
    assert len(calendar.watches) == 1
    off = keeper_for(db, clock, public_url=None)
    assert off.maintain(ALICE, calendar, wrote_calendar=True) == keeping_.POLLED
    assert calendar.watches == {} and off.channels.get("alice") is None
    assert off.maintain(ALICE, calendar, wrote_calendar=False) == keeping_.POLLED
    assert calendar.push_calls == ["watch", "unwatch"]
    assert push_status(None, public_url=None) == "polled: push needs [http] public_url"
    assert off.maintain(ALICE, object(), wrote_calendar=False) == keeping_.POLLED
    assert off.channels.all() == []  # not even a "cannot be notified" row: push is off


def test_a_connector_that_cannot_be_watched_is_polled_and_says_so(keeping: Keeping) -> None:
    class Plain:  # a connector with no push (not a Watchable)
        pass

    assert not isinstance(Plain(), Watchable) and isinstance(MemoryCalendar(), Watchable)
    assert keeping.maintain(connector=Plain()) == keeping_.POLLED
    row = keeping.channels.get("alice")
    assert row is not None and row.state == REFUSED
    assert push_status(row, public_url=NOWHERE) == \
        "polled: this provider's connector cannot be notified"
    assert keeping.maintain(connector=Plain()) == keeping_.POLLED


def test_a_broken_store_never_fails_the_cycle(keeping: Keeping) -> None:
    def broken(_name: str) -> None:
        raise OSError("disk I/O error")

    keeping.channels.get = broken  # type: ignore[assignment,method-assign]
    assert keeping.maintain(wrote=True) == keeping_.FAILED


def test_forgetting_an_account_stops_its_channel_and_removes_only_its_row(
        keeping: Keeping) -> None:
    keeping.maintain()
    other = MemoryCalendar()
    bob = AccountConfig("bob", "memory", "bob@example.com")
    keeping.maintain(account=bob, connector=other)
    keeping.keeper.forget("alice", keeping.calendar)
    assert keeping.calendar.watches == {} and keeping.channels.get("alice") is None
    assert keeping.channels.get("bob") is not None and len(other.watches) == 1
    keeping.keeper.forget("alice", keeping.calendar)  # nothing left: nothing done
    assert keeping.calendar.push_calls == ["watch", "unwatch"]


def test_rows_of_accounts_no_longer_configured_are_pruned(keeping: Keeping) -> None:
    keeping.maintain()
    keeping.maintain(account=AccountConfig("bob", "memory", "bob@example.com"),
                     connector=MemoryCalendar())
    assert keeping.keeper.prune(["bob", "carol"]) == ["alice"]
    assert [row.account for row in keeping.channels.all()] == ["bob"]


class Answering(MemoryCalendar):
    """A calendar whose provider answers ``watch`` with whatever the test gives."""

    def __init__(self, answer: Any) -> None:
        super().__init__()
        self.answer = answer
        self.stopped: list[Any] = []

    def watch(self, address: str, channel_id: str, token: str, expires_at: datetime) -> Any:
        self.push_calls.append("watch")
        return self.answer(channel_id, expires_at) if callable(self.answer) else self.answer

    def unwatch(self, channel: Channel) -> None:
        self.stopped.append(channel)


def test_a_channel_the_keeper_cannot_store_is_stopped_and_tried_again(
        keeping: Keeping) -> None:
    now = keeping.clock()
    answers: list[Any] = [
        None,
        {"id": "x"},
        Channel("", now + timedelta(days=1)),
        Channel("c" * 301, now + timedelta(days=1)),
        Channel("c1", now.replace(tzinfo=None) + timedelta(days=1)),
        Channel("c1", now - timedelta(seconds=1)),
        Channel("c1", now + timedelta(days=1), resource_id="r" * 5000),
        Channel("c1", now + timedelta(days=1), details={"key": object()}),
        Channel("c1", now + timedelta(days=1), details={"big": "x" * 10_000}),
    ]
    for answer in answers:
        calendar = Answering(answer)
        assert keeping.maintain(connector=calendar) == keeping_.FAILED, answer
        assert keeping.channels.get("alice") is None
        assert calendar.stopped == ([answer] if isinstance(answer, Channel) else [])
    good = Answering(lambda channel_id, expires_at: Channel(channel_id, expires_at))
    assert keeping.maintain(connector=good) == keeping_.OPENED


def test_a_channel_that_could_not_be_saved_is_stopped(keeping: Keeping) -> None:
    def full(*_args: object, **_kwargs: object) -> None:
        raise OSError("database is locked")

    keeping.channels.save = full  # type: ignore[method-assign]
    assert keeping.maintain() == keeping_.FAILED
    assert keeping.calendar.watches == {}
    assert keeping.calendar.push_calls == ["watch", "unwatch"]


def test_pruning_spares_the_members_of_teams_the_crm_may_not_list_now(
        keeping: Keeping) -> None:
    for name in ("alice", "sales:bob@example.com", "salesforce"):
        keeping.maintain(account=replace(ALICE, name=name), connector=MemoryCalendar())
    assert keeping.keeper.prune([], spare=("sales:",)) == ["alice", "salesforce"]
    assert [row.account for row in keeping.channels.all()] == ["sales:bob@example.com"]
