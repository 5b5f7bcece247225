"""Per-provider client setup: the account config syncd gets for one owner's calendar.

Accounts point at the latency proxy, never at the server directly. Connectors are opened
the way the daemon opens them (``connectors.open_connector`` through
:class:`syncd.service.Service`); only Outlook needs help: msal must reach the identity
emulator, which it knows as ``https://login.emulator.test``, so the registry entry for
``outlook`` is pointed at :func:`open_outlook`, which hands the connector the process's
session (one for all accounts, as in production) made as one that sends that host to the
emulator (what the Outlook tests do).
"""

from __future__ import annotations

import argparse
import os
from typing import Any

import requests

from bench.backends import TZ
from bench.control import ServerInfo
from connectors.http_pool import ApiSession, process_session
from syncd.config import AccountConfig, SecretRef

PROVIDERS = ("caldav", "google", "outlook", "xandikos")  # xandikos: with WebDAV-Push
GRAPH_SECRET_ENV = "SYNCD_BENCH_GRAPH_SECRET"
#: Routes msal's identity host to the emulator (set by :func:`install`).
_identity: dict[str, str] = {}


def chosen(parser: argparse.ArgumentParser, text: str) -> list[str]:
    """The providers of a comma-separated ``--providers``; an unknown one is a usage error."""
    providers = [p.strip() for p in text.split(",") if p.strip()]
    unknown = [p for p in providers if p not in PROVIDERS]
    if unknown:
        parser.error(f"unknown provider(s): {', '.join(unknown)}")
    return providers


def account(provider: str, server: ServerInfo, owner: str, calendar: str) -> AccountConfig:
    """The ``[[account]]`` an admin would write for ``owner``'s calendar on ``server``."""
    name = f"{provider}:{owner}"
    if provider in ("caldav", "xandikos"):
        user = owner if provider == "caldav" else "user"  # Xandikos: one principal
        return AccountConfig(name=name, provider="caldav", owner=owner, time_zone=TZ,
                             calendar=server.api + calendar,
                             auth={"url": server.api + "/", "username": user})
    if provider == "google":
        return AccountConfig(name=name, provider="google", owner=owner, time_zone=TZ,
                             calendar=calendar,
                             auth={"api_endpoint": server.api + "/calendar/v3/"})
    if provider == "outlook":
        info = server.info
        return AccountConfig(name=name, provider="outlook", owner=owner, time_zone=TZ, auth={
            "mode": "app", "tenant": info["tenant"], "client_id": info["client_id"],
            "client_secret": SecretRef(f"env:{GRAPH_SECRET_ENV}"), "user": calendar,
            "authority": info["authority"], "graph_url": server.api + info["api_path"],
        })
    raise ValueError(f"unknown provider {provider}")


class IdentityRoutingSession(ApiSession):
    """The process's HTTP session (:class:`connectors.http_pool.ApiSession`, as in
    production), sending the identity emulator's https host to its port."""

    def request(self, method: str | bytes, url: str | bytes, *args: Any,
                **kwargs: Any) -> requests.Response:
        target = url.decode() if isinstance(url, bytes) else url
        host = _identity.get("authority_host", "")
        if host and target.startswith(host):
            target = _identity["identity_url"] + target[len(host):]
        return super().request(method, target, *args, **kwargs)


def open_outlook(account: AccountConfig, context: Any) -> Any:
    """Registry factory for ``outlook`` in the benchmark (see the module docstring)."""
    from connectors.outlook import OutlookCalendar

    shared = context.shared if context.shared is not None else {}
    return OutlookCalendar(account, context,
                           session=process_session(shared, IdentityRoutingSession))


def install(provider: str, server: ServerInfo) -> None:
    """Prepare this process to open ``provider``'s connectors against ``server``."""
    if provider == "outlook":
        import connectors

        _identity.update(authority_host=server.info["authority_host"],
                         identity_url=server.info["identity_url"])
        os.environ[GRAPH_SECRET_ENV] = server.info["client_secret"]
        connectors.REGISTRY["outlook"] = "bench.providers:open_outlook"
