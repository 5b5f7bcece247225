"""The delivery threads the emulators' push shares: Google's watch channels
(:mod:`.google_push`), Graph's subscriptions (:mod:`.graph_push`) and Pipedrive's
webhooks (:mod:`.pipedrive_webhooks`).

Each emulator keeps its own queue, clock and rules (retries, bans, coalescing, faults);
:class:`DeliveryThreads` runs the loop they have in common: under the emulator's lock,
take what is due; post it with the lock released (the store lock is never held during
network I/O); count what is being posted, so a test can wait until nothing is.
:func:`post` is the one POST they make.
"""

from __future__ import annotations

import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any, Generic, TypeVar

__all__ = ["DeliveryThreads", "post"]

Work = TypeVar("Work")


class DeliveryThreads(Generic[Work]):
    """Worker threads that post what ``take`` hands them.

    Args:
        cond: the emulator's lock, held while ``take`` runs and released while ``send``
            does; notified after every send.
        name: the threads' name (``-<n>`` added when there are several).
        take: with ``cond`` held: the next work due, or None when nothing is due.
        send: without the lock: post the work (and record the outcome, taking ``cond``).
        pause: with ``cond`` held: seconds to wait for work when nothing is due (None:
            until notified).
    """

    def __init__(self, cond: threading.Condition, *, name: str,
                 take: Callable[[], Work | None], send: Callable[[Work], None],
                 pause: Callable[[], float | None]) -> None:
        self.cond = cond
        self.name = name
        self._take, self._send, self._pause = take, send, pause
        self.busy = 0
        """Works being posted now."""
        self._stopping = False
        self._threads: list[threading.Thread] = []

    def start(self, workers: int = 1) -> None:
        """Start ``workers`` threads (at least one), unless they run already."""
        if self._threads:
            return
        self._stopping = False
        count = max(1, workers)
        self._threads = [threading.Thread(target=self._run, daemon=True,
                                          name=self.name if count == 1 else f"{self.name}-{n}")
                         for n in range(count)]
        for thread in self._threads:
            thread.start()

    def stop(self, join_timeout: float) -> None:
        """Stop the threads; what is still queued is not sent."""
        with self.cond:
            self._stopping = True
            self.cond.notify_all()
        for thread in self._threads:
            thread.join(timeout=join_timeout)
        self._threads = []

    def wait_idle(self, settled: Callable[[], bool], timeout: float) -> bool:
        """Wait until ``settled()`` (checked with the lock held) and nothing is being
        posted; False after ``timeout`` real seconds. ``settled`` is looked at again at
        least every 50 ms, since an emulator's clock may move without a notification."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while not (settled() and self.busy == 0):
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self.cond.wait(min(left, 0.05))
            return True

    def _run(self) -> None:
        while True:
            with self.cond:
                if self._stopping:
                    return
                work = self._take()
                if work is None:
                    self.cond.wait(self._pause())
                    continue
                self.busy += 1
            try:
                self._send(work)
            finally:
                with self.cond:
                    self.busy -= 1
                    self.cond.notify_all()


class _Refuse(urllib.request.HTTPRedirectHandler):
    """A redirect is an answer like any other: the message is not sent elsewhere."""

    def redirect_request(self, req: Any, fp: Any, code: int, msg: str, headers: Any,
                         newurl: str) -> None:
        return None


_NO_REDIRECTS = urllib.request.build_opener(_Refuse)
_REDIRECTS = urllib.request.build_opener()


def post(url: str, body: bytes, headers: dict[str, str], timeout: float, *,
         follow_redirects: bool = False) -> int | None:
    """POST ``body`` to ``url``; the answer's status, or None when none came (refused,
    reset, timed out); its body is not read. Google and Pipedrive follow no redirect
    (a 3xx is the answer); Graph's emulator does."""
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    opener = _REDIRECTS if follow_redirects else _NO_REDIRECTS
    try:
        with opener.open(request, timeout=timeout) as answer:
            return int(answer.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)
    except OSError:
        return None
