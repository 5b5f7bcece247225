"""Tokens: client credentials, rotating refresh tokens, revocation, device code, the CLI."""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path
from typing import Any

import pytest

from connectors.outlook import OutlookCalendar
from connectors.outlook_auth import EXPIRY_MARGIN, REFRESH_KIND, device_code_login
from syncd import cli_auth_outlook
from syncd.cli import App
from syncd.config import SecretRef
from syncd.errors import AuthFailed
from syncd.store.credentials import CredentialStore
from syncd.store.db import Database
from syncd_testkit.emulators.identity import RoutingSession
from tests.outlook.conftest import (
    ALICE,
    BOB,
    SECRET_ENV,
    STATE_KEY_ENV,
    WINDOW,
    Context,
    Env,
    make_world,
)


class Journal:
    """One ordered record of credential writes and HTTP requests."""

    def __init__(self) -> None:
        self.entries: list[tuple[str, str]] = []


class JournalledCredentials(CredentialStore):
    def __init__(self, db: Database, journal: Journal) -> None:
        super().__init__(db, SecretRef(f"env:{STATE_KEY_ENV}"))
        self.journal = journal
        self.values: list[str] = []

    def put(self, account: str, kind: str, value: str) -> None:
        super().put(account, kind, value)
        self.values.append(value)
        self.journal.entries.append(("put", value))


class JournalledSession(RoutingSession):
    journal: Journal

    def request(self, method: str | bytes, url: str | bytes, *args: Any,
                **kwargs: Any) -> Any:
        self.journal.entries.append(("http", str(url)))
        return super().request(method, url, *args, **kwargs)


def _refreshes(env: Env) -> list[str]:
    return [r["refresh_token"] for r in env.identity.token_requests
            if r.get("grant_type") == "refresh_token"]


def test_the_rotated_refresh_token_is_stored_before_use_and_after_a_restart_is_the_one_used(
    tmp_path: Path, env: Env
) -> None:
    db = Database(f"sqlite:///{tmp_path / 'syncd.db'}")
    journal = Journal()
    credentials = JournalledCredentials(db, journal)
    account = env.account(mode="delegated")
    # Access tokens too short-lived to be kept for the next run: the restart refreshes.
    env.identity.access_token_lifetime = int(EXPIRY_MARGIN) - 60
    env.sign_in(account, credentials)
    signed_in = credentials.get(account.name, REFRESH_KIND)
    session = JournalledSession(env.identity)
    session.journal = journal
    first = OutlookCalendar(account, Context("Europe/Oslo", WINDOW, credentials),
                            session=session)
    first.changes(None)
    assert _refreshes(env) == [signed_in]
    rotated = credentials.get(account.name, REFRESH_KIND)
    assert rotated not in (None, signed_in)
    # The new refresh token was committed before any request used the new access token.
    stored_at = journal.entries.index(("put", rotated))
    graph_calls = [i for i, (kind, url) in enumerate(journal.entries)
                   if kind == "http" and url.startswith(env.graph.base_url)]
    assert graph_calls and stored_at < graph_calls[0]

    # "Restart": a new process has only the database.
    after_restart = CredentialStore(Database(f"sqlite:///{tmp_path / 'syncd.db'}"),
                                    SecretRef(f"env:{STATE_KEY_ENV}"))
    second = env.connector(account, credentials=after_restart)
    second.changes(None)
    assert _refreshes(env) == [signed_in, rotated]
    assert after_restart.get(account.name, REFRESH_KIND) not in (signed_in, rotated)


def test_a_revoked_account_needs_reauth_while_the_other_keeps_syncing(
    tmp_path: Path, env: Env
) -> None:
    env.graph.add_mailbox(BOB)
    db = Database(f"sqlite:///{tmp_path / 'syncd.db'}")
    alice = make_world(tmp_path, env, env.account("alice", ALICE, mode="delegated"), db)
    bob = make_world(tmp_path, env, env.account("bob", BOB, mode="delegated"), db)
    for world in (alice, bob):
        env.sign_in(world.account, world.credentials)
        world.add("Call")
    bob_token = bob.credentials.get("bob", REFRESH_KIND)
    env.identity.revoke_user(BOB)
    assert alice.sync().outcome == "ok"
    report = bob.sync()
    assert report.outcome == "failed" and "invalid_grant" in (report.message or "")
    assert bob.state.account("bob").status == "needs_reauth"
    assert _refreshes(env).count(bob_token) == 1  # invalid_grant is never retried
    assert len(env.graph.events(ALICE)) == 1 and env.graph.events(BOB) == []
    bob.advance(minutes=5)
    assert bob.sync().outcome == "skipped"
    assert _refreshes(env).count(bob_token) == 1
    alice.advance(minutes=5)
    assert alice.sync().outcome == "ok"


def test_app_only_tokens_come_from_client_credentials_for_the_users_path(env: Env) -> None:
    connector = env.connector(env.account())
    connector.changes(None)
    grants = {r["grant_type"] for r in env.identity.token_requests}
    assert grants == {"client_credentials"}
    assert env.identity.token_requests[0]["scope"] == "https://graph.microsoft.com/.default"
    paths = [r.path for r in env.graph.requests]
    assert paths and all(p.startswith(f"/users/{ALICE}/") for p in paths)


def test_a_wrong_client_secret_fails_the_account_not_the_process(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SYNCD_TEST_OUTLOOK_SECRET", "not-the-secret")
    with pytest.raises(AuthFailed) as raised:
        env.connector(env.account()).changes(None)
    assert raised.value.reason.startswith("invalid_client")
    assert env.graph.requests == []


def test_device_code_sign_in_refuses_a_user_who_does_not_own_the_mailbox(
    tmp_path: Path, env: Env
) -> None:
    credentials = CredentialStore(Database(f"sqlite:///{tmp_path / 'db.sqlite'}"),
                                  SecretRef(f"env:{STATE_KEY_ENV}"))
    account = env.account(mode="delegated")

    def approve_as_mallory(_message: str) -> None:
        for code in env.identity.pending_user_codes():
            env.identity.approve_device_code(code, user="mallory@contoso.test")

    with pytest.raises(AuthFailed, match="mallory"):
        device_code_login(account, credentials, session=env.session,
                          announce=approve_as_mallory)
    assert credentials.get(account.name, REFRESH_KIND) is None


def test_refresh_tokens_and_secrets_never_reach_the_logs(
    tmp_path: Path, env: Env, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    credentials = JournalledCredentials(Database(f"sqlite:///{tmp_path / 'db.sqlite'}"),
                                        Journal())
    delegated = env.account(mode="delegated")
    env.identity.access_token_lifetime = int(EXPIRY_MARGIN) - 60  # every run refreshes
    env.sign_in(delegated, credentials)
    for _ in range(3):
        env.connector(delegated, credentials=credentials).changes(None)
    env.connector(env.account(), credentials=credentials).changes(None)
    kept_caches = [json.loads(v) for v in credentials.values if v.startswith("{")]
    refresh_tokens = [v for v in credentials.values if not v.startswith("{")]
    access_tokens = [t["secret"] for c in kept_caches for t in c["AccessToken"].values()]
    assert len(refresh_tokens) == 4 and access_tokens
    for token in refresh_tokens + access_tokens:
        assert token not in caplog.text
    assert "client-secret-0f3a9c1d" not in caplog.text


# --- the command ------------------------------------------------------------------------


def _cli(tmp_path: Path, env: Env, mode: str) -> tuple[argparse.ArgumentParser, Path]:
    config = tmp_path / "syncd.toml"
    config.write_text(f"""
[syncd]
data_dir = "{tmp_path}"
state_key = "env:{STATE_KEY_ENV}"

[[account]]
name = "alice"
provider = "outlook"
owner = "{ALICE}"

[account.auth]
mode = "{mode}"
tenant = "tenant1"
client_id = "syncd-outlook-test"
authority = "{env.identity.authority('tenant1')}"
graph_url = "{env.graph.base_url}"
allow_insecure_http = true
{'client_secret = "env:' + SECRET_ENV + '"' if mode == "app" else ""}
""", encoding="utf-8")
    parser = argparse.ArgumentParser(prog="syncd")
    for flag in ("--config", "--data-dir"):
        parser.add_argument(flag)
    parser.add_argument("--json", action="store_true")
    auth = parser.add_subparsers(dest="command").add_parser("auth")
    cli_auth_outlook.register_outlook(auth.add_subparsers(dest="provider"))
    return parser, config


def test_syncd_auth_outlook_signs_in_stores_the_token_and_releases_the_account(
    tmp_path: Path, env: Env, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str]
) -> None:
    parser, config = _cli(tmp_path, env, "delegated")
    shown: list[str] = []

    def announce(message: str) -> None:
        shown.append(message)
        for code in env.identity.pending_user_codes():
            env.identity.approve_device_code(code, user=ALICE)

    monkeypatch.setattr(cli_auth_outlook, "_session", lambda: RoutingSession(env.identity))
    monkeypatch.setattr(cli_auth_outlook, "_announce", announce)
    args = parser.parse_args(["--config", str(config), "auth", "outlook", "alice"])
    app = App(args)
    from syncd.store.state import StateStore

    StateStore(app.db).account("alice")
    StateStore(app.db).update_account("alice", status="needs_reauth", status_reason="revoked")
    assert args.handler(args, app) == 0
    assert "signed in as alice@contoso.test" in capsys.readouterr().out
    assert shown and "microsoft.com/devicelogin" in shown[0]
    stored = CredentialStore(app.db, app.config.state_key).get("alice", REFRESH_KIND)
    assert stored and stored.startswith("emu-rt.")
    assert StateStore(app.db).account("alice").status == "ok"


def test_syncd_auth_outlook_refuses_an_app_only_account(tmp_path: Path, env: Env) -> None:
    parser, config = _cli(tmp_path, env, "app")
    args = parser.parse_args(["--config", str(config), "auth", "outlook", "alice"])
    from syncd.errors import UsageError

    with pytest.raises(UsageError, match="client credentials"):
        args.handler(args, App(args))
