"""Pipedrive's rate limits, counted by syncd itself so that it never meets them.

Facts (``reference/pipedrive-push-scale.md`` section 1, ``providers.md`` section D):

* every call costs tokens from the **company's daily budget** of 30,000 x the plan's
  multiplier (Lite 1, Growth 2, Premium 5, Ultimate 7) x seats, reset at midnight; when
  it is spent every call gets 429 until the reset, and no header says what is left, so
  the client must count;
* each token may make a number of requests in any **rolling 2-second window** (API token
  20/40/100/120 by plan, OAuth 80/160/400/480); a refused call is a 429 with
  ``x-ratelimit-*`` headers;
* **a client that keeps calling after 429s gets a 403 HTML page** from the CDN.

What syncd does, for every account of one company and (through the database) every replica:

* before a call, :meth:`PipedriveBudget.reserve` takes its cost from the day's ledger row
  and a send slot from the token's burst row (slots 2 s / (90 % of the limit) apart); when
  the day is
  spent or calls are halted it raises :class:`~syncd.errors.AccountCooldown` until the
  reset, before anything is sent. The engine then rests the account and keeps its
  cursors, so the next cycle after the reset resumes where this one stopped;
* after the answer, :meth:`PipedriveBudget.observe`: a 429 gives its cost back, holds the
  token's slots for ``Retry-After`` / ``x-ratelimit-reset`` (at least the 2 s window) and
  asks for the call to be sent again; :data:`STOP_AFTER` 429s in a row (counted across
  accounts and replicas) halt every call of the company until the daily reset, which is
  before the CDN's block page; a 403 HTML page seen anyway halts them likewise;
* crossing 75 % of the day's budget is logged once, and ``syncd status`` shows the day.

The HTTP layer calls :meth:`PipedriveBudget.spend` before each request and
:meth:`PipedriveBudget.answered` after it (the hook of :mod:`syncd.crm.pipedrive_http`), or
wraps each request in :meth:`PipedriveBudget.send`::

    budget = PipedriveBudget(BudgetLedger(db), "acme", Limits.for_plan("growth", seats=5),
                             token_key=token_key_of(api_token))
    answer = budget.send("GET", url, lambda: session.get(url, params=params))

Not documented by Pipedrive, so chosen here: v2 writes cost what v1's update costs (10;
v1's delete 6), an unlisted call costs :data:`UNLISTED_COST` (search, the dearest), the
day ends at midnight of :attr:`Limits.reset_zone` (UTC unless configured), and a refused
call costs nothing.
"""

from __future__ import annotations

import contextlib
import email.utils
import hashlib
import logging
import math
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from datetime import time as dt_time
from typing import Protocol, TypeVar
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

from syncd.errors import AccountCooldown
from syncd.store.budgets import BudgetLedger
from syncd.store.records import WARN_SHARE, DayCount

log = logging.getLogger(__name__)

BASE_TOKENS = 30_000
PLAN_MULTIPLIER = {"lite": 1, "growth": 2, "premium": 5, "ultimate": 7}
BURST_API_TOKEN = {"lite": 20, "growth": 40, "premium": 100, "ultimate": 120}
BURST_OAUTH = {"lite": 80, "growth": 160, "premium": 400, "ultimate": 480}
#: The burst window, seconds.
WINDOW = 2.0
#: Throttled answers in a row (company-wide) after which syncd stops calling until the reset.
#: Pipedrive does not say after how many the block page comes; this stays well under any
#: plausible number (the emulator's is 10).
STOP_AFTER = 4
#: A 429 asking to wait longer than this (seconds) means the day is spent on Pipedrive's
#: side (other integrations of the company count too): stop until then, do not sleep.
LONG_WAIT = 60.0
#: The share of a token's burst limit syncd paces to: requests reach Pipedrive a little
#: earlier or later than their slot (and a slot at exactly the window's edge is a float
#: rounding away from a 429), so a full window is never aimed at.
PACE_SHARE = 0.9

# Tokens per call, by method and path with ids as {id}. v2 reads as the spec's
# x-token-cost was read by a third party [obs]; v2 writes and v1 calls at v1's costs [doc].
COSTS: Mapping[tuple[str, str], int] = {
    ("GET", "/api/v2/activities"): 10,
    ("GET", "/api/v2/activities/{id}"): 1,
    ("POST", "/api/v2/activities"): 10,
    ("PATCH", "/api/v2/activities/{id}"): 10,
    ("DELETE", "/api/v2/activities/{id}"): 6,
    ("GET", "/api/v2/persons"): 10,
    ("GET", "/api/v2/persons/{id}"): 1,
    ("GET", "/api/v2/deals/{id}"): 1,
    ("GET", "/api/v2/organizations/{id}"): 1,
    ("GET", "/v1/users"): 20,
    ("GET", "/v1/users/me"): 2,
    ("GET", "/v1/users/{id}"): 2,
    ("GET", "/v1/activityTypes"): 20,
    ("GET", "/v1/webhooks"): 20,
    ("POST", "/v1/webhooks"): 10,
    ("DELETE", "/v1/webhooks/{id}"): 6,
}
UNLISTED_COST = 40


def cost_of(method: str, url: str) -> int:
    """The tokens a call costs; ``url`` may be a full URL or its path."""
    path = urlsplit(url).path.rstrip("/")
    for root in ("/api/v2/", "/v1/"):
        at = path.find(root)
        if at >= 0:
            path = path[at:]
            break
    route = "/".join("{id}" if part.isdigit() else part for part in path.split("/"))
    return COSTS.get((method.upper(), route), UNLISTED_COST)


def token_key_of(token: str) -> str:
    """A name for a token's burst row that does not reveal the token."""
    return "sha256:" + hashlib.sha256(token.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Limits:
    """A company's limits: ``daily_tokens`` per day, ``burst`` requests per token per
    2 s window, the day ending at midnight in ``reset_zone``."""

    daily_tokens: int
    burst: int
    reset_zone: str = "UTC"

    @classmethod
    def for_plan(cls, plan: str, seats: int, *, oauth: bool = False,
                 daily_tokens: int | None = None, burst: int | None = None,
                 reset_zone: str = "UTC") -> Limits:
        """The documented limits of ``plan`` with ``seats`` seats. ``daily_tokens`` gives
        syncd less than the whole budget when other integrations spend from it too."""
        if plan not in PLAN_MULTIPLIER:
            raise ValueError(f"plan must be one of {', '.join(PLAN_MULTIPLIER)}")
        whole = BASE_TOKENS * PLAN_MULTIPLIER[plan] * max(1, seats)
        per_token = (BURST_OAUTH if oauth else BURST_API_TOKEN)[plan]
        return cls(whole if daily_tokens is None else min(daily_tokens, whole),
                   per_token if burst is None else min(burst, per_token), reset_zone)


@dataclass(frozen=True)
class Ticket:
    """A reserved call: what it cost and on which day, for :meth:`PipedriveBudget.observe`."""

    cost: int
    day: str
    resets_at: datetime
    throttled: int


def day_of(zone: str, now: float) -> tuple[str, datetime]:
    """The budget's day at ``now`` (YYYY-MM-DD in ``zone``) and when it ends: the next
    midnight on that zone's wall clock, also after a day 23 or 25 hours long."""
    local = datetime.fromtimestamp(now, ZoneInfo(zone)).date()
    ends = datetime.combine(local + timedelta(days=1), dt_time(0), ZoneInfo(zone))
    return local.isoformat(), ends.astimezone(UTC)


class Answer(Protocol):
    """What :meth:`PipedriveBudget.send` needs of an HTTP response (``requests`` fits)."""

    @property
    def status_code(self) -> int: ...

    @property
    def headers(self) -> Mapping[str, str]: ...


A = TypeVar("A", bound=Answer)


class PipedriveBudget:
    """One company's budget as seen through one token (see the module docstring)."""

    def __init__(self, ledger: BudgetLedger, company: str, limits: Limits, token_key: str, *,
                 clock: Callable[[], float] = time.time,
                 sleep: Callable[[float], None] = time.sleep,
                 stop_after: int = STOP_AFTER) -> None:
        self.ledger = ledger
        self.company = company
        self.scope = f"pipedrive:{company}"
        self.limits = limits
        self.token_key = token_key
        self.clock = clock
        self.sleep = sleep
        self.stop_after = stop_after
        self._local = threading.local()

    def today(self) -> DayCount | None:
        """The company's count for the current day (None before its first call)."""
        return self.ledger.day(self.scope, day_of(self.limits.reset_zone, self.clock())[0])

    def reserve(self, cost: int) -> Ticket:
        """Take a call's cost (:func:`cost_of`) and wait for the token's send slot.

        :raises AccountCooldown: the day's budget would be passed, or calls are halted
            (``seconds``: until the reset or the end of the halt). Nothing was sent.
        """
        now = self.clock()
        day, resets_at = day_of(self.limits.reset_zone, now)
        grant = self.ledger.reserve(
            self.scope, day, cost=cost, allowance=self.limits.daily_tokens,
            resets_at=resets_at, now=datetime.fromtimestamp(now, UTC),
            token_key=self.token_key, spacing=WINDOW / (self.limits.burst * PACE_SHARE))
        count = grant.day
        if not grant.granted:
            halted = count.halted_until
            if halted is not None and halted.timestamp() > now:
                raise AccountCooldown(seconds=math.ceil(halted.timestamp() - now),
                                      reason=f"Pipedrive calls of {self.company} stopped: "
                                             f"{count.halt_reason}")
            raise AccountCooldown(
                seconds=math.ceil(resets_at.timestamp() - now),
                reason=f"the daily token budget of Pipedrive company {self.company} is "
                       f"spent ({count.used} of {count.allowance}) until its reset")
        if count.used >= WARN_SHARE * count.allowance > count.used - cost:
            log.warning("Pipedrive company %s: %d of %d tokens of today's budget used "
                        "(75 %%)", self.company, count.used, count.allowance)
        if grant.send_at is not None and grant.send_at > now:
            self.sleep(grant.send_at - now)
        return Ticket(cost, day, resets_at, count.throttled)

    def observe(self, ticket: Ticket, status: int, headers: Mapping[str, str]) -> bool:
        """Account for the answer to a reserved call; True when it must be sent again
        (after another :meth:`reserve`, which waits out the hold).

        :raises AccountCooldown: calls stop until the reset (too many 429s in a row, a
            429 asking for a long wait, or the block page).
        """
        lowered = {k.lower(): v for k, v in headers.items()}
        if status == 429:
            self.ledger.refund(self.scope, ticket.day, ticket.cost)
            streak = self.ledger.throttled(self.scope, ticket.day)
            now = self.clock()
            wait = max(_retry_hint(lowered, now), WINDOW)
            if wait > LONG_WAIT:
                self._halt(ticket, now, now + wait, "Pipedrive refuses calls (429) for "
                           f"{math.ceil(wait)} s, so the day is spent on its side")
            if streak >= self.stop_after:
                self._halt(ticket, now, ticket.resets_at.timestamp(),
                           f"{streak} rate-limited answers in a row; stopped before "
                           "Pipedrive blocks the company")
            self.ledger.hold(self.scope, self.token_key, now + wait)
            return True
        if status == 403 and "html" in lowered.get("content-type", "").lower():
            self.ledger.refund(self.scope, ticket.day, ticket.cost)
            now = self.clock()
            self._halt(ticket, now, ticket.resets_at.timestamp(),
                       "Pipedrive's rate-limit block page (403) was seen")
        if ticket.throttled:
            self.ledger.answered(self.scope, ticket.day)
        return False

    # --- the hook of syncd.crm.pipedrive_http: one request at a time per thread -------

    def spend(self, cost: int) -> None:
        """:meth:`reserve` for the request about to be sent by this thread."""
        self._local.ticket = self.reserve(cost)

    def answered(self, status: int, headers: Mapping[str, str]) -> None:
        """:meth:`observe` for this thread's request (status 0: no answer, cost kept).
        A 429 that may be sent again returns; the caller raises ``RateLimited`` or sends
        it again through :meth:`spend`, which waits out the hold."""
        ticket: Ticket | None = getattr(self._local, "ticket", None)
        self._local.ticket = None
        if ticket is not None and status:
            self.observe(ticket, status, headers)

    def _halt(self, ticket: Ticket, now: float, until: float, reason: str) -> None:
        self.ledger.halt(self.scope, ticket.day, datetime.fromtimestamp(until, UTC), reason)
        log.warning("Pipedrive company %s: calls stop until %s: %s", self.company,
                    datetime.fromtimestamp(until, UTC).isoformat(timespec="seconds"), reason)
        raise AccountCooldown(seconds=math.ceil(until - now),
                              reason=f"Pipedrive calls of {self.company} stopped: {reason}")

    def send(self, method: str, url: str, call: Callable[[], A]) -> A:
        """Send a call through the budget: reserve, ``call()``, observe, again after a 429.

        An exception from ``call`` passes through with the cost kept (the call may have
        reached Pipedrive, so it may have been counted there).
        """
        while True:
            ticket = self.reserve(cost_of(method, url))
            answer = call()
            if not self.observe(ticket, answer.status_code, answer.headers):
                return answer


def _retry_hint(headers: Mapping[str, str], now: float) -> float:
    """Seconds a 429 asks to wait: the longer of ``Retry-After`` (seconds or a date) and
    ``x-ratelimit-reset``; 0 when neither says anything usable."""
    hints = [0.0]
    for name in ("retry-after", "x-ratelimit-reset"):
        value = headers.get(name, "").strip()
        if not value:
            continue
        with contextlib.suppress(ValueError):
            hints.append(float(value))
            continue
        with contextlib.suppress(TypeError, ValueError):
            hints.append(email.utils.parsedate_to_datetime(value).timestamp() - now)
    return max(h for h in hints if math.isfinite(h))
