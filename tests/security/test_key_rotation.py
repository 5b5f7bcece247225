"""Key rotation for stored provider tokens (failure-modes point 3.1): ``[syncd] state_key``
lists several keys, the first encrypts and all decrypt, and ``syncd admin rotate-key``
re-encrypts every stored token with the first one so the others can be removed."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from sqlalchemy import text

from syncd.cli import main
from syncd.config_types import SecretRef
from syncd.errors import StoredSecretUnreadable
from syncd.report import describe
from syncd.store.credentials import CredentialStore
from syncd.store.db import Database

TOKENS = {("alice", "refresh_token"): "1//alice-refresh-Canary",
          ("bob", "outlook_token_cache"): '{"AccessToken": {"bob-Canary": 1}}'}
OLD, NEW = SecretRef("env:SYNCD_KEY_OLD"), SecretRef("env:SYNCD_KEY_NEW")


@pytest.fixture
def keys(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SYNCD_KEY_OLD", Fernet.generate_key().decode())
    monkeypatch.setenv("SYNCD_KEY_NEW", Fernet.generate_key().decode())


def _stored(tmp_path: Path) -> Database:
    """A database holding TOKENS, encrypted with the old key alone."""
    db = Database(f"sqlite:///{tmp_path / 'syncd.db'}")
    store = CredentialStore(db, OLD)
    for (account, kind), value in TOKENS.items():
        store.put(account, kind, value)
    return db


def _config(tmp_path: Path, *keys: str) -> str:
    path = tmp_path / "syncd.toml"
    listed = ", ".join(f'"{k}"' for k in keys)
    path.write_text(f'[syncd]\ndatabase = "sqlite:///{tmp_path / "syncd.db"}"\n'
                    f"state_key = [{listed}]\n")
    return str(path)


def _rotate(tmp_path: Path, capsys: pytest.CaptureFixture[str], *keys: SecretRef
            ) -> tuple[int, str, str]:
    """``syncd admin rotate-key`` with ``state_key`` listing ``keys``: exit code, out, err."""
    code = main(["--config", _config(tmp_path, *(k.ref for k in keys)), "admin",
                 "rotate-key"])
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err and "Canary" not in out + err
    return code, out, err


def _ciphertexts(db: Database) -> list[str]:
    with db.engine.connect() as conn:
        return list(conn.execute(text("SELECT ciphertext FROM sync_credentials")).scalars())


def test_a_token_stored_under_the_old_key_is_read_once_a_new_key_is_put_first(
        tmp_path: Path, keys: None) -> None:
    db = _stored(tmp_path)
    both = CredentialStore(db, (NEW, OLD))
    assert {k: both.get(*k) for k in TOKENS} == TOKENS
    both.put("carol", "refresh_token", "1//carol")  # the first key encrypts what is new
    assert CredentialStore(db, NEW).get("carol", "refresh_token") == "1//carol"
    with pytest.raises(StoredSecretUnreadable):
        CredentialStore(db, NEW).get("alice", "refresh_token")


def test_after_rotate_key_the_old_key_can_be_removed_and_every_token_still_reads(
        tmp_path: Path, keys: None, capsys: pytest.CaptureFixture[str]) -> None:
    db = _stored(tmp_path)
    before = _ciphertexts(db)
    code, out, _ = _rotate(tmp_path, capsys, NEW, OLD)
    assert code == 0 and "Re-encrypted 2 stored token(s)" in out and "can now be removed" in out
    assert set(_ciphertexts(db)).isdisjoint(before)
    new_only = CredentialStore(db, NEW)
    assert {k: new_only.get(*k) for k in TOKENS} == TOKENS
    with pytest.raises(StoredSecretUnreadable):
        CredentialStore(db, OLD).get("alice", "refresh_token")


def test_a_wrong_key_is_one_sentence_naming_state_key_and_the_fix(
        tmp_path: Path, keys: None, capsys: pytest.CaptureFixture[str]) -> None:
    db = _stored(tmp_path)
    before = _ciphertexts(db)
    with pytest.raises(StoredSecretUnreadable) as caught:
        CredentialStore(db, NEW).get("alice", "refresh_token")
    sentence = describe(caught.value)
    assert "\n" not in sentence and "[syncd] state_key" in sentence
    assert "syncd admin rotate-key" in sentence and "syncd auth" in sentence
    # The command with only the new key: nothing opens, nothing is changed or lost.
    code, out, _ = _rotate(tmp_path, capsys, NEW)
    assert code == 1 and "Re-encrypted 0" in out
    assert "refresh_token of alice" in out and "state_key" in out
    assert _ciphertexts(db) == before


def test_a_key_that_is_no_fernet_key_stops_the_command_with_its_reference(
        tmp_path: Path, keys: None, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    db = _stored(tmp_path)
    monkeypatch.setenv("SYNCD_KEY_BAD", "not-a-key-Canary")
    code, _, err = _rotate(tmp_path, capsys, SecretRef("env:SYNCD_KEY_BAD"), OLD)
    assert code == 1
    [line] = err.splitlines()
    assert "env:SYNCD_KEY_BAD" in line and "[syncd] state_key" in line
    assert CredentialStore(db, OLD).get("alice", "refresh_token") == TOKENS[
        ("alice", "refresh_token")]


@pytest.mark.parametrize("stored", ["", "not a token", "gAAAA" + "A" * 200, "\u00e9\x00"])
def test_a_stored_row_that_is_no_token_at_all_is_named_and_left_and_the_rest_rotated(
        tmp_path: Path, keys: None, capsys: pytest.CaptureFixture[str], stored: str) -> None:
    db = _stored(tmp_path)
    with db.engine.begin() as conn:
        conn.execute(text("INSERT INTO sync_credentials (account, kind, ciphertext, "
                          "updated_at) VALUES ('mallory', 'refresh_token', :c, "
                          "'2026-12-01 00:00:00')"), {"c": stored})
    code, out, _ = _rotate(tmp_path, capsys, NEW, OLD)
    assert code == 1 and "Re-encrypted 2 stored token(s)" in out
    assert "refresh_token of mallory" in out
    assert {k: CredentialStore(db, NEW).get(*k) for k in TOKENS} == TOKENS
    with db.engine.connect() as conn:
        assert conn.execute(text("SELECT ciphertext FROM sync_credentials WHERE account = "
                                 "'mallory'")).scalar_one() == stored


def test_rotate_key_without_a_state_key_names_the_file_the_key_and_the_fix(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "syncd.toml"
    path.write_text(f'[syncd]\ndatabase = "sqlite:///{tmp_path / "syncd.db"}"\n')
    assert main(["--config", str(path), "admin", "rotate-key"]) == 2
    err = capsys.readouterr().err
    assert f"{path}: syncd.state_key is not set" in err and 'state_key = ["env:NEW"' in err
