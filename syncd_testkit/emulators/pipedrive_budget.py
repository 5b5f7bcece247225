"""Pipedrive's rate limits: the company's daily token budget, the per-token 2-second burst
window, and the CDN's 403 page for a client that keeps calling after 429s.

Facts (reference section 1): each call costs tokens from a daily company budget of
30,000 x plan multiplier (Lite 1, Growth 2, Premium 5, Ultimate 7) x seats, reset at midnight;
when it is spent every call gets 429 until the reset, and no header shows what is left. The
burst limit counts requests per token over a rolling 2-second window (API token 20/40/100/120
by plan, OAuth 80/160/400/480) and every answer carries ``x-ratelimit-limit``,
``x-ratelimit-remaining`` and ``x-ratelimit-reset``. A client that keeps calling after 429s
gets a 403 HTML page from the CDN.

[emulator choices] where the reference is silent: costs of v2 writes (v1's figures, the
upper bound: a connector counting with them never overspends); v1 endpoints at v1 costs;
a refused call costs nothing; "midnight" is UTC on the emulator clock; the 403 page comes
after ``block_after`` consecutive 429s of one token and lasts ``block_seconds``; no
``Retry-After`` header unless ``retry_after_header`` is on.
"""

from __future__ import annotations

import json
import math
import re
import threading
from collections import deque
from dataclasses import dataclass, field

from .pipedrive_model import PipedriveClock, PipedriveError

PLAN_MULTIPLIER = {"lite": 1, "growth": 2, "premium": 5, "ultimate": 7}
BURST_API_TOKEN = {"lite": 20, "growth": 40, "premium": 100, "ultimate": 120}
BURST_OAUTH = {"lite": 80, "growth": 160, "premium": 400, "ultimate": 480}
BASE_TOKENS = 30_000
WINDOW = 2.0

# (method, path pattern) -> tokens. v2 reads from the spec's x-token-cost as a third party read
# it (list 10, get-one 1) [obs]; v2 writes and every v1 endpoint at v1's documented costs.
COSTS: tuple[tuple[str, str, int], ...] = (
    ("GET", r"^/api/v2/activities/\d+$", 1),
    ("GET", r"^/api/v2/activities$", 10),
    ("POST", r"^/api/v2/activities$", 10),
    ("PATCH", r"^/api/v2/activities/\d+$", 10),
    ("DELETE", r"^/api/v2/activities/\d+$", 6),
    ("GET", r"^/api/v2/(persons|deals|organizations)/\d+$", 1),
    ("GET", r"^/api/v2/persons$", 10),
    ("GET", r"^/v1/users/me$", 2),
    ("GET", r"^/v1/users/\d+$", 2),
    ("GET", r"^/v1/users$", 20),
    ("GET", r"^/v1/activityTypes$", 20),
    ("GET", r"^/v1/webhooks$", 20),
    ("POST", r"^/v1/webhooks$", 10),
    ("DELETE", r"^/v1/webhooks/\d+$", 6),
)
DEFAULT_COST = 10

BLOCK_PAGE = (
    "<!DOCTYPE html>\n<html><head><title>403 Forbidden</title></head><body>\n"
    "<h1>403 Forbidden</h1>\n<p>Access denied: too many requests after rate limiting."
    " Please slow down.</p>\n</body></html>\n"
)


def cost_of(method: str, path: str) -> int:
    """Tokens a call to ``path`` costs."""
    for verb, pattern, cost in COSTS:
        if verb == method and re.match(pattern, path):
            return cost
    return DEFAULT_COST


@dataclass
class Refusal:
    """What the budget answers instead of running the call."""

    status: int
    body: bytes
    content_type: str
    headers: dict[str, str]


@dataclass
class _TokenState:
    hits: deque[float] = field(default_factory=deque)
    consecutive_429: int = 0
    blocked_until: float = 0.0


class Budget:
    """The company's counters. ``plan`` and ``seats`` size the daily budget unless
    ``daily_tokens`` is given; ``burst_limit`` overrides the plan's per-token limit."""

    def __init__(self, clock: PipedriveClock, *, plan: str = "growth", seats: int = 5,
                 daily_tokens: int | None = None, burst_limit: int | None = None,
                 block_after: int = 10, block_seconds: float = 600.0,
                 retry_after_header: bool = False) -> None:
        if plan not in PLAN_MULTIPLIER:
            raise ValueError(f"plan must be one of {sorted(PLAN_MULTIPLIER)}")
        self.clock = clock
        self.plan = plan
        self.daily_tokens = (daily_tokens if daily_tokens is not None
                             else BASE_TOKENS * PLAN_MULTIPLIER[plan] * seats)
        self.burst_limit = burst_limit
        self.block_after = block_after
        self.block_seconds = block_seconds
        self.retry_after_header = retry_after_header
        self.enabled = True
        self._lock = threading.Lock()
        self._day = self._day_of(clock.now())
        self._used = 0
        self._tokens: dict[str, _TokenState] = {}

    @staticmethod
    def _day_of(now: float) -> int:
        return math.floor(now / 86400)

    def _roll(self, now: float) -> None:
        day = self._day_of(now)
        if day != self._day:
            self._day, self._used = day, 0

    @property
    def used_today(self) -> int:
        """Tokens spent since the last (UTC) midnight of the emulator clock."""
        with self._lock:
            self._roll(self.clock.now())
            return self._used

    def limit_for(self, oauth: bool) -> int:
        """Requests per token per 2-second window."""
        if self.burst_limit is not None:
            return self.burst_limit
        return (BURST_OAUTH if oauth else BURST_API_TOKEN)[self.plan]

    def admit(self, token: str, oauth: bool, method: str, path: str
              ) -> tuple[Refusal | None, dict[str, str]]:
        """Count one authenticated call: ``(refusal or None, rate-limit headers)``."""
        now = self.clock.now()
        limit = self.limit_for(oauth)
        with self._lock:
            self._roll(now)
            state = self._tokens.setdefault(token, _TokenState())
            if not self.enabled:
                return None, {}
            if state.blocked_until > now:
                return Refusal(403, BLOCK_PAGE.encode(), "text/html; charset=utf-8", {}), {}
            while state.hits and state.hits[0] <= now - WINDOW:
                state.hits.popleft()
            reset = max(1, math.ceil(state.hits[0] + WINDOW - now)) if state.hits else 2
            cost = cost_of(method, path)
            over_burst = len(state.hits) >= limit
            over_day = self._used + cost > self.daily_tokens
            if over_burst or over_day:
                state.consecutive_429 += 1
                if state.consecutive_429 > self.block_after:
                    state.blocked_until = now + self.block_seconds
                    state.consecutive_429 = 0
                    return Refusal(403, BLOCK_PAGE.encode(), "text/html; charset=utf-8",
                                   {}), {}
                if over_day:
                    reset = math.ceil((self._day + 1) * 86400 - now)
                headers = _headers(limit, limit - len(state.hits), reset)
                if self.retry_after_header:
                    headers["Retry-After"] = str(reset)
                error = PipedriveError(429, "Request over limit" if over_burst
                                       else "Daily token budget exhausted")
                return Refusal(429, json.dumps(error.body()).encode(),
                               "application/json", headers), headers
            state.consecutive_429 = 0
            state.hits.append(now)
            self._used += cost
            return None, _headers(limit, limit - len(state.hits), reset)

    def reset(self) -> None:
        """Forget every count (the daily budget, windows and blocks)."""
        with self._lock:
            self._used = 0
            self._tokens.clear()


def _headers(limit: int, remaining: int, reset: int) -> dict[str, str]:
    return {"x-ratelimit-limit": str(limit), "x-ratelimit-remaining": str(max(0, remaining)),
            "x-ratelimit-reset": str(reset)}
