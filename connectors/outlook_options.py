"""The options of an Outlook / Microsoft 365 account (``[account.auth]``), read by config
validation.

Imports neither msal nor requests, so ``syncd config check`` stays cheap. The two modes
are described in :mod:`connectors.outlook_auth`. A token always travels to Graph, so
``graph_url`` is https (or http to a loopback test server with ``allow_insecure_http``);
msal accepts only an https authority.
"""

from __future__ import annotations

from typing import Any

from syncd.config_checks import Finding
from syncd.config_types import (
    ALLOW_INSECURE_HTTP,
    AccountView,
    Option,
    ProviderOptions,
    email_check,
)

OPTIONS: dict[str, Option] = {
    "mode": Option(str, "app", choices=("app", "delegated"),
                   help="app: client credentials; delegated: the user signs in once with "
                        "'syncd auth outlook NAME'"),
    "tenant": Option(str, required=True, expected="the Entra tenant id or domain",
                     help="the directory the app is registered in"),
    "client_id": Option(str, required=True, expected="the app registration's client id",
                        help="the application (client) id"),
    "client_secret": Option(str, secret=True, expected="env:NAME or file:PATH",
                            help="the app's client secret (mode = \"app\")"),
    "user": Option(str, check=email_check, expected="the mailbox (default: owner)",
                   help="the mailbox whose calendar is synced"),
    "authority": Option(str, url="https", expected="an https:// URL (sovereign clouds, tests)",
                        help="the sign-in authority, instead of login.microsoftonline.com"),
    "graph_url": Option(str, url="tls", expected="an https:// URL (sovereign clouds, tests)",
                        help="the Graph root, instead of graph.microsoft.com/v1.0"),
    "allow_insecure_http": ALLOW_INSECURE_HTTP,
}


def _rules(view: AccountView) -> list[Finding]:
    auth, found = view.auth, []
    if auth.get("mode", "app") == "app" and not auth.get("client_secret"):
        found.append(Finding("is missing (mode = \"app\" signs in with the client secret)",
                             "client_secret = \"env:NAME\" or \"file:PATH\", or "
                             "mode = \"delegated\"", "auth.client_secret"))
    if auth.get("mode") == "delegated" and not view.general.get("state_key"):
        found.append(Finding("is \"delegated\", whose token is stored encrypted, but [syncd] "
                             "state_key is not set",
                             "state_key = \"env:NAME\" (a Fernet key) in [syncd]", "auth.mode"))
    return found


def _sends_credentials(auth: Any) -> bool:
    return True  # a bearer token goes with every Graph request


def _calendar_id(view: AccountView) -> str:
    mailbox = str(view.auth.get("user") or view.account.get("owner", "")).lower()
    return f"{mailbox}|{view.account.get('calendar') or 'default'}"


PROVIDER = ProviderOptions(OPTIONS, rules=_rules, sends_credentials=_sends_credentials,
                           calendar_id=_calendar_id)
