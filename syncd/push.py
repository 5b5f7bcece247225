"""Push hints: from a provider's notification to "this account has changes", off the
request thread.

A hook (:mod:`syncd.http`) only says which CRM users' activities changed, and which
were deleted (:meth:`Hints.crm_users_changed`), or which accounts' calendars changed
(:meth:`Hints.accounts_changed`, from a verified calendar channel), and answers. One
background thread then finds the accounts of those users (:class:`AccountDirectory`),
sets their dirty flag in the database (:class:`syncd.store.dirty.DirtyFlags`) and wakes
the scheduler, which runs one incremental cycle soon (the debounce is the daemon's). Hints
that pile up while the thread works are merged into one pass. A user syncd serves no
account for is ignored and counted.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime

from syncd.config import AccountConfig
from syncd.report import describe
from syncd.store.dirty import DirtyFlags

log = logging.getLogger("syncd.push")

REFRESH_SECONDS = 300.0  # an unknown user id rebuilds the directory at most this often
PUSH_DELAY = 2.0  # seconds from the latest hint of a burst to its cycle
PUSH_MAX_WAIT = 30.0  # ... but never more than this after the burst's first hint


class AccountDirectory:
    """Which accounts belong to a CRM user id.

    ``accounts`` gives the accounts served now; ``user_id`` the CRM's id of an owner's
    e-mail (None: no such user). The map is built on first use and rebuilt when the
    accounts change, or when an id it does not know comes and the last build is older
    than ``refresh_seconds`` (a new CRM user; bounded, because a build may cost the CRM
    one request per owner).
    """

    def __init__(self, accounts: Callable[[], Sequence[AccountConfig]],
                 user_id: Callable[[str], int | None], *,
                 refresh_seconds: float = REFRESH_SECONDS,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._accounts, self._user_id = accounts, user_id
        self._refresh, self._clock = refresh_seconds, clock
        self._map: dict[int, set[str]] = {}
        self._names: frozenset[str] | None = None
        self._built = 0.0

    def accounts_of(self, user_ids: Iterable[int]) -> tuple[set[str], set[int]]:
        """(names of the accounts of ``user_ids``, the ids no account belongs to)."""
        wanted = set(user_ids)
        accounts = list(self._accounts())
        names = frozenset(a.name for a in accounts)
        stale = self._clock() - self._built >= self._refresh
        if names != self._names or (stale and not wanted <= self._map.keys()):
            self._build(accounts, names)
        found = {name for uid in wanted for name in self._map.get(uid, ())}
        return found, wanted - self._map.keys()

    def _build(self, accounts: Sequence[AccountConfig], names: frozenset[str]) -> None:
        by_owner: dict[str, int | None] = {}
        built: dict[int, set[str]] = {}
        for account in accounts:
            owner = account.owner.strip().lower()
            if owner not in by_owner:
                by_owner[owner] = self._user_id(account.owner)
            uid = by_owner[owner]
            if uid is not None:
                built.setdefault(uid, set()).add(account.name)
        self._map, self._names, self._built = built, names, self._clock()


class Hints:
    """The queue between hooks and the scheduler, and the thread that drains it.

    ``wake`` is called with the names of the accounts just flagged (the daemon schedules
    their cycles). ``counts`` says what happened to hints: ``flagged`` (accounts marked),
    ``unknown_user`` (no account of that CRM user), ``failed`` (the directory or the
    database could not be reached; the backstop poll covers those changes).
    """

    def __init__(self, directory: AccountDirectory, dirty: DirtyFlags,
                 wake: Callable[[set[str]], None], *,
                 deleted: Callable[[Sequence[int]], None] | None = None) -> None:
        self.directory, self.dirty, self.wake = directory, dirty, wake
        self.deleted = deleted
        self.counts: Counter[str] = Counter()
        self._pending: set[int] = set()
        self._accounts: set[str] = set()
        self._deleted: set[int] = set()
        self._cond = threading.Condition()
        self._busy = False
        self._stop = False
        self._thread: threading.Thread | None = None

    def crm_users_changed(self, user_ids: Iterable[int], *, deleted: Iterable[int] = ()
                          ) -> None:
        """Called by a hook on its request thread: returns at once. ``deleted``: the
        activities the notification says were deleted (handed to ``deleted`` first, so
        the cycle that follows checks them)."""
        with self._cond:
            self._pending.update(user_ids)
            self._deleted.update(deleted)
            self._cond.notify_all()

    def accounts_changed(self, names: Iterable[str]) -> None:
        """Called by a calendar hook on its request thread, for the accounts whose channel
        notified (already verified): returns at once."""
        with self._cond:
            self._accounts.update(names)
            self._cond.notify_all()

    def start(self) -> None:
        if self._thread is None:
            self._stop = False
            self._thread = threading.Thread(target=self._loop, name="syncd-push", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        if self._thread is not None:
            with self._cond:
                self._stop = True
                self._cond.notify_all()
            self._thread.join(timeout=10)
            self._thread = None

    def settle(self, timeout: float = 10.0) -> bool:
        """Wait until every hint given so far is handled (tests); False on timeout."""
        with self._cond:
            return self._cond.wait_for(
                lambda: not self._pending and not self._accounts and not self._busy,
                timeout=timeout)

    def _loop(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(
                    lambda: self._stop or bool(self._pending) or bool(self._accounts))
                if self._stop:
                    return
                batch, self._pending = self._pending, set()
                accounts, self._accounts = self._accounts, set()
                gone, self._deleted = self._deleted, set()
                self._busy = True
            try:
                self._handle(batch, sorted(gone), accounts)
            finally:
                with self._cond:
                    self._busy = False
                    self._cond.notify_all()

    def _handle(self, user_ids: set[int], deleted: Sequence[int],
                accounts: set[str]) -> None:
        try:
            if deleted and self.deleted is not None:
                self.deleted(deleted)
            names, unknown = self.directory.accounts_of(user_ids) if user_ids else (set(), set())
            names |= accounts
            self.dirty.mark(names)
        except Exception as exc:  # a hint is never worth more than the backstop poll
            self.counts["failed"] += len(user_ids) + len(accounts)
            log.warning("a push notification could not be applied (the next poll reads the "
                        "change): %s", describe(exc))
            log.debug("push failure", exc_info=True)
            return
        self.counts["unknown_user"] += len(unknown)
        self.counts["flagged"] += len(names)
        if names:
            log.debug("push: %s have changes", ", ".join(sorted(names)))
            self.wake(names)


class PushGate:
    """When a flagged account's cycle runs: after the burst, and never twice at once.

    A hint asks for the account's cycle ``delay`` seconds after the latest hint, but no
    later than ``max_wait`` seconds after the first hint of the burst, through
    ``soon(name, when)`` (the scheduler keeps an earlier regular run). A hint for an
    account in a cycle only sets its flag; when that cycle ends and the flag is set, the
    same rule schedules one more. With the flag taken as a cycle starts, a burst shorter
    than ``max_wait`` makes one cycle, plus one for the hints that came during it.
    """

    def __init__(self, dirty: DirtyFlags, soon: Callable[[str, float], None], *,
                 delay: float = PUSH_DELAY, max_wait: float = PUSH_MAX_WAIT,
                 clock: Callable[[], float] = time.time) -> None:
        self.dirty, self.soon = dirty, soon
        self.delay, self.max_wait, self._clock = delay, max_wait, clock
        self._running: set[str] = set()
        self._bursts: dict[str, tuple[float, float]] = {}  # name -> (first, latest) hint
        self._lock = threading.Lock()

    def nudge(self, names: Iterable[str]) -> None:
        now = self._clock()
        with self._lock:
            for name in names:
                first, _ = self._bursts.get(name, (now, now))
                self._bursts[name] = (first, now)
                if name not in self._running:
                    self.soon(name, self._when(name))

    def _when(self, name: str) -> float:
        first, latest = self._bursts[name]
        return max(self._clock(), min(latest + self.delay, first + self.max_wait))

    def begin(self, name: str, *, seen: tuple[datetime | None] | None = None
              ) -> datetime | None:
        """A cycle of ``name`` starts: take its flag before it reads anything; returns
        when the flag was set (None: it was not, or the database is away). ``seen``:
        the flag as the account's claim found it (not read again)."""
        with self._lock:
            self._running.add(name)
            self._bursts.pop(name, None)
        try:
            return self.dirty.take(name, seen=seen)
        except Exception:  # the cycle itself reports a database that is away
            log.debug("could not take the push flag of %s", name, exc_info=True)
            return None

    def end(self, name: str, *, unread: datetime | None = None) -> None:
        """The cycle ended: another one after the burst if a hint came while it ran.

        ``unread``: the cycle did not read (another replica holds the account); its flag
        goes back as it was, for the holder's next cycle, and nothing is asked here (a
        cycle of ours would find the account held again).
        """
        with self._lock:
            self._running.discard(name)
            try:
                if unread is not None:
                    self.dirty.mark([name], now=unread)
                    return
                again = bool(self.dirty.flagged([name]))
            except Exception:  # the flag stays; the next cycle takes it
                log.debug("could not read the push flag of %s", name, exc_info=True)
                return
            if again:
                now = self._clock()
                self._bursts.setdefault(name, (now, now))
                self.soon(name, self._when(name))
