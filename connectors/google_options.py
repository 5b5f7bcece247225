"""The options of a Google Calendar account (``[account.auth]``), read by config validation.

Imports no Google library, so ``syncd config check`` stays cheap. The two modes and what
each needs are described in :mod:`connectors.google_auth`.
"""

from __future__ import annotations

import json
from typing import Any

from syncd.config_checks import Finding
from syncd.config_types import (
    ALLOW_INSECURE_HTTP,
    AccountView,
    Option,
    ProviderOptions,
    email_check,
    positive_check,
)

#: syncd's budget under Google's per-project quota (10,000 requests a minute unless the
#: project's owner had it raised): the rest is for the difference between when syncd sends
#: and when Google counts, as the per-user 500 of 600.
PROJECT_REQUESTS_PER_MINUTE = 9_000


def _json_object(text: str) -> dict[str, Any] | None:
    try:
        data = json.loads(text)
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


def _service_account_key(text: str) -> str | None:
    data = _json_object(text)
    if data is None:
        return "is not JSON"
    if data.get("type") != "service_account" or not {"client_email", "private_key"} <= data.keys():
        return "is not a service account key (type, client_email and private_key)"
    return None


def _oauth_client(text: str) -> str | None:
    data = _json_object(text)
    if data is None:
        return "is not JSON"
    client = data.get("installed") or data.get("web")
    if not isinstance(client, dict) or not {"client_id", "client_secret"} <= client.keys():
        return "has no installed or web OAuth client (client_id and client_secret)"
    return None


OPTIONS: dict[str, Option] = {
    "mode": Option(str, "service_account", choices=("service_account", "oauth"),
                   help="service_account: domain-wide delegation; oauth: the user signs in "
                        "once with 'syncd auth google NAME'"),
    "service_account_file": Option(
        str, secret=True, secret_check=_service_account_key,
        expected="file:PATH of the service account key JSON",
        help="the key of a service account with domain-wide delegation"),
    "subject": Option(str, check=email_check, expected="the user to act as (default: owner)",
                      help="the Workspace user whose calendar is synced"),
    "client_secrets_file": Option(
        str, secret=True, secret_check=_oauth_client,
        expected="file:PATH of the OAuth client JSON",
        help="the OAuth client (mode = \"oauth\")"),
    "api_endpoint": Option(str, url="tls", expected="an https:// URL (tests and proxies only)",
                           help="the Calendar API root, instead of Google's"),
    "token_uri": Option(str, url="tls", expected="an https:// URL (tests and proxies only)",
                        help="the OAuth token endpoint, instead of Google's"),
    "requests_per_minute": Option(int, 500, check=positive_check,
                                  expected="a whole number above zero",
                                  help="syncd's own budget under Google's per-user quota"),
    "project_requests_per_minute": Option(
        int, PROJECT_REQUESTS_PER_MINUTE, check=positive_check,
        expected="a whole number above zero (under the project's quota, 10,000 by default)",
        help="syncd's own budget under Google's per-project quota, for all the accounts "
             "signing in with the same project's key or client (raise it with the quota)"),
    "allow_insecure_http": ALLOW_INSECURE_HTTP,
}


def _sends_credentials(auth: Any) -> bool:
    # Without a key or OAuth, requests go out anonymously (a local test server).
    return auth.get("mode") == "oauth" or bool(auth.get("service_account_file"))


def _rules(view: AccountView) -> list[Finding]:
    auth, found = view.auth, []
    if auth.get("mode") == "oauth":
        if not auth.get("client_secrets_file"):
            found.append(Finding("is missing (mode = \"oauth\" signs in with an OAuth client)",
                                 "client_secrets_file = \"file:PATH\" of the client JSON",
                                 "auth.client_secrets_file"))
        if not view.general.get("state_key"):
            found.append(Finding("is \"oauth\", whose token is stored encrypted, but [syncd] "
                                 "state_key is not set",
                                 "state_key = \"env:NAME\" (a Fernet key) in [syncd]",
                                 "auth.mode"))
    elif not auth.get("service_account_file") and not auth.get("api_endpoint"):
        found.append(Finding("is missing (mode = \"service_account\" signs with a key)",
                             "service_account_file = \"file:PATH\" of the key JSON, or "
                             "mode = \"oauth\"", "auth.service_account_file"))
    return found


def _calendar_id(view: AccountView) -> str:
    user = str(view.auth.get("subject") or view.account.get("owner", "")).lower()
    calendar = str(view.account.get("calendar") or "primary")
    return f"{user}|{user if calendar == 'primary' else calendar}"


PROVIDER = ProviderOptions(OPTIONS, rules=_rules, sends_credentials=_sends_credentials,
                           calendar_id=_calendar_id)
