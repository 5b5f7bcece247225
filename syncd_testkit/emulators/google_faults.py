"""Fault injection and quota counters for the Google Calendar v3 emulator.

A :class:`FaultRule` says which requests it matches and what happens to them; the emulator
consults its rules, in the order they were injected, before it routes a request. The
classmethods build the errors that Google's documentation lists, in the exact body shape
``googleapiclient`` parses, so its retry logic (``execute(num_retries=N)``) reacts as it does
in production: it retries 5xx, 429 and a 403 whose first reason is ``rateLimitExceeded`` or
``userRateLimitExceeded``, and nothing else.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from .google_model import ApiError
from .recording import FaultBook, MatchRule

ApplyThenFail = Literal["503", "drop", "timeout"]


@dataclass
class FaultRule(MatchRule):
    """One injected fault.

    Matching (every given criterion must hold):

    :param method: HTTP method, e.g. ``"POST"`` (``None`` = any).
    :param path: regex searched in the request path, e.g. ``r"/events$"`` (``None`` = any).
        The path is the raw one, without the query string; for batch parts it is the inner
        request's path, for the batch envelope ``/batch/calendar/v3``.
    :param count: how many times the rule fires (``None`` = forever).
    :param inner: ``True`` = only parts inside a batch, ``False`` = only top-level requests,
        ``None`` = both.

    Action (checked in this order):

    :param apply_then_fail: perform the request, then ``"503"`` answer 503 backendError instead
        of the real response, ``"drop"`` close the connection without any response (for a
        batch part: the whole batch response is lost after every part ran), or ``"timeout"``
        sleep ``delay_seconds`` before sending the real response (so a client with a shorter
        timeout gives up although the write happened).
    :param status: answer this status with ``reason``/``message``/``domain`` without
        performing the request; ``retry_after`` adds a ``Retry-After`` header (seconds).
    :param delay_seconds: on its own: sleep, then handle the request normally.
    """

    inner: bool | None = None
    status: int | None = None
    reason: str = "backendError"
    message: str = "Backend Error"
    domain: str = "global"
    location_type: str | None = None
    location: str | None = None
    retry_after: int | None = None
    apply_then_fail: ApplyThenFail | None = None
    delay_seconds: float = 0.0
    #: Verbatim text instead of Google's error shape (a proxy's HTML page, cut-off JSON).
    body: str | None = None

    def matches(self, method: str, path: str, inner: bool = False) -> bool:
        """Return whether this rule applies to the request (ignores the remaining count)."""
        if self.inner is not None and self.inner != inner:
            return False
        return super().matches(method, path)

    def error(self) -> ApiError:
        """The error this rule answers with (``status`` must be set)."""
        assert self.status is not None
        headers = {"Retry-After": str(self.retry_after)} if self.retry_after is not None else {}
        if self.status == 401:
            headers["WWW-Authenticate"] = 'Bearer realm="https://accounts.google.com/"'
        return ApiError(self.status, self.reason, self.message, domain=self.domain,
                        location_type=self.location_type, location=self.location,
                        headers=headers)

    # ---- the common faults ------------------------------------------------------------------

    @classmethod
    def rate_limit_exceeded(cls, **match: object) -> FaultRule:
        """403 ``rateLimitExceeded`` (domain ``usageLimits``); the client retries it."""
        return cls._make(403, "rateLimitExceeded", "Rate Limit Exceeded", "usageLimits", match)

    @classmethod
    def user_rate_limit_exceeded(cls, **match: object) -> FaultRule:
        """403 ``userRateLimitExceeded`` (domain ``usageLimits``); the client retries it."""
        return cls._make(403, "userRateLimitExceeded", "User Rate Limit Exceeded",
                         "usageLimits", match)

    @classmethod
    def quota_exceeded(cls, **match: object) -> FaultRule:
        """403 ``quotaExceeded`` ("Calendar usage limits exceeded."); the client does not retry."""
        return cls._make(403, "quotaExceeded", "Calendar usage limits exceeded.", "usageLimits",
                         match)

    @classmethod
    def too_many_requests(cls, **match: object) -> FaultRule:
        """429 ``rateLimitExceeded`` ("Too many requests"); the client retries it."""
        return cls._make(429, "rateLimitExceeded", "Too many requests", "usageLimits", match)

    @classmethod
    def backend_error(cls, status: int = 503, **match: object) -> FaultRule:
        """500 or 503 ``backendError``; the client retries it."""
        return cls._make(status, "backendError", "Backend Error", "global", match)

    @classmethod
    def auth_error(cls, **match: object) -> FaultRule:
        """401 ``authError`` (location ``Authorization``): the token must be refreshed."""
        rule = cls._make(401, "authError", "Invalid Credentials", "global", match)
        rule.location_type = "header"
        rule.location = "Authorization"
        return rule

    @classmethod
    def _make(cls, status: int, reason: str, message: str, domain: str,
              match: dict[str, object]) -> FaultRule:
        rule = cls(status=status, reason=reason, message=message, domain=domain)
        for key, value in match.items():
            if key not in ("method", "path", "inner", "count", "retry_after"):
                raise TypeError(f"unexpected keyword {key!r}")
            setattr(rule, key, value)
        return rule


FaultInjector = FaultBook[FaultRule]


class SlidingWindowCounter:
    """Requests per key over the last ``window`` seconds, refused above ``limit``.

    Google's per-minute quotas are sliding windows, so a burst is still punished a few
    seconds into the next calendar minute; a fixed per-minute bucket would not be.
    """

    def __init__(self, limit: int, window: float = 60.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.limit = limit
        self.window = window
        self._clock = clock
        self._hits: dict[str, deque[float]] = {}
        self._lock = threading.Lock()
        #: Per key, the requests refused (over the limit) and the most counted in any
        #: window: what a test of a client's own pacing reads.
        self.refused: dict[str, int] = {}
        self.peak: dict[str, int] = {}

    def acquire(self, key: str) -> bool:
        """Count one request for ``key``; ``False`` (and not counted) when over the limit."""
        now = self._clock()
        with self._lock:
            hits = self._hits.setdefault(key, deque())
            while hits and hits[0] <= now - self.window:
                hits.popleft()
            if len(hits) >= self.limit:
                self.refused[key] = self.refused.get(key, 0) + 1
                return False
            hits.append(now)
            self.peak[key] = max(self.peak.get(key, 0), len(hits))
            return True

    def reset(self) -> None:
        """Forget every counted request."""
        with self._lock:
            self._hits.clear()
            self.refused.clear()
            self.peak.clear()


def quota_error(per_user: bool) -> ApiError:
    """The 403 an exhausted per-user or per-project minute quota produces."""
    if per_user:
        return ApiError(403, "userRateLimitExceeded", "User Rate Limit Exceeded",
                        domain="usageLimits")
    return ApiError(403, "rateLimitExceeded", "Rate Limit Exceeded", domain="usageLimits")
