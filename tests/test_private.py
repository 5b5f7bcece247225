"""Files private by default: what a fresh install writes is its owner's alone, and a start
is refused while others can read the data (with the chmod that fixes it)."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import tempfile
from datetime import datetime
from pathlib import Path

import caldav
import pytest

from syncd.config import Config, LoggingConfig
from syncd.embedded_auth import EmbeddedCredentials
from syncd.errors import FilesNotPrivate
from syncd.private import check_private
from syncd.report import EXIT_USAGE, describe, exit_code
from tests.test_embedded import ALICE, start_server, syncd


def group_or_other_bits(root: Path) -> list[str]:
    return [f"{p} {stat.S_IMODE(p.stat().st_mode):04o}"
            for p in [root, *root.rglob("*")] if stat.S_IMODE(p.stat().st_mode) & 0o077]


def test_a_fresh_data_directory_database_and_calendar_files_are_private(tmp_path: Path) -> None:
    data = tmp_path / "data"
    added = syncd(data, "--json", "user", "add", ALICE)
    assert added.returncode == 0, added.stderr
    password = json.loads(added.stdout)["calendar_login"]["password"]
    server = start_server(data)
    try:
        server.ensure_calendar(ALICE)
        client = caldav.DAVClient(url=server.url, username=ALICE, password=password)
        client.calendar(url=f"{server.url}{ALICE}/crm/").save_event(
            dtstart=datetime(2026, 12, 10, 10),
            dtend=datetime(2026, 12, 10, 11), summary="Call Ada")
    finally:
        server.stop()
    files = {p.name for p in data.rglob("*") if p.is_file()}
    assert "syncd.db" in files and "users" in files and "syncd.secret" in files
    assert any(name.endswith(".ics") for name in files)
    assert group_or_other_bits(data) == []


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0,
                    reason="acting as another OS user needs root")
def test_another_os_user_cannot_read_the_database_or_the_passwords() -> None:
    # A folder anyone may pass through (pytest's own tmp folders are closed to others), so
    # only syncd's own modes stand between the other user and the files.
    base = Path(tempfile.mkdtemp(prefix="syncd-private-"))
    try:
        base.chmod(0o711)
        data = base / "data"
        assert syncd(data, "user", "add", ALICE).returncode == 0
        EmbeddedCredentials(data).prepare()  # as `syncd run` does: the service user's secret
        control = base / "control.txt"
        control.write_text("anyone may read this")
        control.chmod(0o644)

        def read_as_nobody(path: Path) -> int:
            return subprocess.run(["cat", str(path)], user="nobody", capture_output=True,
                                  timeout=30).returncode

        assert read_as_nobody(control) == 0  # the other user can read what is open to them
        secrets = (data / "syncd.db", data / "embedded" / "users",
                   data / "embedded" / "syncd.secret")
        for path in secrets:
            assert read_as_nobody(path) != 0, path
        for path in secrets:
            path.chmod(0o644)  # even a file opened up by mistake stays behind its folder
            assert read_as_nobody(path) != 0, path
    finally:
        shutil.rmtree(base)


def test_a_start_is_refused_while_others_can_read_the_data(tmp_path: Path) -> None:
    data = tmp_path / "data"
    assert syncd(data, "user", "add", ALICE).returncode == 0
    (data / "syncd.db").chmod(0o644)
    data.chmod(0o755)

    refused = syncd(data, "sync")
    assert refused.returncode == EXIT_USAGE
    assert f"{data} (mode 0755)" in refused.stderr and f"{data / 'syncd.db'} (mode 0644)" in \
        refused.stderr
    assert "chmod -R go=" in refused.stderr and "Traceback" not in refused.stderr

    data.chmod(0o700)
    (data / "syncd.db").chmod(0o600)
    check_private(Config(data_dir=str(data)))  # private again: no complaint


def test_a_log_file_others_can_read_is_named_too(tmp_path: Path) -> None:
    log = tmp_path / "syncd.log"
    log.write_text("")
    log.chmod(0o640)
    with pytest.raises(FilesNotPrivate) as caught:
        check_private(Config(data_dir=str(tmp_path / "none"),
                             logging=LoggingConfig(file=str(log))))
    assert caught.value.paths == [(str(log), "0640")]
    assert exit_code(caught.value) == EXIT_USAGE
    assert str(log) in describe(caught.value)
