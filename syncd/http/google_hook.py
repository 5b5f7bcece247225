"""``/hooks/google``: Google Calendar's push notifications, as hints.

A notification is a bodiless POST whose ``X-Goog-*`` headers say which channel
(``Channel-ID``, ``Channel-Token``), which resource (``Resource-ID``), what happened
(``Resource-State``: ``sync`` when the channel opens, then ``exists``, or ``not_exists``)
and its ``Message-Number`` (increasing per channel). Every header is outside input: each
is bounded and checked, and a notification missing one or carrying garbage is answered 400
with no work.

The channel is looked up in the sync state (:class:`~syncd.store.channels.ChannelStore`):

* an id syncd does not know (a channel stopped, renewed away, or another program's) is
  counted ``unknown_channel`` and answered 200, so Google stops retrying it;
* a known id with a wrong or missing token, or with another resource's id, is counted
  ``forged`` and answered 401 or 403: no cycle;
* ``sync`` only records that the channel is alive (counted ``handshake``);
* ``exists`` / ``not_exists`` record the message and hand the account to
  :class:`~syncd.push.Hints` (``accepted``); a message whose number is not above the last
  one heard (Google's retry of one already answered, a replay) is counted ``replayed`` and
  makes no second hint: the cycle of the later message reads the earlier change too.

The answer is immediate: two small reads and one write of the channel's row, and the
cycle runs on the scheduler's workers.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass

from syncd.http.router import Request, Response, Route
from syncd.push import Hints
from syncd.store.channels import ChannelStore

log = logging.getLogger("syncd.http")

PATH = "/hooks/google"
KIND = "google"
STATES = frozenset({"sync", "exists", "not_exists"})
MAX_ID = 64  # Google's limit on a channel id
MAX_TOKEN = 256  # Google's limit on a channel token
MAX_RESOURCE_ID = 256
MAX_NUMBER_DIGITS = 19  # fits the database's 64-bit integer
MAX_BODY = 1024  # notifications have no body


@dataclass(frozen=True)
class Notification:
    """The headers of one notification, checked."""

    channel_id: str
    token: str | None
    resource_id: str
    state: str
    number: int


def read_notification(headers: Mapping[str, str]) -> Notification | None:
    """The notification ``headers`` carry (names in lower case), or None when one is
    missing, too long, or not of its form."""
    channel_id = _text(headers.get("x-goog-channel-id"), MAX_ID)
    resource_id = _text(headers.get("x-goog-resource-id"), MAX_RESOURCE_ID)
    state = headers.get("x-goog-resource-state")
    number = headers.get("x-goog-message-number", "")
    raw_token = headers.get("x-goog-channel-token")
    token = _text(raw_token, MAX_TOKEN)
    if (channel_id is None or resource_id is None or state not in STATES
            or not (number.isascii() and number.isdigit())
            or len(number) > MAX_NUMBER_DIGITS or (raw_token is not None and token is None)):
        return None
    return Notification(channel_id, token, resource_id, state, int(number))


def _text(value: str | None, limit: int) -> str | None:
    """``value`` when it is 1 to ``limit`` printable ASCII characters."""
    if value is None or not 0 < len(value) <= limit:
        return None
    return value if value.isascii() and value.isprintable() else None


class GoogleHook:
    """The endpoint; ``counts`` has ``accepted``, ``handshake``, ``replayed``,
    ``unknown_channel``, ``forged`` (the names every calendar hook counts under) and
    ``malformed``."""

    def __init__(self, channels: ChannelStore, hints: Hints) -> None:
        self.channels, self.hints = channels, hints
        self.counts: Counter[str] = Counter()
        self._lock = threading.Lock()

    def route(self) -> Route:
        return Route(PATH, self.handle, methods=("POST",), max_body=MAX_BODY)

    def handle(self, request: Request) -> Response:
        note = read_notification(request.headers)
        if note is None:
            self._count("malformed")
            return Response.text(400, "not a Google Calendar notification")
        checked = self.channels.check(note.channel_id, note.token)
        row = checked.row
        if row is None:
            if not checked.known:
                self._count("unknown_channel")
                return Response.text(200)
            return self._forged(request, 401)
        if row.kind != KIND or row.resource_id != note.resource_id:
            return self._forged(request, 403)
        fresh = self.channels.heard(note.channel_id, number=note.number)
        if note.state == "sync":
            self._count("handshake")
        elif not fresh:
            self._count("replayed")
        else:
            self.hints.accounts_changed({row.account})
            self._count("accepted")
        return Response.text(200)

    def _forged(self, request: Request, status: int) -> Response:
        first = self._count("forged") == 1
        # Said once at warning level: a flood of forgeries must not flood the log.
        log.log(logging.WARNING if first else logging.DEBUG,
                "refused a %s notification with a wrong channel token or resource (from %s)",
                PATH, request.remote or "?")
        return Response.text(status)

    def _count(self, what: str) -> int:
        with self._lock:
            self.counts[what] += 1
            return self.counts[what]
