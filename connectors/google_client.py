"""The Calendar v3 client: built once per process and lent to every account.

``googleapiclient.discovery.build`` parses the discovery document it bundles and renders
each method's docstring from the schemas (40 KiB for each method of ``events``): with a
service and its ``events`` resource per account that was 0.95 MB of allocations and about
630 more objects for the collector to walk, per account (issue 16: 1.0 GB of RSS for 1,000
Google accounts). Here the service and the three resources syncd uses are built once per
API endpoint, under a lock, and never again: building them is the only time the library
edits the parsed document (``_fix_up_parameters`` adds to each method's parameters), so no
thread ever reads it while it changes.

An account sees them through :class:`AccountResource`: each request is made by the shared
method and then handed the account's own authorised HTTP (``HttpRequest.http``, which the
request's ``execute``, a batch's ``execute`` and its credential refresh all use). The
shared resources hold :class:`_NoHttp`, which refuses to send, so a request that missed its
account's HTTP fails instead of going out without credentials.
"""

from __future__ import annotations

import threading
from typing import Any

from googleapiclient import discovery
from googleapiclient.model import JsonModel

from syncd.safe_json import loads

#: The resources of the Calendar API that syncd calls.
RESOURCES = ("events", "channels", "freebusy")


class _DeepJsonModel(JsonModel):
    """The client's JSON model, reading nesting past the parser's stack and huge numbers too.

    Otherwise one event nested a few hundred levels deep fails the listing page (or the
    batch) that carries it; read, it is quarantined alone (``connectors.json_limits``).
    """

    def deserialize(self, content: Any) -> Any:
        try:
            return loads(content)
        except ValueError:
            # As the client does: a body that is not JSON is handed over as it is.
            return content.decode("utf-8", "replace") if isinstance(content, bytes) \
                else content


class _NoHttp:
    """The shared resources' HTTP: it refuses, since every request needs its account's."""

    credentials = None  # the universe check then compares the default with the default

    def request(self, *args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("a Calendar request was sent without its account's HTTP")

    def close(self) -> None:
        """Nothing to close."""


class AccountResource:
    """One shared Calendar resource whose requests go out through one account's HTTP.

    ``calendar.events.list(calendarId=...)`` returns the ``HttpRequest`` the library's
    ``events().list`` would, carrying ``http``.
    """

    __slots__ = ("_http", "_resource")

    def __init__(self, resource: Any, http: Any) -> None:
        self._resource = resource
        self._http = http

    def __getattr__(self, name: str) -> Any:
        method = getattr(self._resource, name)
        http = self._http

        def request(**kwargs: Any) -> Any:
            made = method(**kwargs)
            made.http = http
            return made

        return request


_lock = threading.Lock()
_built: dict[str | None, dict[str, Any]] = {}


def shared_resources(api_endpoint: str | None = None) -> dict[str, Any]:
    """The process's ``events``, ``channels`` and ``freebusy`` resources for ``api_endpoint``.

    Built on first use for each endpoint; every later caller gets the same objects.
    """
    resources = _built.get(api_endpoint)
    if resources is not None:
        return resources
    with _lock:
        resources = _built.get(api_endpoint)
        if resources is None:
            options = {"api_endpoint": api_endpoint} if api_endpoint else None
            service = discovery.build("calendar", "v3", http=_NoHttp(), static_discovery=True,
                                      cache_discovery=False, client_options=options,
                                      model=_DeepJsonModel())
            resources = {name: getattr(service, name)() for name in RESOURCES}
            _built[api_endpoint] = resources
    return resources


def account_resources(http: Any, api_endpoint: str | None = None) -> dict[str, AccountResource]:
    """The shared resources bound to one account's authorised ``http``."""
    return {name: AccountResource(resource, http)
            for name, resource in shared_resources(api_endpoint).items()}
