"""A whole ``syncd run`` at DEBUG, with its listener, grepped for every secret it holds or
is sent: the CalDAV password, the Pipedrive webhook password (right and as a wrong
guess), the /metrics password, and the tokens callers put in paths (WebDAV-Push
deliveries, booking links). None may appear in its log."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from syncd.crm.builtin.activities import ActivityStore
from syncd.http.basic_auth import BasicAuthSecret
from syncd.store.db import Database
from syncd_testkit.loopback import free_port
from syncd_testkit.servers import DavServer
from tests.conftest import fresh_calendar
from tests.http.conftest import delivery
from tests.http.test_daemon_push import Daemon, dav_config, first_cycle, spawn

DAV_PASSWORD = f"dav-canary-{uuid.uuid4().hex}"
PATH_TOKEN = f"pathcanary{uuid.uuid4().hex}"


@pytest.fixture
def daemon(tmp_path: Path, radicale: DavServer, monkeypatch: pytest.MonkeyPatch
           ) -> Iterator[Daemon]:
    monkeypatch.setenv("DAV_CANARY_PASSWORD", DAV_PASSWORD)
    user, calendar = fresh_calendar(radicale)
    data = tmp_path / "data"
    data.mkdir(mode=0o700)
    owner_id = ActivityStore(Database(f"sqlite:///{data / 'syncd.db'}")).add_user(user, "U")
    auth = BasicAuthSecret(data, "pipedrive").create()
    port = free_port()
    config = tmp_path / "syncd.toml"
    config.write_text(
        dav_config(data, user, calendar, radicale.url,
                   f'[logging]\nlevel = "debug"\n[http]\nlisten = "127.0.0.1:{port}"\n')
        + 'password = "env:DAV_CANARY_PASSWORD"\nallow_insecure_http = true\n')
    log = tmp_path / "daemon.log"
    with first_cycle(Daemon(spawn(config, log), log, port, owner_id, auth)) as running:
        yield running


def test_no_secret_reaches_the_daemons_log(daemon: Daemon, tmp_path: Path) -> None:
    base = f"http://127.0.0.1:{daemon.port}"
    metrics = BasicAuthSecret(tmp_path / "data", "metrics", folder="http").read()
    assert metrics is not None
    assert daemon.deliver() == 200
    assert daemon.deliver(auth=("syncd", daemon.auth[1] + "x")) == 401  # a near miss
    body = json.dumps(delivery(daemon.owner_id))
    assert requests.post(daemon.hook, data=body, timeout=10,
                         headers={"Authorization": f"Bearer {daemon.auth[1]}"}
                         ).status_code == 401
    assert requests.get(f"{base}/metrics", auth=metrics, timeout=10).status_code == 200
    assert requests.get(f"{base}/metrics", auth=("syncd", metrics[1][::-1]),
                        timeout=10).status_code == 401
    assert requests.post(f"{base}/hooks/webdav/chan/{PATH_TOKEN}", data=b"x",
                         timeout=10).status_code in (202, 404)
    assert requests.get(f"{base}/book/{PATH_TOKEN}", timeout=10).status_code == 404
    daemon.settled_cycles()
    daemon.stop()
    text = daemon.log.read_text()
    assert "HTTP receiver stopped" in text and " DEBUG " in text  # it logged at DEBUG
    for secret in (DAV_PASSWORD, daemon.auth[1], metrics[1], PATH_TOKEN):
        assert secret not in text
