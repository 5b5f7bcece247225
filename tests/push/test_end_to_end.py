"""Push end to end without a provider: a memory calendar's channel notifies the daemon's
receiver, whose hook verifies it and asks for a cycle; forged, unknown and hostile
notifications make none.

The daemon runs in this process with its scheduler paused (cycles are run by the test);
its receiver listens on a free loopback port, which is also the public URL the channels
are given, and ``/hooks/memory`` is mounted on it (``syncd_testkit.memory_hook``).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests

from connectors.memory import CHANNEL_HEADER, NUMBER_HEADER, TOKEN_HEADER, MemoryCalendar
from syncd_testkit.channel_hook import MAX_FIELD, message_number
from syncd_testkit.loopback import free_port
from syncd_testkit.memory_hook import MAX_BODY, MemoryHook, mount
from tests.contract import timed
from tests.push.daemons import ALICE, BACKSTOP, CALENDARS, Running, daemon_config


class Pushed:
    def __init__(self, run: Running, hook: MemoryHook, url: str) -> None:
        self.run, self.hook, self.url = run, hook, url

    @property
    def calendar(self) -> MemoryCalendar:
        return CALENDARS["alice"]

    def settle(self) -> None:
        receiver = self.run.daemon.receiver
        assert receiver is not None and receiver.hints.settle()

    def flagged(self) -> set[str]:
        self.settle()
        return self.run.daemon.push.dirty.flagged()

    def post(self, headers: dict[str, str], body: bytes = b"") -> int:
        return requests.post(f"{self.url}/hooks/memory", data=body, headers=headers,
                             timeout=10).status_code

    def headers(self, **changes: str) -> dict[str, str]:
        [watch] = self.calendar.watches.values()
        found = {CHANNEL_HEADER: watch.channel.id, TOKEN_HEADER: watch.token,
                 NUMBER_HEADER: "1000"}
        found.update({k.replace("_", "-"): v for k, v in changes.items()})
        return found


@pytest.fixture
def pushed(start: Any, tmp_path: Path) -> Pushed:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    run = start(daemon_config(tmp_path, public_url=url, listen=f"127.0.0.1:{port}"))
    run.daemon.start_receiver()
    assert run.daemon.receiver is not None
    hook = mount(run.daemon.receiver)
    run.cycle()  # opens the channel
    return Pushed(run, hook, url)


def test_a_change_in_the_calendar_asks_for_a_cycle_within_seconds(pushed: Pushed) -> None:
    assert pushed.run.interval() == BACKSTOP and pushed.flagged() == set()
    before = datetime.now(UTC)
    pushed.calendar.user_create("ev-1", timed("Lunch"))
    assert pushed.calendar.delivered == 1
    assert pushed.flagged() == {"alice"}
    # the next run moved from the backstop's 15 minutes to the push gate's seconds
    assert pushed.run.next_run() <= before + timedelta(seconds=40)
    assert pushed.hook.counts == {"accepted": 1}
    row = pushed.run.channels.get("alice")
    assert row is not None and row.last_message_at is not None
    assert "last notification 20" in pushed.run.status()


def test_our_own_write_is_answered_by_its_notification_and_nothing_degrades(
        pushed: Pushed) -> None:
    pushed.run.add_activity()
    pushed.run.cycle()  # creates the event; the calendar notifies while the cycle runs
    assert pushed.calendar.live() and pushed.calendar.delivered >= 1
    row = pushed.run.channels.get("alice")
    assert row is not None and row.expect_by is None and row.last_message_at is not None
    pushed.run.clock.advance(minutes=10)
    assert pushed.run.daemon.check_liveness() == []
    assert pushed.run.interval() == BACKSTOP


def test_forged_and_unknown_notifications_make_no_cycle(pushed: Pushed) -> None:
    assert pushed.post(pushed.headers(**{TOKEN_HEADER: "guess"})) == 401
    without = pushed.headers()
    del without[TOKEN_HEADER]
    assert pushed.post(without) == 401
    assert pushed.post(pushed.headers(**{CHANNEL_HEADER: "f" * 32})) == 202
    assert pushed.post({}) == 202
    assert pushed.flagged() == set()
    assert pushed.hook.counts == {"forged": 2, "unknown_channel": 2}


def test_hostile_notifications_are_refused_or_ignored_without_work(pushed: Pushed) -> None:
    assert pushed.post(pushed.headers(), body=b"x" * (MAX_BODY + 1)) == 413
    assert pushed.post(pushed.headers(**{CHANNEL_HEADER: "c" * (MAX_FIELD + 1)})) == 202
    huge_token = pushed.headers(**{TOKEN_HEADER: "t" * 5000})
    assert pushed.post(huge_token) == 401
    assert pushed.post(pushed.headers(**{CHANNEL_HEADER: "' OR 1=1 --"})) == 202
    assert pushed.flagged() == set()
    # a garbage message number is no number: the notification still counts once
    assert pushed.post(pushed.headers(**{NUMBER_HEADER: "-1e99"})) == 202
    assert pushed.flagged() == {"alice"}


def test_a_replayed_message_number_makes_no_second_cycle(pushed: Pushed) -> None:
    assert pushed.post(pushed.headers(**{NUMBER_HEADER: "7"})) == 202
    assert pushed.flagged() == {"alice"}
    pushed.run.daemon.push.dirty.take("alice")
    assert pushed.post(pushed.headers(**{NUMBER_HEADER: "7"})) == 202
    assert pushed.flagged() == set()
    assert pushed.hook.counts == {"accepted": 1, "replayed": 1}


def test_a_notification_for_an_account_no_longer_served_makes_no_work(
        pushed: Pushed) -> None:
    late = pushed.headers()  # a notification the provider sent before the channel stopped
    pushed.run.daemon.stop_serving(ALICE.name)
    assert pushed.post(late) == 202
    assert pushed.flagged() == set() and pushed.hook.counts == {"unknown_channel": 1}


def test_message_numbers_are_read_only_when_they_are_small_whole_numbers() -> None:
    assert message_number("42") == 42
    for garbage in (None, "", "-1", "1.5", "0x10", "1" * 19, "٣", " 4"):
        assert message_number(garbage) is None, garbage


def test_the_calendar_of_a_stopped_channel_notifies_nobody(pushed: Pushed) -> None:
    pushed.run.daemon.stop_serving(ALICE.name)
    assert pushed.calendar.watches == {}
    pushed.calendar.user_create("ev-2", timed("Dinner"))
    assert pushed.calendar.delivered == 0 and pushed.flagged() == set()
