"""The accounts table as the work queue of one or several replicas (issue 16).

Each account's row says when its next cycle is due (``due_at``; NULL: now). A replica
claims due accounts whose lease is free or expired, a few at a time and at most as many
as it has room for (its cap on accounts in flight):

* on PostgreSQL with ``SELECT … FOR UPDATE SKIP LOCKED``: replicas claiming at the same
  moment skip each other's rows instead of waiting on them, and never get the same one;
* on SQLite with the same statements in one transaction: SQLite has a single writer, and
  serves a single process.

A claim takes the lease (owner, expiry and a new fencing token) in the same transaction,
with the expiry computed on the database's clock, never a replica's. The cycle then runs
under that token (renewed and checked before every write batch, checked on every cursor
commit and every record of finished writes: :class:`syncd.store.state.StateStore`), and
:meth:`WorkQueue.finish` gives the account back with its next due time. A replica that
dies or stops keeps its claims only until their leases expire; the next claim takes them
over (counted in ``takeovers``), and the fencing token keeps the old holder from writing
should it wake up.

A push makes an account due at once (:meth:`WorkQueue.due_by`, after the push gate's
debounce), whichever replica received the hint.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import (
    Interval,
    String,
    Table,
    Text,
    and_,
    any_,
    bindparam,
    case,
    func,
    not_,
    or_,
    select,
    update,
)
from sqlalchemy import cast as sql_cast
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from syncd.store.base import utcnow
from syncd.store.db import Database
from syncd.store.state import db_clock, taken_over
from syncd.store.state_tables import SyncAccount

_IN_SLICE = 500  # rows per INSERT

_ACCOUNTS = cast(Table, SyncAccount.__table__)


def text_array(names: Iterable[str]) -> str:
    """PostgreSQL's literal of a ``text[]`` of ``names``: each one quoted, its quotes and
    backslashes escaped, so any name (commas, braces, spaces, quotes) is one element."""
    quoted = ('"' + n.replace("\\", "\\\\").replace('"', '\\"') + '"' for n in names)
    return "{" + ",".join(quoted) + "}"


def _names_param(name: str) -> Any:
    """A ``text[]`` parameter sent as its literal (:func:`text_array`), one string."""
    return sql_cast(bindparam(name, type_=Text), ARRAY(Text))


def _pg_claim() -> Any:
    """PostgreSQL's claim as one statement, built once (every tick runs it): the due
    accounts chosen with ``FOR UPDATE SKIP LOCKED`` in a CTE (run once, so the rows it
    locked are the rows updated), their leases taken, and each one's holder before the
    take and push flag returned beside its new token. One statement is atomic by itself: it needs no
    transaction around it. The replica's accounts (``names``) and those of its cycles in
    flight (``busy``) go as array literals: the first one made once per set of names."""
    a, clock, owner = _ACCOUNTS, func.now(), bindparam("owner", type_=String)
    chosen = (select(a.c.name, a.c.lease_owner)
              .where(a.c.name == any_(_names_param("names")),
                     not_(a.c.name == any_(_names_param("busy"))),
                     or_(a.c.due_at.is_(None), a.c.due_at <= clock),
                     or_(a.c.lease_until.is_(None), a.c.lease_until < clock))
              .order_by(a.c.due_at.asc().nulls_first())
              .limit(bindparam("limit"))
              .with_for_update(skip_locked=True)
              .cte("chosen"))
    # (taken_over, with the owner as a parameter: the row's holder before the take)
    took = case((and_(a.c.lease_owner.is_not(None), a.c.lease_owner != owner), 1), else_=0)
    return (update(a).where(a.c.name == chosen.c.name)
            .values(lease_owner=owner, lease_until=clock + bindparam("ttl", type_=Interval),
                    lease_token=a.c.lease_token + 1, takeovers=a.c.takeovers + took)
            .returning(a.c.name, a.c.lease_token, chosen.c.lease_owner, a.c.dirty_at))


_PG_CLAIM = _pg_claim()
#: The give-back: due on the database's clock on PostgreSQL, on the process's elsewhere
#: (SQLite serves one process).
_FINISH_PG = update(_ACCOUNTS).where(
    _ACCOUNTS.c.name == bindparam("account"), _ACCOUNTS.c.lease_token == bindparam("token")
).values(lease_owner=None, lease_until=None,
         due_at=func.now() + bindparam("delay", type_=Interval))
_FINISH_LOCAL = update(_ACCOUNTS).where(
    _ACCOUNTS.c.name == bindparam("account"), _ACCOUNTS.c.lease_token == bindparam("token")
).values(lease_owner=None, lease_until=None,
         due_at=bindparam("due", type_=_ACCOUNTS.c.due_at.type))


@dataclass(frozen=True)
class Claim:
    """One account claimed from the queue: its lease's fencing token, and whether the
    lease was taken over from a holder that never gave it back."""

    name: str
    token: int
    took_over: bool
    #: The account's push flag as the claim found it (:mod:`syncd.store.dirty`): its
    #: cycle takes it without reading it again.
    dirty_at: datetime | None = None


class WorkQueue:
    """Claim due accounts, give them back with a next due time, and pull one forward."""

    def __init__(self, db: Database, owner: str) -> None:
        self.db = db
        self.owner = owner
        #: what this replica did, for the metrics: "claims", "takeovers"
        self.counts: Counter[str] = Counter()
        # The last set of names claimed among and its array literal: a replica claims
        # among the same accounts every time, and rendering (or having psycopg dump) a
        # thousand names on every claim cost more than the rest of the claim.
        self._listed: tuple[frozenset[str], str] = (frozenset(), "{}")

    def enrol(self, names: Iterable[str]) -> None:
        """Give accounts a row (due at once) unless they have one: a configured account
        is claimable before its first cycle."""
        rows = [{"name": n, "status": "ok", "initial_done": False, "failures": 0,
                 "guest_window_count": 0, "lease_token": 0, "takeovers": 0}
                for n in sorted(set(names))]
        if not rows:
            return
        insert = pg_insert if self.db.dialect == "postgresql" else sqlite_insert
        with self.db.session() as s:
            for i in range(0, len(rows), _IN_SLICE):
                s.execute(insert(SyncAccount).on_conflict_do_nothing(index_elements=["name"]),
                          rows[i:i + _IN_SLICE])

    def claim(self, names: Iterable[str], limit: int, ttl: timedelta,
              now: datetime | None = None, *, busy: Iterable[str] = ()) -> list[Claim]:
        """Claim up to ``limit`` of the accounts ``names`` that are due and not held by a
        live lease, the longest overdue first, none of ``busy`` (the replica's cycles in
        flight, whose leases may have outlived them). ``now`` is SQLite's clock (tests); on
        PostgreSQL the database's is used.

        A claim's work does not grow with ``names`` when the caller passes the same
        frozenset each time (as :class:`syncd.replica.Dispatcher` does): its literal is
        made once.
        """
        if limit <= 0:
            return []
        if self.db.dialect == "postgresql":
            listed = self._literal(names)
            if listed == "{}":
                return []
            with self.db.single() as conn:
                rows = conn.execute(_PG_CLAIM, {"names": listed, "busy": text_array(busy),
                                                "limit": limit, "owner": self.owner,
                                                "ttl": ttl}).all()
            return self._claimed([(name, previous, dirty) for name, _, previous, dirty in rows],
                                 {name: token for name, token, _, _ in rows})
        wanted = sorted(set(names) - set(busy))
        if not wanted:
            return []
        with self.db.transaction() as s:  # (Core: no ORM session's CPU on every tick)
            clock = db_clock(s, now)
            candidates = (
                select(SyncAccount.name, SyncAccount.lease_owner, SyncAccount.dirty_at)
                .where(or_(SyncAccount.due_at.is_(None), SyncAccount.due_at <= clock),
                       or_(SyncAccount.lease_until.is_(None), SyncAccount.lease_until < clock))
                .order_by(SyncAccount.due_at.asc().nulls_first())
                .limit(limit)
                .with_for_update(skip_locked=True)
            )
            chosen = [(name, previous, dirty) for name, previous, dirty
                      in s.execute(candidates.where(SyncAccount.name.in_(wanted)))]
            if not chosen:
                return []
            taken = s.execute(
                update(SyncAccount)
                .where(SyncAccount.name.in_([name for name, _, _ in chosen]))
                .values(lease_owner=self.owner, lease_until=clock + ttl,
                        lease_token=SyncAccount.lease_token + 1,
                        takeovers=SyncAccount.takeovers + taken_over(self.owner))
                .returning(SyncAccount.name, SyncAccount.lease_token)
            )
            tokens = {name: token for name, token in taken}
        return self._claimed(chosen, tokens)

    def _literal(self, names: Iterable[str]) -> str:
        """The ``text[]`` literal of ``names``, made again only when they changed."""
        known, literal = self._listed
        if names is known:
            return literal
        wanted = names if isinstance(names, frozenset) else frozenset(names)
        if wanted != known:
            # (tuple swapped whole: a refill on a worker thread may read it meanwhile)
            self._listed = (wanted, text_array(sorted(wanted)))
        return self._listed[1]

    def _claimed(self, chosen: list[tuple[str, str | None, datetime | None]],
                 tokens: dict[str, int]) -> list[Claim]:
        """The claims of the ``chosen`` accounts (name, holder before, push flag) given
        ``tokens``."""
        claims = [Claim(name, int(tokens[name]), previous is not None and previous != self.owner,
                        dirty)
                  for name, previous, dirty in chosen if name in tokens]
        self.counts["claims"] += len(claims)
        self.counts["takeovers"] += sum(c.took_over for c in claims)
        return claims

    def finish(self, name: str, token: int, seconds: float, *, jitter: float = 0.0,
               now: datetime | None = None) -> bool:
        """Give the account back: lease released, next cycle due ``seconds`` (plus up to
        ``jitter`` at random, so accounts do not fire together) from the database's now.
        False when another replica took the account meanwhile (it is theirs to schedule).
        """
        delay = timedelta(seconds=seconds + random.uniform(0, jitter))
        # (every cycle's: one statement built once, atomic without a transaction)
        if self.db.dialect == "postgresql":
            stmt, params = _FINISH_PG, {"account": name, "token": token, "delay": delay}
        else:
            stmt, params = _FINISH_LOCAL, {"account": name, "token": token,
                                           "due": (now or utcnow()) + delay}
        with self.db.single() as conn:
            return bool(conn.execute(stmt, params).rowcount)

    def due_by(self, name: str, when: datetime) -> None:
        """Make the account due no later than ``when`` (a push): an earlier due time
        stays. A replica holding it now sees the push flag when its cycle ends."""
        with self.db.session() as s:
            s.execute(update(SyncAccount)
                      .where(SyncAccount.name == name,
                             or_(SyncAccount.due_at.is_(None), SyncAccount.due_at > when))
                      .values(due_at=when))

    def takeovers(self) -> int:
        """Lease takeovers of every replica, ever (the sum over the accounts' rows)."""
        with self.db.session() as s:
            return int(s.scalar(select(func.coalesce(func.sum(SyncAccount.takeovers), 0)))
                       or 0)
