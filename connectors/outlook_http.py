"""Microsoft Graph over one keep-alive ``requests.Session``: limits, retries, errors.

Three things live here so that the connector only speaks in events:

* **The error table** (failure mode 23): :data:`GRAPH_STATUS`, Graph's rows of the status
  table every transport shares (:class:`syncd.errors.StatusTable`), maps an HTTP status and
  a Graph error code to what syncd does next; :meth:`GraphResponse.error` reads it.
* **Mailbox limits** (failure mode 14): Outlook allows 4 concurrent requests per app and
  mailbox, inside ``$batch`` too, and 10,000 requests in 10 minutes. :class:`MailboxGate`
  (one per mailbox per process) never lets this process exceed the 4, and after a 429
  lets nothing through to that mailbox before ``Retry-After`` has passed.
  :class:`MailboxSlots` paces the mailbox's requests in 10 minutes on a send line (and,
  in the same take, the app registration's: Graph's 2,000 requests a second for all its
  mailboxes), records a ``Retry-After`` there, and takes each request's slots there:
  with several replicas the lines and slots are in the database, so all of them
  together stay at 4, under :data:`MAILBOX_REQUESTS` and under
  :data:`APP_REQUESTS_PER_SECOND`; a single process keeps the same lines and slots in
  memory (:mod:`connectors.local_limits`), so it is paced alike. Clock and sleep are
  injectable.
* **Retries** (failure mode 15): 429 is retried for every method, because a throttled
  request was refused before it ran; 5xx and network errors only for GET and DELETE.
  A create is never re-sent blindly: it fails as :class:`~syncd.errors.Transient`, and the
  engine looks for it (``find``) before it sends it again (its transactionId makes even a
  re-send harmless).

Every request carries ``Prefer: IdType="ImmutableId"`` (failure mode 9), the body-text and
UTC preferences, and the bearer token; nothing here logs a body, a header or a token.
Every answer is read at most to :data:`connectors.answer_caps.MAX_ANSWER_BYTES` (past it
the request fails as :class:`~syncd.errors.AnswerTooLarge`). On the process's session a
request goes on its plain keep-alive connections where it can
(:meth:`connectors.http_pool.ApiSession.exchange`), else through requests, streamed.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from typing import Any, Protocol
from urllib.parse import quote, urlencode, urlsplit

import requests

from connectors.answer_caps import MAX_ANSWER_BYTES, read_capped
from connectors.base import SharedLimits
from connectors.http_pool import ApiSession
from connectors.local_limits import local_limits
from syncd.errors import (
    AccountWide,
    AnswerTooLarge,
    AuthFailed,
    ConnectorError,
    CursorExpired,
    EtagMismatch,
    EventGone,
    ItemRejected,
    RateLimited,
    Retriable,
    StatusTable,
    Transient,
    Unreachable,
    bounded_pause,
    rule,
)
from syncd.network import network_reason
from syncd.safe_json import loads
from syncd.telemetry import request_answered

log = logging.getLogger("syncd.outlook")

MAILBOX_CONCURRENCY = 4
#: Graph's requests per app and mailbox in :data:`MAILBOX_WINDOW` seconds is 10,000 (it
#: cannot be raised); syncd (one process, or its replicas together) counts up to this
#: many, leaving the rest for the difference between when syncd sends and when Graph
#: counts (and a mailbox's other clients of the same app).
MAILBOX_REQUESTS = 9_000
MAILBOX_WINDOW = 600.0
#: Requests a mailbox idle for a while may send at once before the line paces them (a
#: first sync's writes): a tenth of the window's budget. The pace is then
#: ``MAILBOX_WINDOW / (MAILBOX_REQUESTS - burst - MAX_BATCH)``, about 13 a second, so
#: that no 10 minutes hold more than MAILBOX_REQUESTS (see :mod:`syncd.store.limits`).
MAILBOX_BURST = 900
#: Graph's requests a second per app registration, all its mailboxes together, is 2,000
#: (its "global" limit); syncd (one process, or its replicas together) counts up to this
#: many on one line per app (:meth:`MailboxSlots.pace`), in the ratio of the mailbox's.
APP_REQUESTS_PER_SECOND = 1_800
APP_WINDOW = 1.0
MAX_BATCH = 20
MAX_ATTEMPTS = 4
MAX_BATCH_ROUNDS = 12
DEFAULT_RETRY_AFTER = 5.0
RETRYABLE_STATUS = frozenset({500, 502, 503, 504})


# --- the error taxonomy -------------------------------------------------------------------


#: Mailbox conditions no retry can fix (twenty's MICROSOFT_PERMANENT_ACCOUNT_ERROR_CODES).
PERMANENT_ACCOUNT_CODES = frozenset(code.lower() for code in (
    "MailboxNotEnabledForRESTAPI", "MailboxNotSupportedForRESTAPI",
    "RESTAPINotEnabledForComponentSharedMailbox", "ErrorInvalidLicense",
    "ErrorNonExistentMailbox", "ErrorAccountDisabled", "ErrorOrganizationAccessBlocked",
    "ErrorInvalidUser",
))
CURSOR_CODES = frozenset({"syncstatenotfound", "resyncrequired", "syncstateinvalid"})
#: The one code that may refuse a single item rather than the account (see
#: ``OutlookCalendar._denied_item``).
ACCESS_DENIED = "erroraccessdenied"

#: Graph's own rows of the status table, checked before the rows every provider shares
#: (:data:`syncd.errors.COMMON_RULES`: 401, 404/410, 412, 429, 413/415/507). First match
#: wins, so a code outranks a generic status. An unknown answer backs off, never deletes.
GRAPH_STATUS = StatusTable(rules=(
    # The mailbox is unusable until an admin acts, whatever the status.
    rule(None, AuthFailed, *PERMANENT_ACCOUNT_CODES),
    rule(401, AuthFailed),  # a token refused outranks any code that comes with it
    rule(403, AuthFailed, ACCESS_DENIED),
    # Our transactionId was used already: possibly created by us, so read, then adopt.
    rule(None, EtagMismatch, "ErrorDuplicateTransactionId"),
    rule(409, EtagMismatch),
    rule(412, EtagMismatch),
    # The delta token expired: list the window again (a single read: the event is gone).
    rule(None, CursorExpired, *CURSOR_CODES),
    rule(410, CursorExpired),
    rule((400, 403, 405, 422), ItemRejected),
), other_4xx=Transient, retry_after=DEFAULT_RETRY_AFTER)


# --- responses ----------------------------------------------------------------------------


@dataclass
class GraphResponse:
    """One answer (outer request or ``$batch`` item), or a failure that has no answer."""

    status: int
    headers: Mapping[str, str] = field(default_factory=dict)
    body: Any = None
    failure: ConnectorError | None = None

    @property
    def ok(self) -> bool:
        """A 2xx answer that arrived."""
        return self.failure is None and 200 <= self.status < 300

    @property
    def code(self) -> str | None:
        """Graph's ``error.code``, if the body has one."""
        error = self.body.get("error") if isinstance(self.body, Mapping) else None
        code = error.get("code") if isinstance(error, Mapping) else None
        return str(code) if code else None

    def header(self, name: str) -> str | None:
        """A response header, looked up case-insensitively."""
        lowered = name.lower()
        return next((v for k, v in self.headers.items() if k.lower() == lowered), None)

    def retry_after(self) -> float | None:
        """The ``Retry-After`` pause in seconds, if one was given."""
        return parse_retry_after(self.header("Retry-After"))

    @property
    def error_class(self) -> type[ConnectorError]:
        """What this failed answer means (:data:`GRAPH_STATUS`)."""
        if self.failure is not None:
            return type(self.failure)
        return GRAPH_STATUS.error_class(self.status, self.code, self.retry_after())

    def error(self, event_id: str = "", *, in_delta: bool = False) -> ConnectorError:
        """What this failed answer means for the engine (``in_delta``: it answered a
        delta listing, where an expired token means listing again; elsewhere the event
        is gone)."""
        if self.failure is not None:
            return self.failure
        error = GRAPH_STATUS.error(self.status, code=self.code, retry_after=self.retry_after(),
                                   event_id=event_id)
        if isinstance(error, CursorExpired) and not in_delta:
            return EventGone(event_id=event_id)
        return error


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a ``Retry-After`` header (delta-seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


# --- the per-mailbox gate ------------------------------------------------------------------


class MailboxGate:
    """At most :data:`MAILBOX_CONCURRENCY` requests in flight, and nothing before a pause ends.

    Shared by every connector of this process that talks to the same mailbox, so two
    accounts on one mailbox cannot add up to more than the limit.
    """

    def __init__(self, limit: int = MAILBOX_CONCURRENCY) -> None:
        self.limit = limit
        self.in_flight = 0
        self.not_before = 0.0  # in the clock of the connector that set it
        self._cond = threading.Condition()

    def defer(self, until: float) -> None:
        """Let nothing through before ``until`` (a 429's Retry-After)."""
        with self._cond:
            self.not_before = max(self.not_before, until)

    def acquire(self, permits: int, *, clock: Callable[[], float],
                sleep: Callable[[float], None], max_wait: float) -> int:
        """Take ``permits`` slots, sleeping out any pause; returns the slots taken.

        Raises:
            RateLimited: when the pause is longer than ``max_wait``; nothing is sent.
        """
        permits = max(1, min(permits, self.limit))
        while True:
            with self._cond:
                wait = self.not_before - clock()
                if wait <= 0 and self.in_flight + permits <= self.limit:
                    self.in_flight += permits
                    return permits
                if wait <= 0:
                    # Another thread holds the slots; real time is right here.
                    self._cond.wait(timeout=0.05)
                    continue
            if wait > max_wait:
                raise RateLimited(retry_after=wait, reason="the mailbox asked for a pause")
            sleep(wait)

    def release(self, permits: int) -> None:
        """Give back slots taken by :meth:`acquire`."""
        with self._cond:
            self.in_flight = max(0, self.in_flight - permits)
            self._cond.notify_all()


#: Seconds a replica may hold a shared slot: longer than any request lasts (its timeouts
#: are 10 s to connect and 30 s between bytes), short enough that slots a killed replica
#: held come free soon.
SLOT_HOLD = 120.0


class MailboxSlots:
    """The mailbox's limits on a :class:`connectors.base.SharedLimits`: its requests in 10
    minutes, paced on one line before anything else (:meth:`pace`), with the pauses Graph
    asked for (:meth:`hold`); then its :data:`MAILBOX_CONCURRENCY` slots, taken after this
    process's own :class:`MailboxGate` admits a request, given back when its answer is in.
    With replicas the limits are the database's, so no more than the limit are in flight
    or sent in a window whichever replicas send them; alone, this process's own
    (:class:`connectors.local_limits.LocalLimits`), with the same arithmetic.

    With ``app``, the scope of the app registration's line, the same take also reserves
    ``app_per_second`` requests a second there (every mailbox of the app), in the same
    statement: the request goes out when both reservations have begun. That line has no
    burst, and its spacing leaves room for the batch reserved last (as a Google project's
    line), so no second of sends passes ``app_per_second``."""

    def __init__(self, limits: SharedLimits, scope: str, *,
                 clock: Callable[[], float], sleep: Callable[[float], None],
                 rng: random.Random, per_window: int = MAILBOX_REQUESTS,
                 window: float = MAILBOX_WINDOW, burst: int = MAILBOX_BURST,
                 app: str = "", app_per_second: int = APP_REQUESTS_PER_SECOND) -> None:
        self.limits = limits
        self.scope = scope
        self._clock, self._sleep, self._rng = clock, sleep, rng
        self.spacing = window / max(1, per_window - burst - MAX_BATCH)
        self.burst = burst * self.spacing
        self.app = app if app_per_second > 0 else ""
        last_batch = min(MAX_BATCH, max(1, app_per_second // 10))
        self.app_spacing = APP_WINDOW / max(1, app_per_second - last_batch)

    def pace(self, cost: int, max_wait: float) -> None:
        """Wait for ``cost`` requests' turn on the mailbox's line.

        Raises:
            RateLimited: the turn is more than ``max_wait`` seconds away (a pause Graph
                asked for); nothing is sent.
        """
        cost = max(1, cost)
        also = ((self.app, cost * self.app_spacing),) if self.app else ()
        wait = self.limits.pace(self.scope, cost * self.spacing, burst=self.burst, also=also)
        if wait > max_wait:
            raise RateLimited(retry_after=wait, reason="the mailbox asked for a pause")
        if wait > 0:
            self._sleep(wait)

    def hold(self, seconds: float) -> None:
        """No replica sends to the mailbox for ``seconds`` (Graph's Retry-After)."""
        self.limits.hold(self.scope, seconds, burst=self.burst)

    def take(self, permits: int, max_wait: float) -> str:
        """Take ``permits`` slots, waiting while other replicas hold them.

        Raises:
            RateLimited: none came free within ``max_wait`` seconds; nothing is sent.
        """
        give_up = self._clock() + max_wait
        pause = 0.02
        while True:
            ticket = self.limits.take_slots(self.scope, MAILBOX_CONCURRENCY, permits,
                                            SLOT_HOLD)
            if ticket is not None:
                return ticket
            # Polled, with jitter so that replicas waiting for one mailbox do not ask in
            # step; a slot is held for one request, so one comes free soon.
            nap = pause * (0.5 + self._rng.random())
            if self._clock() + nap > give_up:
                raise RateLimited(retry_after=nap,
                                  reason="the mailbox's requests in flight are at the limit")
            self._sleep(nap)
            pause = min(pause * 2, 0.5)

    def give_back(self, ticket: str) -> None:
        self.limits.give_back(self.scope, ticket)


_gates: dict[str, MailboxGate] = {}
_gates_lock = threading.Lock()


def gate_for(base_url: str, mailbox: str) -> MailboxGate:
    """The process-wide gate of one mailbox on one Graph endpoint."""
    key = f"{urlsplit(base_url).netloc.lower()}|{mailbox.lower()}"
    with _gates_lock:
        return _gates.setdefault(key, MailboxGate())


# --- the transport ------------------------------------------------------------------------


class TokenSource(Protocol):
    """Where bearer tokens come from (see :mod:`connectors.outlook_auth`)."""

    def token(self) -> str:
        """A valid access token; raises AuthFailed or Transient."""

    def invalidate(self) -> None:
        """Forget the current token (after a 401)."""


@dataclass(frozen=True)
class BatchItem:
    """One request inside a ``$batch``: a URL relative to the version root."""

    method: str
    url: str
    body: Mapping[str, Any] | None = None
    headers: Mapping[str, str] = field(default_factory=dict)

    @property
    def idempotent(self) -> bool:
        """Whether sending it twice is harmless (so a 5xx may be retried)."""
        return self.method in ("GET", "DELETE")


def with_query(path: str, params: Mapping[str, str]) -> str:
    """``path?query`` with OData's ``$`` and punctuation readable, spaces encoded."""
    if not params:
        return path
    query = urlencode(dict(params), safe="$'(),:/@", quote_via=quote)
    return f"{path}?{query}"


class GraphTransport:
    """Requests to one mailbox through the gate, with retries and token refresh."""

    def __init__(self, session: requests.Session, base_url: str, tokens: TokenSource, *,
                 mailbox: str, prefer: str, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep, max_wait: float = 60.0,
                 timeout: tuple[float, float] = (10.0, 30.0),
                 rng: random.Random | None = None, limits: SharedLimits | None = None,
                 app: str = "", per_window: int = MAILBOX_REQUESTS,
                 window: float = MAILBOX_WINDOW,
                 app_per_second: int = APP_REQUESTS_PER_SECOND) -> None:
        """``limits``: with several replicas, the database they count the mailbox's
        requests in flight and in 10 minutes in, and the app's requests a second (``app``,
        the client id, is part of what Graph counts them for); without, this process
        counts them alike in memory (:func:`connectors.local_limits.local_limits` on
        ``clock``). ``per_window`` requests in ``window`` seconds: Graph's 10 minutes
        (shorter in tests); ``app_per_second``: the app's line (lower in tests; 0: not
        counted, their control)."""
        self.session = session
        self.base_url = base_url.rstrip("/")
        self.tokens = tokens
        self.prefer = prefer
        self.clock = clock
        self.sleep = sleep
        self.max_wait = max_wait
        self.timeout = timeout
        self.gate = gate_for(self.base_url, mailbox)
        self._rng = rng or random.Random()
        self._origin = urlsplit(self.base_url)[:2]
        host = urlsplit(self.base_url).netloc.lower()
        self.slots = MailboxSlots(
            local_limits(clock) if limits is None else limits,
            f"graph:{host}|{app}|{mailbox.lower()}", clock=clock, sleep=sleep,
            rng=self._rng, per_window=per_window, window=window,
            burst=min(MAILBOX_BURST, per_window // 10), app=f"graph-app:{host}|{app}",
            app_per_second=app_per_second)

    def _url(self, url: str) -> str:
        full = url if url.startswith(("http://", "https://")) else self.base_url + url
        # nextLink/deltaLink are followed verbatim, but our token only ever goes to Graph.
        if urlsplit(full)[:2] != self._origin:
            raise Transient(reason="Graph sent a link to another host; not followed")
        return full

    def _backoff(self, attempt: int, hint: float | None = None) -> None:
        delay = hint if hint is not None else self._rng.uniform(0, min(30.0, 2.0 ** attempt))
        self.sleep(delay)

    def _throttled(self, response: GraphResponse) -> None:
        """A 429 (or a 503 with Retry-After): nothing more to the mailbox until its pause
        ends, from this process, and with a Retry-After from any replica."""
        asked = response.retry_after()
        pause = bounded_pause(DEFAULT_RETRY_AFTER if asked is None else asked)
        self.gate.defer(self.clock() + pause)
        if asked is not None:
            try:
                self.slots.hold(pause)
            except Exception:  # the others learn it from their own 429; this one waits
                log.warning("the mailbox's pause could not be shared with the other "
                            "replicas", exc_info=True)

    def request(self, method: str, url: str, *, json: Any = None,
                headers: Mapping[str, str] | None = None, idempotent: bool | None = None,
                permits: int = 1, cost: int = 1) -> GraphResponse:
        """Send one request; retries what is safe to retry, returns the final answer.
        ``permits``: the slots it takes (a batch's chains); ``cost``: the requests Graph
        counts (a batch's items).

        Raises:
            Transient: network failure.
            AnswerTooLarge: the answer passed :data:`~connectors.answer_caps.MAX_ANSWER_BYTES`
                (never retried: nothing of it is used).
            RateLimited: the mailbox's pause is longer than ``max_wait``.
            AuthFailed: the token source refused (revoked, misconfigured).
        """
        full = self._url(url)
        safe = method in ("GET", "DELETE") if idempotent is None else idempotent
        refreshed = False
        response = GraphResponse(0)
        for attempt in range(MAX_ATTEMPTS):
            token = self.tokens.token()
            sent = {"Authorization": f"Bearer {token}", "Prefer": self.prefer,
                    "Accept": "application/json", **(headers or {})}
            self.slots.pace(cost, self.max_wait)  # its turn in 10 minutes, before any slot
            taken = self.gate.acquire(permits, clock=self.clock, sleep=self.sleep,
                                      max_wait=self.max_wait)
            ticket = None
            try:
                ticket = self.slots.take(taken, self.max_wait)
                started = time.monotonic()
                status, answered, content = self._exchange(method, full, json, sent)
            except requests.RequestException as exc:
                request_answered("outlook", 0)
                log.debug("%s %s failed: %s", method, _path(full), type(exc).__name__)
                if safe and attempt + 1 < MAX_ATTEMPTS:
                    self._backoff(attempt)
                    continue
                where = urlsplit(full)
                raise Unreachable(url=f"{where.scheme}://{where.netloc}/",
                                  reason=network_reason(exc)) from None
            finally:
                if ticket is not None:
                    self.slots.give_back(ticket)
                self.gate.release(taken)
            response = _response(status, answered, content)
            request_answered("outlook", response.status)
            if log.isEnabledFor(logging.DEBUG):  # (its arguments cost more than the call)
                log.debug("%s %s -> %s (%.0f ms)", method, _path(full), response.status,
                          (time.monotonic() - started) * 1000)
            if response.status == 401 and not refreshed:
                self.tokens.invalidate()  # an expired token: one fresh try, then AuthFailed
                refreshed = True
                continue
            if response.status == 429 and attempt + 1 < MAX_ATTEMPTS:
                self._throttled(response)  # refused before it ran: safe for any method
                continue
            if response.status in RETRYABLE_STATUS and safe and attempt + 1 < MAX_ATTEMPTS:
                if response.status == 503 and response.retry_after() is not None:
                    self._throttled(response)
                self._backoff(attempt, response.retry_after())
                continue
            return response
        return response

    def _exchange(self, method: str, url: str, json: Any, headers: Mapping[str, str]
                  ) -> tuple[int, Mapping[str, str], bytes]:
        """One request and its answer read under the cap: on the process's plain
        connections where it can go there (:meth:`connectors.http_pool.ApiSession.exchange`),
        else through the session, streamed so that a body past the cap is never read."""
        if isinstance(self.session, ApiSession):
            reply = self.session.exchange(method, url, headers=headers, json=json,
                                          timeout=self.timeout, limit=MAX_ANSWER_BYTES)
            if reply is not None:
                return reply.status, reply.headers, reply.content
        with self.session.request(method, url, json=json, headers=headers,
                                  timeout=self.timeout, stream=True) as raw:
            try:
                return raw.status_code, raw.headers, read_capped(raw, url)
            except AnswerTooLarge:
                request_answered("outlook", raw.status_code)
                raise

    def batch(self, items: Sequence[BatchItem]) -> list[GraphResponse]:
        """Run up to :data:`MAX_BATCH` items as ``$batch``; one answer per item, in order.

        Items run in :data:`MAILBOX_CONCURRENCY` ``dependsOn`` chains, so Exchange never
        runs more than that at once. Items the server did not run (424 after a failed
        dependency, 429) go out again in a following round; so do GET/DELETE items that
        met a 5xx.
        """
        answers: list[GraphResponse] = [GraphResponse(0) for _ in items]
        pending = list(range(len(items)))
        retried: dict[int, int] = {}
        for _round in range(MAX_BATCH_ROUNDS):
            if not pending:
                break
            try:
                answered = self._send_batch([items[i] for i in pending])
            except Retriable as exc:
                for i in pending:
                    answers[i] = GraphResponse(0, failure=exc)
                return answers
            again: list[int] = []
            pause: float | None = None
            for i, answer in zip(pending, answered, strict=True):
                answers[i] = answer
                if answer.status == 424:
                    again.append(i)
                elif answer.status == 429:
                    self._throttled(answer)
                    again.append(i)
                elif (answer.status in RETRYABLE_STATUS and items[i].idempotent
                      and retried.get(i, 0) < 2):
                    retried[i] = retried.get(i, 0) + 1
                    pause = max(pause or 0.0, answer.retry_after() or 1.0)
                    again.append(i)
            if pause is not None:
                self._backoff(0, pause)
            pending = again
        return answers

    def _send_batch(self, items: Sequence[BatchItem]) -> list[GraphResponse]:
        width = min(MAILBOX_CONCURRENCY, len(items))
        requests_json = []
        for k, item in enumerate(items):
            entry: dict[str, Any] = {"id": str(k), "method": item.method, "url": item.url,
                                     "headers": {"Prefer": self.prefer, **item.headers}}
            if item.body is not None:
                entry["body"] = item.body
                entry["headers"]["Content-Type"] = "application/json"
            if k >= width:
                entry["dependsOn"] = [str(k - width)]
            requests_json.append(entry)
        idempotent = all(i.idempotent for i in items)
        outer = self.request("POST", "/$batch", json={"requests": requests_json},
                             idempotent=idempotent, permits=width, cost=len(items))
        if outer.status == 413 and len(items) > 1:
            return [self._send_one(item) for item in items]  # too big together: one by one
        if outer.ok and outer.body is None and idempotent and len(items) > 1:
            # One item's body made the whole answer unreadable (nested past the parser's
            # stack): alone, only that item's answer is lost.
            return [self._send_one(item) for item in items]
        if outer.status != 200 or not isinstance(outer.body, Mapping):
            if outer.status == 401:
                raise outer.error()
            failure = envelope_failure(outer, idempotent=idempotent)
            return [GraphResponse(outer.status, failure=failure) for _ in items]
        by_id = {str(r.get("id")): r for r in outer.body.get("responses", [])
                 if isinstance(r, Mapping)}
        out = []
        for k in range(len(items)):
            raw = by_id.get(str(k))
            if raw is None:
                out.append(GraphResponse(0, failure=Transient(
                    reason="the batch answer left an item out")))
                continue
            out.append(GraphResponse(int(raw.get("status", 0)), dict(raw.get("headers") or {}),
                                     raw.get("body")))
        return out


    def _send_one(self, item: BatchItem) -> GraphResponse:
        """One batch item as its own request (its answer then speaks for it alone)."""
        try:
            return self.request(item.method, item.url, json=item.body,
                                headers=dict(item.headers), idempotent=item.idempotent)
        except Retriable as exc:
            return GraphResponse(0, failure=exc)


def envelope_failure(outer: GraphResponse, *, idempotent: bool) -> ConnectorError:
    """What a failed ``$batch`` envelope means for each item in it.

    The envelope's status is about the batch, not about any item: a 404 or 400 there must
    not read as "gone" or "refused" for every item. Only account-wide answers (token,
    mailbox, throttling) carry over; anything else is a temporary failure of each item.
    """
    if outer.status:
        error = outer.error()
        if isinstance(error, AccountWide | RateLimited):
            return error
    reason = " ".join(filter(None, ("batch: HTTP", str(outer.status), outer.code)))
    return Transient(reason=reason, status=outer.status)


def _response(status: int, headers: Mapping[str, str], content: bytes) -> GraphResponse:
    body: Any = None
    if content:
        try:
            body = loads(content)  # nesting past the parser's stack is read too
        except ValueError:
            body = None
    # the case-insensitive headers as they are: copying them is work an answer whose
    # headers nobody reads (most) need not do
    return GraphResponse(status, headers, body)


def _path(url: str) -> str:
    """A URL without its query, for logs: delta tokens and filters stay out of them."""
    return urlsplit(url).path
