"""Provider limits every replica shares through the database (``[syncd] replica = true``).

The connectors count against them through :class:`connectors.base.SharedLimits`; this is
the store that implements it (the service hands it over, so connectors never import the
store). Two kinds of limit, each a single statement on the hot path:

* **a send line** (:meth:`LimitStore.pace`): a scope's next free send time, as the
  Pipedrive ledger's burst row (:class:`~syncd.store.budget_tables.BudgetBurst`). A
  request reserves its share of the line in one upsert and is sent when its reservation
  begins. Spacing reservations ``window / (limit - batch)`` apart keeps any window of
  that length at or under ``limit`` requests (Google's per-user minute), whichever
  replica sends them. A request under two limits (a Google user's minute and its
  project's, a Graph mailbox's 10 minutes and its app registration's second) reserves
  on both lines in the same upsert (``also``).
* **a pause** (:meth:`LimitStore.hold`): a provider's Retry-After moves the scope's
  line past it, so every replica's next reservation there begins after it (and the
  requests of every other account of that user or mailbox wait too).
* **a burst** (``pace(..., burst=)``): a request may go out that many seconds ahead of
  its reservation, so a line idle for long lets a burst through at once and then paces
  (the generic cell rate algorithm; Graph's 10 minutes are too long to pace from the
  first request). Any ``window`` then holds at most ``(window + burst) / spacing`` + the
  last batch.
* **concurrency slots** (:meth:`LimitStore.take_slots`): a scope's ``limit`` rows, each
  free or held by a request's ticket until an expiry. Taking is one UPDATE of free rows
  chosen with ``FOR UPDATE SKIP LOCKED``, all the permits or none. Giving back is off the
  request's path: the tickets given back are freed by a thread of the store a moment
  later (:data:`RETURN_EVERY`), all that came in meanwhile in one UPDATE, so that at many
  requests a second a request costs about one statement. A replica killed with slots
  held, or with tickets not yet freed, frees them at their expiry.

Times are the database's (``now()`` on PostgreSQL), so replicas whose clocks disagree
still share one line and one expiry; SQLite serves one process, whose clock is used.
Rows no limit needs any more are deleted by :meth:`LimitStore.prune`.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import (
    Float,
    Integer,
    Interval,
    String,
    bindparam,
    case,
    delete,
    func,
    literal,
    select,
    union_all,
    update,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from syncd.errors import bounded_pause
from syncd.store.budget_tables import BudgetBurst, BudgetDay, BudgetSlot
from syncd.store.db import Database
from syncd.store.state import db_clock

#: The burst row's key of a send line (the Pipedrive ledger keys its rows by token).
LINE = "requests"


#: How long given-back tickets gather before one statement frees them all (seconds).
RETURN_EVERY = 0.02
#: How long a budget row unused stays (seconds): longer than any window a limit counts
#: (Graph's 10 minutes) and than a process trusts its slot rows to exist (MADE_FOR).
KEPT_SECONDS = 3600.0
#: How long a process counts on a scope's slot rows before marking them in use again.
MADE_FOR = 600.0
#: The least time between two prunes by one replica (seconds).
PRUNE_EVERY = 60.0

log = logging.getLogger("syncd.store")


def _unflushed_lines(count: int, now: Any) -> Any:
    """The rows of ``count`` lines to upsert, as a SELECT whose rows each turn off, for
    this statement's own transaction only, the commit's wait for its WAL flush.

    Every request of every user of a Google project reserves on the project's one row (and
    every request to every mailbox of a Graph app registration on the app's), and
    PostgreSQL releases a row's lock only once the commit that changed it is flushed: the
    reservations queued behind each other's flush (``Lock:transactionid`` in
    ``pg_stat_activity`` at 1,000 calendars, bench/results/replicas-quiet.md). A line is
    a pacing aid: a reservation lost in a database crash lets at most the last few hundred
    milliseconds of requests be counted again, inside the margin the budgets keep under
    the providers' limits (which syncd obeys anyway when they answer 429), so its commit
    need not wait. ``set_config(..., true)`` lasts until the statement's transaction ends;
    the sync state's writes keep the server's ``synchronous_commit``.
    """
    relaxed = func.set_config("synchronous_commit", "off", True).is_not(None)
    rows = [select(bindparam(f"scope{i}", type_=String).label("scope"),
                   literal(LINE, String).label("token_key"),
                   (now + bindparam(f"seconds{i}", type_=Float)).label("next_at")).where(relaxed)
            for i in range(count)]
    return rows[0] if count == 1 else union_all(*rows)


class _TooFew(Exception):
    """Fewer slots were free than asked for: the transaction that took them is undone."""


def _pg_take() -> Any:
    """PostgreSQL's take of slots as one statement (bound: ``of``, ``limit``,
    ``permits``, ``holder``, ``hold``), all or none: the free rows are chosen with ``FOR
    UPDATE SKIP LOCKED`` in a CTE, and updated only when it found ``permits`` of them
    (two batches holding half each would wait for each other forever). The CTE runs
    once, being read twice (as a plain IN subquery PostgreSQL may run it again per row,
    each time skipping the rows it has just locked: more get taken); rows it locked but
    did not update are let go when the statement ends."""
    slots, clock = BudgetSlot.__table__.c, func.now()
    # (not named after columns: an UPDATE keeps those names for its SET values)
    scope, permits = bindparam("of", type_=String), bindparam("permits", type_=Integer)
    free = (select(slots.slot)
            .where(slots.scope == scope, slots.slot < bindparam("limit", type_=Integer),
                   slots.ticket.is_(None) | (slots.until < clock))
            .order_by(slots.slot).limit(permits)
            .with_for_update(skip_locked=True)
            .cte("free"))
    found = select(func.count()).select_from(free).scalar_subquery()
    return (update(BudgetSlot)
            .where(slots.scope == scope, slots.slot.in_(select(free.c.slot)),
                   found == permits)
            .values(ticket=bindparam("holder", type_=String),
                    until=clock + bindparam("hold", type_=Interval))
            .returning(slots.slot))


_PG_TAKE = _pg_take()


class LimitStore:
    """Send lines and concurrency slots in the database (see the module docstring)."""

    def __init__(self, db: Database, *, free_every: float | None = RETURN_EVERY,
                 clock: Callable[[], float] = time.time) -> None:
        """``free_every``: seconds given-back tickets gather before the store's thread
        frees them (None: no thread; :meth:`flush` frees them). ``clock``: seconds since
        the epoch on SQLite (tests); PostgreSQL's is its own."""
        self.db = db
        self.clock = clock
        self.free_every = free_every
        # until when each scope's slot rows are counted on as made (by :attr:`clock`)
        self._made: dict[tuple[str, int], float] = {}
        self._lock = threading.Lock()
        self._returns: list[tuple[str, str]] = []  # (scope, ticket) given back, not freed
        self._returned = threading.Condition(self._lock)
        self._returner: threading.Thread | None = None
        self._paces: dict[int, Any] = {}  # the pace upsert by its number of lines
        self._freeing = threading.Lock()  # one free at a time: flush waits for the thread's

    def _insert(self, table: Any) -> Any:
        return (pg_insert if self.db.dialect == "postgresql" else sqlite_insert)(table)

    def _epoch(self) -> Any:
        """Now, in seconds since the epoch, as a statement's value (see the module)."""
        if self.db.dialect == "postgresql":
            return func.date_part("epoch", func.now())
        return literal(self.clock())

    def pace(self, scope: str, seconds: float, *, burst: float = 0.0,
             also: Sequence[tuple[str, float]] = ()) -> float:
        """Reserve ``seconds`` of ``scope``'s send line (and of each line of ``also``);
        returns how long to wait before sending (0.0: at once). One upsert for all the
        lines, which also makes a line on first use.

        A reservation begins where the line's last one ended, or now if that is past;
        the request may go out ``burst`` seconds before it begins (so a line idle that
        long lets that much go at once), and ``also``'s lines have none. The lines are
        locked in the order of their scopes, so two takes never wait for each other in a
        cycle. A line's reservation that a slower line made useless is left unused: the
        count errs on the side of fewer requests.
        """
        lines = {scope: seconds}
        for other, other_seconds in also:
            lines[other] = max(lines.get(other, 0.0), other_seconds)
        keys = sorted(lines)
        values: dict[str, Any] = {"now": self.clock()}  # (SQLite's; PostgreSQL has its own)
        for i, key in enumerate(keys):
            values[f"scope{i}"], values[f"seconds{i}"] = key, lines[key]
        # One statement on an autocommit connection: it is a transaction by itself, and
        # no BEGIN and COMMIT travel around it (it is on every request's path).
        with self.db.read() as conn:
            rows = conn.execute(self._pace_statement(len(keys)), values).all()
        return max([0.0] + [float(at) - lines[key] - (burst if key == scope else 0.0)
                            - float(clock) for key, at, clock in rows])

    def _pace_statement(self, count: int) -> Any:
        """The upsert of ``count`` lines (bound: ``scope<i>``, ``seconds<i>``, ``now``),
        built once per count: building and caching a statement per request costs more
        CPU than the round trip."""
        with self._lock:
            stmt = self._paces.get(count)
        if stmt is not None:
            return stmt
        lines = BudgetBurst.__table__.c
        now: Any = (func.date_part("epoch", func.now()) if self.db.dialect == "postgresql"
                    else bindparam("now", type_=Float))
        if self.db.dialect == "postgresql":
            insert = pg_insert(BudgetBurst).from_select(
                ["scope", "token_key", "next_at"], _unflushed_lines(count, now))
        else:
            insert = self._insert(BudgetBurst.__table__).values(
                [{"scope": bindparam(f"scope{i}", type_=String), "token_key": LINE,
                  "next_at": now + bindparam(f"seconds{i}", type_=Float)}
                 for i in range(count)])
        start = case((lines.next_at > now, lines.next_at), else_=now)
        stmt = insert.on_conflict_do_update(
            index_elements=["scope", "token_key"],
            # the excluded row's next_at is now + this line's seconds
            set_={"next_at": start + (insert.excluded.next_at - now)},
        ).returning(lines.scope, lines.next_at, now)
        with self._lock:
            self._paces[count] = stmt
        return stmt

    def hold(self, scope: str, seconds: float, *, burst: float = 0.0) -> None:
        """Move ``scope``'s line so that no reservation begins within ``seconds`` (at most
        :data:`~syncd.errors.MAX_PAUSE_SECONDS`) from now; a later hold stays. Its burst
        is spent: after the pause the line is paced from the start."""
        until = self._epoch() + bounded_pause(seconds) + max(burst, 0.0)
        with self.db.session() as s:
            stmt = self._insert(BudgetBurst).values(scope=scope, token_key=LINE, next_at=until)
            s.execute(stmt.on_conflict_do_update(
                index_elements=["scope", "token_key"],
                set_={"next_at": case((BudgetBurst.next_at > stmt.excluded.next_at,
                                       BudgetBurst.next_at), else_=stmt.excluded.next_at)}))

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

    def _now(self, s: Session) -> Any:
        """Now, as the slots' times are compared (the database's, or :attr:`clock`'s)."""
        return db_clock(s, datetime.fromtimestamp(self.clock(), UTC))

    def _take(self, scope: str, limit: int, permits: int, hold: float, ticket: str) -> None:
        if self.db.dialect == "postgresql":
            # One statement on an autocommit connection (on every Graph request's path):
            # no ORM session, no BEGIN and COMMIT around it, and built once.
            with self.db.single() as conn:
                taken = conn.execute(_PG_TAKE, {"of": scope, "limit": limit,
                                                "permits": permits, "holder": ticket,
                                                "hold": timedelta(seconds=hold)}).all()
            if len(taken) < permits:  # none were taken (see _pg_take)
                raise _TooFew
            return
        with self.db.session() as s:
            clock = self._now(s)
            free = (select(BudgetSlot.slot)
                    .where(BudgetSlot.scope == scope, BudgetSlot.slot < limit,
                           (BudgetSlot.ticket.is_(None)) | (BudgetSlot.until < clock))
                    .order_by(BudgetSlot.slot).limit(permits)
                    .with_for_update(skip_locked=True))
            # (SQLite has one writer and no SKIP LOCKED, and its driver would run a
            # statement starting with WITH outside the transaction.)
            taken = s.execute(
                update(BudgetSlot)
                .where(BudgetSlot.scope == scope, BudgetSlot.slot.in_(free.scalar_subquery()))
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
            # ``until`` stays: when the slot was last used, for :meth:`prune`.
            s.execute(update(BudgetSlot)
                      .where(BudgetSlot.scope.in_(scopes), BudgetSlot.ticket.in_(tickets))
                      .values(ticket=None))

    def _make(self, scope: str, limit: int) -> None:
        """The scope's slot rows, made (or marked as in use: see :meth:`prune`) at most
        once per :data:`MADE_FOR` seconds per process."""
        with self._lock:
            if self._made.get((scope, limit), 0.0) > self.clock():
                return
        with self.db.session() as s:
            clock = self._now(s)
            stmt = self._insert(BudgetSlot).values(
                [{"scope": scope, "slot": i, "ticket": None, "until": clock}
                 for i in range(limit)])
            # Free rows get a fresh ``until``, so none is pruned while this process
            # counts on it (free ones only: a holder's expiry stays its own).
            s.execute(stmt.on_conflict_do_update(
                index_elements=["scope", "slot"],
                set_={"ticket": None, "until": clock},
                where=(BudgetSlot.ticket.is_(None)) | (BudgetSlot.until < clock)))
        with self._lock:
            self._made[(scope, limit)] = self.clock() + MADE_FOR

    def prune(self) -> int:
        """Delete the rows no limit needs any more; returns how many went.

        * a send line (Google's, Graph's mailboxes' and apps', the Pipedrive tokens'
          bursts) whose last
          reservation ended :data:`KEPT_SECONDS` ago: an absent line paces exactly as
          one idle that long (its next reservation begins now, with its whole burst);
        * a concurrency slot free and unused for as long (no process counts on it: each
          marks its slots in use again every :data:`MADE_FOR` seconds);
        * a Pipedrive day that reset :data:`KEPT_SECONDS` ago (``syncd status`` shows
          only the current one).

        Three short DELETEs on the tables' keys; the daemon of each replica runs them at
        most once every :data:`PRUNE_EVERY` seconds.
        """
        with self.db.session() as s:
            epoch = self._epoch()
            clock = self._now(s)
            before: Any = (func.now() - timedelta(seconds=KEPT_SECONDS)
                           if self.db.dialect == "postgresql"
                           else datetime.fromtimestamp(self.clock() - KEPT_SECONDS, UTC))
            deletes = (
                delete(BudgetBurst).where(BudgetBurst.next_at < epoch - KEPT_SECONDS),
                delete(BudgetSlot).where(
                    (BudgetSlot.ticket.is_(None)) | (BudgetSlot.until < clock),
                    (BudgetSlot.until.is_(None)) | (BudgetSlot.until < before)),
                delete(BudgetDay).where(BudgetDay.resets_at < before),
            )
            gone = 0
            for stmt in deletes:
                gone += int(s.execute(stmt).rowcount or 0)  # type: ignore[attr-defined]
        return gone

    def rows(self) -> int:
        """The rows of every budget table (for tests and status)."""
        with self.db.session() as s:
            return sum(int(s.scalar(select(func.count()).select_from(table)) or 0)
                       for table in (BudgetBurst, BudgetSlot, BudgetDay))

    def held(self, scope: str) -> int:
        """How many of ``scope``'s slots are held now (for tests and status)."""
        with self.db.session() as s:
            clock = self._now(s)
            return int(s.scalar(select(func.count()).select_from(BudgetSlot).where(
                BudgetSlot.scope == scope, BudgetSlot.ticket.is_not(None),
                BudgetSlot.until >= clock)) or 0)
