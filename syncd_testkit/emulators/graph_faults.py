"""Fault injection, request recording and per-mailbox throttling for the Graph emulator."""

from __future__ import annotations

import json
import math
import re
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

__all__ = ["FaultRule", "MailboxGate", "RecordedRequest", "ThrottleDecision"]


@dataclass
class RecordedRequest:
    """One request the emulator received; inner ``$batch`` items are recorded separately.

    ``headers`` keeps the names as sent; use :meth:`header` for a case-insensitive lookup.
    ``status`` is filled in once the response is known (``None`` if the connection was dropped
    before a status existed).
    """

    method: str
    url: str
    path: str
    headers: dict[str, str]
    body: bytes
    in_batch: bool = False
    batch_item_id: str | None = None
    mailbox: str | None = None
    immutable_id_requested: bool = False
    status: int | None = None
    timestamp: float = field(default_factory=time.time)

    def header(self, name: str) -> str | None:
        """Case-insensitive header lookup."""
        lowered = name.lower()
        for key, value in self.headers.items():
            if key.lower() == lowered:
                return value
        return None

    def json(self) -> Any:
        """The body parsed as JSON (``None`` for an empty body)."""
        return json.loads(self.body) if self.body else None


@dataclass
class FaultRule:
    """A scripted failure, matched against each request (outer requests and batch items).

    Matching: ``method`` (exact, case-insensitive; ``None`` = any) and ``path`` (a regex searched
    in the path after ``/v1.0``, e.g. ``r"/events$"``; ``None`` = any), ``mailbox`` (UPN,
    ``None`` = any) and ``in_batch`` (``True`` only batch items, ``False`` only outer requests,
    ``None`` both). The first ``skip`` matches pass untouched; after that the rule fires
    ``count`` times (``None`` = forever).

    Effect when it fires:

    * ``delay_seconds`` is slept first (a slow server; combine with a client timeout).
    * ``status`` ``None`` means "delay only"; otherwise an error with ``code``/``message`` and an
      optional ``Retry-After`` (seconds) is returned.
    * ``apply_then_fail``: the request is performed first and the error replaces the real
      response, the classic "the write happened but the client saw a failure".
    * ``drop_connection``: the socket is closed without any response (outer requests only);
      with ``apply_then_fail`` the write happens first.
    """

    method: str | None = None
    path: str | None = None
    status: int | None = 503
    code: str = "ServiceUnavailable"
    message: str = "Service Unavailable"
    retry_after: int | None = None
    apply_then_fail: bool = False
    drop_connection: bool = False
    delay_seconds: float = 0.0
    count: int | None = 1
    skip: int = 0
    mailbox: str | None = None
    in_batch: bool | None = None
    body: str | None = None  # verbatim text instead of Graph's error shape (a proxy's page)
    fired: int = 0

    def matches(self, method: str, path: str, mailbox: str | None, in_batch: bool) -> bool:
        """Whether this rule applies to a request (ignores ``skip``/``count``)."""
        if self.method is not None and self.method.upper() != method.upper():
            return False
        if self.path is not None and not re.search(self.path, path):
            return False
        if self.mailbox is not None and (mailbox or "").lower() != self.mailbox.lower():
            return False
        if self.in_batch is not None and self.in_batch != in_batch:
            return False
        return not (self.drop_connection and in_batch)


@dataclass(frozen=True)
class ThrottleDecision:
    """Why a request was refused and when to come back."""

    retry_after: int
    message: str


class MailboxGate:
    """Per-mailbox concurrency gate and sliding 10-minute request counter (Outlook limits),
    and the app's requests in any one second (all mailboxes).

    Limits are read at every call, so tests may change them on the emulator at any time.
    The documented figure is 10,000 requests per 10 minutes per app and mailbox; that the
    window slides (rather than resetting every 10 minutes), that a refused request is not
    counted, and the Retry-After of when the oldest counted request leaves the window,
    are this emulator's guesses (the documentation says none of them). ``window``: its
    length (a test of pacing shortens it).
    """

    WINDOW_SECONDS = 600.0
    #: The app's window: Graph's global limit is 2,000 requests a second per app.
    APP_WINDOW_SECONDS = 1.0

    def __init__(
        self,
        max_concurrent: Callable[[], int],
        per_window: Callable[[], int],
        clock: Callable[[], float],
        concurrency_retry_after: Callable[[], int],
        window: Callable[[], float] = lambda: MailboxGate.WINDOW_SECONDS,
        per_second_per_app: Callable[[], int | None] = lambda: None,
    ) -> None:
        """Create a gate whose limits come from the given callables.

        ``per_second_per_app``: the app's requests in any one second (all mailboxes), or
        None: not refused. Every request the emulator admits counts for one app (a test
        runs one app registration). Whether on or not, :attr:`app_peak` is the most
        requests admitted in any one second (by ``clock``): what a test of a client's
        pacing reads.
        """
        self._max_concurrent = max_concurrent
        self._per_window = per_window
        self._window = window
        self._per_second_per_app = per_second_per_app
        #: Requests refused because the app's second was full, and the most admitted in
        #: any one second.
        self.refused_for_app = 0
        self.app_peak = 0
        self._app_history: deque[float] = deque()
        #: Per mailbox, requests refused because the window was full (MailboxRequests).
        self.refused_in_window: dict[str, int] = {}
        self._clock = clock
        self._concurrency_retry_after = concurrency_retry_after
        self._lock = threading.Lock()
        self.in_flight: dict[str, int] = {}
        self.max_in_flight_seen: dict[str, int] = {}
        self._history: dict[str, deque[float]] = {}

    def enter(self, mailbox: str) -> ThrottleDecision | None:
        """Admit one request for ``mailbox`` or say why not.

        An admitted request must be followed by :meth:`leave`. A refused one is still counted
        in ``max_in_flight_seen``: it *was* concurrent, which is what a client must avoid.
        """
        with self._lock:
            current = self.in_flight.get(mailbox, 0)
            attempted = current + 1
            if attempted > self.max_in_flight_seen.get(mailbox, 0):
                self.max_in_flight_seen[mailbox] = attempted
            if attempted > self._max_concurrent():
                return ThrottleDecision(
                    self._concurrency_retry_after(),
                    "Application is over its MailboxConcurrency limit.",
                )
            now = self._clock()
            window = self._window()
            history = self._history.setdefault(mailbox, deque())
            while history and history[0] <= now - window:
                history.popleft()
            if len(history) >= self._per_window():
                self.refused_in_window[mailbox] = self.refused_in_window.get(mailbox, 0) + 1
                wait = history[0] + window - now
                return ThrottleDecision(
                    max(1, math.ceil(wait)),
                    "Application is over its MailboxRequests limit.",
                )
            app = self._app_history
            while app and app[0] <= now - self.APP_WINDOW_SECONDS:
                app.popleft()
            per_second = self._per_second_per_app()
            if per_second is not None and len(app) >= per_second:
                self.refused_for_app += 1
                return ThrottleDecision(1, "Application is over its request rate limit.")
            app.append(now)
            self.app_peak = max(self.app_peak, len(app))
            history.append(now)
            self.in_flight[mailbox] = attempted
            return None

    def leave(self, mailbox: str) -> None:
        """Release a slot taken by a successful :meth:`enter`."""
        with self._lock:
            self.in_flight[mailbox] = max(0, self.in_flight.get(mailbox, 0) - 1)

    def reset(self) -> None:
        """Forget the request history (in-flight counts are left alone)."""
        with self._lock:
            self._history.clear()
            self._app_history.clear()
            self.app_peak = 0
