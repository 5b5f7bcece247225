"""Push notifications (``events.watch`` / ``channels.stop``) for the Google Calendar emulator.

Facts (providers.md A.7, pipedrive-push-scale.md section 2, Google's push guide and the
``events.watch`` reference):

* ``events.watch`` takes a channel ``{id (at most 64 characters, unique), type "web_hook"
  (or "webhook"), address (HTTPS), token?, expiration? (ms since the epoch), params.ttl?
  (seconds, default 604800)}`` and answers ``{kind "api#channel", id, resourceId,
  resourceUri, token?, expiration}``; ``resourceId`` names the watched resource (the same
  for every channel on one calendar).
* A new channel first gets a ``sync`` message (number 1), then one ``exists`` per change
  (``not_exists`` when the resource is gone). Messages are bodiless POSTs with
  ``X-Goog-Channel-ID``, ``X-Goog-Channel-Token`` (when set), ``X-Goog-Channel-Expiration``
  (RFC 1123), ``X-Goog-Resource-ID``, ``X-Goog-Resource-URI``, ``X-Goog-Resource-State``,
  ``X-Goog-Message-Number`` (increasing per channel).
* 200, 201, 202, 204 and 102 are success; 500, 502, 503, 504 (and no answer) are retried
  with exponential backoff; any other answer is a failed message, not retried.
* A channel is never renewed: past its expiration nothing is delivered and
  ``channels.stop`` (``{id, resourceId}``, both matching) answers 404.

[emulator choices]: the longest channel granted is :attr:`PushChannels.max_ttl` (30 days;
Google documents no maximum for calendars), a longer request is shortened and the answer's
``expiration`` says so; when both ``expiration`` and ``params.ttl`` are given the earlier
wins; retries wait ``retry_base * 2**n`` emulator seconds, at most ``attempts`` tries in
all; message numbers go up by one.

Time: channel expiry and every wait run on the emulator's clock (the store's clock plus
:meth:`PushChannels.advance`), so a test moves past an expiry or a retry without waiting.
Delivery runs on background threads (:attr:`PushChannels.workers`, one by default) and the
lock is never held during network I/O.
Real Google only posts to HTTPS addresses; the emulator also accepts ``http://`` on
loopback so tests can receive without TLS. :class:`PushFaults` drops, delays, duplicates,
reorders, or accepts channels that never deliver.
"""

from __future__ import annotations

import heapq
import itertools
import random
import threading
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import format_datetime
from urllib.parse import quote, urlsplit

from .delivery import DeliveryThreads, post
from .google_model import ApiError, JsonDict, invalid, not_found, required
from .google_store import GoogleStore

DEFAULT_TTL_S = 604_800  # the documented default of params.ttl
MAX_TTL_S = 30 * 86_400  # [emulator choice]
SUCCESS = frozenset({102, 200, 201, 202, 204})
RETRIED = frozenset({500, 502, 503, 504})
LOOPBACK = ("127.0.0.1", "localhost", "::1")
MAX_CHANNEL_ID = 64


@dataclass
class Channel:
    """One registered notification channel."""

    id: str
    resource_id: str
    calendar_id: str
    address: str
    token: str | None
    expiration_ms: int
    silent: bool = False  # accepted, but never delivers anything
    stopped: bool = False
    messages: int = 0  # the last message number given


@dataclass(frozen=True)
class Delivery:
    """One attempt to post a notification. ``status`` None: no answer (refused, timed
    out) or never sent (``outcome`` says why: dropped, expired, stopped)."""

    channel_id: str
    state: str
    number: int
    attempt: int
    headers: dict[str, str]
    status: int | None
    outcome: str  # delivered, retry, failed, dropped, expired, stopped

    @property
    def ok(self) -> bool:
        return self.outcome == "delivered"


@dataclass
class PushFaults:
    """Delivery faults, for tests (``rng`` seeds the shares).

    ``drop``: share of messages lost before their first try; ``drop_next``: the next N
    messages are lost; ``delay``: emulator seconds every message waits before its first
    try; ``duplicate``: share posted twice (same number); ``reorder``: messages are held
    in groups of this many and posted last-first (a lone group is released after
    ``reorder_hold`` emulator seconds); ``silent``: channels made while it is set are
    accepted and never deliver (Google's "watch accepted, nothing ever came")."""

    drop: float = 0.0
    drop_next: int = 0
    delay: float = 0.0
    duplicate: float = 0.0
    reorder: int = 0
    reorder_hold: float = 0.5
    silent: bool = False
    rng: random.Random = field(default_factory=lambda: random.Random(0))


@dataclass(order=True)
class _Message:
    due: float
    seq: int
    channel: Channel = field(compare=False)
    state: str = field(compare=False)
    number: int = field(compare=False)
    attempt: int = field(default=1, compare=False)


class PushChannels:
    """The emulator's watch channels and the threads that deliver their notifications.

    :param timeout: real seconds a receiver may take to answer one message.
    :param attempts: tries per message in all (the first and the retries).
    :param retry_base: emulator seconds before the first retry; doubled for each next.
    :param workers: messages posted at once, as Google does (one keeps them in order,
        which tests of numbering rely on); read when the delivery threads start.
    """

    def __init__(self, store: GoogleStore, *, timeout: float = 5.0, attempts: int = 5,
                 retry_base: float = 1.0, workers: int = 1) -> None:
        self._store = store
        self.timeout, self.attempts, self.retry_base = timeout, attempts, retry_base
        self.workers = workers
        self.default_ttl = DEFAULT_TTL_S
        self.max_ttl = MAX_TTL_S
        self.faults = PushFaults()
        self.deliveries: list[Delivery] = []
        self._channels: dict[str, Channel] = {}
        self._offset = 0.0
        self._seq = itertools.count()
        self._queue: list[_Message] = []
        self._held: list[_Message] = []  # reorder fault: waiting for the rest of a group
        self._held_since = 0.0
        self._cond = threading.Condition()
        self._delivery = DeliveryThreads(self._cond, name="google-emulator-push",
                                         take=self._take, send=self._send,
                                         pause=lambda: 0.02)
        store.change_listeners.append(self._on_change)

    # ---- clock ----------------------------------------------------------------------------

    def now(self) -> float:
        """Seconds since the epoch on the emulator's push clock."""
        return self._store.now().timestamp() + self._offset

    def advance(self, seconds: float) -> None:
        """Move the push clock forward (past an expiry, a delay or a retry wait)."""
        if seconds < 0:
            raise ValueError("the clock only moves forward")
        with self._cond:
            self._offset += seconds
            self._cond.notify_all()

    # ---- lifecycle ------------------------------------------------------------------------

    def start(self) -> None:
        """Start the delivery threads."""
        self._delivery.start(self.workers)

    def stop(self) -> None:
        """Stop the delivery threads (messages still queued are not sent)."""
        self._delivery.stop(self.timeout + 5)

    def wait_idle(self, timeout: float = 10.0) -> bool:
        """Block until no message is due now, held or being posted (tests); False on
        timeout (real seconds). Messages due later (a delay, a retry) do not count."""
        def settled() -> bool:
            now = self.now()
            return not self._held and not any(m.due <= now for m in self._queue)

        return self._delivery.wait_idle(settled, timeout)

    # ---- the API --------------------------------------------------------------------------

    def watch(self, calendar_id: str, user: str | None, body: JsonDict) -> JsonDict:
        """events.watch: register a channel and queue its ``sync`` message."""
        cal = self._store.calendar(calendar_id, user)
        channel_id, address, token = body.get("id"), body.get("address"), body.get("token")
        if not isinstance(channel_id, str) or not channel_id:
            raise required("Missing channel id.")
        if len(channel_id) > MAX_CHANNEL_ID:
            raise invalid(f"Channel id must be at most {MAX_CHANNEL_ID} characters.")
        if body.get("type") not in ("web_hook", "webhook"):
            raise invalid("Unsupported channel type.")
        if not isinstance(address, str) or not address:
            raise required("Missing channel address.")
        if token is not None and not isinstance(token, str):
            raise invalid("Invalid channel token.")
        parts = urlsplit(address)
        if parts.scheme != "https" and not (parts.scheme == "http"
                                            and parts.hostname in LOOPBACK):
            raise ApiError(400, "push.webhookUrlNotHttps",
                           f"WebHook callback must be HTTPS: {address}")
        now = self.now()
        expiration_ms = self._expiration_ms(body, now)
        with self._cond:
            if channel_id in self._channels:
                raise ApiError(400, "channelIdNotUnique", "Channel id not unique")
            channel = Channel(id=channel_id, resource_id=resource_id_of(cal.id),
                              calendar_id=cal.id, address=address, token=token,
                              expiration_ms=expiration_ms, silent=self.faults.silent)
            self._channels[channel_id] = channel
            self._enqueue(channel, "sync", now)
        result: JsonDict = {
            "kind": "api#channel", "id": channel.id, "resourceId": channel.resource_id,
            "resourceUri": resource_uri(channel.calendar_id),
            "expiration": str(channel.expiration_ms),
        }
        if token is not None:
            result["token"] = token
        return result

    def stop_channel(self, body: JsonDict) -> None:
        """channels.stop: both ``id`` and ``resourceId`` must match a live channel."""
        with self._cond:
            channel = self._channels.get(str(body.get("id")))
            if (channel is None or channel.resource_id != body.get("resourceId")
                    or self._expired(channel, self.now())):
                raise not_found()
            channel.stopped = True
            del self._channels[channel.id]

    def _expiration_ms(self, body: JsonDict, now: float) -> int:
        limits = [now + self.max_ttl]
        params = body.get("params")
        ttl = params.get("ttl") if isinstance(params, dict) else None
        if ttl is not None:
            if not str(ttl).isdigit():
                raise invalid("Invalid value for params.ttl.")
            limits.append(now + int(str(ttl)))
        expiration = body.get("expiration")
        if expiration is not None:
            if not str(expiration).isdigit():
                raise invalid("Invalid value for expiration.")
            limits.append(int(str(expiration)) / 1000)
        if ttl is None and expiration is None:
            limits.append(now + self.default_ttl)
        if min(limits) <= now:
            raise invalid("Channel expiration is in the past.")
        return int(min(limits) * 1000)

    # ---- state open to tests --------------------------------------------------------------

    def channels(self) -> list[Channel]:
        """The live channels (expired ones excluded)."""
        now = self.now()
        with self._cond:
            return [c for c in self._channels.values() if not self._expired(c, now)]

    def silence(self, channel_id: str) -> None:
        """From now on the channel delivers nothing (it stays registered)."""
        with self._cond:
            self._channels[channel_id].silent = True

    def notify(self, calendar_id: str, state: str = "exists") -> None:
        """Queue ``state`` on every live channel of the calendar, as a change would."""
        now = self.now()
        with self._cond:
            for channel in self._channels.values():
                if channel.calendar_id == calendar_id and not self._expired(channel, now):
                    self._enqueue(channel, state, now)

    def _on_change(self, calendar_id: str) -> None:
        # Runs under the store lock: it only queues.
        self.notify(calendar_id)

    # ---- delivery -------------------------------------------------------------------------

    @staticmethod
    def _expired(channel: Channel, now: float) -> bool:
        return channel.expiration_ms <= now * 1000

    def _enqueue(self, channel: Channel, state: str, now: float) -> None:
        """Number a message and queue it through the faults (lock held)."""
        channel.messages += 1
        faults = self.faults
        message = _Message(now + faults.delay, next(self._seq), channel, state,
                           channel.messages)
        if channel.silent:
            return
        if faults.drop_next > 0 or (faults.drop and faults.rng.random() < faults.drop):
            faults.drop_next = max(0, faults.drop_next - 1)
            self._record(message, None, "dropped", {})
            return
        copies = [message]
        if faults.duplicate and faults.rng.random() < faults.duplicate:
            copies.append(_Message(message.due, next(self._seq), channel, state,
                                   message.number))
        if faults.reorder > 1:
            if not self._held:
                self._held_since = now
            self._held.extend(copies)
            if len(self._held) >= faults.reorder:
                self._release_held()
        else:
            for copy in copies:
                heapq.heappush(self._queue, copy)
        self._cond.notify_all()

    def _release_held(self) -> None:
        """Queue the held group last-first (lock held)."""
        base = max(m.due for m in self._held)
        for offset, message in enumerate(reversed(self._held)):
            message.seq = next(self._seq)
            message.due = base + offset * 1e-6
            heapq.heappush(self._queue, message)
        self._held = []

    def _take(self) -> tuple[_Message, dict[str, str]] | None:
        """The next message to post now, with its headers (lock held); messages of a
        stopped, silenced or expired channel are recorded as such on the way."""
        now = self.now()
        if self._held and now - self._held_since >= self.faults.reorder_hold:
            self._release_held()
        while self._queue and self._queue[0].due <= now:
            message = heapq.heappop(self._queue)
            channel = message.channel
            if channel.stopped or channel.silent or self._expired(channel, now):
                outcome = "stopped" if channel.stopped or channel.silent else "expired"
                self._record(message, None, outcome, {})
                continue
            return message, self._headers(message)
        return None

    def _send(self, work: tuple[_Message, dict[str, str]]) -> None:
        message, headers = work
        status = post(message.channel.address, b"", headers, self.timeout)
        with self._cond:
            self._after(message, headers, status)

    def _after(self, message: _Message, headers: dict[str, str], status: int | None
               ) -> None:
        """Record one attempt and schedule the retry it calls for (lock held)."""
        if status in SUCCESS:
            self._record(message, status, "delivered", headers)
            return
        retry = (status is None or status in RETRIED) and message.attempt < self.attempts
        self._record(message, status, "retry" if retry else "failed", headers)
        if retry:
            wait = self.retry_base * 2 ** (message.attempt - 1)
            heapq.heappush(self._queue, _Message(
                self.now() + wait, next(self._seq), message.channel, message.state,
                message.number, message.attempt + 1))

    def _record(self, message: _Message, status: int | None, outcome: str,
                headers: dict[str, str]) -> None:
        self.deliveries.append(Delivery(message.channel.id, message.state, message.number,
                                        message.attempt, headers, status, outcome))

    @staticmethod
    def _headers(message: _Message) -> dict[str, str]:
        channel = message.channel
        expires = datetime.fromtimestamp(channel.expiration_ms / 1000, UTC)
        headers = {
            "X-Goog-Channel-ID": channel.id,
            "X-Goog-Channel-Expiration": format_datetime(expires, usegmt=True),
            "X-Goog-Resource-ID": channel.resource_id,
            "X-Goog-Resource-URI": resource_uri(channel.calendar_id),
            "X-Goog-Resource-State": message.state,
            "X-Goog-Message-Number": str(message.number),
        }
        if channel.token is not None:
            headers["X-Goog-Channel-Token"] = channel.token
        return headers


def resource_id_of(calendar_id: str) -> str:
    """The opaque, stable id of a calendar's events collection."""
    return uuid.uuid5(uuid.NAMESPACE_URL, f"calendar-events:{calendar_id}").hex[:27]


def resource_uri(calendar_id: str) -> str:
    return ("https://www.googleapis.com/calendar/v3/calendars/"
            f"{quote(calendar_id, safe='')}/events?alt=json")
