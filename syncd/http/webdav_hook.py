"""``/hooks/webdav/<channel id>/<token>``: WebDAV-Push deliveries (Web Push messages from
a CalDAV server), as hints.

The push resource syncd registers for a channel (:mod:`connectors.caldav_push`) carries
the channel's id and its secret token in the path, because a Web Push delivery carries
nothing else of the subscriber's choosing. A delivery is verified twice: the token
against the channel's stored hash (:meth:`~syncd.store.channels.ChannelStore.verify`),
and, when the server advertised a VAPID key at registration (kept in the channel's
details), the ``Authorization`` signature by that key for our origin
(:mod:`syncd.http.vapid`): a leaked push URL alone cannot make cycles then.

The body is an aes128gcm-encrypted ``push-message`` (RFC 8291). It is never decrypted:
a notification is only a hint that the collection changed, and the next incremental
cycle (sync-collection) reads what changed. Its size is bounded (:data:`MAX_BODY`).

Answers (RFC 8030 is the server's contract: 201 means delivered, 404 and 410 mean the
subscription is gone and the server deletes it):

* valid: 201 at once; the channel is heard and its account's cycle asked for;
* known channel, wrong token or bad signature: 403 or 401, counted ``forged``, no cycle;
* unknown channel id: 202, counted ``unknown_channel``, no cycle. Not 404/410 although
  Web Push would let the server drop the subscription: an id syncd does not know yet
  (a subscription registered a moment before its channel is saved, or on a replica
  whose database lags) would lose a live channel, and WebDAV-Push cannot reveal a dead
  channel through our own writes (they carry Push-Dont-Notify). Stale subscriptions end
  at their expiry, and syncd DELETEs the ones it replaces.
* a path that is no channel's shape: 404, counted ``malformed``.
"""

from __future__ import annotations

import logging
import re
import threading
from collections import Counter

from syncd.http.router import Request, Response, Route
from syncd.http.vapid import vapid_problem
from syncd.push import Hints
from syncd.store.channels import ChannelStore

log = logging.getLogger("syncd.http")

PATH = "/hooks/webdav"
#: A Web Push message is at most 4 KiB of payload (RFC 8030 7.2) plus the encryption's
#: header and padding.
MAX_BODY = 8 * 1024
_SEGMENT = re.compile(r"[A-Za-z0-9_-]{1,128}")


class WebDavHook:
    """The endpoint; ``counts`` has ``accepted``, ``forged``, ``unknown_channel`` and
    ``malformed``."""

    def __init__(self, channels: ChannelStore, hints: Hints) -> None:
        self.channels, self.hints = channels, hints
        self.counts: Counter[str] = Counter()
        self._lock = threading.Lock()

    def route(self) -> Route:
        return Route(PATH, self.handle, methods=("POST",), max_body=MAX_BODY, prefix=True)

    def handle(self, request: Request) -> Response:
        parts = request.path[len(PATH):].split("/")
        if len(parts) != 3 or parts[0] or not all(_SEGMENT.fullmatch(p) for p in parts[1:]):
            return self._count("malformed", Response.text(404))
        channel_id, token = parts[1], parts[2]
        checked = self.channels.check(channel_id, token)
        if not checked.known:
            return self._count("unknown_channel", Response.text(202))
        row = checked.row
        if row is None:
            return self._forged(request, "a wrong token", Response.text(403))
        key, audience = row.details.get("vapid_key"), row.details.get("audience")
        if isinstance(key, str) and key:
            problem = vapid_problem(request.headers.get("authorization"), key,
                                    str(audience or ""))
            if problem is not None:
                return self._forged(request, problem, Response.text(401))
        self.channels.heard(channel_id)
        self.hints.accounts_changed({row.account})
        return self._count("accepted", Response.text(201))

    def _forged(self, request: Request, why: str, response: Response) -> Response:
        with self._lock:
            self.counts["forged"] += 1
            first = self.counts["forged"] == 1
        # Said once at warning level: a flood of forgeries must not flood the log.
        log.log(logging.WARNING if first else logging.DEBUG,
                "refused a WebDAV-Push delivery with %s (from %s)", why, request.remote or "?")
        return response

    def _count(self, what: str, response: Response) -> Response:
        with self._lock:
            self.counts[what] += 1
        return response
