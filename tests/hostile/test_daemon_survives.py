"""``syncd run`` with a hostile or stuck account: the others keep syncing, SIGTERM ends it.

The daemon runs in a subprocess, as an admin runs it, with two CalDAV accounts: one whose
calendar holds the rule-bomb event of issue 10 (a VTIMEZONE of ``FREQ=SECONDLY`` from
1601, stored by a real Xandikos) or whose server never answers, and one healthy account
on a real Radicale. The bound on shutdown is ``shutdown_grace_seconds`` (2 here) plus the
process's own exit; the waits below are generous liveness limits, not timings.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import caldav
import pytest
import requests

from syncd_testkit.dav_responder import MisbehavingDav
from syncd_testkit.ics_corpus import CORPUS
from syncd_testkit.servers import DavServer
from tests.conftest import fresh_calendar
from tests.test_e2e_run import wait_for

BOMB = next(item for item in CORPUS if item.name == "tz-secondly")
GRACE = 2


def _account(name: str, owner: str, url: str, import_events: bool) -> str:
    return (f'[[account]]\nname = "{name}"\nprovider = "caldav"\nowner = "{owner}"\n'
            f'calendar = "{url}"\nimport_events = {str(import_events).lower()}\n'
            f'[account.auth]\nurl = "{url}"\nusername = "{owner}"\n')


class Daemon:
    def __init__(self, tmp_path: Path, accounts: list[str]) -> None:
        config = tmp_path / "syncd.toml"
        config.write_text(f'[syncd]\ndata_dir = "{tmp_path / "data"}"\ninterval_seconds = 1\n'
                          f"jitter_seconds = 0\nshutdown_grace_seconds = {GRACE}\n"
                          + "".join(accounts))
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("SYNCD_")}
        self.env["SYNCD_CONFIG"] = str(config)
        self.log = tmp_path / "daemon.log"
        self.process: subprocess.Popen[str] | None = None

    def cli(self, *args: str) -> Any:
        done = subprocess.run([sys.executable, "-m", "syncd", "--json", *args], env=self.env,
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout) if done.stdout.strip() else None

    def start(self) -> None:
        self.process = subprocess.Popen([sys.executable, "-m", "syncd", "run"], env=self.env,
                                        stdout=self.log.open("w"), stderr=subprocess.STDOUT,
                                        text=True)
        wait_for(lambda: "running" in self.log.read_text(), what="the daemon to start")

    def stop(self) -> int:
        """SIGTERM; the exit code (the wait is a liveness limit far above the bound)."""
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=GRACE + 60)

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()


@pytest.fixture
def responder() -> Iterator[MisbehavingDav]:
    server = MisbehavingDav().start()
    yield server
    server.stop()


def _healthy_event_appears(url: str, user: str) -> bool:
    calendar = caldav.DAVClient(url=url, username=user, password="x").calendar(url=url)
    return any(b"Call Ada" in obj.data.encode()
               for obj in calendar.get_objects_by_sync_token(load_objects=True).objects)


def test_a_rule_bomb_in_one_account_leaves_the_other_syncing_and_sigterm_exits_0(
        tmp_path: Path, xandikos: DavServer, radicale: DavServer) -> None:
    alice, bombed = fresh_calendar(xandikos)
    requests.put(f"{bombed}bomb.ics", data=BOMB.data, timeout=60, auth=(alice, "x"),
                 headers={"Content-Type": "text/calendar"}).raise_for_status()
    bob, healthy = fresh_calendar(radicale)
    daemon = Daemon(tmp_path, [_account("bombed", alice, bombed, True),
                               _account("healthy", bob, healthy, False)])
    daemon.cli("user", "add", alice, "--name", "Alice")
    daemon.cli("user", "add", bob, "--name", "Bob")
    daemon.start()
    try:
        daemon.cli("activity", "add", "Call Ada", "--owner", bob, "--due", "2026-12-10",
                   "--time", "10:00", "--duration", "30")
        wait_for(lambda: _healthy_event_appears(healthy, bob), what="the healthy account")
        items = wait_for(lambda: daemon.cli("quarantine", "--account", "bombed"),
                         what="the bomb to be quarantined")
        assert "FREQ=SECONDLY is not yearly" in json.dumps(items)
        assert daemon.stop() == 0
    finally:
        daemon.kill()


def test_a_server_that_never_answers_does_not_hold_shutdown_or_the_other_account(
        tmp_path: Path, responder: MisbehavingDav, radicale: DavServer) -> None:
    responder.stall = True
    bob, healthy = fresh_calendar(radicale)
    daemon = Daemon(tmp_path, [_account("stuck", "alice@example.com", responder.url, False),
                               _account("healthy", bob, healthy, False)])
    daemon.cli("user", "add", "alice@example.com", "--name", "Alice")
    daemon.cli("user", "add", bob, "--name", "Bob")
    daemon.start()
    try:
        assert responder.reports_seen.wait(60)  # the stuck account's cycle is in flight
        daemon.cli("activity", "add", "Call Ada", "--owner", bob, "--due", "2026-12-10",
                   "--time", "10:00", "--duration", "30")
        wait_for(lambda: _healthy_event_appears(healthy, bob), what="the healthy account")
        assert daemon.stop() == 0
        assert "exiting without them" in daemon.log.read_text()
    finally:
        daemon.kill()
