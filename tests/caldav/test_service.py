"""Accounts are isolated: a broken one is reported and the others sync."""

from __future__ import annotations

import logging
from datetime import date, time
from pathlib import Path

import pytest

from syncd.cli import main
from syncd.config import AccountConfig, Config, SecretRef
from syncd.service import Service
from syncd_testkit.loopback import free_port
from syncd_testkit.servers import DavServer
from tests.conftest import fresh_calendar


def test_a_failing_account_never_stops_the_others(tmp_path: Path, radicale: DavServer,
                                                  monkeypatch: pytest.MonkeyPatch,
                                                  caplog: pytest.LogCaptureFixture) -> None:
    user, calendar = fresh_calendar(radicale)
    monkeypatch.setenv("SYNCD_TEST_DAV_PASSWORD", "dav-password-canary")
    dead = f"http://127.0.0.1:{free_port()}/"
    accounts = (
        AccountConfig(name="broken", provider="caldav", owner=user, calendar=dead + "x/",
                      auth={"url": dead, "username": user,
                            "password": SecretRef("env:SYNCD_TEST_DAV_PASSWORD")}),
        AccountConfig(name="nobody", provider="caldav", owner="ghost@example.com",
                      calendar=calendar, auth={"url": radicale.url, "username": user}),
        AccountConfig(name="good", provider="caldav", owner=user, calendar=calendar,
                      auth={"url": radicale.url, "username": user}),
    )
    config = Config(data_dir=str(tmp_path), accounts=accounts)
    service = Service(config)
    owner = service.store.add_user(user, "Owner", "Europe/Oslo")
    service.store.add_activity(owner_id=owner, subject="Call", due_date=date(2026, 12, 10),
                               due_time=time(9), duration_minutes=30)
    caplog.set_level(logging.DEBUG)
    reports = {r.account: r for r in service.sync_all()}
    assert reports["good"].outcome == "ok" and reports["good"].counts["events_created"] == 1
    assert reports["broken"].outcome == "failed"
    assert reports["nobody"].outcome == "failed" and "ghost@example.com" in (
        reports["nobody"].message or "")
    status = {row["account"]: row for row in service.status()}
    assert status["good"]["links"] == 1 and status["broken"]["status"] == "failing"
    # The failing account backs off instead of hammering its server every interval.
    assert {r.account: r.outcome for r in service.sync_all()}["broken"] == "skipped"
    assert "dav-password-canary" not in caplog.text
    service.close()


def test_status_and_sync_commands_report_per_account(tmp_path: Path, radicale: DavServer,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    user, calendar = fresh_calendar(radicale)
    config = tmp_path / "syncd.toml"
    config.write_text(f'[syncd]\ndata_dir = "{tmp_path}"\n[[account]]\nname = "mine"\n'
                      f'provider = "caldav"\nowner = "{user}"\ncalendar = "{calendar}"\n'
                      f'[account.auth]\nurl = "{radicale.url}"\nusername = "{user}"\n')
    base = ["--config", str(config)]
    assert main([*base, "user", "add", user, "--time-zone", "Europe/Oslo"]) == 0
    assert main([*base, "activity", "add", "Demo", "--owner", user, "--due", "2026-12-10",
                 "--time", "10:00", "--duration", "60"]) == 0
    capsys.readouterr()
    assert main([*base, "sync", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "mine: dry-run: crm_changes 1, events_created 1" in out
    assert "CreateEvent" in out  # a dry run lists what it would do
    assert main([*base, "sync"]) == 0
    assert "events_created 1" in capsys.readouterr().out
    assert main([*base, "status"]) == 0
    out = capsys.readouterr().out
    assert "mine: ok" in out and "1 linked, 0 open conflict(s), 0 quarantined" in out
    assert main([*base, "sync", "--account", "nope"]) == 2
    assert "unknown account(s): nope" in capsys.readouterr().err
    assert main([*base, "resume", "mine"]) == 0
    assert "mine: ok -> ok" in capsys.readouterr().out
