"""Google push channels, as data: the ``events.watch`` body, its answer read into a
:class:`~connectors.base.Channel`, and which refusals mean "Google will not notify".

Facts (providers.md A.7, the ``events.watch`` reference): a channel is ``{id (at most 64
characters), type "web_hook", address (HTTPS), token, params.ttl (seconds)}``; the answer
adds ``resourceId`` (what ``channels.stop`` needs with the id) and ``expiration`` (ms since
the epoch, a string), which may be earlier than asked. Google cannot extend a channel:
renewing is watching again under a new id, then stopping the old one.

The answer is outside input: an ``id`` other than the one asked, a ``resourceId`` that is
not a short string, or an ``expiration`` that is not a time is an unreadable answer
(:class:`~syncd.errors.Transient`: the keeper asks again later), never a channel.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from connectors.base import Channel
from syncd.errors import PushRefused, Transient

PROVIDER = "google"
MAX_RESOURCE_ID = 256
MIN_TTL_SECONDS = 1
#: Reasons Google gives when it will not notify this calendar, or not at this address:
#: polling is the answer, not a retry.
REFUSALS = frozenset({"pushNotSupportedForRequestedResource", "push.webhookUrlNotHttps",
                      "push.webhookUrlUnauthorized", "push.webhookUrlNoHostPrefix",
                      "push.webhookUrlNotAllowed"})
_EPOCH = datetime.fromtimestamp(0, UTC)


def watch_body(address: str, channel_id: str, token: str, expires_at: datetime,
               now: datetime) -> dict[str, Any]:
    """The ``events.watch`` request body asking for a channel until ``expires_at``."""
    ttl = max(MIN_TTL_SECONDS, int((expires_at - now).total_seconds()))
    return {"id": channel_id, "type": "web_hook", "address": address, "token": token,
            "params": {"ttl": str(ttl)}}


def refusal(status: int, reason: str) -> PushRefused | None:
    """The :class:`PushRefused` a failed watch means, or None for an ordinary failure."""
    if reason in REFUSALS or (reason.startswith("push.") and 400 <= status < 500):
        return PushRefused(provider=PROVIDER, reason=reason[:100], status=status)
    return None


def read_channel(body: Any, channel_id: str, asked: datetime) -> Channel:
    """The channel Google's answer describes; ``asked`` stands for a missing expiration.

    Raises:
        Transient: the answer is not the channel asked for.
    """
    if not isinstance(body, dict) or body.get("id") != channel_id:
        raise Transient(reason="Google's answer to a watch is not the channel asked for",
                        status=200)
    resource_id = body.get("resourceId")
    if not isinstance(resource_id, str) or not 0 < len(resource_id) <= MAX_RESOURCE_ID:
        raise Transient(reason="Google's answer to a watch has no resource id", status=200)
    expires_at = asked
    expiration = body.get("expiration")
    if expiration is not None:
        expires_at = _ms_time(expiration)
    return Channel(id=channel_id, expires_at=expires_at, resource_id=resource_id)


def _ms_time(value: Any) -> datetime:
    text = str(value) if isinstance(value, int | str) and not isinstance(value, bool) else ""
    # 14 digits of milliseconds reach the year 5138; more would overflow a datetime
    if not (text.isascii() and text.isdigit()) or len(text) > 14:
        raise Transient(reason="Google's answer to a watch has no readable expiration",
                        status=200)
    return _EPOCH + timedelta(milliseconds=int(text))
