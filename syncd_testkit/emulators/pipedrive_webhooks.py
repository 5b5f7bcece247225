"""Webhooks v2 for the Pipedrive emulator: the ``/v1/webhooks`` registry and delivery.

Facts (reference section 1): ``POST /v1/webhooks {subscription_url, event_action
(create|change|delete|*), event_object (activity|...|*), version "2.0", user_id?,
http_auth_user?, http_auth_password?}``, at most 40 per user; a delivery is a JSON POST of
``{meta, data, previous}`` with Basic auth (no signature), no redirects followed, a 10 s
timeout; a failed first try is retried after 3, 30 and 150 s (``meta.attempt`` 1-4), and then
lost; after 10 first-try failures in a row the webhook is banned for 30 minutes and its
messages are lost; a webhook with no successful delivery for 3 days is deleted. Delivery is
filtered by what the webhook's user may see. Webhooks cost no tokens.

Time runs on the emulator clock: a test advances it by 3 s and the second attempt goes out
at once (one background thread; the store lock is never held during network I/O). Real
Pipedrive only posts to HTTPS; the emulator also accepts ``http://`` on loopback.

[emulator choices]: ``previous`` of a ``change`` holds the changed fields' old values (with
the old ``update_time``); a ``delete`` has ``data: null`` and the whole item in ``previous``;
``meta.entity_id``, ``user_id``, ``company_id``, ``webhook_id`` are strings and ``timestamp``
is ISO 8601 with milliseconds, as in the guide's v2 example; messages queued for a webhook
when it is banned are dropped with it; "no success for 3 days" counts from the first
failure after the last success (a quiet webhook is never deleted); ``name`` is optional;
visibility is judged on the activity's owner after the change (before it, for a delete), so a
user whose activity is handed to an owner they cannot see gets no ``change`` for it.
"""

from __future__ import annotations

import base64
import heapq
import itertools
import json
import threading
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from urllib.parse import urlsplit

from .delivery import DeliveryThreads, post
from .pipedrive_model import (
    JsonDict,
    PipedriveClock,
    User,
    bad_request,
    forbidden,
    not_found,
    v1_time,
)
from .pipedrive_store import Change, PipedriveStore

RETRY_DELAYS = (3.0, 30.0, 150.0)
BAN_AFTER = 10
BAN_SECONDS = 30 * 60
DELETE_AFTER = 3 * 86400
MAX_PER_USER = 40
ACTIONS = ("create", "change", "delete", "*")
OBJECTS = ("activity", "deal", "lead", "note", "organization", "person", "pipeline",
           "product", "stage", "user", "*")


@dataclass
class Webhook:
    """One registered webhook and its delivery record."""

    id: int
    owner_id: int
    user_id: int
    event_action: str
    event_object: str
    subscription_url: str
    http_auth_user: str | None
    http_auth_password: str | None
    name: str | None
    add_time: float
    last_delivery_time: float | None = None
    last_http_status: int | None = None
    first_try_failures: int = 0
    banned_until: float = 0.0
    failing_since: float | None = None

    def wants(self, action: str, entity: str) -> bool:
        return (self.event_action in ("*", action)) and (self.event_object in ("*", entity))

    def v1(self, company_id: int) -> JsonDict:
        return {
            "id": self.id, "company_id": company_id, "owner_id": self.owner_id,
            "user_id": self.user_id, "event_action": self.event_action,
            "event_object": self.event_object, "subscription_url": self.subscription_url,
            "version": "2.0", "is_active": 1, "add_time": v1_time(self.add_time),
            "remove_time": None, "type": "general", "http_auth_user": self.http_auth_user,
            "http_auth_password": self.http_auth_password, "remove_reason": None,
            "last_delivery_time": (v1_time(self.last_delivery_time)
                                   if self.last_delivery_time is not None else None),
            "last_http_status": self.last_http_status, "admin_id": self.owner_id,
            "name": self.name,
        }


@dataclass(frozen=True)
class Delivery:
    """One POST the emulator made (or tried): what was sent and what came back."""

    webhook_id: int
    payload: JsonDict
    headers: dict[str, str]
    status: int | None  # None: connection failed or timed out

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


@dataclass
class DeliveryFaults:
    """Switches for the delivery side (each consumed message by message).

    ``drop``: the next N messages are lost before their first try (no retry);
    ``duplicate``: the next N messages are posted twice with the same ``meta.id``;
    ``delay``: every first try waits this many emulator seconds."""

    drop: int = 0
    duplicate: int = 0
    delay: float = 0.0


@dataclass(order=True)
class _Job:
    due: float
    seq: int
    webhook_id: int = field(compare=False)
    message: JsonDict = field(compare=False)
    attempt: int = field(compare=False)


class Webhooks:
    """The registry and the delivery thread."""

    def __init__(self, store: PipedriveStore, clock: PipedriveClock, *,
                 timeout: float = 10.0, host: str = "acme.pipedrive.com") -> None:
        self._store = store
        self._clock = clock
        self.timeout = timeout
        self.host = host
        self.faults = DeliveryFaults()
        self.deliveries: list[Delivery] = []
        self.removed: dict[int, str] = {}
        """Ids of webhooks Pipedrive deleted, with the reason."""
        self.lost: list[JsonDict] = []
        """Messages given up on (ban, four failed attempts, drop fault)."""
        self._hooks: dict[int, Webhook] = {}
        self._ids = itertools.count(1)
        self._seq = itertools.count()
        self._jobs: list[_Job] = []
        self._cond = threading.Condition()
        self._delivery = DeliveryThreads(self._cond, name="pipedrive-emulator-webhooks",
                                         take=self._take, send=self._send,
                                         pause=lambda: 0.05)
        store.change_listeners.append(self._on_change)
        clock.listeners.append(self._wake)

    # ---- lifecycle ----------------------------------------------------------------------------

    def start(self) -> None:
        self._delivery.start()

    def stop(self) -> None:
        self._delivery.stop(self.timeout + 5)

    def _wake(self) -> None:
        with self._cond:
            self._cond.notify_all()

    def wait_idle(self, real_timeout: float = 10.0) -> bool:
        """Block until no message is due now or being posted; ``False`` on timeout."""
        return self._delivery.wait_idle(
            lambda: not any(job.due <= self._clock.now() for job in self._jobs), real_timeout)

    # ---- the API ------------------------------------------------------------------------------

    def create(self, me: User, body: JsonDict) -> JsonDict:
        """``POST /v1/webhooks``."""
        url = body.get("subscription_url")
        action, obj = body.get("event_action"), body.get("event_object")
        if not isinstance(url, str) or not url:
            raise bad_request("subscription_url is required")
        parts = urlsplit(url)
        loopback = parts.scheme == "http" and parts.hostname in ("127.0.0.1", "localhost", "::1")
        if parts.scheme != "https" and not loopback:
            raise bad_request("subscription_url must be a valid HTTPS URL")
        if action not in ACTIONS:
            raise bad_request(f"event_action must be one of {', '.join(ACTIONS)}")
        if obj not in OBJECTS:
            raise bad_request(f"event_object must be one of {', '.join(OBJECTS)}")
        version = body.get("version", "2.0")
        if version != "2.0":
            raise bad_request("the emulator only delivers webhooks version 2.0")
        user_id = body.get("user_id", me.id)
        if not isinstance(user_id, int) or user_id not in self._store.users:
            raise bad_request("user_id must be an existing user")
        if user_id != me.id and not me.is_admin:
            raise forbidden("Only admins can create webhooks for other users")
        for key in ("http_auth_user", "http_auth_password", "name"):
            if body.get(key) is not None and not isinstance(body[key], str):
                raise bad_request(f"{key} must be a string")
        with self._cond:
            if sum(1 for h in self._hooks.values() if h.user_id == user_id) >= MAX_PER_USER:
                raise bad_request(f"Max webhooks limit reached ({MAX_PER_USER} per user)")
            hook = Webhook(next(self._ids), me.id, user_id, action, obj, url,
                           body.get("http_auth_user"), body.get("http_auth_password"),
                           body.get("name"), self._clock.now())
            self._hooks[hook.id] = hook
            return hook.v1(self._store.company_id)

    def list(self, me: User) -> list[JsonDict]:
        """``GET /v1/webhooks``: an admin sees the company's, a user their own."""
        with self._cond:
            return [h.v1(self._store.company_id) for h in self._hooks.values()
                    if me.is_admin or me.id in (h.owner_id, h.user_id)]

    def delete(self, me: User, webhook_id: int) -> None:
        """``DELETE /v1/webhooks/{id}``."""
        with self._cond:
            hook = self._hooks.get(webhook_id)
            if hook is None or not (me.is_admin or me.id in (hook.owner_id, hook.user_id)):
                raise not_found("Webhook")
            self._remove(hook, None)

    def get(self, webhook_id: int) -> Webhook | None:
        """The webhook (tests), ``None`` once deleted."""
        with self._cond:
            return self._hooks.get(webhook_id)

    def _remove(self, hook: Webhook, reason: str | None) -> None:
        del self._hooks[hook.id]
        if reason is not None:
            self.removed[hook.id] = reason
        self._jobs = [j for j in self._jobs if j.webhook_id != hook.id]
        heapq.heapify(self._jobs)

    # ---- events -------------------------------------------------------------------------------

    def _on_change(self, change: Change) -> None:
        now = self._clock.now()
        with self._cond:
            for hook in self._hooks.values():
                if not hook.wants(change.action, "activity"):
                    continue
                viewer = self._store.users.get(hook.user_id)
                if viewer is None or not viewer.may_see(change.owner_id):
                    continue
                message = self._message(hook, change, now)
                if hook.banned_until > now or self.faults.drop > 0:
                    if hook.banned_until <= now:
                        self.faults.drop -= 1
                    self.lost.append(message)
                    continue
                copies = 1
                if self.faults.duplicate > 0:
                    self.faults.duplicate -= 1
                    copies = 2
                for _ in range(copies):
                    heapq.heappush(self._jobs, _Job(now + self.faults.delay, next(self._seq),
                                                    hook.id, message, 1))
            self._cond.notify_all()

    def _message(self, hook: Webhook, change: Change, now: float) -> JsonDict:
        stamp = datetime.fromtimestamp(now, UTC).isoformat(timespec="milliseconds")
        viewers = [u.id for u in self._store.users.values() if u.may_see(change.owner_id)]
        return {
            "meta": {
                "action": change.action, "entity": "activity",
                "entity_id": str(change.activity_id), "id": str(uuid.uuid4()),
                "correlation_id": str(uuid.uuid4()), "company_id": str(self._store.company_id),
                "user_id": str(change.user_id), "webhook_id": str(hook.id),
                "webhook_owner_id": str(hook.owner_id), "is_bulk_edit": False,
                "timestamp": stamp.replace("+00:00", "Z"), "type": "general",
                "version": "2.0", "change_source": change.change_source,
                "permitted_user_ids": [str(v) for v in viewers], "attempt": 1,
                "host": self.host,
            },
            "data": change.current,
            "previous": change.previous,
        }

    # ---- delivery -----------------------------------------------------------------------------

    def _take(self) -> tuple[Webhook, _Job] | None:
        """The next message due, with its webhook (lock held); webhooks past their
        three days of failures are deleted first."""
        self._sweep()
        now = self._clock.now()
        while self._jobs and self._jobs[0].due <= now:
            job = heapq.heappop(self._jobs)
            hook = self._hooks.get(job.webhook_id)
            if hook is not None:
                return hook, job
        return None

    def _send(self, work: tuple[Webhook, _Job]) -> None:
        hook, job = work
        delivery = self._post(hook, job)
        with self._cond:
            self._record(hook, job, delivery)

    def _post(self, hook: Webhook, job: _Job) -> Delivery:
        payload = json.loads(json.dumps(job.message))
        payload["meta"]["attempt"] = job.attempt
        body = json.dumps(payload).encode()
        headers = {"Content-Type": "application/json", "User-Agent": "Pipedrive-Webhook"}
        if hook.http_auth_user is not None:
            secret = f"{hook.http_auth_user}:{hook.http_auth_password or ''}"
            headers["Authorization"] = "Basic " + base64.b64encode(secret.encode()).decode()
        status = post(hook.subscription_url, body, headers, self.timeout)
        return Delivery(hook.id, payload, headers, status)

    def _record(self, hook: Webhook, job: _Job, delivery: Delivery) -> None:
        self.deliveries.append(delivery)
        if self._hooks.get(hook.id) is not hook:
            return
        now = self._clock.now()
        hook.last_delivery_time = now
        hook.last_http_status = delivery.status
        if delivery.ok:
            hook.first_try_failures = 0
            hook.failing_since = None
            return
        if hook.failing_since is None:
            hook.failing_since = now
        if job.attempt == 1:
            hook.first_try_failures += 1
            if hook.first_try_failures >= BAN_AFTER:
                hook.banned_until = now + BAN_SECONDS
                hook.first_try_failures = 0
                self.lost.append(job.message)
                self.lost.extend(j.message for j in self._jobs if j.webhook_id == hook.id)
                self._jobs = [j for j in self._jobs if j.webhook_id != hook.id]
                heapq.heapify(self._jobs)
                return
        if job.attempt <= len(RETRY_DELAYS):
            heapq.heappush(self._jobs, _Job(now + RETRY_DELAYS[job.attempt - 1],
                                            next(self._seq), hook.id, job.message,
                                            job.attempt + 1))
        else:
            self.lost.append(job.message)

    def _sweep(self) -> None:
        now = self._clock.now()
        for hook in list(self._hooks.values()):
            if hook.failing_since is not None and now - hook.failing_since >= DELETE_AFTER:
                self._remove(hook, "no successful delivery for 3 days")


def basic_auth(user: str, password: str) -> str:
    """The ``Authorization`` value a receiver should expect (tests)."""
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()

