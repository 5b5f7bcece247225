"""A changed scope is refused, a changed secret is not (failure mode 5).

An account pointed at another calendar, server, user or tenant under the same name sees
none of its linked events there: syncing on would delete or duplicate. The account's
fingerprint names that scope, endpoints included (CalDAV's ``url``, Google's
``api_endpoint``, Graph's ``graph_url`` and ``authority``), written one way so a cosmetic
rewrite of a URL is the same place; a cycle that finds it changed, with links, refuses
until ``--force-delete``. Secrets and tuning are not the scope: rotating a password must
not stop an account. A fingerprint stored by a release before the endpoints counted is
accepted once and rewritten, so an upgrade refuses nobody.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from syncd.config import AccountConfig
from syncd.config_types import endpoint_key
from tests.engine.world import make_world

BASE = AccountConfig(
    name="a", provider="caldav", owner="alice@example.com", calendar="work",
    auth={"url": "https://dav.example.com/", "username": "alice", "subject": "alice@example.com",
          "tenant": "contoso", "user": "alice@example.com", "password": "env:PW",
          "client_secret": "env:CS", "requests_per_minute": 500,
          "api_endpoint": "https://www.googleapis.com/calendar/v3/",
          "graph_url": "https://graph.microsoft.com/v1.0",
          "authority": "https://login.microsoftonline.com/contoso"})


@pytest.mark.parametrize(("key", "value"), [
    ("url", "https://dav.example.org/"), ("username", "bob"), ("subject", "bob@example.com"),
    ("tenant", "fabrikam"), ("user", "bob@example.com"),
])
def test_each_identity_key_changes_the_fingerprint(key: str, value: str) -> None:
    moved = replace(BASE, auth={**BASE.auth, key: value})
    assert moved.fingerprint() != BASE.fingerprint()


@pytest.mark.parametrize(("key", "value"), [
    ("url", "https://dav.example.com:8443/"), ("url", "http://dav.example.com/"),
    ("url", "https://dav.example.com/other/"),
    ("api_endpoint", "https://calendar.proxy.example.net/calendar/v3/"),
    ("api_endpoint", None),
    ("graph_url", "https://graph.microsoft.us/v1.0"),
    ("graph_url", "https://graph.microsoft.com/beta"), ("graph_url", None),
    ("authority", "https://login.microsoftonline.us/contoso"),
    ("authority", "https://login.microsoftonline.com/fabrikam"),
])
def test_each_endpoint_key_changes_the_fingerprint(key: str, value: str | None) -> None:
    moved = replace(BASE, auth={**BASE.auth, key: value})
    assert moved.fingerprint() != BASE.fingerprint()


@pytest.mark.parametrize(("key", "value"), [
    ("url", "HTTPS://DAV.Example.COM:443"), ("url", "https://dav.example.com"),
    ("api_endpoint", "https://www.googleapis.com:443/calendar/v3"),
    ("graph_url", "HTTPS://Graph.Microsoft.com/v1.0/"),
    ("authority", "https://LOGIN.microsoftonline.com/contoso/"),
])
def test_a_cosmetic_rewrite_of_an_endpoint_is_the_same_scope(key: str, value: str) -> None:
    assert replace(BASE, auth={**BASE.auth, key: value}).fingerprint() == BASE.fingerprint()


@pytest.mark.parametrize(("url", "written"), [
    ("HTTP://LocalHost:80/dav/", "http://localhost/dav"),
    ("http://127.0.0.1:8080/Cal/", "http://127.0.0.1:8080/Cal"),
    ("https://[::1]:443/x/", "https://[::1]/x"),
    ("https://dav.example.com/a?b=C", "https://dav.example.com/a?b=C"),
    ("https://dav.example.com:notaport/", "https://dav.example.com:notaport/"),
    ("dav.example.com/", "dav.example.com"), ("", ""),
])
def test_an_endpoint_is_written_one_way_keeping_its_paths_case(url: str, written: str) -> None:
    assert endpoint_key(url) == written


def test_a_calendar_url_is_written_one_way_too() -> None:
    one = replace(BASE, calendar="https://DAV.example.com/alice/Work/")
    assert one.fingerprint() == replace(BASE, calendar="https://dav.example.com/alice/Work") \
        .fingerprint()
    assert one.fingerprint() != replace(BASE, calendar="https://dav.example.com/alice/work") \
        .fingerprint()


@pytest.mark.parametrize("changed", [
    replace(BASE, provider="google"), replace(BASE, owner="bob@example.com"),
    replace(BASE, calendar="home"),
], ids=["provider", "owner", "calendar"])
def test_the_provider_owner_and_calendar_are_part_of_the_scope(changed: AccountConfig) -> None:
    assert changed.fingerprint() != BASE.fingerprint()


@pytest.mark.parametrize(("key", "value"), [
    ("password", "file:/run/secrets/pw"), ("client_secret", "env:OTHER"),
    ("requests_per_minute", 100), ("refresh_token", "env:RT"), ("client_id", "app-2"),
    ("ca_bundle", "/etc/ssl/private-ca.pem"), ("allow_insecure_http", True),
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


def test_an_account_moved_to_another_graph_server_is_refused_until_forced(
        tmp_path: Path) -> None:
    world = make_world(tmp_path, auth={"graph_url": "https://graph.microsoft.com/v1.0"})
    world.add("Call")
    assert world.sync().outcome == "ok"
    world.account = replace(world.account, auth={"graph_url": "https://graph.microsoft.us/v1.0"})
    writes = len(world.calendar.live())
    report = world.sync()
    assert report.outcome == "refused" and "scope-changed" in (report.message or "")
    assert len(world.calendar.live()) == writes
    assert world.sync(force_delete=True).outcome == "ok"


def test_a_url_rewritten_cosmetically_syncs_on(tmp_path: Path) -> None:
    world = make_world(tmp_path, auth={"url": "https://dav.example.com/alice/"})
    world.add("Call")
    assert world.sync().outcome == "ok"
    world.account = replace(world.account, auth={"url": "HTTPS://Dav.Example.com:443/alice"})
    world.add("Demo")
    assert world.sync().outcome == "ok"
    assert len(world.calendar.live()) == 2


def test_a_fingerprint_stored_before_endpoints_counted_is_accepted_once_and_rewritten(
        tmp_path: Path) -> None:
    world = make_world(tmp_path, auth={"url": "https://dav.example.com/",
                                       "graph_url": "https://graph.microsoft.com/v1.0"})
    world.add("Call")
    assert world.sync().outcome == "ok"
    earlier = world.account.earlier_fingerprint()
    assert not earlier.startswith("v2|")
    world.state.commit_cursors("alice", None, fingerprint=earlier)  # as the old release kept it
    world.add("Demo")
    assert world.sync().outcome == "ok"
    assert world.state.account("alice").fingerprint == world.account.fingerprint()
    assert len(world.calendar.live()) == 2


def test_an_earlier_fingerprint_of_another_scope_is_still_refused(tmp_path: Path) -> None:
    world = make_world(tmp_path, auth={"url": "https://dav.example.com/", "username": "alice"})
    world.add("Call")
    assert world.sync().outcome == "ok"
    world.state.commit_cursors("alice", None, fingerprint=world.account.earlier_fingerprint())
    world.account = replace(world.account, auth={**world.account.auth, "username": "bob"})
    report = world.sync()
    assert report.outcome == "refused" and "scope-changed" in (report.message or "")
    assert world.state.account("alice").fingerprint != world.account.fingerprint()
