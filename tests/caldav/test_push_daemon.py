"""``syncd run`` with WebDAV-Push, end to end: a change made on Xandikos by another client
reaches the CRM through a notification, not the interval; our own writes wake nothing;
forged deliveries make no cycle; a thousand deliveries make at most two cycles; a
Radicale account is polled and its status says why.

The daemon runs in a subprocess with its receiver serving TLS on loopback (Web Push
delivers only to https://; ``public_url`` is that https address, so the production rule
on public URLs holds), and an interval of an hour, so every cycle after the first one is
a push's doing. Cycles are counted from the daemon's log (one line per cycle).
"""

from __future__ import annotations

import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
from py_vapid import Vapid

from syncd.crm.builtin.activities import ActivityStore
from syncd.crm.builtin.views import ActivityFilter
from syncd.store.channels import ChannelStore
from syncd.store.db import Database
from syncd_testkit.loopback import free_port
from syncd_testkit.servers import RadicaleServer, XandikosPushServer
from tests.caldav.push_support import push_calendar, stored_subscriptions, wait_for
from tests.caldav.test_contract import DavUser
from tests.conftest import fresh_calendar
from tests.contract import timed
from tests.http.test_daemon_push import Daemon, first_cycle, spawn, split_bursts


@dataclass
class Setup:
    daemon: Daemon
    data: Path
    config: Path
    calendar: str
    server: XandikosPushServer
    ca: Path

    def channel_row(self) -> object:
        db = Database(f"sqlite:///{self.data / 'syncd.db'}")
        try:
            return ChannelStore(db).get("dav")
        finally:
            db.close()

    def push_resource(self) -> str:
        """Our subscription's push resource as Xandikos stored it."""
        [resource] = stored_subscriptions(self.server, self.calendar)
        return resource

    def signed(self, audience: str) -> dict[str, str]:
        """An Authorization signed with Xandikos's own VAPID key (as its deliveries are)."""
        key = Vapid.from_file(str(self.server.folder / "state" / "vapid" / "private.pem"))
        headers: dict[str, str] = key.sign({"aud": audience, "sub": "mailto:t@example.com",
                                            "exp": int(time.time()) + 3600})
        return headers

    def status(self) -> str:
        return subprocess.run([sys.executable, "-m", "syncd", "--config", str(self.config),
                               "status"], capture_output=True, text=True, timeout=60).stdout


@pytest.fixture
def setup(tmp_path: Path, xandikos_push: XandikosPushServer, radicale: RadicaleServer,
          push_tls: tuple[Path, Path]) -> Iterator[Setup]:
    calendar = push_calendar(xandikos_push)
    rad_user, rad_calendar = fresh_calendar(radicale)
    data = tmp_path / "data"
    data.mkdir(mode=0o700)
    crm = ActivityStore(Database(f"sqlite:///{data / 'syncd.db'}"))
    owner = crm.add_user("user@example.com", "U")
    crm.add_user(rad_user, "R")
    port = free_port()
    cert, key = push_tls
    config = tmp_path / "syncd.toml"
    config.write_text(
        f'[syncd]\ndata_dir = "{data}"\ninterval_seconds = 3600\njitter_seconds = 0\n'
        f'[http]\nlisten = "127.0.0.1:{port}"\npublic_url = "https://127.0.0.1:{port}"\n'
        f'certificate = "{cert}"\nprivate_key = "{key}"\n'
        '[[account]]\nname = "dav"\nprovider = "caldav"\nowner = "user@example.com"\n'
        f'calendar = "{calendar}"\nimport_events = true\n'
        f'[account.auth]\nurl = "{xandikos_push.url}"\nusername = "user"\n'
        f'[[account]]\nname = "rad"\nprovider = "caldav"\nowner = "{rad_user}"\n'
        f'calendar = "{rad_calendar}"\n'
        f'[account.auth]\nurl = "{radicale.url}"\nusername = "{rad_user}"\n')
    log = tmp_path / "daemon.log"
    with first_cycle(Daemon(spawn(config, log), log, port, owner, ("", ""))) as running:
        yield Setup(running, data, config, calendar, xandikos_push, cert)


@pytest.mark.slow  # the one representative of the scenario (tests/conftest.py)
def test_a_change_on_xandikos_reaches_the_crm_through_push_and_bursts_are_debounced(
        setup: Setup) -> None:
    daemon = setup.daemon
    # The first cycle opened the channel: Xandikos holds our subscription.
    assert wait_for(lambda: int(setup.channel_row() is not None), 1) == 1
    assert daemon.settled_cycles() == 1  # the next poll is an hour away

    # Another client adds a meeting: its notification makes one cycle, which imports it
    # and writes syncd's marker into the event, with Push-Dont-Notify: Xandikos does not
    # notify that write (the hook's count at the end says so). The import is a change of
    # the CRM, which the CRM's own watcher may answer with one more cycle.
    DavUser(setup.server, "user", setup.calendar).create(timed("Phoned-in meeting"))
    assert wait_for(daemon.cycles, 2, timeout=60) >= 2, daemon.log.read_text()
    settled = daemon.settled_cycles()
    assert 2 <= settled <= 3, daemon.log.read_text()
    crm = ActivityStore(Database(f"sqlite:///{setup.data / 'syncd.db'}"))
    imported = crm.list_activities(ActivityFilter(owner_id=daemon.owner_id))
    assert [a.subject for a in imported] == ["Phoned-in meeting"]

    # Forgeries: the channel's path with a guessed token, or the right path unsigned.
    resource = setup.push_resource()
    guessed = resource.rsplit("/", 1)[0] + "/guessed-token"
    forged = [requests.post(url, data=b"x" * 100, timeout=10, verify=str(setup.ca),
                            headers=headers).status_code
              for url, headers in [(guessed, {})] * 10 + [(resource, {})] * 10]
    assert forged == [403] * 10 + [401] * 10
    assert daemon.settled_cycles() == settled

    # A thousand valid deliveries, eight at a time: one cycle, and at most one more for
    # those its cycle overlapped, as long as the burst is one burst to the gate.
    audience = resource.split("/hooks/")[0]
    signed = setup.signed(audience)

    local = threading.local()
    answered: list[float] = []

    def deliver(_: int) -> int:
        if not hasattr(local, "session"):  # one TLS connection per sender, as a server keeps
            local.session = requests.Session()
        answer: int = local.session.post(resource, data=b"x" * 100, headers=signed,
                                         timeout=30, verify=str(setup.ca)).status_code
        answered.append(time.monotonic())
        return answer

    with ThreadPoolExecutor(8) as pool:
        burst = list(pool.map(deliver, range(1000)))
    assert burst == [201] * 1000
    wait_for(daemon.cycles, settled + 1, timeout=60)
    after = daemon.settled_cycles()
    assert settled + 1 <= after <= settled + 2 + split_bursts(answered), \
        daemon.log.read_text()

    status = setup.status()
    assert re.search(r"push: active until", status), status
    assert "polled: server offers no WebDAV-Push" in status, status
    daemon.stop()
    # One notification of the other client's change, none of our marker write, the burst.
    assert daemon.counted("webdav") == {"accepted": 1001, "forged": 20}

