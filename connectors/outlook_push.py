"""Graph subscriptions: how an Outlook calendar is watched (the :class:`~connectors.base.
Watchable` side of :class:`connectors.outlook.OutlookCalendar`).

* **watch** is ``POST /subscriptions`` on the calendar's events (``created,updated,
  deleted``), ``notificationUrl`` = the hook address, ``lifecycleNotificationUrl`` = the
  address + ``/lifecycle``, ``clientState`` = the channel token. Graph validates both
  addresses before it answers (the hook echoes ``validationToken``), so a 201 means the
  receiver is reachable. The expiry asked is capped at :data:`MAX_MINUTES`: Graph's maximum
  for Outlook events is "under 7 days" (10,080 minutes) and its error message quotes 10,070,
  and a longer one is refused outright.
* **renew** is ``PATCH /subscriptions/{id}`` with a new ``expirationDateTime`` (Graph keeps
  the id and the ``clientState``; a PATCH also answers ``reauthorizationRequired``). A 404
  means the subscription is gone (expired, or removed by Graph): a new one is created.
* **unwatch** is ``DELETE /subscriptions/{id}``; 404 is not an error.
* A 403 on create or renew is the tenant's or the app's refusal (a policy forbidding
  subscriptions, no permission): :class:`~syncd.errors.PushRefused`, and the calendar is
  polled. So is a failed validation (400 ``ValidationError``: Graph could not reach the
  public address) and any other 400: asking again would get the same answer. 401, 429, 5xx
  and network failures are the transport's usual errors, tried again at the next cycle.

Graph notifies our own writes like anyone's (``notifies_own_writes``), which is what lets
the keeper expect a notification after each write (liveness).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

from connectors.base import Channel
from connectors.outlook_http import GraphResponse, GraphTransport
from syncd.errors import ConnectorError, PushRefused, Transient
from syncd.safe_json import usable_id

PUSH_KIND = "graph"
PROVIDER = "outlook"
CHANGE_TYPES = "created,updated,deleted"
MAX_MINUTES = 10_070
LIFECYCLE_SUFFIX = "/lifecycle"
_REFUSED_BY_STATUS = {
    403: "the tenant or the app's permissions do not allow subscriptions",
    400: "Graph refused the subscription request",
}
_VALIDATION = "validationerror"


def capped(expires_at: datetime, now: datetime) -> datetime:
    """The expiry Graph accepts for ``expires_at`` asked at ``now``."""
    return min(expires_at, now + timedelta(minutes=MAX_MINUTES))


def _graph_time(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class OutlookSubscriptions:
    """Subscriptions on one calendar's events, through the connector's transport.

    ``resource`` gives the calendar's events path relative to the version root (it may
    cost one read of the default calendar's id); ``now`` is the wall clock expiries are
    computed from.
    """

    def __init__(self, http: GraphTransport, resource: Callable[[], str], *,
                 now: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self.http, self._resource, self._now = http, resource, now

    def watch(self, address: str, token: str, expires_at: datetime) -> Channel:
        resource = self._resource()
        asked = capped(expires_at, self._now())
        body = {"changeType": CHANGE_TYPES, "notificationUrl": address,
                "lifecycleNotificationUrl": address.rstrip("/") + LIFECYCLE_SUFFIX,
                "resource": resource, "expirationDateTime": _graph_time(asked),
                "clientState": token}
        response = self.http.request("POST", "/subscriptions", json=body)
        if not response.ok:
            raise _failure(response)
        return _channel(response, asked, resource)

    def renew(self, channel: Channel, address: str, token: str,
              expires_at: datetime) -> Channel:
        asked = capped(expires_at, self._now())
        response = self.http.request(
            "PATCH", f"/subscriptions/{quote(channel.id, safe='')}",
            json={"expirationDateTime": _graph_time(asked)}, idempotent=True)
        if response.status == 404:  # expired or removed at Graph: make a new one
            return self.watch(address, token, expires_at)
        if not response.ok:
            raise _failure(response)
        renewed = _channel(response, asked, str(channel.details.get("resource", "")))
        if renewed.id != channel.id:
            raise Transient(reason="Graph answered the renewal for another subscription")
        return renewed

    def unwatch(self, channel: Channel) -> None:
        response = self.http.request("DELETE", f"/subscriptions/{quote(channel.id, safe='')}")
        if response.ok or response.status == 404:
            return
        raise _failure(response)


def _failure(response: GraphResponse) -> ConnectorError | PushRefused:
    """What a failed subscription request means (see the module docstring)."""
    if response.failure is not None:
        return response.failure
    reason = _REFUSED_BY_STATUS.get(response.status)
    if (response.code or "").lower() == _VALIDATION:
        reason = "Graph could not validate the notification address"
    if reason is not None:
        return PushRefused(provider=PROVIDER, reason=reason, status=response.status)
    return response.error()


def _channel(response: GraphResponse, asked: datetime, resource: str) -> Channel:
    """The subscription Graph answered with; its own expiry if readable, else the one asked."""
    body: Any = response.body
    sub_id = body.get("id") if isinstance(body, Mapping) else None
    if not usable_id(sub_id):
        raise Transient(reason="Graph's answer names no usable subscription id")
    assert isinstance(sub_id, str)
    expires = _parse(body.get("expirationDateTime")) or asked
    return Channel(id=sub_id, expires_at=expires, details={"resource": resource})


def _parse(value: object) -> datetime | None:
    if not isinstance(value, str) or len(value) > 40:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)
