"""CRM -> calendar push for a CRM syncd watches itself: the built-in store's change feed.

The built-in CRM has no webhook to call: its edits are rows in syncd's own database. So
the daemon looks at the change feed about every second, one small query on its primary
key that answers nothing while nothing changes (:meth:`ChangeWatch.owners_changed`), and
hands the owners whose activities changed to :meth:`syncd.push.Hints.crm_users_changed`;
the hints thread flags their accounts and the :class:`~syncd.push.PushGate` runs one cycle
after the burst. Local, so it needs no ``[http] listen``.

Starting, the watcher notes where the feed is: older changes are the first cycles' to read.
When the database is away a look fails; the watcher says so once, waits longer between
tries (up to ``MAX_BACKOFF``), and says when it reads again. Its mark only moves past rows
it read, so a change made during an outage is hinted once the database answers. If the
mark itself could not be taken at start, changes before the database came back are left
to the regular poll.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from collections.abc import Callable, Iterable

from syncd.crm.source import ChangeWatch
from syncd.report import describe

log = logging.getLogger("syncd.crm_watch")

WATCH_SECONDS = 1.0  # between two looks at the change feed
MAX_BACKOFF = 30.0  # the longest wait between two tries while the database is away
PAGE = 1000  # change rows one query reads
MAX_PAGES = 20  # pages one look reads before the next look (a huge import goes on later)


class CrmWatcher:
    """Looks at a :class:`ChangeWatch` source every ``every`` seconds on its own thread.

    ``changed`` gets the CRM user ids whose activities changed (it must return at once:
    ``Hints.crm_users_changed``). ``counts``: ``looks`` (queries of the feed), ``hinted``
    (owner ids handed on), ``failed`` (looks the database did not answer).
    """

    def __init__(self, source: ChangeWatch, changed: Callable[[Iterable[int]], None], *,
                 every: float = WATCH_SECONDS, max_backoff: float = MAX_BACKOFF,
                 page: int = PAGE) -> None:
        self.source, self.changed = source, changed
        self.every, self.max_backoff, self.page = every, max_backoff, page
        self.counts: Counter[str] = Counter()
        self._mark: int | None = None
        self._failing = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Note where the feed is now (or leave it to the first look when the database is
        away), then look on a thread."""
        if self._thread is not None:
            return
        self._stop.clear()
        self.look()
        self._thread = threading.Thread(target=self._loop, name="syncd-crm-watch", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """No more looks; returns once the thread ended (a look in flight finishes)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def _loop(self) -> None:
        pause = self.every
        while not self._stop.wait(pause):
            pause = self.every if self.look() else min(pause * 2, self.max_backoff)

    def look(self) -> bool:
        """One look at the feed: hint the owners of the rows after the mark, move the mark.
        Returns False when the database did not answer (logged once per outage)."""
        owners: set[int] = set()
        try:
            if self._mark is None:
                self.counts["looks"] += 1
                self._mark = self.source.change_mark()
            else:
                for _ in range(MAX_PAGES):
                    self.counts["looks"] += 1
                    seen = self.source.owners_changed(self._mark, limit=self.page)
                    owners |= seen.owner_ids
                    self._mark = seen.mark
                    if not seen.more:
                        break
        except Exception as exc:  # the database is away: try again, the poll covers meanwhile
            self.counts["failed"] += 1
            if not self._failing:
                log.warning("watching the CRM for changes failed (retrying; until it works "
                            "CRM changes wait for the regular poll): %s", describe(exc))
                log.debug("CRM watch failure", exc_info=True)
            self._failing = True
            if owners:  # the pages read before the failure are not lost
                self._hint(owners)
            return False
        if self._failing:
            log.info("watching the CRM for changes works again")
            self._failing = False
        if owners:
            self._hint(owners)
        return True

    def _hint(self, owners: set[int]) -> None:
        self.counts["hinted"] += len(owners)
        self.changed(sorted(owners))

