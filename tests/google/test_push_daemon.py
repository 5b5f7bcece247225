"""Google push end to end: the daemon (``syncd run``'s :class:`~syncd.daemon.Daemon`, in
this process, its scheduler running) over the Google emulator and the built-in CRM.

The config is read from TOML as ``syncd run`` reads it: ``[http] listen`` on a free
loopback port and ``public_url`` pointing at it (plain http, admitted only for a loopback
receiver by ``allow_insecure_http``), an account polled hourly, so every cycle after the
first is a notification's doing unless a test fires the backstop itself. The keeper opens
the account's channel after its first cycle; Google's notifications come over real HTTP
from the emulator's delivery thread. Cycles are counted from the daemon's report lines.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests

from connectors import provider_options
from connectors.google_map import read_marker
from syncd.config import load_config
from syncd.crm import source_options
from syncd.crm.builtin.activities import ActivityStore
from syncd.daemon import Daemon
from syncd.store.channels import ChannelRow, ChannelStore
from syncd_testkit.emulators.google import GoogleEmulator
from syncd_testkit.loopback import free_port

ACCOUNT = "alice-google"
OWNER = "alice@example.com"
QUIET = 4.0  # seconds without a new cycle after which the daemon counts as settled
WAIT = 60.0  # the longest a test waits for something the daemon does (a loaded machine)


class Lines(logging.Handler):
    """The daemon's report lines of the account."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if message.startswith(f"{ACCOUNT}: "):
            self.lines.append(message)


class Pushed:
    """A running daemon, its emulator and its CRM."""

    def __init__(self, daemon: Daemon, emu: GoogleEmulator, lines: Lines, url: str) -> None:
        self.daemon, self.emu, self.lines, self.url = daemon, emu, lines, url
        self.crm = ActivityStore(daemon.service.db)
        self.channels = ChannelStore(daemon.service.db)

    def cycles(self) -> int:
        return len(self.lines.lines)

    def settled(self, quiet: float = QUIET) -> int:
        """The cycle count once no cycle came for ``quiet`` seconds, nor anything is left
        to deliver."""
        deadline = time.monotonic() + WAIT + quiet
        count, since = self.cycles(), time.monotonic()
        while time.monotonic() < deadline:
            time.sleep(0.2)
            self.emu.push.wait_idle()
            now = self.cycles()
            if now != count:
                count, since = now, time.monotonic()
            elif time.monotonic() - since >= quiet:
                return count
        raise AssertionError(f"the daemon kept starting cycles: {self.lines.lines[-5:]}")

    def channel(self) -> ChannelRow:
        row = self.channels.get(ACCOUNT)
        assert row is not None and row.kind == "google" and row.channel_id is not None
        return row

    def event(self) -> dict[str, Any]:
        [event] = self.emu.events(OWNER)
        return event

    def edit_in_google(self, summary: str) -> None:
        self.emu.put_event(OWNER, {**self.event(), "summary": summary})

    def subject(self, activity_id: int) -> str:
        return self.crm.get(activity_id).subject

    def until(self, what: Callable[[], bool]) -> bool:
        deadline = time.monotonic() + WAIT
        while time.monotonic() < deadline:
            if what():
                return True
            time.sleep(0.1)
        return False

    def backstop(self) -> None:
        """Run the account's regular poll now, as its interval would."""
        job = self.daemon.scheduler.get_job(f"account:{ACCOUNT}")
        assert job is not None
        job.modify(next_run_time=datetime.now(UTC))

    @property
    def hook(self) -> str:
        return f"{self.url}/hooks/google"

    @property
    def counts(self) -> dict[str, int]:
        receiver = self.daemon.receiver
        assert receiver is not None
        return dict(receiver.google.counts)


def write_config(tmp_path: Path, emu: GoogleEmulator, port: int) -> Path:
    data = tmp_path / "data"
    data.mkdir(mode=0o700)
    path = tmp_path / "syncd.toml"
    path.write_text(
        f'[syncd]\ndata_dir = "{data}"\ninterval_seconds = 3600\njitter_seconds = 0\n'
        f'[http]\nlisten = "127.0.0.1:{port}"\npublic_url = "http://127.0.0.1:{port}"\n'
        'allow_insecure_http = true\n'
        f'[[account]]\nname = "{ACCOUNT}"\nprovider = "google"\nowner = "{OWNER}"\n'
        f'[account.auth]\napi_endpoint = "{emu.api_endpoint}"\n', encoding="utf-8")
    return path


@pytest.fixture
def emulator() -> Iterator[GoogleEmulator]:
    emu = GoogleEmulator()
    emu.push.workers = 8  # Google posts notifications side by side
    with emu:
        yield emu


@pytest.fixture
def pushed(tmp_path: Path, emulator: GoogleEmulator) -> Iterator[Pushed]:
    emu = emulator
    emu.add_calendar(OWNER, time_zone="Europe/Oslo")
    port = free_port()
    config = load_config(write_config(tmp_path, emu, port), provider_options(),
                         crm_sources=source_options())
    assert config.interval_seconds == 3600
    daemon = Daemon(config)
    crm = ActivityStore(daemon.service.db)
    owner_id = crm.add_user(OWNER, "Alice", "Europe/Oslo")
    crm.add_activity(owner_id=owner_id, subject="Call Bob",
                     due_date=date.today() + timedelta(days=2))
    lines = Lines()
    logger = logging.getLogger("syncd.daemon")
    logger.addHandler(lines)
    level = logger.level
    logger.setLevel(logging.DEBUG)
    daemon.start_push()
    daemon.start_receiver()
    daemon.scheduler.start()
    daemon.refresh_jobs()
    running = Pushed(daemon, emu, lines, f"http://127.0.0.1:{port}")
    try:
        assert running.until(lambda: running.channels.get(ACCOUNT) is not None
                             and running.channels.get(ACCOUNT).healthy)  # type: ignore[union-attr]
        running.settled()
        yield running
    finally:
        assert daemon.stop_cycles(60)
        if daemon.receiver is not None:
            daemon.receiver.stop()
        daemon.service.close()
        logger.removeHandler(lines)
        logger.setLevel(level)


def test_a_change_in_google_reaches_the_crm_through_a_notification(pushed: Pushed) -> None:
    row = pushed.channel()
    assert row.expires_at is not None and row.expires_at > datetime.now(UTC) + timedelta(days=6)
    live = pushed.emu.push.channels()
    assert [(c.id, c.address) for c in live] == [(row.channel_id, pushed.hook)], live
    activity = pushed.crm.get_by_sync_uid(_marker(pushed))
    assert activity is not None
    before = pushed.cycles()
    pushed.edit_in_google("Call Bob about the contract")
    assert pushed.until(lambda: pushed.subject(activity.id) == "Call Bob about the contract")
    assert pushed.settled() - before <= 2, pushed.lines.lines
    assert pushed.counts.get("accepted", 0) >= 1, pushed.counts
    assert pushed.counts.get("forged", 0) == 0, pushed.counts


def test_an_expired_channel_is_renewed_at_the_next_cycle(pushed: Pushed) -> None:
    old = pushed.channel()
    # Eight days pass for Google and for syncd's record of the channel.
    pushed.emu.push.advance(8 * 86400)
    pushed.channels.extend(ACCOUNT, datetime.now(UTC) - timedelta(minutes=1))
    assert pushed.emu.push.channels() == []
    pushed.backstop()
    assert pushed.until(lambda: pushed.channel().channel_id != old.channel_id)
    pushed.settled()
    new = pushed.channel()
    assert new.healthy and new.expires_at is not None
    [live] = pushed.emu.push.channels()
    assert live.id == new.channel_id
    activity = pushed.crm.get_by_sync_uid(_marker(pushed))
    assert activity is not None
    before = pushed.cycles()
    pushed.edit_in_google("Renewed and heard")
    assert pushed.until(lambda: pushed.subject(activity.id) == "Renewed and heard")
    assert pushed.settled() - before <= 2


def test_a_dropped_notification_is_caught_by_the_backstop_poll(pushed: Pushed) -> None:
    activity = pushed.crm.get_by_sync_uid(_marker(pushed))
    assert activity is not None
    before = pushed.cycles()
    pushed.emu.push.faults.drop_next = 1
    pushed.edit_in_google("Heard only by polling")
    assert pushed.settled() == before  # nothing came, so nothing ran
    assert pushed.subject(activity.id) == "Call Bob"
    pushed.backstop()
    assert pushed.until(lambda: pushed.subject(activity.id) == "Heard only by polling")


@pytest.mark.slow
def test_a_thousand_notifications_for_one_account_make_at_most_two_cycles(
        pushed: Pushed) -> None:
    # What is counted is the gate's merging of one burst. The emulator's 1,000 posts are
    # one burst only while no gap between two of them reaches the gate's delay; on a
    # loaded machine the delivery threads stall for seconds (5 cycles at load 27 with the
    # 2 s default), which rightly makes more cycles. A longer delay keeps them one burst.
    gate = pushed.daemon.push
    gate.delay, gate.max_wait = 10.0, 600.0
    before = pushed.cycles()
    accepted = pushed.counts.get("accepted", 0)
    for _ in range(1000):
        pushed.emu.push.notify(OWNER)
    assert pushed.emu.push.wait_idle(timeout=WAIT)
    # Posted side by side, a few come after a later number: heard, but no second hint.
    assert pushed.until(lambda: pushed.counts.get("accepted", 0) - accepted
                        + pushed.counts.get("replayed", 0) == 1000)
    assert 1 <= pushed.settled(quiet=gate.delay + QUIET) - before <= 2
    assert sum(1 for d in pushed.emu.push.deliveries if d.ok) >= 1000


def test_forged_notifications_are_refused_and_make_no_cycle(pushed: Pushed) -> None:
    row = pushed.channel()
    before = pushed.cycles()
    headers = {"X-Goog-Channel-ID": row.channel_id or "", "X-Goog-Channel-Token": "guessed",
               "X-Goog-Resource-ID": row.resource_id or "", "X-Goog-Resource-State": "exists",
               "X-Goog-Message-Number": "999999"}
    answers = [requests.post(pushed.hook, headers=headers, timeout=10).status_code
               for _ in range(20)]
    stranger = requests.post(pushed.hook, timeout=10, headers={
        **headers, "X-Goog-Channel-ID": "someone-elses", "X-Goog-Channel-Token": "x"})
    assert answers == [401] * 20 and stranger.status_code == 200
    assert pushed.settled() == before
    assert pushed.counts["forged"] == 20 and pushed.counts["unknown_channel"] >= 1
    assert pushed.channel().last_message_number != 999999


def _marker(pushed: Pushed) -> str:
    """The sync uid syncd stamped on the event it wrote."""
    marker = read_marker(pushed.event())
    assert marker is not None
    return marker
