"""A changed scope is refused, a changed secret is not (failure mode 5).

An account pointed at another calendar, server, user or tenant under the same name sees
none of its linked events there: syncing on would delete or duplicate. The account's
fingerprint names that scope, endpoints included (CalDAV's ``url``, Google's
``api_endpoint``, Graph's ``graph_url`` and ``authority``), written one way so a cosmetic
rewrite of a URL is the same place; a cycle that finds it changed, with links, refuses
until ``--force-delete``. A provider's default endpoint written out is no move. The CRM
the links are made with (Pipedrive's company and API address) is part of the scope too.
Secrets and tuning are not the scope: rotating a password must not stop an account. A
fingerprint stored by a release before the endpoints or the CRM counted is accepted once
and rewritten, so an upgrade refuses nobody.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from connectors.google_auth import DEFAULT_API_ENDPOINT
from connectors.outlook import DEFAULT_GRAPH_URL
from connectors.outlook_auth import authority_url
from syncd.config import AccountConfig, Config
from syncd.config_types import DEFAULT_ENDPOINTS, crm_scope, endpoint_key
from syncd.report import describe
from syncd.service import Service, account_policy
from tests.engine.world import World, make_world

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
    earlier = world.account.earlier_fingerprints()[-1]
    assert not earlier.startswith(("v2|", "v3|"))
    world.state.commit_cursors("alice", None, fingerprint=earlier)  # as the old release kept it
    world.add("Demo")
    assert world.sync().outcome == "ok"
    assert world.state.account("alice").fingerprint == world.account.fingerprint()
    assert len(world.calendar.live()) == 2


def test_an_earlier_fingerprint_of_another_scope_is_still_refused(tmp_path: Path) -> None:
    world = make_world(tmp_path, auth={"url": "https://dav.example.com/", "username": "alice"})
    world.add("Call")
    assert world.sync().outcome == "ok"
    world.state.commit_cursors("alice", None,
                               fingerprint=world.account.earlier_fingerprints()[-1])
    world.account = replace(world.account, auth={**world.account.auth, "username": "bob"})
    report = world.sync()
    assert report.outcome == "refused" and "scope-changed" in (report.message or "")
    assert world.state.account("alice").fingerprint != world.account.fingerprint()


# --- a provider's default written out (failure mode 5's first gap) --------------------------

GRAPH = AccountConfig(name="g", provider="outlook", owner="alice@contoso.com",
                      auth={"tenant": "contoso", "client_id": "app"})
GOOGLE = AccountConfig(name="c", provider="google", owner="alice@example.com")


def test_the_defaults_the_fingerprint_knows_are_the_connectors_own() -> None:
    assert DEFAULT_ENDPOINTS[("google", "api_endpoint")] == DEFAULT_API_ENDPOINT
    assert DEFAULT_ENDPOINTS[("outlook", "graph_url")] == DEFAULT_GRAPH_URL
    assert authority_url({"tenant": "contoso"}) == \
        f"{DEFAULT_ENDPOINTS[('outlook', 'authority')]}/contoso"


@pytest.mark.parametrize(("base", "key", "value"), [
    (GRAPH, "graph_url", "https://graph.microsoft.com/v1.0"),
    (GRAPH, "graph_url", "HTTPS://Graph.Microsoft.com:443/v1.0/"),
    (GRAPH, "authority", "https://login.microsoftonline.com"),
    (GRAPH, "authority", "https://login.microsoftonline.com/"),
    (GRAPH, "authority", "https://login.microsoftonline.com/contoso"),
    (GOOGLE, "api_endpoint", "https://www.googleapis.com/calendar/v3/"),
    (GOOGLE, "api_endpoint", "https://www.googleapis.com:443/calendar/v3"),
])
def test_a_providers_default_endpoint_written_out_is_the_same_scope(
        base: AccountConfig, key: str, value: str) -> None:
    assert replace(base, auth={**base.auth, key: value}).fingerprint() == base.fingerprint()


@pytest.mark.parametrize(("base", "key", "value"), [
    (GRAPH, "graph_url", "https://graph.microsoft.com/beta"),
    (GRAPH, "graph_url", "https://graph.microsoft.us/v1.0"),
    (GRAPH, "authority", "https://login.microsoftonline.com/fabrikam"),
    (GRAPH, "authority", "https://login.microsoftonline.us"),
    (GOOGLE, "api_endpoint", "http://127.0.0.1:8080/calendar/v3/"),
    # another provider's default is no default here
    (replace(GOOGLE, provider="caldav"), "api_endpoint", DEFAULT_API_ENDPOINT),
])
def test_an_endpoint_other_than_the_providers_default_is_still_a_move(
        base: AccountConfig, key: str, value: str) -> None:
    assert replace(base, auth={**base.auth, key: value}).fingerprint() != base.fingerprint()


@pytest.mark.parametrize(("key", "value"), [
    ("authority", "https://[::1"), ("authority", "https://login.microsoftonline.com:x"),
    ("graph_url", "https://[::1/v1.0"), ("authority", "not a url"), ("graph_url", " "),
])
def test_an_unparsable_endpoint_is_a_place_of_its_own_never_a_crash(key: str, value: str
                                                                   ) -> None:
    broken = replace(GRAPH, auth={**GRAPH.auth, key: value})
    assert broken.fingerprint() == broken.fingerprint()
    assert (broken.fingerprint() == GRAPH.fingerprint()) is (not value.strip())
    assert crm_scope("pipedrive", {**ACME, "api_url": value}).startswith("pipedrive:acme")


def test_an_authority_with_or_without_the_tenants_path_is_one_place() -> None:
    bare = replace(GRAPH, auth={**GRAPH.auth, "authority": "https://login.microsoftonline.us"})
    full = replace(GRAPH, auth={**GRAPH.auth,
                                "authority": "https://login.microsoftonline.us/contoso/"})
    assert bare.fingerprint() == full.fingerprint()


def test_writing_graphs_default_url_out_syncs_on(tmp_path: Path) -> None:
    world = make_world(tmp_path)
    world.account = replace(world.account, provider="outlook", auth={"tenant": "contoso"})
    world.add("Call")
    assert world.sync().outcome == "ok"
    world.account = replace(world.account, auth={
        "tenant": "contoso", "graph_url": "https://graph.microsoft.com/v1.0/",
        "authority": "https://login.microsoftonline.com"})
    world.add("Demo")
    assert world.sync().outcome == "ok"
    assert len(world.calendar.live()) == 2


def test_a_fingerprint_stored_with_a_default_spelt_out_is_accepted_once_and_rewritten(
        tmp_path: Path) -> None:
    """A release before defaults counted as unset kept the URL as written (v2): that
    value, for the same config, is this scope."""
    world = make_world(tmp_path)
    world.account = replace(world.account, provider="outlook", auth={
        "tenant": "contoso", "graph_url": "https://graph.microsoft.com/v1.0"})
    world.add("Call")
    assert world.sync().outcome == "ok"
    v2 = world.account.earlier_fingerprints()[0]
    assert v2.startswith("v2|") and "graph.microsoft.com" in v2
    world.state.commit_cursors("alice", None, fingerprint=v2)
    world.add("Demo")
    assert world.sync().outcome == "ok"
    assert world.state.account("alice").fingerprint == world.account.fingerprint()
    assert len(world.calendar.live()) == 2


# --- the CRM the links are made with (failure mode 5's second gap) --------------------------

ACME = {"company_domain": "acme", "api_token": "env:PD"}


@pytest.mark.parametrize(("options", "scope"), [
    (ACME, "pipedrive:acme"),
    ({**ACME, "company_domain": "ACME "}, "pipedrive:acme"),
    ({**ACME, "api_url": "https://acme.pipedrive.com/"}, "pipedrive:acme"),
    ({**ACME, "api_url": "HTTPS://Acme.Pipedrive.com:443"}, "pipedrive:acme"),
    ({**ACME, "api_url": "http://127.0.0.1:9000"}, "pipedrive:acme@http://127.0.0.1:9000"),
    ({**ACME, "api_token": "env:OTHER", "plan": "growth", "seats": 3}, "pipedrive:acme"),
])
def test_the_crms_scope_is_its_company_and_api_address_never_a_secret_or_setting(
        options: dict[str, object], scope: str) -> None:
    assert crm_scope("pipedrive", options) == scope
    assert crm_scope("builtin", {}) == ""


def _synced_with(world: World, options: dict[str, object], **force: bool) -> str:
    """A cycle with the CRM as ``[crm]`` of kind pipedrive with ``options`` says."""
    policy = account_policy(world.account, crm=crm_scope("pipedrive", options),
                            config_file="/etc/syncd/syncd.toml")
    report = world.sync(policy=policy, **force)
    assert report.outcome != "refused" or report.error is not None
    return report.outcome


def test_pointing_the_crm_at_another_pipedrive_company_is_refused_until_forced(
        tmp_path: Path) -> None:
    world = make_world(tmp_path)
    world.add("Call")
    assert _synced_with(world, ACME) == "ok"
    events = len(world.calendar.live())
    kept = world.state.account("alice").fingerprint
    globex = {**ACME, "company_domain": "globex"}
    report = world.sync(policy=account_policy(world.account, crm=crm_scope("pipedrive", globex),
                                              config_file="/etc/syncd/syncd.toml"))
    assert report.outcome == "refused" and report.error is not None
    sentence = describe(report.error)
    assert "scope-changed" in sentence and "another Pipedrive company" in sentence
    assert "/etc/syncd/syncd.toml" in sentence and "[crm] company_domain" in sentence
    assert "--account alice --force-delete" in sentence
    assert len(world.calendar.live()) == events  # nothing deleted nor created
    assert world.state.account("alice").status == "flagged"
    # the same company at another API address moved as much (and a calendar move is
    # told apart)
    elsewhere = {**ACME, "api_url": "https://api.other-region.example/"}
    assert account_policy(world.account, crm=crm_scope("pipedrive", elsewhere)) \
        .scope_change(kept) == "crm"
    assert account_policy(replace(world.account, calendar="other"),
                          crm=crm_scope("pipedrive", ACME)).scope_change(kept) == "calendar"
    assert _synced_with(world, {**ACME, "company_domain": "globex"}, force_delete=True) == "ok"
    assert _synced_with(world, {**ACME, "company_domain": "globex"}) == "ok"  # kept


def test_the_builtin_crm_replaced_by_pipedrive_is_refused_too(tmp_path: Path) -> None:
    world = make_world(tmp_path)
    world.add("Call")
    assert world.sync().outcome == "ok"  # the built-in CRM: no crm scope
    assert _synced_with(world, ACME) == "refused"


def test_the_crms_secret_or_plan_changed_syncs_on(tmp_path: Path) -> None:
    world = make_world(tmp_path)
    world.add("Call")
    assert _synced_with(world, ACME) == "ok"
    world.add("Demo")
    assert _synced_with(world, {**ACME, "api_token": "env:NEW", "plan": "growth",
                                "company_domain": "Acme"}) == "ok"
    assert len(world.calendar.live()) == 2


def test_a_fingerprint_stored_before_the_crm_counted_is_accepted_once_and_rewritten(
        tmp_path: Path) -> None:
    world = make_world(tmp_path)
    world.add("Call")
    assert _synced_with(world, ACME) == "ok"
    world.state.commit_cursors("alice", None,
                               fingerprint=world.account.earlier_fingerprints()[0])  # v2
    world.add("Demo")
    assert _synced_with(world, ACME) == "ok"
    assert world.state.account("alice").fingerprint == \
        world.account.fingerprint(crm_scope("pipedrive", ACME))
    assert len(world.calendar.live()) == 2


def test_the_service_counts_the_configured_crm_in_each_accounts_scope(tmp_path: Path) -> None:
    account = AccountConfig(name="a", provider="memory", owner="alice@example.com")
    config = Config(source="/etc/syncd/syncd.toml", database=f"sqlite:///{tmp_path / 's.db'}",
                    data_dir=str(tmp_path), crm_kind="pipedrive", crm_options=ACME,
                    accounts=(account,))
    service = Service(config)
    try:
        policy = service._policy(account)
    finally:
        service.close()
    assert policy.fingerprint == account.fingerprint("pipedrive:acme")
    assert policy.config_file == "/etc/syncd/syncd.toml"
