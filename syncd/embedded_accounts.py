"""The embedded calendar server's accounts: with no accounts configured, one per CRM user.

Apart from the service (which syncs them) so that ``syncd status`` can list them
without importing what a sync needs.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from syncd.config import AccountConfig, Config
from syncd.embedded_auth import SERVICE_USER, EmbeddedCredentials, can_log_in, login_name

EMBEDDED_CALENDAR = "crm"


def embedded_url(host: str, port: int) -> str:
    """The embedded calendar server's root URL."""
    return f"http://[{host}]:{port}/" if ":" in host else f"http://{host}:{port}/"


def embedded_calendar_url(host: str, port: int, email: str, *, readable: bool = False) -> str:
    """A user's calendar on the embedded server; ``readable`` keeps the ``@`` for people."""
    login = login_name(email)
    return f"{embedded_url(host, port)}{login if readable else quote(login, safe='')}/" \
           f"{EMBEDDED_CALENDAR}/"


def embedded_accounts(config: Config, store: Any) -> list[AccountConfig]:
    """With no accounts configured, each CRM user gets a calendar on the embedded server
    (``store``: the built-in CRM's, or anything else with its ``list_users``).

    syncd reaches every user's calendar as its own service user, whose password is in a
    private file of the data directory (:mod:`syncd.embedded_auth`); the calendar is named
    by URL because it is not under the service user's own principal. The daemon makes it
    before the account's first cycle.
    """
    host, port = config.embedded_host, config.embedded_port
    secret = EmbeddedCredentials(config.data_path).service_secret
    return [
        AccountConfig(name=f"embedded:{user.email}", provider="caldav", owner=user.email,
                      calendar=embedded_calendar_url(host, port, user.email),
                      auth={"url": embedded_url(host, port), "username": SERVICE_USER,
                            "password": secret})
        for user in store.list_users() if can_log_in(user.email)
    ]
