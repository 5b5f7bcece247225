"""Outlook tokens kept between runs (issue 16 item 5): a second ``syncd sync`` from cron
signs in with no request while its access token lasts, and nothing is kept in clear.

Each "run" is a new connector (a new msal application, an empty memory) over the same
database, as a new process would be; sign-in requests are counted at the session.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from connectors.outlook import OutlookCalendar
from connectors.outlook_auth import CACHE_KIND, EXPIRY_MARGIN, REFRESH_KIND
from syncd.config import AccountConfig, SecretRef
from syncd.store.credentials import CredentialStore
from syncd.store.db import Database
from syncd_testkit.emulators.identity import RoutingSession
from tests.outlook.conftest import STATE_KEY_ENV, WINDOW, Context, Env


class CountingSession(RoutingSession):
    """Counts the requests that go to the identity platform (sign-in requests)."""

    sign_ins = 0

    def request(self, method: str | bytes, url: str | bytes, *args: Any,
                **kwargs: Any) -> Any:
        if str(url).startswith(self._identity.authority_host):
            self.sign_ins += 1
        return super().request(method, url, *args, **kwargs)


def run(env: Env, account: AccountConfig, credentials: CredentialStore | None) -> int:
    """One run's idle cycle; returns its sign-in requests."""
    with CountingSession(env.identity) as session:
        OutlookCalendar(account, Context("Europe/Oslo", WINDOW, credentials),
                        session=session).changes(None)
        return session.sign_ins


@pytest.fixture
def db(tmp_path: Path) -> Database:
    return Database(f"sqlite:///{tmp_path / 'syncd.db'}")


def keyed(db: Database) -> CredentialStore:
    return CredentialStore(db, SecretRef(f"env:{STATE_KEY_ENV}"))


def database_bytes(tmp_path: Path) -> bytes:
    return b"".join(p.read_bytes() for p in tmp_path.glob("syncd.db*"))


def test_a_second_app_run_makes_no_sign_in_request_while_its_token_lasts(
        env: Env, db: Database, tmp_path: Path) -> None:
    account = env.account(mode="app")
    assert run(env, account, keyed(db)) == 2  # tenant discovery and the token
    assert run(env, account, keyed(db)) == 0
    assert run(env, account, keyed(db)) == 0
    assert len(env.identity.token_requests) == 1
    # kept encrypted: the token is nowhere in the database's files in clear
    token = env.identity.issue_app_token(account.auth["client_id"])  # the same shape
    assert keyed(db).get(account.name, CACHE_KIND) is not None
    kept = keyed(db).get(account.name, CACHE_KIND) or ""
    secrets = [v["secret"] for v in __import__("json").loads(kept)["AccessToken"].values()]
    assert secrets and len(token) == len(secrets[0])
    assert all(s.encode() not in database_bytes(tmp_path) for s in secrets)


def test_a_second_delegated_run_neither_refreshes_nor_rotates_while_its_token_lasts(
        env: Env, db: Database) -> None:
    account = env.account(mode="delegated")
    env.sign_in(account, keyed(db))
    signed_in = keyed(db).get(account.name, REFRESH_KIND)
    before = len(env.identity.token_requests)
    assert run(env, account, keyed(db)) == 2
    rotated = keyed(db).get(account.name, REFRESH_KIND)
    assert rotated != signed_in
    assert run(env, account, keyed(db)) == 0
    assert len(env.identity.token_requests) == before + 1
    assert keyed(db).get(account.name, REFRESH_KIND) == rotated  # kept apart, unchanged
    kept = keyed(db).get(account.name, CACHE_KIND) or ""
    assert "RefreshToken" not in kept and (rotated or "-") not in kept


def test_without_a_state_key_tokens_stay_in_memory_and_each_run_signs_in(
        env: Env, db: Database, tmp_path: Path) -> None:
    account = env.account(mode="app")
    unkeyed = CredentialStore(db, None)
    assert run(env, account, unkeyed) == 2
    assert run(env, account, unkeyed) == 2  # as before: nothing kept between runs
    with db.session() as s:
        from syncd.store.state_tables import SyncCredential

        assert s.query(SyncCredential).count() == 0
    assert env.identity.token_requests  # (sanity) tokens were issued, none stored


def test_a_token_near_its_expiry_is_not_reused(env: Env, db: Database) -> None:
    env.identity.access_token_lifetime = int(EXPIRY_MARGIN) - 60
    account = env.account(mode="app")
    assert run(env, account, keyed(db)) == 2
    assert run(env, account, keyed(db)) == 2


def test_a_kept_token_the_api_refuses_is_replaced_and_the_run_goes_on(
        env: Env, db: Database) -> None:
    account = env.account(mode="app")
    assert run(env, account, keyed(db)) == 2
    first = keyed(db).get(account.name, CACHE_KIND)
    env.identity.expire_access_tokens()
    assert run(env, account, keyed(db)) == 2  # 401 with the kept one, then a new token
    assert keyed(db).get(account.name, CACHE_KIND) not in (None, first)
    assert run(env, account, keyed(db)) == 0


def test_another_identity_never_uses_the_kept_token(env: Env, db: Database) -> None:
    env.identity.register_app("another-client", "another-secret")
    account = env.account(mode="app")
    assert run(env, account, keyed(db)) == 2
    moved = AccountConfig(name=account.name, provider="outlook", owner=account.owner,
                          auth={**account.auth, "client_id": "another-client",
                                "client_secret": "another-secret"})
    assert run(env, moved, keyed(db)) == 2


@pytest.mark.parametrize("garbage", [
    "not json", "[]", '{"for": 1}', '{"AccessToken": {"x": {"secret": 5}}}',
    '{"for": "%s", "AccessToken": {"k": {"credential_type": "AccessToken"}}}',
    "x" * 300_000,
])
def test_an_unreadable_kept_cache_is_ignored(env: Env, db: Database, garbage: str) -> None:
    account = env.account(mode="app")
    assert run(env, account, keyed(db)) == 2
    from connectors.outlook_auth import KeptTokens

    identity = KeptTokens(account, keyed(db)).identity
    keyed(db).put(account.name, CACHE_KIND, garbage.replace("%s", identity))
    assert run(env, account, keyed(db)) == 2  # signs in as if nothing were kept
    assert run(env, account, keyed(db)) == 0  # and keeps the new token


def test_a_cache_kept_under_another_key_is_ignored(env: Env, db: Database,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    from cryptography.fernet import Fernet

    account = env.account(mode="app")
    assert run(env, account, keyed(db)) == 2
    monkeypatch.setenv(STATE_KEY_ENV, Fernet.generate_key().decode())
    assert run(env, account, keyed(db)) == 2
    assert run(env, account, keyed(db)) == 0
