"""``/hooks/graph`` and ``/hooks/graph/lifecycle``: Microsoft Graph change notifications,
as hints.

* **The validation handshake.** When a subscription is created, Graph posts to both
  addresses with ``?validationToken=...`` and creates it only if the answer is 200,
  ``text/plain``, the token as the whole body, within 10 s. Such a request is answered that
  way at once and nothing else is done; a token longer than :data:`MAX_TOKEN_CHARS` or
  holding control characters is refused (400).
* **Notifications.** The body (within the listener's cap, parsed by
  :func:`syncd.safe_json.loads`) is ``{"value": [...]}``; each item names its
  ``subscriptionId`` and carries the ``clientState`` syncd gave the subscription, which is
  checked against the stored hash (``ChannelStore.verify``). Items of one subscription are
  checked once per body, and at most :data:`MAX_CHANNELS` subscriptions per body are looked
  up (the rest are counted ``skipped``; the backstop poll covers them), so one request costs
  a bounded number of queries. A verified subscription is ``heard`` and its account handed
  to :meth:`syncd.push.Hints.accounts_changed`; the answer is 202 within milliseconds (Graph
  wants 2xx within 3 s and queues nothing itself).
* **Lifecycle events** (same checks): ``reauthorizationRequired`` brings the channel's
  stored expiry forward to :data:`REAUTHORIZE_WITHIN` from now (never later than it was),
  so the keeper, which renews a channel that close to its end, renews it in place (a PATCH
  also reauthorizes) at the cycle the hint asks for;
  ``subscriptionRemoved`` degrades the channel (polled at the normal interval until the
  keeper makes a new one); ``missed`` only asks for a cycle. Each also hints the account:
  the cycle reads what changed with delta.

Answers: an unknown subscription is counted ``unknown_channel`` and answered 202 with no
work (an old subscription of ours, or another app's on the same address: Graph would only
retry a refusal). A known subscription with the wrong or no ``clientState`` is counted
``forged`` and makes no cycle. A body whose every item is forged is answered 403: Graph
always sends the ``clientState`` it was given, so such a body is not Graph's and the sender
learns it was refused; a body with any genuine or unknown item is answered 202, so Graph
does not post its genuine items again. A body that is not a notification collection is 400
``malformed``.
"""

from __future__ import annotations

import logging
import re
import threading
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs

from syncd.http.router import Request, Response, Route
from syncd.push import Hints
from syncd.safe_json import loads, usable_id
from syncd.store.base import utcnow
from syncd.store.channels import ChannelRow, ChannelStore

log = logging.getLogger("syncd.http")

PATH = "/hooks/graph"
LIFECYCLE_PATH = "/hooks/graph/lifecycle"
MAX_TOKEN_CHARS = 1024  # Graph's tokens are about 100 characters
MAX_CHANNELS = 100  # subscriptions looked up per body
MAX_STATE_CHARS = 256  # we send 128 at most
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
REAUTHORIZE_WITHIN = timedelta(minutes=10)
LIFECYCLE_EVENTS = ("reauthorizationRequired", "subscriptionRemoved", "missed")


class GraphHook:
    """Both endpoints; ``counts`` has ``handshake``, ``bad_handshake``, ``accepted`` (items
    of verified subscriptions), ``unknown_channel``, ``forged``, ``malformed`` (bodies and
    items that are not notifications), ``skipped`` and one ``lifecycle <event>`` per
    verified lifecycle event."""

    def __init__(self, channels: ChannelStore, hints: Hints) -> None:
        self.channels, self.hints = channels, hints
        self.counts: Counter[str] = Counter()
        self._lock = threading.Lock()

    def route(self) -> Route:
        return Route(PATH, self.handle, methods=("POST",))

    def lifecycle_route(self) -> Route:
        return Route(LIFECYCLE_PATH, self.handle_lifecycle, methods=("POST",))

    def handle(self, request: Request) -> Response:
        return self._answer(request, lifecycle=False)

    def handle_lifecycle(self, request: Request) -> Response:
        return self._answer(request, lifecycle=True)

    # --- one request ---------------------------------------------------------------------

    def _answer(self, request: Request, *, lifecycle: bool) -> Response:
        token = _validation_token(request.query)
        if token is not None:
            return self._handshake(token)
        items = _items(request.body)
        if items is None:
            return self._count({"malformed": 1}, Response.text(400, "not a Graph notification"))
        tally: Counter[str] = Counter()
        verified = self._verify(items, tally)
        if tally["malformed"] == len(items):
            return self._count(tally, Response.text(400, "not a Graph notification"))
        now = utcnow()
        accounts: set[str] = set()
        for row, events in verified:
            if lifecycle:
                for event in events:
                    tally[f"lifecycle {event}"] += 1
                    self._lifecycle(row, event, now)
            else:
                self.channels.heard(str(row.channel_id), now=now)
            accounts.add(row.account)
        if accounts:
            self.hints.accounts_changed(accounts)
        if tally["forged"] and not (tally["accepted"] or tally["unknown_channel"]
                                    or tally["skipped"]):
            self._warn_forged(request)
            return self._count(tally, Response.text(403))
        return self._count(tally, Response.text(202))

    def _handshake(self, token: str) -> Response:
        if not token or len(token) > MAX_TOKEN_CHARS or _CONTROL.search(token):
            return self._count({"bad_handshake": 1}, Response.text(400, "bad validationToken"))
        return self._count({"handshake": 1}, Response(
            200, token.encode("utf-8"), content_type="text/plain; charset=utf-8",
            headers=(("X-Content-Type-Options", "nosniff"),)))

    def _verify(self, items: list[Any], tally: Counter[str]
                ) -> list[tuple[ChannelRow, list[str]]]:
        """The verified subscriptions of ``items``, each with its lifecycle events."""
        groups: dict[tuple[str, str | None], list[str]] = {}
        counted: dict[tuple[str, str | None], int] = {}
        for item in items:
            key = _key(item)
            if key is None:
                tally["malformed"] += 1
                continue
            if key not in groups and len(groups) >= MAX_CHANNELS:
                tally["skipped"] += 1
                continue
            events = groups.setdefault(key, [])
            counted[key] = counted.get(key, 0) + 1
            event = item.get("lifecycleEvent")
            if isinstance(event, str) and event in LIFECYCLE_EVENTS and event not in events:
                events.append(event)
        found: list[tuple[ChannelRow, list[str]]] = []
        for (channel_id, state), events in groups.items():
            checked = self.channels.check(channel_id, state)
            if checked.row is not None:
                tally["accepted"] += counted[(channel_id, state)]
                found.append((checked.row, events))
            elif not checked.known:
                tally["unknown_channel"] += counted[(channel_id, state)]
            else:
                tally["forged"] += counted[(channel_id, state)]
        return found

    def _lifecycle(self, row: ChannelRow, event: str, now: datetime) -> None:
        if event == "reauthorizationRequired":
            # Due now, but not yet expired: the keeper renews it in place (a PATCH, which
            # also reauthorizes) at the cycle the hint asks for.
            due = now + REAUTHORIZE_WITHIN
            if row.expires_at is not None:
                due = min(due, _aware(row.expires_at))
            self.channels.extend(row.account, due)
        elif event == "subscriptionRemoved":
            self.channels.degrade(row.account, "Graph removed the subscription")
        # missed: the hint alone (the cycle reads the changes with delta)

    def _warn_forged(self, request: Request) -> None:
        with self._lock:
            first = self.counts["forged"] == 0
        # Said once at warning level: a flood of forgeries must not flood the log.
        log.log(logging.WARNING if first else logging.DEBUG,
                "refused a %s delivery with a wrong clientState (from %s)", PATH,
                request.remote or "?")

    def _count(self, tally: Counter[str] | dict[str, int], response: Response) -> Response:
        with self._lock:
            self.counts.update({k: v for k, v in tally.items() if v})
        return response


def _aware(value: datetime) -> datetime:
    """A stored time as UTC (SQLite gives it back without a zone)."""
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def _validation_token(query: str) -> str | None:
    """The ``validationToken`` of a handshake (decoded), or None when there is none."""
    if "validationtoken" not in query.lower():
        return None
    for name, values in parse_qs(query, keep_blank_values=True,
                                 max_num_fields=20).items():
        if name.lower() == "validationtoken":
            return values[0] if len(values) == 1 else ""
    return None


def _items(body: bytes) -> list[Any] | None:
    """The ``value`` array of a notification collection; None when the body is not one."""
    try:
        payload = loads(body)
    except (ValueError, UnicodeDecodeError):
        return None
    value = payload.get("value") if isinstance(payload, dict) else None
    return value if isinstance(value, list) and value else None


def _key(item: Any) -> tuple[str, str | None] | None:
    """(subscriptionId, clientState) of one item; None when it is not a notification."""
    if not isinstance(item, dict):
        return None
    sub_id, state = item.get("subscriptionId"), item.get("clientState")
    if not isinstance(sub_id, str) or not usable_id(sub_id) or len(sub_id) > 200:
        return None
    if state is not None and not (isinstance(state, str) and len(state) <= MAX_STATE_CHARS):
        state = ""  # cannot be ours: verified (and counted) as a wrong clientState
    return str(sub_id), state

