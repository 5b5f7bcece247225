"""Push notifications (``events.watch`` / ``channels.stop``) for the Google Calendar emulator.

A watch registers a channel and immediately posts a ``sync`` message to its address; every
later change to the watched calendar posts ``exists``. Messages are bodiless POSTs carrying
the ``X-Goog-*`` headers of the push guide, sent from one background thread so the store lock
is never held during network I/O. Real Google only posts to HTTPS addresses; the emulator
also accepts ``http://`` on loopback so tests can receive without TLS.
"""

from __future__ import annotations

import queue
import threading
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import format_datetime
from urllib.parse import quote, urlsplit

from .google_model import ApiError, JsonDict, invalid, not_found, required
from .google_store import GoogleStore

DEFAULT_TTL_MS = 7 * 24 * 3600 * 1000


@dataclass
class Channel:
    """One registered notification channel."""

    id: str
    resource_id: str
    calendar_id: str
    address: str
    token: str | None
    expiration_ms: int
    messages: int = 0


@dataclass(frozen=True)
class Delivery:
    """A notification the emulator posted (or tried to)."""

    channel_id: str
    state: str
    headers: dict[str, str]
    status: int | None


class PushChannels:
    """The emulator's watch channels and the thread that delivers their notifications."""

    def __init__(self, store: GoogleStore) -> None:
        self._store = store
        self._channels: dict[str, Channel] = {}
        self._lock = threading.Lock()
        self._outbox: queue.Queue[tuple[Channel, str] | None] = queue.Queue()
        self._thread: threading.Thread | None = None
        self.deliveries: list[Delivery] = []
        store.change_listeners.append(self._on_change)

    def start(self) -> None:
        """Start the delivery thread."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._deliver_loop, daemon=True,
                                            name="google-emulator-push")
            self._thread.start()

    def stop(self) -> None:
        """Stop the delivery thread after the queued messages."""
        if self._thread is not None:
            self._outbox.put(None)
            self._thread.join(timeout=5)
            self._thread = None

    def wait_idle(self, timeout: float = 5.0) -> None:
        """Block until every queued notification has been posted (for tests)."""
        done = threading.Event()

        def join() -> None:
            self._outbox.join()
            done.set()

        threading.Thread(target=join, daemon=True).start()
        done.wait(timeout)

    def watch(self, calendar_id: str, user: str | None, body: JsonDict) -> JsonDict:
        """events.watch: register a channel and queue its ``sync`` message."""
        cal = self._store.calendar(calendar_id, user)
        channel_id, address = body.get("id"), body.get("address")
        if not isinstance(channel_id, str) or not channel_id:
            raise required("Missing channel id.")
        if len(channel_id) > 64:
            raise invalid("Channel id must be at most 64 characters.")
        if body.get("type") not in ("web_hook", "webhook"):
            raise invalid("Unsupported channel type.")
        if not isinstance(address, str) or not address:
            raise required("Missing channel address.")
        parts = urlsplit(address)
        if parts.scheme != "https" and not (
            parts.scheme == "http" and parts.hostname in ("127.0.0.1", "localhost", "::1")
        ):
            raise ApiError(400, "push.webhookUrlNotHttps",
                           f"WebHook callback must be HTTPS: {address}")
        expiration = body.get("expiration")
        with self._lock:
            if channel_id in self._channels:
                raise ApiError(400, "channelIdNotUnique", "Channel id not unique")
            now_ms = int(self._store.now().timestamp() * 1000)
            channel = Channel(
                id=channel_id, resource_id=uuid.uuid4().hex[:27], calendar_id=cal.id,
                address=address, token=body.get("token"),
                expiration_ms=int(expiration) if expiration else now_ms + DEFAULT_TTL_MS)
            self._channels[channel_id] = channel
        self._outbox.put((channel, "sync"))
        result: JsonDict = {
            "kind": "api#channel", "id": channel.id, "resourceId": channel.resource_id,
            "resourceUri": self._resource_uri(channel), "expiration": str(channel.expiration_ms),
        }
        if channel.token is not None:
            result["token"] = channel.token
        return result

    def stop_channel(self, body: JsonDict) -> None:
        """channels.stop: both ``id`` and ``resourceId`` must match a live channel."""
        with self._lock:
            channel = self._channels.get(str(body.get("id")))
            if channel is None or channel.resource_id != body.get("resourceId"):
                raise not_found()
            del self._channels[channel.id]

    def _on_change(self, calendar_id: str) -> None:
        now_ms = int(self._store.now().timestamp() * 1000)
        with self._lock:
            for channel in self._channels.values():
                if channel.calendar_id == calendar_id and channel.expiration_ms > now_ms:
                    self._outbox.put((channel, "exists"))

    @staticmethod
    def _resource_uri(channel: Channel) -> str:
        return ("https://www.googleapis.com/calendar/v3/calendars/"
                f"{quote(channel.calendar_id, safe='')}/events?alt=json")

    def _deliver_loop(self) -> None:
        while True:
            item = self._outbox.get()
            try:
                if item is None:
                    return
                self._post(*item)
            finally:
                self._outbox.task_done()

    def _post(self, channel: Channel, state: str) -> None:
        with self._lock:
            channel.messages += 1
            number = channel.messages
        expires = datetime.fromtimestamp(channel.expiration_ms / 1000, UTC)
        headers = {
            "X-Goog-Channel-ID": channel.id,
            "X-Goog-Channel-Expiration": format_datetime(expires, usegmt=True),
            "X-Goog-Resource-ID": channel.resource_id,
            "X-Goog-Resource-URI": self._resource_uri(channel),
            "X-Goog-Resource-State": state,
            "X-Goog-Message-Number": str(number),
        }
        if channel.token is not None:
            headers["X-Goog-Channel-Token"] = channel.token
        status: int | None = None
        request = urllib.request.Request(channel.address, data=b"", headers=headers,
                                         method="POST")
        try:
            with urllib.request.urlopen(request, timeout=2) as response:
                status = response.status
        except urllib.error.HTTPError as exc:
            status = exc.code
        except OSError:
            status = None
        self.deliveries.append(Delivery(channel.id, state, headers, status))
