"""The webhook secret's file: private whatever was left in its folder before."""

from __future__ import annotations

import stat
from pathlib import Path

from syncd.http.basic_auth import BasicAuthSecret


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_the_secret_file_is_private_even_when_a_readable_temporary_was_left_behind(
        tmp_path: Path) -> None:
    # A crash between writing the temporary and renaming it, or another program, may
    # leave "<provider>.secret.new" readable by others; truncating it would keep its mode.
    secret = BasicAuthSecret(tmp_path, "pipedrive")
    secret.path.parent.mkdir(mode=0o755)
    leftover = secret.path.with_name(secret.path.name + ".new")
    leftover.write_text("old\n")
    leftover.chmod(0o644)
    _, password = secret.create()
    assert _mode(secret.path) == 0o600
    assert secret.read() == ("syncd", password)


def test_the_secret_folder_is_made_private_when_it_already_existed(tmp_path: Path) -> None:
    secret = BasicAuthSecret(tmp_path, "pipedrive")
    secret.path.parent.mkdir(mode=0o755)
    secret.path.parent.chmod(0o755)
    secret.create()
    assert _mode(secret.path.parent) == 0o700
