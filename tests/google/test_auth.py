"""Credentials: the pinned scope, service accounts, stored OAuth grants, the consent flow."""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from cryptography.fernet import Fernet
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from google.auth.exceptions import RefreshError, TransportError

from connectors.base import CreateOp
from connectors.google_auth import (
    CONSENT_SCOPES,
    REFRESH_TOKEN_KIND,
    SCOPE,
    SCOPES,
    auth_error,
    authorize_console,
    code_from_answer,
)
from syncd import cli_auth, report
from syncd.cli import App
from syncd.config import AccountConfig, SecretRef
from syncd.errors import AuthFailed, Transient, UsageError
from syncd.store.credentials import CredentialStore
from syncd.store.db import Database
from syncd_testkit.emulators.google import GoogleEmulator
from tests.contract import timed
from tests.google.helpers import OWNER, TZ, connector
from tests.google.token_stub import TokenStub
from tests.google.world import make_world


def test_the_scope_is_pinned_to_calendar_events() -> None:
    # Widening this is a product decision (failure catalogue 3.2), not a refactoring.
    assert SCOPES == ("https://www.googleapis.com/auth/calendar.events",)
    # Consent adds only who signed in: calendar access stays calendar.events, nothing broader.
    assert CONSENT_SCOPES == ("openid", "email", "https://www.googleapis.com/auth/calendar.events")
    assert [s for s in CONSENT_SCOPES if "calendar" in s] == list(SCOPES)


@pytest.fixture
def stub() -> Iterator[TokenStub]:
    server = TokenStub().start()
    yield server
    server.stop()


@pytest.fixture
def creds_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> CredentialStore:
    monkeypatch.setenv("SYNCD_TEST_STATE_KEY", Fernet.generate_key().decode())
    db = Database(f"sqlite:///{tmp_path / 'syncd.db'}")
    return CredentialStore(db, SecretRef("env:SYNCD_TEST_STATE_KEY"))


def client_secrets(tmp_path: Path, token_uri: str) -> SecretRef:
    path = tmp_path / "client.json"
    path.write_text(json.dumps({"installed": {
        "client_id": "cid.apps.googleusercontent.com", "client_secret": "client-secret-xyz",
        "auth_uri": "https://accounts.google.com/o/oauth2/auth", "token_uri": token_uri,
        "redirect_uris": ["http://127.0.0.1"]}}))
    return SecretRef(f"file:{path}")


def oauth_auth(tmp_path: Path, emu: GoogleEmulator, stub: TokenStub) -> dict[str, Any]:
    return {"mode": "oauth", "client_secrets_file": client_secrets(tmp_path, stub.url),
            "api_endpoint": emu.api_endpoint}


def bearer(emu: GoogleEmulator) -> set[str | None]:
    return {r.headers.get("authorization") for r in emu.requests}


# --- service account ---------------------------------------------------------------------------


def test_service_account_acts_as_the_owner_with_the_one_scope(
        tmp_path: Path, emu: GoogleEmulator, stub: TokenStub) -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption()).decode()
    key_file = tmp_path / "sa.json"
    key_file.write_text(json.dumps({
        "type": "service_account", "project_id": "p", "private_key_id": "k1",
        "private_key": pem, "client_email": "syncd@p.iam.gserviceaccount.com",
        "client_id": "1", "token_uri": "https://oauth2.googleapis.com/token"}))
    conn = connector(emu, auth={"service_account_file": SecretRef(f"file:{key_file}"),
                                "token_uri": stub.url})
    conn.changes(None)
    conn.write([CreateOp("a", "m0000001", 0, timed()), CreateOp("b", "m0000002", 0, timed())])
    [claims] = stub.claims()
    assert claims["sub"] == OWNER and claims["scope"] == SCOPE
    assert claims["iss"] == "syncd@p.iam.gserviceaccount.com"
    assert bearer(emu) == {"Bearer access-1"}  # the listing, the batch and its parts


def test_a_broken_service_account_key_is_an_auth_failure(tmp_path: Path,
                                                          emu: GoogleEmulator) -> None:
    key_file = tmp_path / "sa.json"
    key_file.write_text("{not json")
    conn = connector(emu, auth={"service_account_file": SecretRef(f"file:{key_file}")})
    with pytest.raises(AuthFailed):
        conn.changes(None)


# --- stored OAuth grant --------------------------------------------------------------------------


def test_stored_refresh_token_authorises_requests(tmp_path: Path, emu: GoogleEmulator,
                                                  stub: TokenStub,
                                                  creds_store: CredentialStore) -> None:
    creds_store.put("alice", REFRESH_TOKEN_KIND, "rt-good")
    conn = connector(emu, auth=oauth_auth(tmp_path, emu, stub))
    conn._credential_store = creds_store
    conn.changes(None)
    assert bearer(emu) == {"Bearer access-1"}
    [form] = stub.forms
    assert form["grant_type"] == "refresh_token" and form["scope"] == SCOPE


def test_a_rotated_refresh_token_is_stored_at_once(tmp_path: Path, emu: GoogleEmulator,
                                                   stub: TokenStub,
                                                   creds_store: CredentialStore) -> None:
    creds_store.put("alice", REFRESH_TOKEN_KIND, "rt-good")
    stub.rotate_to = "rt-rotated"
    conn = connector(emu, auth=oauth_auth(tmp_path, emu, stub))
    conn._credential_store = creds_store
    conn.changes(None)
    assert creds_store.get("alice", REFRESH_TOKEN_KIND) == "rt-rotated"


def test_invalid_grant_marks_only_that_account_for_reauthorisation(
        tmp_path: Path, google_emulator: GoogleEmulator, stub: TokenStub,
        creds_store: CredentialStore, caplog: pytest.LogCaptureFixture) -> None:
    creds_store.put("alice", REFRESH_TOKEN_KIND, "rt-revoked")
    world = make_world(tmp_path, google_emulator,
                       auth=oauth_auth(tmp_path, google_emulator, stub))
    world.calendar._credential_store = creds_store
    bob = make_world(tmp_path / "bob", google_emulator, name="bob")
    world.add("Alice's call")
    bob.add("Bob's call")
    report_ = world.sync()
    assert report_.outcome == "failed" and "invalid_grant" in (report_.message or "")
    assert world.state.account("alice").status == "needs_reauth"
    assert bob.sync().outcome == "ok"
    assert "rt-revoked" not in caplog.text and "client-secret-xyz" not in caplog.text
    assert "rt-revoked" not in (report_.message or "")


def test_an_account_never_authorised_needs_reauthorisation(tmp_path: Path,
                                                           google_emulator: GoogleEmulator,
                                                           stub: TokenStub,
                                                           creds_store: CredentialStore) -> None:
    world = make_world(tmp_path, google_emulator,
                       auth=oauth_auth(tmp_path, google_emulator, stub))
    world.calendar._credential_store = creds_store
    world.add("Call")
    assert world.sync().outcome == "failed"
    state = world.state.account("alice")
    assert state.status == "needs_reauth"


@pytest.mark.parametrize(("error", "kind"), [
    (RefreshError("invalid_grant: Token has been expired or revoked.",
                  {"error": "invalid_grant", "error_description": "Token has been revoked."}),
     AuthFailed),
    (RefreshError("temporarily_unavailable", {"error": "temporarily_unavailable"},
                  retryable=True), Transient),
    (TransportError("connection refused"), Transient),
])
def test_auth_library_errors_map_to_engine_errors(error: Exception, kind: type) -> None:
    mapped = auth_error(error)  # type: ignore[arg-type]
    assert isinstance(mapped, kind)
    assert "revoked" not in str(mapped.fields)  # the code only, never the description


# --- the consent flow -----------------------------------------------------------------------------


def google_account(tmp_path: Path, stub: TokenStub) -> AccountConfig:
    return AccountConfig(name="alice", provider="google", owner=OWNER, auth={
        "mode": "oauth", "client_secrets_file": client_secrets(tmp_path, stub.url)})


def run_flow(account: AccountConfig, store: CredentialStore, answer: Any) -> tuple[str, ...]:
    said: list[str] = []

    def prompt(_: str) -> str:
        url = next(line for line in said if "accounts.google.com" in line).strip().split()[-1]
        query = parse_qs(urlsplit(url).query)
        return str(answer(query))

    return authorize_console(account, store, prompt=prompt, say=said.append)


@pytest.fixture
def insecure_local_token_uri(monkeypatch: pytest.MonkeyPatch) -> None:
    # oauthlib insists on https for the token endpoint; the stub is plain http on loopback.
    monkeypatch.setenv("OAUTHLIB_INSECURE_TRANSPORT", "1")


@pytest.mark.usefixtures("insecure_local_token_uri")
def test_console_flow_stores_the_refresh_token(tmp_path: Path, stub: TokenStub,
                                               creds_store: CredentialStore) -> None:
    def browser(query: dict[str, list[str]]) -> str:
        assert query["scope"] == [f"openid email {SCOPE}"] and query["access_type"] == ["offline"]
        assert query["code_challenge_method"] == ["S256"] and query["login_hint"] == [OWNER]
        return f"http://127.0.0.1:8765/?state={query['state'][0]}&code=good-code&scope={SCOPE}"

    scopes = run_flow(google_account(tmp_path, stub), creds_store, browser)
    assert SCOPE in scopes and "openid" in scopes
    assert creds_store.get("alice", REFRESH_TOKEN_KIND) == "rt-from-code"
    [form] = stub.forms
    assert form["grant_type"] == "authorization_code" and form.get("code_verifier")


@pytest.mark.usefixtures("insecure_local_token_uri")
def test_console_flow_refuses_a_grant_without_the_calendar(tmp_path: Path, stub: TokenStub,
                                                           creds_store: CredentialStore) -> None:
    stub.code_scope = "openid"
    with pytest.raises(AuthFailed, match="not granted"):
        run_flow(google_account(tmp_path, stub), creds_store,
                 lambda q: f"http://127.0.0.1:8765/?state={q['state'][0]}&code=good-code")
    assert creds_store.get("alice", REFRESH_TOKEN_KIND) is None


def good_answer(query: dict[str, list[str]]) -> str:
    return f"http://127.0.0.1:8765/?state={query['state'][0]}&code=good-code"


@pytest.mark.usefixtures("insecure_local_token_uri")
def test_console_flow_refuses_a_grant_of_another_google_account(
        tmp_path: Path, stub: TokenStub, creds_store: CredentialStore) -> None:
    stub.signed_in_as = "mallory@example.com"
    with pytest.raises(AuthFailed, match=r"signed in as mallory@example\.com") as info:
        run_flow(google_account(tmp_path, stub), creds_store, good_answer)
    assert OWNER in str(info.value.fields)  # says whom to sign in as
    assert creds_store.get("alice", REFRESH_TOKEN_KIND) is None


@pytest.mark.usefixtures("insecure_local_token_uri")
def test_console_flow_compares_the_signed_in_user_with_the_subject(
        tmp_path: Path, stub: TokenStub, creds_store: CredentialStore) -> None:
    account = google_account(tmp_path, stub)
    account.auth["subject"] = "Room.Booking@Example.com"
    stub.signed_in_as = "room.booking@example.com"
    run_flow(account, creds_store, good_answer)
    assert creds_store.get("alice", REFRESH_TOKEN_KIND) == "rt-from-code"


@pytest.mark.usefixtures("insecure_local_token_uri")
@pytest.mark.parametrize(("primary", "stored"), [(OWNER, True), ("bob@example.com", False)])
def test_without_an_id_token_the_primary_calendar_tells_who_signed_in(
        tmp_path: Path, stub: TokenStub, creds_store: CredentialStore,
        google_emulator: GoogleEmulator, primary: str, stored: bool) -> None:
    stub.signed_in_as = None
    google_emulator.add_calendar(primary, time_zone=TZ)  # the token's user's calendar
    account = google_account(tmp_path, stub)
    account.auth["api_endpoint"] = google_emulator.api_endpoint
    if stored:
        run_flow(account, creds_store, good_answer)
    else:
        with pytest.raises(AuthFailed, match=r"signed in as bob@example\.com"):
            run_flow(account, creds_store, good_answer)
    assert (creds_store.get("alice", REFRESH_TOKEN_KIND) is not None) is stored
    [lookup] = [r for r in google_emulator.requests if "calendarList" in r.path]
    assert lookup.path.endswith("/users/me/calendarList/primary")
    assert lookup.headers.get("authorization") == "Bearer access-1"


@pytest.mark.usefixtures("insecure_local_token_uri")
def test_a_refused_code_is_an_auth_failure_naming_only_the_oauth_error(
        tmp_path: Path, stub: TokenStub, creds_store: CredentialStore) -> None:
    with pytest.raises(AuthFailed, match="invalid_grant") as info:
        run_flow(google_account(tmp_path, stub), creds_store,
                 lambda q: f"http://127.0.0.1:8765/?state={q['state'][0]}&code=bad-code")
    assert "Bad code" not in str(info.value.fields)  # Google's description is not echoed
    assert creds_store.get("alice", REFRESH_TOKEN_KIND) is None


@pytest.mark.parametrize(("answer", "message"), [
    ("http://127.0.0.1:8765/?state=other&code=good-code", "state mismatch"),
    ("http://127.0.0.1:8765/?code=good-code", "no state"),
    ("?code=good-code", "no state"),
    ("http://127.0.0.1:8765/?error=access_denied", "access_denied"),
    ("http://127.0.0.1:8765/?state=s1", "no code"),
    ("", "nothing"),
])
def test_a_bad_paste_is_refused_clearly(answer: str, message: str) -> None:
    with pytest.raises(AuthFailed, match=message):
        code_from_answer(answer, "s1")


def test_a_bare_code_is_accepted() -> None:
    assert code_from_answer("  4/0Abc-def  ", "s1") == "4/0Abc-def"


# --- the command ----------------------------------------------------------------------------


def run_cli(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="syncd")
    parser.add_argument("--config")
    parser.add_argument("--data-dir")
    parser.add_argument("--json", action="store_true")
    cli_auth.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(argv)
    try:
        return int(args.handler(args, App(args)))
    except (UsageError, AuthFailed) as exc:
        return report.exit_code(exc)


def write_config(tmp_path: Path, stub: TokenStub, mode: str = "oauth") -> Path:
    secrets = client_secrets(tmp_path, stub.url).ref
    path = tmp_path / "syncd.toml"
    path.write_text(f"""
[syncd]
database = "sqlite:///{tmp_path / 'cli.db'}"
state_key = "env:SYNCD_TEST_STATE_KEY"

[[account]]
name = "alice"
provider = "google"
owner = "{OWNER}"

[account.auth]
mode = "{mode}"
client_secrets_file = "{secrets}"
token_uri = "{stub.url}"
allow_insecure_http = true
{'service_account_file = "file:' + str(tmp_path / 'key.json') + '"' if mode != "oauth" else ""}
""")
    return path


@pytest.mark.usefixtures("insecure_local_token_uri")
def test_syncd_auth_google_stores_the_grant_and_clears_needs_reauth(
        tmp_path: Path, stub: TokenStub, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("SYNCD_TEST_STATE_KEY", Fernet.generate_key().decode())
    config = write_config(tmp_path, stub)
    db = Database(f"sqlite:///{tmp_path / 'cli.db'}")
    from syncd.store.state import StateStore

    StateStore(db).account("alice")
    StateStore(db).update_account("alice", status="needs_reauth", status_reason="revoked")

    def browser(_: str) -> str:
        url = next(w for w in capsys.readouterr().out.split() if "accounts.google.com" in w)
        state = parse_qs(urlsplit(url).query)["state"][0]
        return f"http://127.0.0.1:8765/?state={state}&code=good-code"

    monkeypatch.setattr("builtins.input", browser)
    assert run_cli(["--config", str(config), "auth", "google", "alice"]) == 0
    assert "is authorised" in capsys.readouterr().out
    store = CredentialStore(db, SecretRef("env:SYNCD_TEST_STATE_KEY"))
    assert store.get("alice", REFRESH_TOKEN_KIND) == "rt-from-code"
    assert StateStore(db).account("alice").status == "ok"


def test_syncd_auth_google_refuses_a_service_account(tmp_path: Path, stub: TokenStub) -> None:
    config = write_config(tmp_path, stub, mode="service_account")
    assert run_cli(["--config", str(config), "auth", "google", "alice"]) == report.EXIT_USAGE
    assert run_cli(["--config", str(config), "auth", "google", "bob"]) == report.EXIT_USAGE


def test_a_refused_refresh_token_is_not_sent_again_until_the_account_signs_in(
        tmp_path: Path, google_emulator: GoogleEmulator, stub: TokenStub,
        creds_store: CredentialStore) -> None:
    # T8: invalid_grant is final; asking again every cycle only knocks on a closed door.
    creds_store.put("alice", REFRESH_TOKEN_KIND, "rt-revoked")
    world = make_world(tmp_path, google_emulator,
                       auth=oauth_auth(tmp_path, google_emulator, stub))
    world.calendar._credential_store = creds_store
    world.add("Call")
    assert world.sync().outcome == "failed"
    sent = len(stub.forms)
    assert sent == 1 and stub.forms[0].get("refresh_token") == "rt-revoked"  # no retry
    for _ in range(3):
        world.advance(hours=1)
        assert world.sync().outcome == "skipped"
    assert len(stub.forms) == sent
    assert world.state.account("alice").status == "needs_reauth"
