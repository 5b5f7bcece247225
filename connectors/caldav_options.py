"""The options of a CalDAV account (``[account.auth]``), read by config validation.

Imports no CalDAV library, so ``syncd config check`` stays cheap. ``calendar`` is a
calendar URL, or a calendar's name (display name or last path segment) under the user's
principal; without it the calendar is :data:`DEFAULT_CALENDAR`.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import unquote, urlsplit

from syncd.config_checks import Finding, transport_problem, url_problem
from syncd.config_types import ALLOW_INSECURE_HTTP, AccountView, Option, ProviderOptions

DEFAULT_CALENDAR = "crm"

OPTIONS: dict[str, Option] = {
    "url": Option(str, required=True, url="tls", expected="the CalDAV server or calendar URL",
                  help="where the server is; https:// whenever a password is sent"),
    "username": Option(str, expected="the user name on the CalDAV server",
                       help="the user syncd signs in as (Basic auth)"),
    "password": Option(str, secret=True, expected="env:NAME or file:PATH of the password",
                       help="an app password, by reference"),
    "ca_bundle": Option(str, path=True,
                        expected="a CA bundle path for a private certificate authority",
                        help="the CA certificates to trust instead of the system's"),
    "create_calendar": Option(bool, False, expected="true to let syncd make the calendar",
                              help="make the calendar if it does not exist (never in a dry "
                                   "run); otherwise a missing calendar is an error"),
    "allow_insecure_http": ALLOW_INSECURE_HTTP,
}


def _sends_credentials(auth: Any) -> bool:
    # A user name alone goes with an empty password: nothing secret travels.
    return bool(auth.get("password"))


def _rules(view: AccountView) -> list[Finding]:
    auth, found = view.auth, []
    if auth.get("password") and not auth.get("username"):
        found.append(Finding("is set without a username (Basic auth needs both)",
                             "username = \"...\" next to the password", "auth.password"))
    calendar = view.account.get("calendar")
    if isinstance(calendar, str) and "://" in calendar:
        problem = url_problem(calendar) or transport_problem(
            calendar, credentials=_sends_credentials(auth),
            allow_insecure=bool(auth.get("allow_insecure_http")))
        if problem is not None:
            found.append(Finding(problem.problem, problem.fix, "calendar"))
    return found


def _same_place(url: str) -> str:
    """``url`` written one way: host in lower case, no default port, path decoded (a
    calendar at ``/a%40x.com/crm/`` is the one at ``/a@x.com/crm``)."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:  # reported by the URL checks
        return url.rstrip("/").lower()
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    if port is not None and port != {"http": 80, "https": 443}.get(scheme):
        host = f"{host}:{port}"
    return f"{scheme}://{host}{unquote(parts.path).rstrip('/').lower()}"


def _calendar_id(view: AccountView) -> str | None:
    calendar = view.account.get("calendar") or DEFAULT_CALENDAR
    if "://" in calendar:
        return _same_place(calendar)
    server = _same_place(str(view.auth.get("url", "")))
    return f"{server}|{view.auth.get('username')}|{calendar}"


PROVIDER = ProviderOptions(OPTIONS, rules=_rules, sends_credentials=_sends_credentials,
                           calendar_id=_calendar_id)
