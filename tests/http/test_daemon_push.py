"""``syncd run`` with ``[http] listen``: a webhook makes one cycle soon, a burst at most two.

The daemon runs in a subprocess with one CalDAV account on a real Radicale and a backstop
interval of an hour, so every cycle after the first one is a push's doing. Cycles are
counted from the daemon's log (one line per cycle). A burst is a thousand deliveries from
eight threads: one cycle after it, plus at most one for the deliveries its cycle overlapped.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

import pytest
import requests

from syncd.crm.builtin.activities import ActivityStore
from syncd.http.basic_auth import BasicAuthSecret
from syncd.push import PUSH_DELAY, PUSH_MAX_WAIT
from syncd.store.db import Database
from syncd_testkit.loopback import free_port
from syncd_testkit.servers import DavServer
from tests.conftest import fresh_calendar
from tests.http.conftest import delivery

CYCLE = re.compile(r"\bdav: (ok|failed|skipped|busy|flagged)\b")
D = TypeVar("D", bound="Daemon")


class Daemon:
    def __init__(self, process: subprocess.Popen[bytes], log: Path, port: int, owner_id: int,
                 auth: tuple[str, str]) -> None:
        self.process = process
        self.log, self.port, self.owner_id, self.auth = log, port, owner_id, auth

    def stop(self) -> None:
        """SIGTERM; the daemon must stop cleanly (exit 0)."""
        self.process.send_signal(signal.SIGTERM)
        assert self.process.wait(timeout=30) == 0, self.log.read_text()

    @property
    def hook(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks/pipedrive"

    def counted(self, hook: str = "pipedrive") -> dict[str, int]:
        """What the daemon logged of ``hook``'s counts when it stopped."""
        found = re.search(r"HTTP receiver stopped: (.*)", self.log.read_text())
        assert found is not None
        return {key.split(" ", 1)[1]: int(value) for key, value in (
            part.rsplit(" ", 1) for part in found.group(1).split(", "))
            if key.startswith(f"{hook} ")}

    def cycles(self) -> int:
        return len(CYCLE.findall(self.log.read_text()))

    def settled_cycles(self, quiet: float = 4.0, timeout: float = 60.0) -> int:
        """The cycle count once no new cycle came for ``quiet`` seconds."""
        deadline = time.monotonic() + timeout
        count, since = self.cycles(), time.monotonic()
        while time.monotonic() < deadline:
            time.sleep(0.2)
            now = self.cycles()
            if now != count:
                count, since = now, time.monotonic()
            elif time.monotonic() - since >= quiet:
                return count
        raise AssertionError("the daemon kept starting cycles")

    def deliver(self, *, auth: tuple[str, str] | None = None) -> int:
        body = json.dumps(delivery(self.owner_id, str(uuid.uuid4())))
        return requests.post(self.hook, data=body, auth=auth or self.auth,
                             timeout=10).status_code


@pytest.fixture
def daemon(tmp_path: Path, radicale: DavServer) -> Iterator[Daemon]:
    user, calendar = fresh_calendar(radicale)
    data = tmp_path / "data"
    data.mkdir(mode=0o700)
    owner_id = ActivityStore(Database(f"sqlite:///{data / 'syncd.db'}")).add_user(user, "U")
    secret = BasicAuthSecret(data, "pipedrive")
    auth = secret.create()
    port = free_port()
    config = tmp_path / "syncd.toml"
    config.write_text(dav_config(data, user, calendar, radicale.url,
                                 f'[http]\nlisten = "127.0.0.1:{port}"\n'))
    log = tmp_path / "daemon.log"
    with first_cycle(Daemon(spawn(config, log), log, port, owner_id, auth)) as running:
        assert "HTTP receiver on http://127.0.0.1:" in log.read_text()
        yield running


def dav_config(data: Path, user: str, calendar: str, url: str, more: str = "") -> str:
    """A config with one CalDAV account polled hourly (so a push makes every later cycle)."""
    return (f'[syncd]\ndata_dir = "{data}"\ninterval_seconds = 3600\njitter_seconds = 0\n'
            f'{more}[[account]]\nname = "dav"\nprovider = "caldav"\nowner = "{user}"\n'
            f'calendar = "{calendar}"\n[account.auth]\nurl = "{url}"\nusername = "{user}"\n')


def spawn(config: Path, log: Path) -> subprocess.Popen[bytes]:
    """``syncd run`` in a subprocess, its output in ``log``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SYNCD_")}
    with log.open("w") as out:
        return subprocess.Popen([sys.executable, "-m", "syncd", "--config", str(config),
                                 "run"], env=env, stdout=out, stderr=subprocess.STDOUT)


@contextmanager
def first_cycle(running: D) -> Iterator[D]:
    """The daemon once its first cycle logged; killed afterwards if it still runs."""
    process = running.process
    try:
        deadline = time.monotonic() + 60
        while running.cycles() < 1:
            assert process.poll() is None, running.log.read_text()
            assert time.monotonic() < deadline, running.log.read_text()
            time.sleep(0.2)
        yield running
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()

@pytest.mark.slow
def test_a_webhook_makes_one_cycle_a_burst_at_most_two_and_forgeries_none(
        daemon: Daemon) -> None:
    assert daemon.settled_cycles() == 1  # the first cycle; the next poll is an hour away

    forged = [daemon.deliver(auth=("syncd", "guess")) for _ in range(20)]
    assert forged == [401] * 20
    assert daemon.settled_cycles() == 1

    assert daemon.deliver() == 200
    assert daemon.settled_cycles() == 2

    answered: list[float] = []

    def deliver(_: int) -> int:
        status = daemon.deliver()
        answered.append(time.monotonic())
        return status

    with ThreadPoolExecutor(8) as pool:  # Pipedrive delivers in parallel
        burst = list(pool.map(deliver, range(1000)))
    assert burst == [200] * 1000
    after = daemon.settled_cycles()
    assert 3 <= after <= 4 + split_bursts(answered), daemon.log.read_text()
    assert "maximum number of running instances" not in daemon.log.read_text()
    daemon.stop()
    assert daemon.counted() == {"accepted": 1001, "refused": 20}


def split_bursts(hints: list[float]) -> int:
    """Extra cycles the push gate rightly makes when a test's deliveries were not one
    burst to it: a pause between two longer than ``PUSH_DELAY`` ends a burst, and a burst
    longer than ``PUSH_MAX_WAIT`` is cut. On a quiet machine a thousand deliveries are one
    burst (0 extra); on a loaded one the senders stall for seconds at a time."""
    times = sorted(hints)
    pauses = sum(b - a > PUSH_DELAY for a, b in itertools.pairwise(times))
    return pauses + int((times[-1] - times[0]) // PUSH_MAX_WAIT)
