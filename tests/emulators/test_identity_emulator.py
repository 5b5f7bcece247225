"""Real msal 1.39 against the identity emulator (must-have 22)."""

from __future__ import annotations

import threading
import time
from typing import Any

import msal
import requests

from syncd_testkit.emulators.graph_fixtures import identity_emulator  # noqa: F401 - pytest fixture
from syncd_testkit.emulators.identity import IdentityEmulator, RoutingSession

CLIENT_ID = "syncd-test-app"
SECRET = "s3cret-value"
GRAPH_DEFAULT = ["https://graph.microsoft.com/.default"]
CALENDAR_SCOPES = ["https://graph.microsoft.com/Calendars.ReadWrite"]


def _public_app(idp: IdentityEmulator) -> msal.PublicClientApplication:
    return msal.PublicClientApplication(
        CLIENT_ID,
        authority=idp.authority(),
        instance_discovery=False,
        http_client=RoutingSession(idp),
    )


def _sign_in_with_device_code(
    idp: IdentityEmulator,
    user: str,
    app: msal.PublicClientApplication | None = None,
    *,
    approve_while_polling: bool = False,
) -> dict[str, Any]:
    """Run msal's device flow; the user approves either up front or while msal polls."""
    app = app or _public_app(idp)
    flow = app.initiate_device_flow(scopes=CALENDAR_SCOPES)
    assert "user_code" in flow, flow
    if not approve_while_polling:
        idp.approve_device_code(flow["user_code"], user=user)
        result: dict[str, Any] = app.acquire_token_by_device_flow(flow)
        return result

    def approve() -> None:
        time.sleep(0.2)  # let msal poll first, so authorization_pending is exercised
        idp.approve_device_code(flow["user_code"], user=user)

    approver = threading.Thread(target=approve)
    approver.start()
    result = app.acquire_token_by_device_flow(flow)
    approver.join()
    return result


def test_discovery_document_advertises_https_endpoints(
    identity_emulator: IdentityEmulator,  # noqa: F811
) -> None:
    url = f"{identity_emulator.base_url}/tenant1/v2.0/.well-known/openid-configuration"
    doc = requests.get(url, timeout=5).json()
    for key in ("authorization_endpoint", "token_endpoint", "device_authorization_endpoint"):
        assert doc[key].startswith("https://login.emulator.test/tenant1/oauth2/v2.0/")
    assert doc["issuer"].startswith("https://login.emulator.test/")


def test_client_credentials_gives_an_app_only_token_that_msal_caches(
    identity_emulator: IdentityEmulator,  # noqa: F811
) -> None:
    idp = identity_emulator
    idp.register_app(CLIENT_ID, SECRET)
    app = msal.ConfidentialClientApplication(
        CLIENT_ID,
        client_credential=SECRET,
        authority=idp.authority(),
        instance_discovery=False,
        http_client=RoutingSession(idp),
    )
    first = app.acquire_token_for_client(GRAPH_DEFAULT)
    assert "access_token" in first, first
    assert idp.token_kind(first["access_token"]) == ("app", None)
    assert first["token_source"] == "identity_provider"
    second = app.acquire_token_for_client(GRAPH_DEFAULT)
    assert second["token_source"] == "cache"
    # The secret travels only in the token request form.
    assert [r["client_secret"] for r in idp.token_requests] == [SECRET]
    assert idp.token_requests[0]["grant_type"] == "client_credentials"


def test_wrong_client_secret_is_rejected_with_invalid_client(
    identity_emulator: IdentityEmulator,  # noqa: F811
) -> None:
    idp = identity_emulator
    idp.register_app(CLIENT_ID, SECRET)
    app = msal.ConfidentialClientApplication(
        CLIENT_ID,
        client_credential="wrong",
        authority=idp.authority(),
        instance_discovery=False,
        http_client=RoutingSession(idp),
    )
    result = app.acquire_token_for_client(GRAPH_DEFAULT)
    assert result["error"] == "invalid_client"
    assert "AADSTS7000215" in result["error_description"]


def test_device_flow_polls_until_approved_and_caches_the_account(
    identity_emulator: IdentityEmulator,  # noqa: F811
) -> None:
    idp = identity_emulator
    idp.register_app(CLIENT_ID)
    app = _public_app(idp)
    result = _sign_in_with_device_code(idp, "alice@contoso.test", app, approve_while_polling=True)
    assert "access_token" in result, result
    assert idp.token_kind(result["access_token"]) == ("delegated", "alice@contoso.test")
    assert result["id_token_claims"]["preferred_username"] == "alice@contoso.test"
    assert "refresh_token" in result
    polls = [r for r in idp.token_requests if r["grant_type"].endswith("device_code")]
    assert len(polls) >= 2, "the first poll must have been answered authorization_pending"
    # client_info + id_token let msal remember the account, so silent calls work.
    accounts = app.get_accounts()
    assert [a["username"] for a in accounts] == ["alice@contoso.test"]
    silent = app.acquire_token_silent(CALENDAR_SCOPES, account=accounts[0])
    assert silent is not None and silent["access_token"] == result["access_token"]
    scopes = idp.device_code_requests[0]["scope"].split()
    assert {"offline_access", "openid", "profile"} <= set(scopes)


def test_refresh_token_grant_rotates_and_the_old_token_stops_working(
    identity_emulator: IdentityEmulator,  # noqa: F811
) -> None:
    idp = identity_emulator
    idp.register_app(CLIENT_ID)
    first = _sign_in_with_device_code(idp, "bob@contoso.test")
    app = _public_app(idp)
    refreshed = app.acquire_token_by_refresh_token(first["refresh_token"], CALENDAR_SCOPES)
    assert "access_token" in refreshed, refreshed
    assert refreshed["refresh_token"] != first["refresh_token"]
    again = app.acquire_token_by_refresh_token(first["refresh_token"], CALENDAR_SCOPES)
    assert again["error"] == "invalid_grant"
    assert "AADSTS700082" in again["error_description"]
    newest = app.acquire_token_by_refresh_token(refreshed["refresh_token"], CALENDAR_SCOPES)
    assert "access_token" in newest, newest


def test_refresh_token_is_kept_when_rotation_is_switched_off(
    identity_emulator: IdentityEmulator,  # noqa: F811
) -> None:
    idp = identity_emulator
    idp.register_app(CLIENT_ID)
    idp.rotate_refresh_tokens = False
    first = _sign_in_with_device_code(idp, "carol@contoso.test")
    app = _public_app(idp)
    refreshed = app.acquire_token_by_refresh_token(first["refresh_token"], CALENDAR_SCOPES)
    assert refreshed["refresh_token"] == first["refresh_token"]


def test_revoked_refresh_token_gives_invalid_grant(
    identity_emulator: IdentityEmulator,  # noqa: F811
) -> None:
    idp = identity_emulator
    idp.register_app(CLIENT_ID)
    first = _sign_in_with_device_code(idp, "dave@contoso.test")
    idp.revoke_user("dave@contoso.test")
    result = _public_app(idp).acquire_token_by_refresh_token(
        first["refresh_token"], CALENDAR_SCOPES
    )
    assert result["error"] == "invalid_grant"
    assert "AADSTS50173" in result["error_description"]


def test_declined_device_flow_ends_with_authorization_declined(
    identity_emulator: IdentityEmulator,  # noqa: F811
) -> None:
    idp = identity_emulator
    idp.register_app(CLIENT_ID)
    app = _public_app(idp)
    flow = app.initiate_device_flow(scopes=CALENDAR_SCOPES)
    idp.deny_device_code(flow["user_code"])
    result = app.acquire_token_by_device_flow(flow)
    assert result["error"] == "authorization_declined"


def test_expired_access_tokens_are_no_longer_recognised(
    identity_emulator: IdentityEmulator,  # noqa: F811
) -> None:
    token = identity_emulator.issue_user_token("erin@contoso.test")
    assert identity_emulator.token_kind(token) == ("delegated", "erin@contoso.test")
    identity_emulator.expire_access_tokens("erin@contoso.test")
    assert identity_emulator.token_kind(token) is None
