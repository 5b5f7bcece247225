"""``syncd status``: each account's push channel, or why it is polled."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from syncd.cli import main
from syncd.store.channels import ChannelStore
from syncd.store.db import Database

ACCOUNTS = "".join(
    f'[[account]]\nname = "{name}"\nprovider = "caldav"\nowner = "{name}@example.com"\n'
    f'calendar = "https://dav.example.com/{name}/work/"\n[account.auth]\n'
    f'url = "https://dav.example.com/"\nusername = "{name}"\npassword = "env:NOPE"\n'
    for name in ("alice", "bob", "carol", "dave"))


def _status(tmp_path: Path, capsys: pytest.CaptureFixture[str], http: str,
            *json_flag: str) -> str:
    config = tmp_path / "syncd.toml"
    config.write_text(f'[syncd]\ndata_dir = "{tmp_path}"\n{http}{ACCOUNTS}')
    capsys.readouterr()
    assert main(["--config", str(config), *json_flag, "status"]) == 0
    return capsys.readouterr().out


def test_a_receiver_without_a_public_url_says_push_needs_it_and_no_receiver_says_nothing(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = _status(tmp_path, capsys, '[http]\nlisten = "127.0.0.1:8765"\n')
    assert out.count("  polled: push needs [http] public_url") == 4
    out = _status(tmp_path, capsys, "")
    assert "push" not in out and len(out.splitlines()) == 4
    rows = json.loads(_status(tmp_path, capsys, "", "--json"))
    assert {row["push"]["line"] for row in rows} == {"polled: push needs [http] public_url"}


def test_each_account_shows_its_channel_or_why_it_is_polled(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    tmp_path.chmod(0o700)
    channels = ChannelStore(Database(f"sqlite:///{tmp_path / 'syncd.db'}"))
    at = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)
    channels.save("alice", "webdav", channel_id="c1", token="t", expires_at=at + timedelta(days=3),
                  now=at)
    channels.heard("c1", now=at + timedelta(minutes=5))
    channels.save("bob", "webdav", channel_id="c2", token="t", expires_at=at + timedelta(days=3))
    channels.degrade("bob", "missed-notification")
    channels.refuse("carol", "webdav", "the server offers no WebDAV-Push")
    http = '[http]\npublic_url = "https://syncd.example.com"\n'
    out = _status(tmp_path, capsys, http)
    assert ("  push: active until 2026-12-10 09:00 UTC, last notification 2026-12-07 09:05 UTC"
            in out)
    assert "  push: degraded (no notification after our write); polled at the normal" in out
    assert "  polled: the server offers no WebDAV-Push" in out
    assert "  polled: no push channel yet" in out  # dave
    rows = {row["account"]: row["push"] for row in json.loads(
        _status(tmp_path, capsys, http, "--json"))}
    assert rows["alice"]["state"] == "active"
    assert rows["alice"]["last_notification_at"].startswith("2026-12-07T09:05")
    assert (rows["bob"]["state"], rows["bob"]["reason"]) == ("degraded", "missed-notification")
    assert (rows["carol"]["state"], rows["dave"]["state"]) == ("polled", "polled")
