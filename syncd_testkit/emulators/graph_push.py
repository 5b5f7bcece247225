"""Change notifications (``/subscriptions``) for the Graph emulator.

What it serves (providers.md B, pipedrive-push-scale.md section 2, Graph's webhook docs):

* ``POST /subscriptions`` registers a subscription on a calendar's events
  (``/users/{id}/events``, ``/users/{id}/calendar/events``,
  ``/users/{id}/calendars/{cid}/events``, ``/me/events``). Before answering, it validates the
  ``notificationUrl`` and the ``lifecycleNotificationUrl``: a POST with
  ``?validationToken=...`` that must be answered 200, ``text/plain``, with the token as the
  whole body, within :attr:`GraphPush.handshake_deadline` (10 s at Graph); anything else, or
  a late answer, makes the create 400 ``ValidationError``. ``expirationDateTime`` must be in
  the future and at most :attr:`GraphPush.max_minutes` away (10,080 for Outlook events).
* ``GET /subscriptions[/{id}]``, ``PATCH /subscriptions/{id}`` (a new
  ``expirationDateTime``; it also reauthorizes), ``DELETE /subscriptions/{id}`` (204),
  ``POST /subscriptions/{id}/reauthorize`` (204). An expired subscription is gone: 404.
* Every change to a watched calendar (the store's change listeners) becomes a notification
  ``{"value": [{subscriptionId, subscriptionExpirationDateTime, changeType, resource,
  resourceData, clientState, tenantId}]}`` posted by one background thread, so the store lock
  is never held during network I/O. Notifications due together (within
  :attr:`GraphPush.coalesce_seconds`) for one address go out in one ``value`` array (at most
  :attr:`GraphPush.max_batch`). A receiver that does not answer 2xx
  within :attr:`GraphPush.notify_deadline` (3 s at Graph) is retried after each of
  :attr:`GraphPush.retry_delays` (a compressed schedule; Graph retries for up to 4 h), then
  the notification is lost.
* :meth:`GraphPush.lifecycle` posts ``reauthorizationRequired``, ``subscriptionRemoved``
  (which also removes the subscription) or ``missed`` to the lifecycle address.
* :class:`PushFaults`: the tenant forbids subscriptions (403), drop, delay, duplicate,
  reorder, and "accepted but never delivers".

Choices where the sources are silent: the 403 for a forbidding tenant is ``ExtensionError``
with an invented message; unknown subscriptions are 404 ``ResourceNotFound``; a URL must be
``https://`` (400 ``InvalidRequest``) except ``http://`` on loopback so tests can receive
without TLS. Retries and the handshake deadline are measured on the wall clock (they are
about a real receiver); expiry uses :meth:`GraphPush.now`, which tests can move forward.
"""

from __future__ import annotations

import heapq
import itertools
import json
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote, urlsplit

from .delivery import DeliveryThreads, post
from .graph_model import GraphError
from .graph_routes import Route, parse_route
from .graph_store import GraphStore, Mailbox
from .graph_wire import JSON_CONTENT_TYPE, ApiRequest, ApiResponse

__all__ = ["Delivery", "GraphPush", "PushFaults", "Subscription"]

MAX_MINUTES = 10_080  # Outlook events: "under 7 days"
HANDSHAKE_DEADLINE = 10.0
NOTIFY_DEADLINE = 3.0
RETRY_DELAYS = (0.05, 0.2, 0.5, 1.0)
MAX_BATCH = 20
COALESCE_SECONDS = 0.05  # notifications due this close together go out together
MAX_PER_MAILBOX = 1_000
MAX_CLIENT_STATE = 128
CHANGE_TYPES = frozenset({"created", "updated", "deleted"})
LIFECYCLE_EVENTS = frozenset({"reauthorizationRequired", "subscriptionRemoved", "missed"})
VALIDATION_FAILED = ("Subscription validation request failed. Notification endpoint must "
                     "respond with 200 OK to validation request.")

Resolve = Callable[[Route], Mailbox]


def graph_time(value: datetime) -> str:
    """A UTC time as Graph writes it (seven fractional digits)."""
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f") + "0Z"


@dataclass
class Subscription:
    """One registered subscription."""

    id: str
    resource: str
    change_types: frozenset[str]
    notification_url: str
    lifecycle_url: str | None
    client_state: str | None
    expires_at: datetime
    mailbox: str  # lower-case UPN
    user_id: str
    calendar_id: str
    silent: bool = False  # accepted, but never delivers
    needs_reauth: bool = False

    def render(self, base_url: str) -> dict[str, Any]:
        return {
            "@odata.context": f"{base_url}/$metadata#subscriptions/$entity",
            "id": self.id, "resource": self.resource,
            "applicationId": "00000000-0000-0000-0000-0000000a0b1e",
            "changeType": ",".join(sorted(self.change_types)),
            "clientState": self.client_state, "notificationUrl": self.notification_url,
            "lifecycleNotificationUrl": self.lifecycle_url,
            "expirationDateTime": graph_time(self.expires_at),
            "creatorId": self.user_id, "includeResourceData": False,
            "latestSupportedTlsVersion": "v1_2",
        }


@dataclass(frozen=True)
class Delivery:
    """One POST the emulator made (or tried): a validation, notifications or a lifecycle
    event. ``status`` is None when no answer came in time (``late``) or at all."""

    kind: str  # validation | notification | lifecycle
    url: str
    subscription_ids: tuple[str, ...]
    attempt: int
    status: int | None
    late: bool
    body: bytes


@dataclass
class PushFaults:
    """Scripted misbehaviour; change the fields while the emulator runs.

    ``forbid``: POST /subscriptions answers 403 (a tenant whose policy forbids them).
    ``drop``: the next N change notifications are never sent. ``duplicate``: the next N are
    sent twice. ``delay_seconds``: every notification waits this long before its first POST.
    ``reorder``: notifications due together go out newest first, one per POST. ``silent``:
    subscriptions created while it is set are accepted (handshake and all) but never deliver.
    """

    forbid: bool = False
    drop: int = 0
    duplicate: int = 0
    delay_seconds: float = 0.0
    reorder: bool = False
    silent: bool = False


@dataclass(order=True)
class _Outgoing:
    due: float
    seq: int
    kind: str = field(compare=False)
    url: str = field(compare=False)
    items: list[dict[str, Any]] = field(compare=False)
    attempt: int = field(compare=False, default=0)


class GraphPush:
    """The emulator's subscriptions and the thread that delivers their notifications."""

    def __init__(self, store: GraphStore, base_url: Callable[[], str]) -> None:
        self.store = store
        self._base_url = base_url
        self.tenant_id = str(uuid.uuid4())
        self.max_minutes = MAX_MINUTES
        self.max_per_mailbox = MAX_PER_MAILBOX
        self.handshake_deadline = HANDSHAKE_DEADLINE
        self.notify_deadline = NOTIFY_DEADLINE
        self.retry_delays: tuple[float, ...] = RETRY_DELAYS
        self.max_batch = MAX_BATCH
        self.coalesce_seconds = COALESCE_SECONDS
        self.faults = PushFaults()
        self.clock: Callable[[], datetime] = lambda: datetime.now(UTC)
        self.deliveries: list[Delivery] = []
        self.counts: Counter[str] = Counter()
        """``handshakes``, ``handshake_failed``, ``queued``, ``delivered`` (items answered
        2xx in time), ``retried``, ``lost`` (items given up), ``late`` (POSTs not answered
        in time), ``dropped``, ``duplicated``, ``muted`` (not sent: a silent subscription)."""
        self._offset = timedelta(0)
        self._subs: dict[str, Subscription] = {}
        self._cond = threading.Condition()
        self._queue: list[_Outgoing] = []
        self._seq = itertools.count()
        self._delivery = DeliveryThreads(self._cond, name="graph-emulator-push",
                                         take=self._take, send=self._send,
                                         pause=self._until_due)
        store.change_listeners.append(self._on_change)

    # -- life cycle ---------------------------------------------------------------------------

    def start(self) -> None:
        self._delivery.start()

    def stop(self) -> None:
        self._delivery.stop(10)

    def wait_idle(self, timeout: float = 10.0) -> bool:
        """Wait until nothing is queued or being posted (retries included); False on timeout."""
        return self._delivery.wait_idle(lambda: not self._queue, timeout)

    # -- test hooks ---------------------------------------------------------------------------

    def now(self) -> datetime:
        """The emulator's time for expiry: :attr:`clock` moved by :meth:`advance`."""
        return self.clock() + self._offset

    def advance(self, delta: timedelta) -> None:
        """Move the expiry clock forward (subscriptions past their expiry are gone)."""
        with self._cond:
            self._offset += delta

    def subscriptions(self) -> list[Subscription]:
        """The live subscriptions (copies)."""
        with self._cond:
            self._purge()
            return [Subscription(**vars(s)) for s in self._subs.values()]

    def get(self, subscription_id: str) -> Subscription | None:
        with self._cond:
            self._purge()
            sub = self._subs.get(subscription_id)
            return None if sub is None else Subscription(**vars(sub))

    def expire(self, subscription_id: str) -> None:
        """End one subscription now, silently, as its expiry would."""
        with self._cond:
            self._subs.pop(subscription_id, None)

    def mute(self, subscription_id: str) -> None:
        """Make a live subscription stop delivering without saying so."""
        with self._cond:
            self._subs[subscription_id].silent = True

    def lifecycle(self, subscription_id: str, event: str) -> None:
        """Post a lifecycle event for a live subscription to its lifecycle address.

        ``subscriptionRemoved`` also removes it; ``reauthorizationRequired`` marks it until a
        PATCH or ``reauthorize``. Nothing is posted without a lifecycle address.
        """
        if event not in LIFECYCLE_EVENTS:
            raise ValueError(f"unknown lifecycle event {event!r}")
        with self._cond:
            sub = self._subs[subscription_id]
            if event == "subscriptionRemoved":
                del self._subs[subscription_id]
            elif event == "reauthorizationRequired":
                sub.needs_reauth = True
            if sub.lifecycle_url is None:
                return
            item = {"subscriptionId": sub.id,
                    "subscriptionExpirationDateTime": graph_time(sub.expires_at),
                    "tenantId": self.tenant_id, "clientState": sub.client_state,
                    "lifecycleEvent": event}
            self._push(_Outgoing(time.monotonic(), next(self._seq), "lifecycle",
                                 sub.lifecycle_url, [item]))

    # -- the API ------------------------------------------------------------------------------

    def handle(self, req: ApiRequest, resolve: Resolve) -> ApiResponse:
        """Serve a request under ``/subscriptions`` (authenticated already)."""
        segs = [s for s in req.path.strip("/").split("/") if s]
        sub_id = segs[1] if len(segs) >= 2 else None
        if len(segs) == 1 and req.method == "POST":
            return self._json(201, self._create(req, resolve))
        if len(segs) == 1 and req.method == "GET":
            with self._cond:
                self._purge()
                listed = [s.render(self._base_url()) for s in self._subs.values()]
            return self._json(200, {"value": listed})
        if sub_id is not None and len(segs) == 2:
            if req.method == "GET":
                return self._json(200, self._live(sub_id).render(self._base_url()))
            if req.method == "PATCH":
                return self._json(200, self._renew(sub_id, req))
            if req.method == "DELETE":
                with self._cond:
                    self._live(sub_id)
                    del self._subs[sub_id]
                return ApiResponse(204)
        if (sub_id is not None and len(segs) == 3 and segs[2].lower() == "reauthorize"
                and req.method == "POST"):
            with self._cond:
                self._live(sub_id).needs_reauth = False
            return ApiResponse(204)
        raise GraphError(405, "MethodNotAllowed",
                         f"The HTTP method '{req.method}' is not allowed for this resource.")

    def _json(self, status: int, body: Any) -> ApiResponse:
        return ApiResponse(status, body, {"Content-Type": JSON_CONTENT_TYPE})

    def _live(self, subscription_id: str) -> Subscription:
        with self._cond:
            self._purge()
            sub = self._subs.get(subscription_id)
        if sub is None:
            raise GraphError(404, "ResourceNotFound", "The object was not found.")
        return sub

    def _create(self, req: ApiRequest, resolve: Resolve) -> dict[str, Any]:
        if self.faults.forbid:
            raise GraphError(403, "ExtensionError",
                             "Operation: Create; Exception: [Status Code: Forbidden; Reason: "
                             "The tenant's policy does not allow subscriptions]")
        body = req.json()
        if not isinstance(body, dict):
            raise _invalid("The request body must be a subscription object.")
        change_types = _change_types(body.get("changeType"))
        url = _url(body.get("notificationUrl"), "notificationUrl")
        lifecycle = body.get("lifecycleNotificationUrl")
        lifecycle_url = None if lifecycle is None else _url(lifecycle,
                                                            "lifecycleNotificationUrl")
        client_state = body.get("clientState")
        if client_state is not None and (not isinstance(client_state, str)
                                         or len(client_state) > MAX_CLIENT_STATE):
            raise _invalid(f"clientState must be text of at most {MAX_CLIENT_STATE} "
                           "characters.")
        expires = self._expiry(body.get("expirationDateTime"))
        resource = body.get("resource")
        if not isinstance(resource, str) or not resource.strip("/"):
            raise _invalid("The resource is missing.")
        route = parse_route(resource)
        if route.kind != "events":
            raise _invalid(f"Unsupported resource '{resource}'.")
        mbx = resolve(route)
        with self.store.lock:
            calendar_id = mbx.calendar(route.calendar_id).id
        with self._cond:
            self._purge()
            if sum(s.mailbox == mbx.upn.lower() for s in self._subs.values()) >= \
                    self.max_per_mailbox:
                raise GraphError(403, "ExtensionError",
                                 "Operation: Create; Exception: [Status Code: Forbidden; "
                                 "Reason: The mailbox has too many subscriptions]")
        # The handshake runs on the request thread, like Graph's, with no lock held.
        sub_id = str(uuid.uuid4())
        for address in (url, lifecycle_url):
            if address is not None and not self._validate(address, sub_id):
                raise GraphError(400, "ValidationError", VALIDATION_FAILED)
        sub = Subscription(id=sub_id, resource=resource, change_types=change_types,
                           notification_url=url, lifecycle_url=lifecycle_url,
                           client_state=client_state, expires_at=expires,
                           mailbox=mbx.upn.lower(), user_id=mbx.user_id,
                           calendar_id=calendar_id, silent=self.faults.silent)
        with self._cond:
            self._subs[sub.id] = sub
        return sub.render(self._base_url())

    def _renew(self, subscription_id: str, req: ApiRequest) -> dict[str, Any]:
        body = req.json()
        if not isinstance(body, dict):
            raise _invalid("The request body must be a subscription object.")
        expires = self._expiry(body.get("expirationDateTime"))
        with self._cond:
            sub = self._live(subscription_id)
            sub.expires_at, sub.needs_reauth = expires, False
            return sub.render(self._base_url())

    def _expiry(self, value: object) -> datetime:
        if not isinstance(value, str):
            raise _invalid("expirationDateTime is required.")
        try:
            when = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise _invalid(f"Cannot convert '{value}' to a DateTimeOffset.") from None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        now = self.now()
        if when <= now:
            raise _invalid("Subscription expiration must be in the future.")
        if when > now + timedelta(minutes=self.max_minutes):
            raise _invalid(f"Subscription expiration can only be {self.max_minutes} minutes "
                           "in the future.")
        return when

    def _validate(self, address: str, subscription_id: str) -> bool:
        token = ("Validation: Testing client application reachability for subscription "
                 f"Request-Id: {uuid.uuid4()}")
        target = f"{address}{'&' if '?' in address else '?'}validationToken={quote(token)}"
        request = urllib.request.Request(target, data=b"", method="POST",
                                         headers={"Content-Type": "text/plain; charset=utf-8"})
        status, late, ok = None, False, False
        started = time.monotonic()
        try:
            with urllib.request.urlopen(request, timeout=self.handshake_deadline) as answer:
                status = answer.status
                text = answer.read(len(token.encode()) + 2)
                kind = answer.headers.get("Content-Type", "")
                ok = (status == 200 and kind.lower().startswith("text/plain")
                      and text == token.encode())
        except urllib.error.HTTPError as exc:
            status = exc.code
        except OSError:
            late = time.monotonic() - started >= self.handshake_deadline
        if time.monotonic() - started > self.handshake_deadline:
            late, ok = True, False
        with self._cond:
            self.counts["handshakes"] += 1
            if not ok:
                self.counts["handshake_failed"] += 1
            self.deliveries.append(Delivery("validation", address, (subscription_id,), 0,
                                            status, late, b""))
        return ok

    # -- notifications ------------------------------------------------------------------------

    def _on_change(self, mbx: Mailbox, calendar_id: str, event_id: str, kind: str) -> None:
        """A store change listener: queue a notification per matching subscription."""
        with self._cond:
            self._purge()
            for sub in self._subs.values():
                if (sub.mailbox != mbx.upn.lower() or sub.calendar_id != calendar_id
                        or kind not in sub.change_types):
                    continue
                if sub.silent:
                    self.counts["muted"] += 1
                    continue
                if self.faults.drop > 0:
                    self.faults.drop -= 1
                    self.counts["dropped"] += 1
                    continue
                copies = 1
                if self.faults.duplicate > 0:
                    self.faults.duplicate -= 1
                    self.counts["duplicated"] += 1
                    copies = 2
                resource = f"Users/{mbx.user_id}/Events/{event_id}"
                item = {"subscriptionId": sub.id,
                        "subscriptionExpirationDateTime": graph_time(sub.expires_at),
                        "changeType": kind, "resource": resource,
                        "resourceData": {"@odata.type": "#Microsoft.Graph.Event",
                                         "@odata.id": resource, "id": event_id},
                        "clientState": sub.client_state, "tenantId": self.tenant_id}
                due = time.monotonic() + self.faults.delay_seconds
                for _ in range(copies):
                    self.counts["queued"] += 1
                    self._push(_Outgoing(due, next(self._seq), "notification",
                                         sub.notification_url, [dict(item)]))

    def _push(self, out: _Outgoing) -> None:
        # called with self._cond held
        heapq.heappush(self._queue, out)
        self._cond.notify_all()

    def _purge(self) -> None:
        # called with self._cond held
        now = self.now()
        for sub_id in [s.id for s in self._subs.values() if s.expires_at <= now]:
            del self._subs[sub_id]

    def _until_due(self) -> float | None:
        # called with self._cond held: the wait for the next POST (None: until one comes)
        return max(0.0, self._queue[0].due - time.monotonic()) if self._queue else None

    def _take(self) -> list[_Outgoing] | None:
        """The POSTs due now (merged per address unless reordering); None if none is due
        (called with self._cond held)."""
        now = time.monotonic()
        if not self._queue or self._queue[0].due > now:
            return None
        due: list[_Outgoing] = []
        while self._queue and self._queue[0].due <= now + self.coalesce_seconds:
            due.append(heapq.heappop(self._queue))
        if self.faults.reorder:
            return list(reversed(due))
        merged: list[_Outgoing] = []
        for out in due:
            last = merged[-1] if merged else None
            if (last is not None and last.url == out.url and last.kind == out.kind
                    and last.attempt == out.attempt
                    and len(last.items) + len(out.items) <= self.max_batch):
                last.items.extend(out.items)
            else:
                merged.append(out)
        return merged

    def _send(self, batch: list[_Outgoing]) -> None:
        for out in batch:
            self._post(out)

    def _post(self, out: _Outgoing) -> None:
        body = json.dumps({"value": out.items}).encode()
        started = time.monotonic()
        status = post(out.url, body, {"Content-Type": "application/json"},
                      self.notify_deadline, follow_redirects=True)
        late = time.monotonic() - started > self.notify_deadline
        ok = status is not None and 200 <= status < 300 and not late
        ids = tuple(str(item["subscriptionId"]) for item in out.items)
        with self._cond:
            self.deliveries.append(Delivery(out.kind, out.url, ids, out.attempt, status,
                                            late, body))
            if late:
                self.counts["late"] += 1
            if ok:
                self.counts["delivered"] += len(out.items)
            elif out.attempt < len(self.retry_delays):
                self.counts["retried"] += len(out.items)
                self._push(_Outgoing(time.monotonic() + self.retry_delays[out.attempt],
                                     next(self._seq), out.kind, out.url, out.items,
                                     out.attempt + 1))
            else:
                self.counts["lost"] += len(out.items)


def _invalid(message: str) -> GraphError:
    return GraphError(400, "InvalidRequest", message)


def _change_types(value: object) -> frozenset[str]:
    if not isinstance(value, str):
        raise _invalid("changeType is required.")
    kinds = frozenset(part.strip() for part in value.split(","))
    if not kinds or not kinds <= CHANGE_TYPES:
        raise _invalid(f"Unsupported changeType '{value}'.")
    return kinds


def _url(value: object, name: str) -> str:
    if not isinstance(value, str) or not value:
        raise _invalid(f"{name} is required.")
    parts = urlsplit(value)
    loopback = parts.scheme == "http" and parts.hostname in ("127.0.0.1", "localhost", "::1")
    if parts.scheme != "https" and not loopback:
        raise _invalid(f"The {name} must be an https url.")
    return value
