"""The options of ``[crm] kind = "pipedrive"``, read by config validation.

Imports no HTTP library, so ``syncd config check`` stays cheap. Credentials are either a
personal API token or an OAuth 2 app (client id and secret plus the installed app's
refresh token), each secret by ``env:NAME`` or ``file:PATH``. A token travels with every
request, so ``api_url`` and ``token_url`` are https (or http to a loopback test server with
``allow_insecure_http``).
"""

from __future__ import annotations

import re
from typing import Any

from syncd.config_checks import Finding
from syncd.config_types import (
    ALLOW_INSECURE_HTTP,
    AccountView,
    Option,
    ProviderOptions,
    positive_check,
)

_DOMAIN = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")
OAUTH = ("oauth_client_id", "oauth_client_secret", "oauth_refresh_token")


def _domain(value: Any) -> str | None:
    return None if _DOMAIN.match(str(value)) else "is not a Pipedrive company domain"


OPTIONS: dict[str, Option] = {
    "company_domain": Option(str, check=_domain,
                             expected="the company's subdomain: acme for acme.pipedrive.com",
                             help="which Pipedrive company; its pages are linked from events"),
    "api_token": Option(str, secret=True, expected="env:NAME or file:PATH",
                        help="a Pipedrive user's personal API token (or use OAuth)"),
    "oauth_client_id": Option(str, expected="the app's client id",
                              help="OAuth 2: the Marketplace app's client id"),
    "oauth_client_secret": Option(str, secret=True, expected="env:NAME or file:PATH",
                                  help="OAuth 2: the app's client secret"),
    "oauth_refresh_token": Option(str, secret=True, expected="env:NAME or file:PATH",
                                  help="OAuth 2: the refresh token of the installed app"),
    "api_url": Option(str, url="tls", expected="an https:// URL (tests: a loopback server)",
                      help="the API base, instead of https://DOMAIN.pipedrive.com"),
    "token_url": Option(str, url="tls", expected="an https:// URL (tests: a loopback server)",
                        help="the OAuth token endpoint, instead of oauth.pipedrive.com"),
    "reconcile_hours": Option(int, 6, check=positive_check,
                              expected="hours before an unchanged activity is checked for "
                                       "deletion again"),
    "plan": Option(str, "lite", choices=("lite", "growth", "premium", "ultimate"),
                   help="the company's Pipedrive plan: with seats it sizes the daily token "
                        "budget (30,000 x 1/2/5/7 x seats) and the burst limit syncd keeps to"),
    "seats": Option(int, 1, check=positive_check, expected="the company's paid seats",
                    help="seats in the company's daily token budget"),
    "daily_tokens": Option(int, check=positive_check,
                           expected="tokens per day, at most the plan's budget",
                           help="the part of the daily budget syncd may spend, when other "
                                "integrations spend from it too (default: all of it)"),
    "allow_insecure_http": ALLOW_INSECURE_HTTP,
}


def _rules(view: AccountView) -> list[Finding]:
    crm, found = view.auth, []
    if not crm.get("company_domain"):
        found.append(Finding("is missing", "company_domain = \"acme\" (of acme.pipedrive.com)",
                             "company_domain"))
    oauth = [key for key in OAUTH if crm.get(key)]
    if crm.get("api_token") and oauth:
        found.append(Finding("is set together with OAuth options", "either api_token or the "
                             "three oauth_* options", "api_token"))
    elif not crm.get("api_token") and len(oauth) != len(OAUTH):
        missing = [key for key in OAUTH if key not in oauth]
        found.append(Finding("has no credentials", "api_token = \"env:NAME\", or "
                             + ", ".join(missing) + " for OAuth 2",
                             missing[0] if oauth else "api_token"))
    return found


PROVIDER = ProviderOptions(OPTIONS, rules=_rules)
