"""A start is refused while others can open a file syncd keeps or reads a secret from:
beside the data directory, database and log (tests/test_private.py), the SQLite rollback
journal (``-journal``, which holds pages of private notes while a transaction runs
outside WAL), every ``file:`` secret the config names and the listener's TLS key."""

from __future__ import annotations

from pathlib import Path

import pytest

from syncd.config import Config, HttpConfig
from syncd.config_types import AccountConfig, SecretRef
from syncd.errors import FilesNotPrivate
from syncd.private import check_private


def _open(path: Path, mode: int = 0o644, text: str = "x") -> Path:
    path.write_text(text + "\n")
    path.chmod(mode)
    return path


def _refused(config: Config) -> list[tuple[str, str]]:
    with pytest.raises(FilesNotPrivate) as caught:
        check_private(config)
    return caught.value.paths


def test_a_rollback_journal_others_can_read_refuses_the_start(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir(mode=0o700)
    _open(data / "syncd.db", 0o600)
    journal = _open(data / "syncd.db-journal")
    assert _refused(Config(data_dir=str(data))) == [(str(journal), "0644")]


def test_secret_files_and_the_tls_key_others_can_read_refuse_the_start(
        tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir(mode=0o700)
    password = _open(tmp_path / "caldav.pw", 0o640)
    state_key = _open(tmp_path / "state.key")
    database = _open(tmp_path / "database_url", 0o604, "postgresql+psycopg://syncd@db/syncd")
    tls_key = _open(tmp_path / "tls.key")
    account = AccountConfig(name="a", provider="caldav", owner="a@x.com",
                            auth={"password": SecretRef(f"file:{password}"),
                                  "username": "a", "other": SecretRef("env:HOME")})
    config = Config(data_dir=str(data), accounts=(account,),
                    state_key=SecretRef(f"file:{state_key}"),
                    database=SecretRef(f"file:{database}"),
                    http=HttpConfig(listen="0.0.0.0:8765", certificate=str(tls_key),
                                    private_key=str(tls_key)))
    assert sorted(_refused(config)) == sorted([
        (str(password), "0640"), (str(state_key), "0644"), (str(database), "0604"),
        (str(tls_key), "0644")])
    for path in (password, state_key, database, tls_key):
        path.chmod(0o600)
    check_private(config)  # private again: no complaint


def test_a_missing_secret_file_is_left_to_the_check_that_reads_it(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir(mode=0o700)
    account = AccountConfig(name="a", provider="caldav", owner="a@x.com",
                            auth={"password": SecretRef(f"file:{tmp_path / 'none'}")})
    check_private(Config(data_dir=str(data), accounts=(account,)))
