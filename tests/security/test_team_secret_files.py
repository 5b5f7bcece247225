"""A team member's own secret file (``file:/run/secrets/caldav/{user}``), known only once
the CRM names the member, is held to the start's rule too: one that others may open
leaves that member out, with a warning naming the file and its chmod; the others sync."""

from __future__ import annotations

import logging
import tomllib
from pathlib import Path

import pytest

from connectors import provider_options
from syncd.config import parse_config
from syncd.service import Service


def test_a_member_whose_secret_file_others_may_open_is_left_out(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    secrets = tmp_path / "secrets"
    secrets.mkdir(mode=0o700)
    for user, mode in (("alice", 0o644), ("bob", 0o600), ("carol", 0o640)):
        (secrets / f"{user}.pw").write_text("pw\n")
        (secrets / f"{user}.pw").chmod(mode)
    config = parse_config(tomllib.loads(f'''
[syncd]
data_dir = "{tmp_path / "data"}"
[[team]]
name = "sales"
owners = "*"
provider = "caldav"
calendar = "https://dav.example.com/{{user}}/crm/"
[team.auth]
url = "https://dav.example.com/"
username = "{{user}}"
password = "file:{secrets}/{{user}}.pw"
'''), "syncd.toml", provider_options())
    service = Service(config)
    for user in ("alice", "bob", "carol"):
        service.store.add_user(f"{user}@x.com", user, "UTC")
    with caplog.at_level(logging.WARNING):
        served = [a.owner for a in service.accounts()]
    assert served == ["bob@x.com"]
    for user, mode in (("alice", "0644"), ("carol", "0640")):
        warned = [r.getMessage() for r in caplog.records if f"{user}@x.com" in r.getMessage()]
        assert len(warned) == 1 and f"{secrets / user}.pw" in warned[0] and mode in warned[0]
        assert "chmod 600" in warned[0]
    (secrets / "alice.pw").chmod(0o600)
    assert sorted(a.owner for a in service.accounts()) == ["alice@x.com", "bob@x.com"]
