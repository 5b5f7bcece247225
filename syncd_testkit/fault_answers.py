"""What each provider answers when something goes wrong, for the fault proxy.

The shapes are the providers' own (``/work/shared/reference/providers.md``; the emulators
build the same ones), so the real client libraries and syncd's status tables read them as
they would read production's: Google's ``{"error": {"errors": [...], "code", "message"}}``,
Graph's ``{"error": {"code", "message", "innerError"}}``, Pipedrive's
``{"success": false, "error", "errorCode", ...}``, and for CalDAV a plain text page or the
``DAV:error`` document Radicale sends.

It also says which requests carry a sync token (:func:`carries_sync_token`), the only
ones an expired-token answer makes sense for.
"""

from __future__ import annotations

import json
import math
import re
import uuid
from datetime import UTC, datetime
from typing import Literal
from urllib.parse import parse_qs, urlsplit

from syncd_testkit.emulators.google_model import ApiError
from syncd_testkit.emulators.pipedrive_model import PipedriveError
from syncd_testkit.proxy import Answer, ProxyRequest

Provider = Literal["google", "graph", "caldav", "pipedrive"]
PROVIDERS: tuple[Provider, ...] = ("google", "graph", "caldav", "pipedrive")

_JSON = "application/json; charset=UTF-8"
# A sync-collection REPORT whose DAV:sync-token element holds a token (an empty one is the
# initial sync, which no token can have expired for).
_DAV_TOKEN = re.compile(rb"<(?:[\w.-]+:)?sync-token(?:\s[^>]*)?>\s*[^<\s]")


def retry_after_header(seconds: float) -> str:
    """``Retry-After`` in whole seconds (HTTP's delay-seconds), rounded up."""
    return str(max(0, math.ceil(seconds)))


def _query(request: ProxyRequest) -> dict[str, list[str]]:
    return parse_qs(urlsplit(request.path).query, keep_blank_values=True)


def carries_sync_token(provider: Provider, request: ProxyRequest) -> bool:
    """Whether ``request`` continues an incremental sync from a token the provider issued:
    Google ``syncToken``, a Graph ``$deltatoken`` link, a CalDAV sync-collection REPORT
    with a token. Pipedrive has no sync token (syncd reads ``updated_since``)."""
    if provider == "google":
        return request.method == "GET" and any(_query(request).get("syncToken", []))
    if provider == "graph":
        return request.method == "GET" and any(_query(request).get("$deltatoken", []))
    if provider == "caldav":
        return (request.method == "REPORT" and b"sync-collection" in request.body
                and _DAV_TOKEN.search(request.body) is not None)
    return False


def graph_error(status: int, code: str, message: str, request: ProxyRequest | None = None
                ) -> dict[str, object]:
    """Graph's error document, with the ``innerError`` ids Graph adds."""
    request_id = str(uuid.uuid4())
    client_id = request.headers.get("client-request-id", request_id) if request else request_id
    return {"error": {"code": code, "message": message, "innerError": {
        "date": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S"),
        "request-id": request_id, "client-request-id": client_id}}}


def _json_answer(status: int, document: object, *headers: tuple[str, str]) -> Answer:
    return Answer(status, "", [("Content-Type", _JSON), *headers],
                  json.dumps(document).encode())


def google_error(status: int, reason: str, message: str, domain: str = "global",
                 **location: str) -> dict[str, object]:
    """Google's error document (``location_type``/``location`` optional)."""
    return ApiError(status, reason, message, domain=domain,
                    location_type=location.get("location_type"),
                    location=location.get("location")).body()


def server_error(provider: Provider, request: ProxyRequest) -> Answer:
    """503, as the provider words it; no work was done."""
    if provider == "google":
        return _json_answer(503, google_error(503, "backendError", "Backend Error"))
    if provider == "graph":
        return _json_answer(503, graph_error(503, "serviceNotAvailable",
                                             "Service Unavailable", request))
    if provider == "pipedrive":
        return _json_answer(503, PipedriveError(503, "Service unavailable").body())
    return Answer(503, "", [("Content-Type", "text/plain; charset=utf-8")],
                  b"Service Unavailable")


def throttled(provider: Provider, request: ProxyRequest, retry_after: float) -> Answer:
    """429 with ``Retry-After``, as the provider words it; no work was done."""
    wait = ("Retry-After", retry_after_header(retry_after))
    if provider == "google":
        return _json_answer(429, google_error(429, "rateLimitExceeded", "Too many requests",
                                              "usageLimits"), wait)
    if provider == "graph":
        return _json_answer(429, graph_error(
            429, "ApplicationThrottled", "Application is over its MailboxConcurrency limit.",
            request), wait)
    if provider == "pipedrive":
        # Pipedrive's burst window is 2 s; its headers say when it resets.
        limits = [("x-ratelimit-limit", "40"), ("x-ratelimit-remaining", "0"),
                  ("x-ratelimit-reset", retry_after_header(retry_after))]
        return _json_answer(429, PipedriveError(429, "Request over limit").body(), wait,
                            *limits)
    return Answer(429, "", [("Content-Type", "text/plain; charset=utf-8"), wait],
                  b"Too Many Requests")


def expired_token(provider: Provider, request: ProxyRequest, *, restart: str | None = None
                  ) -> Answer:
    """The answer to a sync token the provider no longer knows.

    Google: 410 ``fullSyncRequired``. Graph: 410 ``resyncRequired`` with ``Location`` =
    ``restart`` (the chain's initial URL with an empty ``$deltatoken``) when given, else
    410 ``SyncStateNotFound``. CalDAV: Radicale's 403 with ``DAV:valid-sync-token``.
    """
    if provider == "google":
        message = "Sync token is no longer valid, a full sync is required."
        return _json_answer(410, google_error(410, "fullSyncRequired", message,
                                              location_type="parameter",
                                              location="syncToken"))
    if provider == "graph":
        if restart is not None:
            return _json_answer(410, graph_error(
                410, "resyncRequired", "The delta token is no longer valid; restart "
                "synchronisation with the URL in the Location header.", request),
                ("Location", restart))
        return _json_answer(410, graph_error(
            410, "SyncStateNotFound", "The sync state generation is not found.", request))
    if provider == "caldav":
        return Answer(403, "", [("Content-Type", "text/xml; charset=utf-8")],
                      b'<?xml version=\'1.0\' encoding=\'utf-8\'?>\n'
                      b'<D:error xmlns:D="DAV:"><D:valid-sync-token /></D:error>')
    raise ValueError(f"{provider} has no sync token to expire")
