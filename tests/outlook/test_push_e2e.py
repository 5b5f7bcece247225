"""``syncd run`` with ``[http] listen`` and an Outlook account on the Graph emulator.

The daemon runs in this process (``Daemon.run`` on the main thread, as ``syncd run`` does;
the scenario drives it from another thread and stops it like SIGTERM would), with a poll
interval of an hour, so every cycle after the first is a push's doing unless a test says
otherwise. Its config is read from TOML like ``syncd run``'s: ``public_url`` is plain
http on loopback, which only ``allow_insecure_http`` admits. Cycles are counted at
``Service.sync_one``; nothing is timed.
"""

from __future__ import annotations

import signal
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from datetime import time as clock_time
from pathlib import Path
from typing import Any

import pytest
import requests

import connectors
from connectors import provider_options
from syncd.config import load_config
from syncd.crm.builtin.activities import ActivityStore
from syncd.daemon import Daemon
from syncd.errors import ConfigError
from syncd.store.channels import ACTIVE, REFUSED, ChannelRow, ChannelStore
from syncd.store.db import Database
from syncd_testkit.emulators.identity import IdentityEmulator, RoutingSession
from syncd_testkit.loopback import free_port
from tests.outlook.conftest import ALICE, CLIENT_ID, SECRET_ENV, TENANT, Env

_IDP: dict[str, IdentityEmulator] = {}
NAME = "alice"


def open_outlook(account: Any, context: Any) -> Any:
    """Registry factory: the connector with a session that reaches the identity emulator."""
    from connectors.outlook import OutlookCalendar

    return OutlookCalendar(account, context, session=RoutingSession(_IDP["idp"]))


def config_text(env: Env, data: Path, port: int, *, interval: int = 3600,
                backstop_minutes: int = 60, public_url: str | None = None,
                insecure: bool = True) -> str:
    public = public_url or f"http://127.0.0.1:{port}"
    return (f'[syncd]\ndata_dir = "{data}"\ninterval_seconds = {interval}\n'
            f'jitter_seconds = 0\n'
            f'[http]\nlisten = "127.0.0.1:{port}"\npublic_url = "{public}"\n'
            f'allow_insecure_http = {str(insecure).lower()}\n'
            f'[push]\nbackstop_minutes = {backstop_minutes}\nliveness_seconds = 180\n'
            f'[[account]]\nname = "{NAME}"\nprovider = "outlook"\nowner = "{ALICE}"\n'
            f'[account.auth]\nmode = "app"\ntenant = "{TENANT}"\nclient_id = "{CLIENT_ID}"\n'
            f'client_secret = "env:{SECRET_ENV}"\nuser = "{ALICE}"\n'
            f'authority = "{env.identity.authority(TENANT)}"\n'
            f'graph_url = "{env.graph.base_url}"\nallow_insecure_http = true\n')


@dataclass
class Live:
    """The running daemon, the emulators and the CRM the scenario looks at."""

    daemon: Daemon
    env: Env
    crm: ActivityStore
    channels: ChannelStore
    activity_id: int
    port: int
    cycles: Counter[str] = field(default_factory=Counter)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def hook(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks/graph"

    @property
    def hook_counts(self) -> Counter[str]:
        """What the daemon's /hooks/graph counted."""
        assert self.daemon.receiver is not None
        return self.daemon.receiver.graph.counts

    def count(self) -> int:
        with self._lock:
            return self.cycles[NAME]

    def wait(self, what: str, done: Callable[[], bool], timeout: float = 90.0) -> None:
        deadline = time.monotonic() + timeout
        while not done():
            assert time.monotonic() < deadline, f"timed out waiting for {what}"
            time.sleep(0.05)

    def channel(self, *, other_than: str | None = None) -> ChannelRow:
        """The account's active channel once the keeper saved one (not ``other_than``)."""
        found: list[ChannelRow] = []

        def saved() -> bool:
            row = self.channels.get(NAME)
            if row is not None and row.state == ACTIVE and row.channel_id is not None \
                    and row.channel_id != other_than:
                found.append(row)
                return True
            return False

        self.wait("the keeper's channel", saved)
        return found[-1]

    def settled(self, quiet: float = 3.0) -> int:
        """The cycle count once no cycle started for ``quiet`` seconds."""
        count, since = self.count(), time.monotonic()
        while time.monotonic() - since < quiet:
            time.sleep(0.05)
            if self.count() != count:
                count, since = self.count(), time.monotonic()
        return count

    def title(self) -> str:
        return self.crm.get(self.activity_id).subject

    def event_id(self) -> str:
        [event] = self.env.graph.events(ALICE)
        return str(event["id"])

    def user_edit(self, title: str) -> None:
        self.env.graph.put_event(ALICE, self.event_id(), {"subject": title})

    def poll_now(self) -> None:
        """Run the account's regular poll now, as its backstop interval would (a test
        cannot wait the backstop's minutes; the daemon's tests in tests/push check that a
        pushed account's poll is moved to the backstop)."""
        job = self.daemon.scheduler.get_job(f"account:{NAME}")
        assert job is not None
        job.modify(next_run_time=datetime.now(UTC))

    def client_state(self) -> str:
        [sub] = self.env.graph.push.subscriptions()
        assert sub.client_state is not None
        return sub.client_state


@pytest.fixture
def start(env: Env, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
          ) -> Iterator[Callable[..., Callable[[Callable[[Live], None]], Live]]]:
    """``start(**config)(scenario)``: run the daemon until the scenario returns."""
    monkeypatch.setitem(_IDP, "idp", env.identity)
    monkeypatch.setitem(connectors.REGISTRY, "outlook", "tests.outlook.test_push_e2e:open_outlook")
    env.graph.push.retry_delays = (0.05, 0.2)
    saved = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)

    def starting(**options: Any) -> Callable[[Callable[[Live], None]], Live]:
        def run(scenario: Callable[[Live], None]) -> Live:
            data = tmp_path / "data"
            data.mkdir(mode=0o700, exist_ok=True)
            port = free_port()
            path = tmp_path / "syncd.toml"
            path.write_text(config_text(env, data, port, **options))
            config = load_config(path, provider_options())
            daemon = Daemon(config)
            crm = ActivityStore(daemon.service.db)
            owner = crm.add_user(ALICE, "Alice")
            activity = crm.add_activity(owner_id=owner, subject="Call",
                                        due_date=date.today() + timedelta(days=2),
                                        due_time=clock_time(10, 0), duration_minutes=30)
            live = Live(daemon, env, crm, ChannelStore(Database(f"sqlite:///{data}/syncd.db")),
                        activity.id, port)
            original = daemon.service.sync_one

            def counted(account: Any, **kwargs: Any) -> Any:
                try:
                    return original(account, **kwargs)
                finally:
                    with live._lock:
                        live.cycles[account.name] += 1

            daemon.service.sync_one = counted  # type: ignore[method-assign]
            failures: list[BaseException] = []

            def drive() -> None:
                try:
                    live.wait("the first cycle", lambda: live.count() >= 1
                              and len(env.graph.events(ALICE)) == 1)
                    scenario(live)
                except BaseException as exc:  # handed to the test's thread
                    failures.append(exc)
                finally:
                    daemon._signal = signal.SIGTERM  # what the SIGTERM handler does

            driver = threading.Thread(target=drive, name="scenario")
            driver.start()
            try:
                assert daemon.run() == 0
            finally:
                daemon._signal = signal.SIGTERM
                driver.join(timeout=120)
                live.channels.db.close()
            if failures:
                raise failures[0]
            return live
        return run

    yield starting
    signal.signal(signal.SIGTERM, saved[0])
    signal.signal(signal.SIGINT, saved[1])


# --- config --------------------------------------------------------------------------------


def test_a_plain_http_public_url_is_only_admitted_on_loopback_with_the_test_switch(
        env: Env, tmp_path: Path) -> None:
    path = tmp_path / "syncd.toml"
    for public, insecure in (("http://127.0.0.1:8765", False),
                             ("http://syncd.example.com", True)):
        path.write_text(config_text(env, tmp_path, 8765, public_url=public, insecure=insecure))
        with pytest.raises(ConfigError, match="public_url"):
            load_config(path, provider_options())
    path.write_text(config_text(env, tmp_path, 8765))
    assert load_config(path, provider_options()).http.public_url == "http://127.0.0.1:8765"


# --- push ----------------------------------------------------------------------------------


def test_an_edit_in_outlook_reaches_the_crm_through_a_notification(
        start: Callable[..., Any]) -> None:
    def scenario(live: Live) -> None:
        channel = live.channel()
        # Graph validated both addresses against the daemon's own hook, within its deadline.
        assert live.env.graph.push.counts["handshakes"] == 2
        assert live.env.graph.push.counts["handshake_failed"] == 0
        [sub] = live.env.graph.push.subscriptions()
        assert sub.id == channel.channel_id and sub.lifecycle_url is not None
        before = live.settled()
        live.user_edit("Call (moved by Alice)")
        live.wait("the edit in the CRM", lambda: live.title() == "Call (moved by Alice)")
        # The pushed cycle, plus at most one for the echo of its own write (the CRM's
        # change feed, or Graph notifying it); the poll is an hour away.
        assert before + 1 <= live.settled() <= before + 2
        assert live.hook_counts["accepted"] >= 1

    start()(scenario)


def test_a_thousand_notifications_for_one_account_make_at_most_two_cycles(
        start: Callable[..., Any]) -> None:
    def scenario(live: Live) -> None:
        live.channel()
        before = live.settled()
        event_id = live.event_id()
        for n in range(1000):
            live.env.graph.put_event(ALICE, event_id, {"subject": f"Call v{n}"})
        assert live.env.graph.push.wait_idle(timeout=120)
        live.wait("the last edit in the CRM", lambda: live.title() == "Call v999")
        assert live.env.graph.push.counts["delivered"] >= 1000
        assert live.settled() - before <= 2

    start()(scenario)


def test_forged_notifications_are_refused_and_make_no_cycle(
        start: Callable[..., Any]) -> None:
    def scenario(live: Live) -> None:
        channel = live.channel()
        before = live.settled()
        forged = {"value": [{"subscriptionId": channel.channel_id, "clientState": "guessed",
                             "changeType": "updated", "resource": "Users/x/Events/y"}]}
        answers = [requests.post(live.hook, json=forged, timeout=10).status_code
                   for _ in range(20)]
        lifecycle = {"value": [{"subscriptionId": channel.channel_id, "clientState": "guessed",
                                "lifecycleEvent": "subscriptionRemoved"}]}
        answers.append(requests.post(live.hook + "/lifecycle", json=lifecycle,
                                     timeout=10).status_code)
        assert answers == [403] * 21
        assert live.settled() == before
        row = live.channels.get(NAME)
        assert row is not None and row.state == ACTIVE
        assert live.hook_counts["forged"] == 21

    start()(scenario)


def test_a_subscription_graph_removed_is_created_again(start: Callable[..., Any]) -> None:
    def scenario(live: Live) -> None:
        old = live.channel()
        assert old.channel_id is not None
        live.env.graph.push.lifecycle(old.channel_id, "subscriptionRemoved")
        new = live.channel(other_than=old.channel_id)
        [sub] = live.env.graph.push.subscriptions()
        assert sub.id == new.channel_id
        # ... and it works: the next edit comes through it.
        live.user_edit("Call after the new subscription")
        live.wait("the edit in the CRM", lambda: live.title() == "Call after the new subscription")

    start()(scenario)


def test_reauthorization_required_renews_the_same_subscription(
        start: Callable[..., Any]) -> None:
    def scenario(live: Live) -> None:
        old = live.channel()
        assert old.channel_id is not None
        patches = sum(1 for r in live.env.graph.requests if r.method == "PATCH")
        live.env.graph.push.lifecycle(old.channel_id, "reauthorizationRequired")
        live.wait("the renewal", lambda: sum(
            1 for r in live.env.graph.requests if r.method == "PATCH") > patches)
        sub = live.env.graph.push.get(old.channel_id)
        assert sub is not None and not sub.needs_reauth
        live.wait("the renewed expiry", lambda: (row := live.channels.get(NAME)) is not None
                  and row.expires_at is not None and old.expires_at is not None
                  and row.expires_at > old.expires_at)

    start()(scenario)


def test_an_expired_subscription_is_created_anew_at_its_renewal(
        start: Callable[..., Any]) -> None:
    def scenario(live: Live) -> None:
        old = live.channel()
        assert old.channel_id is not None
        live.env.graph.push.expire(old.channel_id)  # Graph forgot it
        live.channels.extend(NAME, old.created_at or old.expires_at)  # its renewal is due
        live.crm.edit_activity(live.activity_id, subject="Call (CRM edit)")  # a cycle soon
        new = live.channel(other_than=old.channel_id)
        assert [s.id for s in live.env.graph.push.subscriptions()] == [new.channel_id]

    start()(scenario)


def test_a_dropped_notification_is_caught_by_the_backstop_poll(
        start: Callable[..., Any]) -> None:
    def scenario(live: Live) -> None:
        live.channel()
        before = live.settled()
        accepted = live.hook_counts["accepted"]
        live.env.graph.push.faults.drop = 1
        live.user_edit("Call (notification lost)")
        assert live.env.graph.push.wait_idle(timeout=60)
        assert live.settled() == before  # nothing came, so nothing ran
        assert live.title() == "Call"
        live.poll_now()
        live.wait("the backstop poll", lambda: live.title() == "Call (notification lost)"
                  and live.count() > before)
        assert live.env.graph.push.counts["dropped"] == 1
        assert live.hook_counts["accepted"] == accepted

    start()(scenario)


def test_a_tenant_that_forbids_subscriptions_is_polled_and_its_status_says_why(
        env: Env, start: Callable[..., Any]) -> None:
    env.graph.push.faults.forbid = True

    def scenario(live: Live) -> None:
        live.wait("the refusal", lambda: (row := live.channels.get(NAME)) is not None
                  and row.state == REFUSED)
        row = live.channels.get(NAME)
        assert row is not None and row.reason is not None and "subscriptions" in row.reason
        [status] = [r for r in live.daemon.service.status() if r["account"] == NAME]
        assert "subscriptions" in str(status["push"]["line"])
        assert live.env.graph.push.subscriptions() == []

    start()(scenario)
