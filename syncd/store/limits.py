"""Provider limits every replica shares through the database (``[syncd] replica = true``).

The connectors count against them through :class:`connectors.base.SharedLimits`; this is
the store that implements it (the service hands it over, so connectors never import the
store). Two kinds of limit, each a single statement on the hot path:

* **a send line** (:meth:`LimitStore.pace`): a scope's next free send time, as the
  Pipedrive ledger's burst row (:class:`~syncd.store.budget_tables.BudgetBurst`). A
  request reserves its share of the line in one upsert and is sent when its reservation
  begins. Spacing reservations ``window / (limit - batch)`` apart keeps any window of
  that length at or under ``limit`` requests (Google's per-user minute), whichever
  replica sends them.
* **concurrency slots** (:meth:`LimitStore.take_slots`): a scope's ``limit`` rows, each
  free or held by a request's ticket until an expiry. Taking is one UPDATE of free rows
  chosen with ``FOR UPDATE SKIP LOCKED``, all the permits or none. Giving back is off the
  request's path: the tickets given back are freed by a thread of the store a moment
  later (:data:`RETURN_EVERY`), all that came in meanwhile in one UPDATE, so that at many
  requests a second a request costs about one statement. A replica killed with slots
  held, or with tickets not yet freed, frees them at their expiry.

Times are the database's (``now()`` on PostgreSQL), so replicas whose clocks disagree
still share one line and one expiry; SQLite serves one process, whose clock is used.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from datetime import timedelta
from typing import Any

from sqlalchemy import case, func, literal, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from syncd.store.budget_tables import BudgetBurst, BudgetSlot
from syncd.store.db import Database
from syncd.store.state import db_clock

#: The burst row's key of a send line (the Pipedrive ledger keys its rows by token).
LINE = "requests"


#: How long given-back tickets gather before one statement frees them all (seconds).
RETURN_EVERY = 0.02

log = logging.getLogger("syncd.store")


class _TooFew(Exception):
    """Fewer slots were free than asked for: the transaction that took them is undone."""


class LimitStore:
    """Send lines and concurrency slots in the database (see the module docstring)."""

    def __init__(self, db: Database, *, free_every: float | None = RETURN_EVERY) -> None:
        """``free_every``: seconds given-back tickets gather before the store's thread
        frees them (None: no thread; :meth:`flush` frees them)."""
        self.db = db
        self.free_every = free_every
        self._made: set[tuple[str, int]] = set()  # scopes whose slot rows exist
        self._lock = threading.Lock()
        self._returns: list[tuple[str, str]] = []  # (scope, ticket) given back, not freed
        self._returned = threading.Condition(self._lock)
        self._returner: threading.Thread | None = None
        self._freeing = threading.Lock()  # one free at a time: flush waits for the thread's

    def _insert(self, table: type[Any]) -> Any:
        return (pg_insert if self.db.dialect == "postgresql" else sqlite_insert)(table)

    def pace(self, scope: str, seconds: float) -> float:
        """Reserve ``seconds`` of ``scope``'s send line; returns how long to wait before
        sending (0.0: at once). One upsert, which also makes the line on first use."""
        with self.db.session() as s:
            if self.db.dialect == "postgresql":
                now: Any = func.date_part("epoch", func.now())
            else:
                now = literal(time.time())
            start = case((BudgetBurst.next_at > now, BudgetBurst.next_at), else_=now)
            stmt = self._insert(BudgetBurst).values(scope=scope, token_key=LINE,
                                                    next_at=now + seconds)
            row = s.execute(stmt.on_conflict_do_update(
                index_elements=["scope", "token_key"], set_={"next_at": start + seconds},
            ).returning(BudgetBurst.next_at, now)).one()
        return max(0.0, float(row[0]) - seconds - float(row[1]))

    def take_slots(self, scope: str, limit: int, permits: int, hold: float) -> str | None:
        """Take ``permits`` of ``scope``'s ``limit`` slots until ``hold`` seconds from now;
        returns the ticket that gives them back, or None (nothing taken) when fewer are
        free."""
        permits = max(1, min(permits, limit))
        self._make(scope, limit)
        ticket = uuid.uuid4().hex
        try:
            self._take(scope, limit, permits, hold, ticket)
        except _TooFew:
            return None
        return ticket

    def _take(self, scope: str, limit: int, permits: int, hold: float, ticket: str) -> None:
        with self.db.session() as s:
            clock = db_clock(s)
            free = (select(BudgetSlot.slot)
                    .where(BudgetSlot.scope == scope, BudgetSlot.slot < limit,
                           (BudgetSlot.ticket.is_(None)) | (BudgetSlot.until < clock))
                    .order_by(BudgetSlot.slot).limit(permits)
                    .with_for_update(skip_locked=True))
            if self.db.dialect == "postgresql":
                # A CTE runs once; as a plain IN subquery PostgreSQL may run it again per
                # row, each time skipping the rows it has just locked: more get taken.
                # (SQLite has one writer and no SKIP LOCKED, and its driver would run a
                # statement starting with WITH outside the transaction.)
                chosen: Any = select(free.cte("free").c.slot)
            else:
                chosen = free.scalar_subquery()
            taken = s.execute(
                update(BudgetSlot)
                .where(BudgetSlot.scope == scope, BudgetSlot.slot.in_(chosen))
                .values(ticket=ticket, until=clock + timedelta(seconds=hold))
                .returning(BudgetSlot.slot)
                .execution_options(synchronize_session=False)
            ).all()
            if len(taken) < permits:
                # All or none (rolled back): two batches holding half each would wait
                # for each other forever.
                raise _TooFew

    def give_back(self, scope: str, ticket: str) -> None:
        """Free the slots taken with ``ticket`` (none if they expired and were taken)
        within :data:`RETURN_EVERY` seconds, with the others given back meanwhile."""
        with self._lock:
            self._returns.append((scope, ticket))
            if self._returner is None and self.free_every is not None:
                self._returner = threading.Thread(target=self._return_loop, daemon=True,
                                                  name="syncd-slot-returns")
                self._returner.start()
            self._returned.notify_all()

    def flush(self) -> None:
        """Free every ticket given back so far, now (tests; a process that stops). Also
        waits for a free the store's thread has begun: after it, none is pending."""
        with self._freeing:
            with self._lock:
                returns, self._returns = self._returns, []
            self._free(returns)

    def _return_loop(self) -> None:
        while True:
            with self._lock:
                self._returned.wait_for(lambda: bool(self._returns))
            time.sleep(self.free_every or 0.0)  # let the returns of the moment gather
            try:
                self.flush()
            except Exception:  # their expiry frees them; the next ones may get through
                log.warning("slots given back could not be freed now; they free themselves "
                            "at their expiry", exc_info=True)

    def _free(self, returns: list[tuple[str, str]]) -> None:
        if not returns:
            return
        scopes = sorted({scope for scope, _ticket in returns})
        tickets = sorted({ticket for _scope, ticket in returns})
        with self.db.session() as s:
            s.execute(update(BudgetSlot)
                      .where(BudgetSlot.scope.in_(scopes), BudgetSlot.ticket.in_(tickets))
                      .values(ticket=None, until=None))

    def _make(self, scope: str, limit: int) -> None:
        """The scope's slot rows, made once per process (a no-op where they exist)."""
        with self._lock:
            if (scope, limit) in self._made:
                return
        with self.db.session() as s:
            s.execute(self._insert(BudgetSlot).on_conflict_do_nothing(
                index_elements=["scope", "slot"]),
                [{"scope": scope, "slot": i, "ticket": None, "until": None}
                 for i in range(limit)])
        with self._lock:
            self._made.add((scope, limit))

    def held(self, scope: str) -> int:
        """How many of ``scope``'s slots are held now (for tests and status)."""
        with self.db.session() as s:
            clock = db_clock(s)
            return int(s.scalar(select(func.count()).select_from(BudgetSlot).where(
                BudgetSlot.scope == scope, BudgetSlot.ticket.is_not(None),
                BudgetSlot.until >= clock)) or 0)
