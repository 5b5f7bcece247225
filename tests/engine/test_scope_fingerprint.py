"""A changed scope is refused, a changed secret is not (failure mode 5).

An account pointed at another calendar, server, user or tenant under the same name sees
none of its linked events there: syncing on would delete or duplicate. The account's
fingerprint names that scope; a cycle that finds it changed, with links, refuses until
``--force-delete``. Secrets and tuning are not the scope: rotating a password must not
stop an account.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from syncd.config import AccountConfig
from tests.engine.world import make_world

BASE = AccountConfig(
    name="a", provider="caldav", owner="alice@example.com", calendar="work",
    auth={"url": "https://dav.example.com/", "username": "alice", "subject": "alice@example.com",
          "tenant": "contoso", "user": "alice@example.com", "password": "env:PW",
          "client_secret": "env:CS", "requests_per_minute": 500})


@pytest.mark.parametrize(("key", "value"), [
    ("url", "https://dav.example.org/"), ("username", "bob"), ("subject", "bob@example.com"),
    ("tenant", "fabrikam"), ("user", "bob@example.com"),
])
def test_each_identity_key_changes_the_fingerprint(key: str, value: str) -> None:
    moved = replace(BASE, auth={**BASE.auth, key: value})
    assert moved.fingerprint() != BASE.fingerprint()


@pytest.mark.parametrize("changed", [
    replace(BASE, provider="google"), replace(BASE, owner="bob@example.com"),
    replace(BASE, calendar="home"),
], ids=["provider", "owner", "calendar"])
def test_the_provider_owner_and_calendar_are_part_of_the_scope(changed: AccountConfig) -> None:
    assert changed.fingerprint() != BASE.fingerprint()


@pytest.mark.parametrize(("key", "value"), [
    ("password", "file:/run/secrets/pw"), ("client_secret", "env:OTHER"),
    ("requests_per_minute", 100),
])
def test_a_new_secret_or_setting_is_the_same_scope(key: str, value: object) -> None:
    assert replace(BASE, auth={**BASE.auth, key: value}).fingerprint() == BASE.fingerprint()
    assert replace(BASE, window_days_ahead=30, invite_guests=True).fingerprint() \
        == BASE.fingerprint()


def test_an_account_signed_in_as_someone_else_is_refused_until_forced(tmp_path: Path) -> None:
    world = make_world(tmp_path, auth={"url": "https://dav.example.com/", "username": "alice"})
    world.add("Call")
    assert world.sync().outcome == "ok"
    world.account = replace(world.account, auth={**world.account.auth, "username": "bob"})
    writes = len(world.calendar.live())
    report = world.sync()
    assert report.outcome == "refused" and "scope-changed" in (report.message or "")
    assert world.state.account("alice").status == "flagged"
    assert len(world.calendar.live()) == writes  # nothing deleted nor created
    assert world.sync(force_delete=True).outcome == "ok"
    assert world.sync().outcome == "ok"  # the new scope is the one kept


def test_a_new_password_on_the_same_account_syncs_on(tmp_path: Path) -> None:
    world = make_world(tmp_path, auth={"url": "https://dav.example.com/", "password": "env:A"})
    world.add("Call")
    assert world.sync().outcome == "ok"
    world.account = replace(world.account, auth={**world.account.auth, "password": "env:B"})
    world.add("Demo")
    assert world.sync().outcome == "ok"
    assert sorted(e.projection.title for e in world.calendar.live() if e.projection) \
        == ["Call", "Demo"]
