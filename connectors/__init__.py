"""Calendar connectors, one module per provider, opened by name.

Provider modules are imported lazily, so an admin who syncs only CalDAV never loads the
Google or Microsoft client libraries.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from connectors.base import CalendarConnector, SharedLimits, Window
from syncd.config_types import AccountConfig, ProviderOptions

#: provider name -> "module:factory"; each factory takes (AccountConfig, ConnectorContext).
REGISTRY: dict[str, str] = {
    "caldav": "connectors.caldav:open_calendar",
    "google": "connectors.google:open_calendar",
    "outlook": "connectors.outlook:open_calendar",
}
#: provider name -> the module declaring its options as ``PROVIDER`` (a ProviderOptions).
#: These modules import no client library: validating a config loads none.
OPTIONS: dict[str, str] = {
    "caldav": "connectors.caldav_options",
    "google": "connectors.google_options",
    "outlook": "connectors.outlook_options",
}


def provider_options() -> dict[str, ProviderOptions]:
    """Every provider's option declarations, for :func:`syncd.config.load_config`."""
    found: dict[str, ProviderOptions] = {}
    for name, module in OPTIONS.items():
        found[name] = importlib.import_module(module).PROVIDER
    return found


@dataclass(frozen=True)
class ConnectorContext:
    """What a connector may need beyond its account's config.

    ``credentials`` is a :class:`syncd.store.credentials.CredentialStore` for providers
    whose tokens are obtained at run time (OAuth); it encrypts them at rest.
    ``read_only`` is set for a dry run: the connector may send only reads, even where it
    would otherwise set something up (a CalDAV calendar with ``create_calendar``).
    ``before_request``, when given, is called before every request the connector sends
    and raises to stop it (the daemon's embedded calendar server that died: its port may
    be another program's, which must not be sent the password). CalDAV only.
    ``discovery`` (a :class:`connectors.base.KeptDiscovery`), when given, keeps what the
    connector found out about its server between runs. CalDAV only.
    ``limits`` (a :class:`connectors.base.SharedLimits`), when given, counts the
    provider's limits with every other replica (Google's per-user minute, Graph's
    requests in flight per mailbox); without it the process counts on its own.
    ``timeout`` is how many seconds a request waits for the server's answer before it
    counts as lost (``[syncd] request_timeout_seconds``).
    ``shared``, when given, is one dictionary for every connector of the process, where
    connectors keep what the accounts of one provider may share (Outlook: an app
    registration's token, :class:`connectors.outlook_auth.AppShelf`).
    """

    owner_tz: str
    window: Window
    credentials: Any = None
    read_only: bool = False
    before_request: Callable[[], None] | None = None
    discovery: Any = None
    limits: SharedLimits | None = None
    timeout: float = 30.0
    shared: dict[str, Any] | None = None


def open_connector(account: AccountConfig, context: ConnectorContext) -> CalendarConnector:
    """The connector for ``account``'s provider."""
    module_name, _, factory = REGISTRY[account.provider].partition(":")
    module = importlib.import_module(module_name)
    connector: CalendarConnector = getattr(module, factory)(account, context)
    return connector
