"""How the Google connector talks HTTP: error table, request budget, retries and batches.

Three rules from the failure catalogue shape this module:

* One table (:data:`GOOGLE_STATUS`, Google's rows of :class:`syncd.errors.StatusTable`)
  decides what every (status, reason) means for the engine (failure mode 23);
  :func:`error_for` is the only place that turns a reply into an error.
* Only requests that are safe to send twice are sent again after an ambiguous failure
  (a 5xx or a lost connection may have been applied): reads, inserts with our client id,
  and conditional patches and deletes (failure mode 15). Throttling answers (403
  ``rateLimitExceeded``/``userRateLimitExceeded``, 429) were refused before any work, so
  they are always retried, with full-jitter exponential backoff honouring ``Retry-After``.
* A client-side budget keeps one user under Google's per-user minute quota, so a backfill
  is paced instead of punished (failure modes 7 and 14): this process's own
  (:class:`RequestBudget`), or, with several replicas, one in the database that all of
  them spend from (:class:`SharedRequestBudget`). ``quotaExceeded`` is never retried: it
  is an account-wide cooldown.

Every batch part counts against the quota on its own, so the budget is charged per part.
A failed batch envelope is not a per-item answer: only its throttling and account-wide
refusals are passed on to the parts; any other status (a 404 or 400 of the batch) makes
each part a server failure, never "gone" or "rejected" (``Reply.envelope``), and a 413
sends the parts one by one.
"""

from __future__ import annotations

import http.client
import json
import logging
import random
import threading
import time
from collections import deque
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, replace
from typing import Any, Protocol

import httplib2
from google.auth.exceptions import GoogleAuthError
from googleapiclient.errors import BatchError, HttpError
from googleapiclient.http import BatchHttpRequest

from connectors.base import SharedLimits
from connectors.google_auth import auth_error
from syncd.errors import (
    AccountCooldown,
    AccountWide,
    AuthFailed,
    ConnectorError,
    CursorExpired,
    ItemRejected,
    QuotaCooldown,
    RateLimited,
    StatusTable,
    Transient,
    bounded_pause,
    rule,
)
from syncd.network import network_reason
from syncd.telemetry import request_answered

log = logging.getLogger("syncd.google")

JsonDict = dict[str, Any]
#: How long an account rests after its first 403 quotaExceeded; Google's lockout lasts
#: hours, so each one met again before a cycle succeeds doubles the rest, up to a day
#: (:func:`syncd.store.status.quota_rest`).
QUOTA_COOLDOWN_SECONDS = 3600.0


#: Google's own rows of the status table, checked before the rows every provider shares
#: (:data:`syncd.errors.COMMON_RULES`: 401, 404/410, 412, 429, 413/415/507). An unknown
#: 4xx is this item's refusal (quarantined, never deleted); anything else is a server
#: failure.
GOOGLE_STATUS = StatusTable(rules=(
    # Throttling answers were refused before any work: always retried.
    rule(403, RateLimited, "rateLimitExceeded", "userRateLimitExceeded"),
    # Calendar usage limits: the whole account rests, longer each time in a row.
    rule(403, QuotaCooldown, "quotaExceeded", "dailyLimitExceeded"),
    # The grant lacks the scope, or the credentials are refused: signing in again fixes it.
    rule(403, AuthFailed, "insufficientPermissions", "authError"),
    # The Calendar API is off for the project, or a Workspace policy bars the app: the same
    # for every item, and fixed by an admin, not by signing in again. A cooldown stops the
    # account and retries it on its own (one request an hour) once the admin has acted.
    rule(403, AccountCooldown, "accessNotConfigured", "domainPolicy"),
    rule(403, ItemRejected),  # forbiddenForNonOrganizer, requiredAccessLevel, ...
    # The client-chosen id is taken: the connector reads it, then adopts or restores.
    rule(409, ItemRejected, "duplicate"),
    # Another part of the batch wrote the same event: refused before any work, retried.
    rule(409, Transient),
    rule(410, CursorExpired, "fullSyncRequired", "updatedMinTooLongAgo"),
), retry_after=60.0, cooldown=QUOTA_COOLDOWN_SECONDS)
#: What a failed batch envelope may say about its parts; anything else is a server failure.
ENVELOPE_ERRORS = (AccountWide, RateLimited)


@dataclass(frozen=True)
class Reply:
    """The outcome of one request: a 2xx with its JSON body, or a failure."""

    status: int
    body: JsonDict | None = None
    reason: str = ""
    retry_after: float | None = None
    #: The batch envelope failed with ``status``; this part got no answer of its own.
    envelope: bool = False

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    @property
    def error_class(self) -> type[ConnectorError] | None:
        """What the failure means (:data:`GOOGLE_STATUS`); None for a success."""
        if self.ok:
            return None
        cls = GOOGLE_STATUS.error_class(self.status, self.reason, self.retry_after)
        if self.envelope and not issubclass(cls, ENVELOPE_ERRORS):
            # A 404 or 400 of the batch says nothing about the part (failure mode 23):
            # it is a server failure of the part, never "gone" or "rejected".
            return Transient
        return cls

    @property
    def pause(self) -> float | None:
        """The pause a throttling answer asked for (a 403 rate limit, a 429 or a 503 with
        ``Retry-After``), bounded by :data:`~syncd.errors.MAX_PAUSE_SECONDS`; None for
        any other answer."""
        if self.retry_after is None or self.ok:
            return None
        if self.status in (429, 503) or self.error_class is RateLimited:
            return bounded_pause(self.retry_after)
        return None

    @property
    def duplicate(self) -> bool:
        """A create's client-chosen id is taken (409 duplicate)."""
        return self.status == 409 and self.reason == "duplicate"

    @property
    def refused_before_work(self) -> bool:
        """Throttled, or in conflict with another part of the batch: safe to send again."""
        cls = self.error_class
        return cls is RateLimited or (cls is Transient and self.status == 409
                                      and not self.envelope)


def error_for(reply: Reply, *, event_id: str = "") -> ConnectorError:
    """The engine-facing error of a failed reply (see :data:`GOOGLE_STATUS`).

    Reasons carry only the status and Google's reason code, never a message: messages
    can echo request content, and errors end up in logs and the status table.

    Args:
        reply: a failed reply.
        event_id: the event concerned, for the per-item errors.
    """
    if reply.envelope and reply.error_class is Transient:
        what = f"batch HTTP {reply.status}" + (f" {reply.reason}" if reply.reason else "")
        return Transient(reason=what, status=reply.status)
    return GOOGLE_STATUS.error(reply.status, code=reply.reason or None,
                               retry_after=reply.retry_after, event_id=event_id)


def _retry_after(value: object) -> float | None:
    try:
        return max(0.0, float(str(value))) if value is not None else None
    except ValueError:
        return None  # an HTTP-date; the backoff schedule applies instead


def _success(body: Any) -> Reply:
    """A 2xx answer: its JSON object, or nothing (a delete); anything else is unreadable.

    The client library hands over the raw text when a body is not JSON; a write read back
    from it would be an event without an id.
    """
    if isinstance(body, dict) or body is None or body == "":
        return Reply(200, body or None)
    return Reply(0, reason="unreadable reply (not a JSON object)")


def reply_from_http_error(exc: HttpError) -> Reply:
    """A :class:`Reply` from the client library's error (top-level or a batch part)."""
    reason = ""
    try:
        data = json.loads(exc.content)
        errors = data.get("error", {}).get("errors") or []
        reason = str(errors[0].get("reason", "")) if errors else ""
        reason = reason or str(data.get("error", {}).get("status", ""))
    except (ValueError, TypeError, AttributeError, IndexError, KeyError, RecursionError):
        pass  # an error body that is not Google's shape (a proxy's page): the status decides
    if len(reason) > 100:
        reason = reason[:100]  # reasons are short words; this one will only be logged
    return Reply(int(exc.resp.status), None, reason, _retry_after(exc.resp.get("retry-after")))


# --- pacing --------------------------------------------------------------------------------------


class RequestBudget:
    """Keeps every sliding minute at or under ``per_minute`` requests, as Google counts them.

    Google's per-user quota is a sliding one-minute window, so the budget keeps a log of
    what it let out in the last ``window`` seconds and lets a request go as soon as the
    window has room for it. A burst up to the whole budget goes out at once (a first sync
    of a few hundred events is not paced at all); past that, requests wait for the oldest
    ones to leave the window. The default of 500 a minute leaves 100 of Google's 600 for
    the difference between when we send and when Google counts. The clock and sleep are
    injectable so tests never wait.
    """

    def __init__(self, per_minute: int, *, window: float = 60.0,
                 clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.per_minute = max(1, per_minute)
        self.window = window
        self._clock, self._sleep = clock, sleep
        self._log: deque[tuple[float, int]] = deque()  # (sent at, requests), oldest first
        self._in_window = 0
        self._not_before = 0.0  # a pause Google asked for ends then (this budget's clock)
        # Accounts run on a worker pool; two of them may act as the same Google user.
        self._lock = threading.Lock()

    @property
    def capacity(self) -> int:
        """The most requests one :meth:`take` can spend: a batch is never bigger."""
        return self.per_minute

    def _expire(self, now: float) -> None:
        while self._log and self._log[0][0] + self.window <= now:
            self._in_window -= self._log.popleft()[1]

    def take(self, count: int = 1) -> None:
        """Spend ``count`` requests (at most ``capacity``), sleeping until the window has room."""
        count = min(max(count, 1), self.per_minute)
        with self._lock:
            now = self._clock()
            if self._not_before > now:  # a pause: every account of the user sits it out
                self._sleep(self._not_before - now)
                now = self._clock()
            self._expire(now)
            while self._in_window + count > self.per_minute:
                # Sleep until the oldest entry leaves the window, then look again.
                self._sleep(max(self._log[0][0] + self.window - now, 0.0))
                now = self._clock()
                self._expire(now)
            self._log.append((now, count))
            self._in_window += count

    def hold(self, seconds: float) -> None:
        """Send nothing for ``seconds`` (a Retry-After), whichever account asks."""
        with self._lock:
            self._not_before = max(self._not_before, self._clock() + bounded_pause(seconds))


class BothBudgets:
    """Two budgets a request spends from (a user's, then the project's): in this
    process alone, as :class:`SharedRequestBudget` counts both for every replica."""

    def __init__(self, user: Pacer, project: Pacer) -> None:
        self.user, self.project = user, project

    @property
    def capacity(self) -> int:
        return min(self.user.capacity, self.project.capacity)

    def take(self, count: int = 1) -> None:
        self.user.take(count)
        self.project.take(count)

    def hold(self, seconds: float) -> None:
        self.user.hold(seconds)  # the user's: Google's pause names no project


class Pacer(Protocol):
    """What a :class:`Transport` spends its requests from: :class:`RequestBudget` (this
    process alone) or :class:`SharedRequestBudget` (every replica)."""

    @property
    def capacity(self) -> int:
        """The most requests one :meth:`take` can spend: a batch is never bigger."""
        ...

    def take(self, count: int = 1) -> None:
        """Spend ``count`` requests, sleeping until they may go out."""
        ...

    def hold(self, seconds: float) -> None:
        """Google asked for a pause: no request of the user goes out for ``seconds``,
        from any account (and, shared, from any replica)."""
        ...


#: The most parts of a batch (the Transport's default); a shared budget keeps room for one.
BATCH_PARTS = 50


class SharedRequestBudget:
    """One Google user's per-minute budget, and its project's, shared by every replica
    through the database.

    The user's requests queue on one send line (:meth:`SharedLimits.pace`, one statement
    per request or batch): each take reserves ``count`` slots ``spacing`` seconds apart
    and goes out when its reservation begins. Any ``window`` of send times then holds at
    most ``window / spacing`` slots plus the batch reserved last, so with
    ``spacing = window / (per_minute - capacity)`` and batches of at most ``capacity``
    parts no sliding minute passes ``per_minute``, however many replicas send. Unlike
    :class:`RequestBudget` there is no first burst: the line is paced from the start
    (a first sync of 500 requests takes a little over a minute instead of going out at
    once).

    With ``project``, the same take also reserves on the project's line (all its users'
    requests, ``project_per_minute``), in the same statement: the request goes out when
    both reservations have begun. A pause Google asks for (:meth:`hold`) moves the
    user's line, so no replica's next request for the user goes out before it ends, and
    this process's requests already given a time wait for it too.
    """

    def __init__(self, limits: SharedLimits, user: str, per_minute: int, *,
                 project: str = "", project_per_minute: int = 0,
                 window: float = 60.0, sleep: Callable[[float], None] = time.sleep,
                 clock: Callable[[], float] = time.monotonic) -> None:
        per_minute = max(1, per_minute)
        self.limits = limits
        self.scope = f"google:{user.lower()}"
        cap = min(per_minute, project_per_minute) if project else per_minute
        self._capacity = max(1, min(BATCH_PARTS, cap // 10))
        self.spacing = window / max(1, per_minute - self._capacity)
        self.project = f"google-project:{project}" if project else ""
        self.project_spacing = (window / max(1, project_per_minute - self._capacity)
                                if project else 0.0)
        self._sleep, self._clock = sleep, clock

    @property
    def capacity(self) -> int:
        return self._capacity

    def take(self, count: int = 1) -> None:
        count = min(max(count, 1), self._capacity)
        also = ((self.project, count * self.project_spacing),) if self.project else ()
        wait = self.limits.pace(self.scope, count * self.spacing, also=also)
        if wait > 0:
            self._sleep(wait)
        # A pause this process heard of while the request waited for its turn.
        paused = _paused_for(self.scope, self._clock())
        if paused > 0:
            self._sleep(paused)

    def hold(self, seconds: float) -> None:
        seconds = bounded_pause(seconds)
        _pause_here(self.scope, self._clock() + seconds)
        try:
            self.limits.hold(self.scope, seconds)
        except Exception:  # the others learn it from their own answer; this one waits
            log.warning("google: the user's pause could not be shared with the other "
                        "replicas", exc_info=True)


_paused: dict[str, float] = {}  # scope -> a pause's end, by the monotonic clock
_paused_lock = threading.Lock()


def _pause_here(scope: str, until: float) -> None:
    with _paused_lock:
        _paused[scope] = max(_paused.get(scope, 0.0), until)


def _paused_for(scope: str, now: float) -> float:
    """Seconds left of a pause this process heard of for ``scope`` (0.0: none)."""
    with _paused_lock:
        until = _paused.get(scope, 0.0)
        if until and until <= now:
            del _paused[scope]  # bounded: a scope stays only while it is paused
        return max(0.0, until - now)


_shared: dict[tuple[str, int], RequestBudget] = {}
_shared_lock = threading.Lock()


def shared_budget(user: str, per_minute: int) -> RequestBudget:
    """The process-wide budget of one Google user (or, named ``project:<id>``, of one
    project).

    Google counts the quota per user, and a connector lives for one cycle only, so the
    bucket must outlive it: a new cycle does not start with a fresh burst allowance.
    """
    with _shared_lock:
        return _shared.setdefault((user.lower(), per_minute), RequestBudget(per_minute))


def budget_for(user: str, per_minute: int, project: str, project_per_minute: int,
               limits: SharedLimits | None) -> Pacer:
    """What a user's connector spends from: with ``limits`` (replicas) the user's and
    project's lines in the database, else this process's budgets of both."""
    if limits is not None:
        return SharedRequestBudget(limits, user, per_minute, project=project,
                                   project_per_minute=project_per_minute)
    return BothBudgets(shared_budget(user, per_minute),
                       shared_budget(f"project:{project}", project_per_minute))


@dataclass(frozen=True)
class RetryPolicy:
    """Full-jitter exponential backoff: sleep ``rng() * min(cap, base * 2**attempt)``.

    ``max_wait`` bounds a ``Retry-After`` worth waiting for inside a cycle; a longer one
    is handed to the engine as :class:`~syncd.errors.RateLimited` instead.
    """

    attempts: int = 5
    base: float = 1.0
    cap: float = 32.0
    max_wait: float = 120.0

    def delay(self, attempt: int, rng: Callable[[], float]) -> float:
        return rng() * min(self.cap, self.base * 2 ** attempt)


@dataclass(frozen=True)
class Call:
    """One request to make: ``make`` builds a fresh ``HttpRequest`` for every attempt.

    ``safe`` says the request may be sent again after an ambiguous failure.
    """

    key: Hashable
    make: Callable[[], Any]
    safe: bool = True


class Transport:
    """Sends calls, alone or in batches, paced by a budget and retried by a policy."""

    def __init__(self, batch_uri: str, budget: Pacer, *, batch_size: int = BATCH_PARTS,
                 policy: RetryPolicy | None = None,
                 sleep: Callable[[float], None] = time.sleep,
                 rng: Callable[[], float] = random.random) -> None:
        self.batch_uri = batch_uri
        self.budget = budget
        self.batch_size = max(1, min(batch_size, budget.capacity))
        self.policy = policy or RetryPolicy()
        self._sleep, self._rng = sleep, rng

    def one(self, make: Callable[[], Any]) -> Reply:
        """Send one safe request (a read), with retries."""
        return self.run([Call(0, make)])[0]

    def run(self, calls: Sequence[Call]) -> dict[Hashable, Reply]:
        """Send ``calls``, batching, pacing and retrying them.

        Args:
            calls: the requests, each with a unique key.

        Returns:
            The final reply of every call, by key: a success, or the failure left after
            the retries it was allowed (none after an account-wide refusal).

        Raises:
            AuthFailed: the credentials could not be refreshed.
            Transient: the token endpoint could not be reached.
        """
        results: dict[Hashable, Reply] = {}
        pending = list(calls)
        for attempt in range(self.policy.attempts):
            replies = self._round(pending)
            pause = max((r.pause for r in replies.values() if r.pause is not None),
                        default=None)
            if pause is not None:
                # Every account of the user, on every replica, sits it out; not only this
                # call's retries.
                self.budget.hold(pause)
            stop = any(r.error_class is not None and issubclass(r.error_class, AccountWide)
                       for r in replies.values())
            again: list[Call] = []
            wait = 0.0
            for call in pending:
                reply = replies[call.key]
                if not stop and attempt + 1 < self.policy.attempts and self._retry(call, reply):
                    again.append(call)
                    wait = max(wait, reply.retry_after or 0.0)
                else:
                    results[call.key] = reply
            if not again:
                break
            if wait > self.policy.max_wait:
                # Google asks for a longer pause than a cycle should sit out: report it.
                results.update({c.key: replies[c.key] for c in again})
                break
            delay = max(wait, self.policy.delay(attempt, self._rng))
            log.info("google: %d request(s) throttled or failed (%s); retrying in %.1f s",
                     len(again), replies[again[0].key].status, delay)
            self._sleep(delay)
            pending = again
        return results

    @staticmethod
    def _retry(call: Call, reply: Reply) -> bool:
        if reply.refused_before_work:
            return True
        return reply.error_class is Transient and call.safe

    def _round(self, calls: Sequence[Call]) -> dict[Hashable, Reply]:
        replies: dict[Hashable, Reply] = {}
        for start in range(0, len(calls), self.batch_size):
            chunk = calls[start:start + self.batch_size]
            self.budget.take(len(chunk))
            answered = {chunk[0].key: self._single(chunk[0])} if len(chunk) == 1 \
                else self._batch(chunk)
            for reply in answered.values():  # Google's quota counts each part of a batch
                request_answered("google", reply.status)
            replies.update(answered)
        return replies

    @staticmethod
    def _single(call: Call) -> Reply:
        try:
            body = call.make().execute(num_retries=0)
        except HttpError as exc:
            return reply_from_http_error(exc)
        except GoogleAuthError as exc:
            raise auth_error(exc) from None
        except (OSError, httplib2.HttpLib2Error, http.client.HTTPException) as exc:
            # HTTPException: the connection ended before the announced length.
            return Reply(0, reason=f"network: {network_reason(exc)}")
        except (ValueError, RecursionError) as exc:
            # A 2xx whose body the client could not parse (not JSON, nested past the
            # parser's stack, an integer of more digits than Python converts).
            return Reply(0, reason=f"unreadable reply ({type(exc).__name__})")
        return _success(body)

    def _batch(self, chunk: Sequence[Call]) -> dict[Hashable, Reply]:
        # Built by hand: service.new_batch_http_request() would aim at the discovery
        # document's rootUrl (www.googleapis.com), whatever api_endpoint says.
        by_id = {str(i): call for i, call in enumerate(chunk)}
        replies: dict[Hashable, Reply] = {}

        def done(request_id: str, response: Any, exception: Exception | None) -> None:
            call = by_id[request_id]
            if exception is None:
                replies[call.key] = _success(response)
            elif isinstance(exception, HttpError):
                replies[call.key] = reply_from_http_error(exception)
            else:
                replies[call.key] = Reply(0, reason=type(exception).__name__)

        batch = BatchHttpRequest(callback=done, batch_uri=self.batch_uri)
        for request_id, call in by_id.items():
            batch.add(call.make(), request_id=request_id)
        envelope = Reply(0, reason="no part answer")
        try:
            batch.execute()
        except HttpError as exc:
            envelope = replace(reply_from_http_error(exc), envelope=True)
        except GoogleAuthError as exc:
            raise auth_error(exc) from None
        except (OSError, httplib2.HttpLib2Error, http.client.HTTPException, BatchError) as exc:
            envelope = Reply(0, reason=f"network: {network_reason(exc)}")
        except (ValueError, RecursionError):
            # The client reads the parts in order and stops at the first body it cannot
            # parse: the parts after it got no answer. Those safe to send twice go again
            # alone, so the one unreadable part is the only failure.
            log.info("google: a batch part could not be parsed; sending the rest alone")
            return {call.key: replies[call.key] if call.key in replies else
                    self._single(call) if call.safe else
                    Reply(0, reason="unreadable batch reply") for call in chunk}
        if envelope.status == 413 and not replies:
            # The batch as a whole is too large: nothing was carried out, so the parts go
            # out one by one instead.
            log.info("google: a batch of %d was too large; sending its parts alone", len(chunk))
            return {call.key: self._single(call) for call in chunk}
        return {call.key: replies.get(call.key, envelope) for call in chunk}
