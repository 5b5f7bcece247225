"""End to end: an activity made in Pipedrive reaches the calendar through its webhook.

``syncd run`` (a subprocess) syncs a Pipedrive company (the emulator, in this process)
with a Radicale calendar and polls only hourly; ``syncd pipedrive webhooks install`` has
pointed the company's webhooks at the daemon's receiver. An activity Alice creates in
Pipedrive is in her calendar after one pushed cycle, long before the poll.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import caldav
import pytest

from syncd.cli import main
from syncd_testkit.emulators.pipedrive import PipedriveEmulator
from syncd_testkit.loopback import free_port
from syncd_testkit.servers import DavServer
from tests.conftest import fresh_calendar

TOKEN_ENV = "SYNCD_TEST_PIPEDRIVE_TOKEN"


def wait(check: Callable[[], bool], what: str, log: Path, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"no {what}:\n{log.read_text()}"
        time.sleep(0.2)


def test_an_activity_made_in_pipedrive_reaches_the_calendar_by_webhook_not_by_poll(
        tmp_path: Path, radicale: DavServer, pipedrive_emulator: PipedriveEmulator,
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    emulator = pipedrive_emulator
    ada = emulator.add_user("Ada", "ada@acme.test", is_admin=True)
    alice = emulator.add_user("Alice", "alice@acme.test")
    token = emulator.api_token(ada)
    monkeypatch.setenv(TOKEN_ENV, token)
    login, calendar_url = fresh_calendar(radicale)
    port, data = free_port(), tmp_path / "data"
    config = tmp_path / "syncd.toml"
    config.write_text(
        f'[syncd]\ndata_dir = "{data}"\ninterval_seconds = 3600\njitter_seconds = 0\n'
        f'[http]\nlisten = "127.0.0.1:{port}"\npublic_url = "http://127.0.0.1:{port}"\n'
        'allow_insecure_http = true\n'
        f'[crm]\nkind = "pipedrive"\ncompany_domain = "acme"\napi_token = "env:{TOKEN_ENV}"\n'
        f'api_url = "{emulator.base_url}"\nallow_insecure_http = true\nseats = 5\n'
        '[[account]]\nname = "alice-cal"\nprovider = "caldav"\nowner = "alice@acme.test"\n'
        f'calendar = "{calendar_url}"\n[account.auth]\nurl = "{radicale.url}"\n'
        f'username = "{login}"\n')
    assert main(["--config", str(config), "pipedrive", "webhooks", "install"]) == 0
    assert "installed 3 Pipedrive webhooks" in capsys.readouterr().out

    env = {k: v for k, v in os.environ.items() if not k.startswith("SYNCD_")}
    env[TOKEN_ENV] = token
    log = tmp_path / "daemon.log"
    with log.open("w") as out:
        process = subprocess.Popen([sys.executable, "-m", "syncd", "--config", str(config),
                                    "run"], env=env, stdout=out, stderr=subprocess.STDOUT)
    calendar = caldav.DAVClient(url=radicale.url, username=login, password="x").calendar(
        url=calendar_url)
    try:
        wait(lambda: "alice-cal: ok" in log.read_text(), "first cycle", log)
        assert calendar.events() == []
        due = datetime.now(UTC).date() + timedelta(days=3)
        emulator.create_as_user(alice, subject="Call Ada", due_date=f"{due}",
                                due_time="09:00", duration="00:30")
        assert emulator.webhooks.wait_idle(real_timeout=60)  # generous: a loaded machine
        assert [d.status for d in emulator.webhooks.deliveries] == [200]
        wait(lambda: len(calendar.events()) == 1, "event in the calendar", log)
        [event] = calendar.events()
        assert str(event.icalendar_component["SUMMARY"]) == "Call Ada"
        # The pushed cycle writes the event before it logs its report line: wait for the
        # line too, then count (the first cycle and the push's, no poll in between).
        wait(lambda: log.read_text().count("alice-cal: ok") >= 2, "pushed cycle's report", log)
        assert log.read_text().count("alice-cal: ok") == 2
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            assert process.wait(timeout=30) == 0, log.read_text()
        finally:
            if process.poll() is None:
                process.kill()
