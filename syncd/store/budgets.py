"""The ledger of provider budgets: counts that every account and replica of syncd share.

A provider that limits a whole company (Pipedrive's daily tokens) or one token (its
2-second burst window) must see one client, however many accounts and replicas syncd runs.
So the counts live in the database and every change is one conditional UPDATE inside one
transaction: two replicas racing for the last tokens cannot both get them, on SQLite
(one writer at a time) and on PostgreSQL (the row lock re-checks the condition) alike.

The ledger knows no provider: :mod:`syncd.crm.pipedrive_budget` says what a call costs,
what a day is and what a throttled answer means.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import case, or_, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from syncd.store.budget_tables import BudgetBurst, BudgetDay
from syncd.store.db import Database
from syncd.store.records import DayCount


@dataclass(frozen=True)
class Grant:
    """The answer to :meth:`BudgetLedger.reserve`.

    Attributes:
        granted: the cost was taken from the day's allowance.
        day: the day after the reservation (or as it stood when refused).
        send_at: when the request may go out (seconds since the epoch), so that the token's
            burst window is respected; None when not granted.
    """

    granted: bool
    day: DayCount
    send_at: float | None


def _count(row: BudgetDay) -> DayCount:
    return DayCount(row.scope, row.day, row.used, row.allowance, row.resets_at, row.throttled,
                    row.halted_until, row.halt_reason)


class BudgetLedger:
    """Shared budget counts; each method is one transaction."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def _insert(self, table: type[Any], values: dict[str, Any]) -> Any:
        make = pg_insert if self.db.dialect == "postgresql" else sqlite_insert
        return make(table).values(**values).on_conflict_do_nothing()

    def reserve(self, scope: str, day: str, *, cost: int, allowance: int, resets_at: datetime,
                now: datetime, token_key: str, spacing: float) -> Grant:
        """Take ``cost`` from ``scope``'s allowance for ``day`` unless that would pass
        ``allowance`` or calls are halted, and then the token's next send slot.

        Send slots are ``spacing`` seconds apart (the burst window divided by its request
        limit), so no window of that length ever holds more than the limit, whichever
        replica sends.
        """
        with self.db.session() as s:
            s.execute(self._insert(BudgetDay, {
                "scope": scope, "day": day, "used": 0, "allowance": allowance,
                "resets_at": resets_at, "throttled": 0}))
            row = s.execute(
                update(BudgetDay)
                .where(BudgetDay.scope == scope, BudgetDay.day == day,
                       BudgetDay.used + cost <= allowance,
                       or_(BudgetDay.halted_until.is_(None), BudgetDay.halted_until <= now))
                .values(used=BudgetDay.used + cost, allowance=allowance)
                .returning(BudgetDay)
                .execution_options(synchronize_session=False)
            ).scalar_one_or_none()
            if row is None:
                refused = s.get_one(BudgetDay, (scope, day))
                return Grant(False, _count(refused), None)
            return Grant(True, _count(row), self._slot(s, scope, token_key, now, spacing))

    def _slot(self, s: Session, scope: str, token_key: str, now: datetime, spacing: float
              ) -> float:
        at = now.timestamp()
        s.execute(self._insert(BudgetBurst, {"scope": scope, "token_key": token_key,
                                             "next_at": 0.0}))
        after = s.execute(
            update(BudgetBurst)
            .where(BudgetBurst.scope == scope, BudgetBurst.token_key == token_key)
            .values(next_at=case((BudgetBurst.next_at > at, BudgetBurst.next_at), else_=at)
                    + spacing)
            .returning(BudgetBurst.next_at)
        ).scalar_one()
        return float(after) - spacing

    def refund(self, scope: str, day: str, cost: int) -> None:
        """Give back the cost of a call the provider refused without serving it."""
        with self.db.session() as s:
            s.execute(update(BudgetDay)
                      .where(BudgetDay.scope == scope, BudgetDay.day == day)
                      .values(used=case((BudgetDay.used > cost, BudgetDay.used - cost),
                                        else_=0)))

    def throttled(self, scope: str, day: str) -> int:
        """Count one more throttled answer in a row; returns how many there are now."""
        with self.db.session() as s:
            return int(s.execute(
                update(BudgetDay)
                .where(BudgetDay.scope == scope, BudgetDay.day == day)
                .values(throttled=BudgetDay.throttled + 1)
                .returning(BudgetDay.throttled)
            ).scalar_one_or_none() or 0)

    def answered(self, scope: str, day: str) -> None:
        """An answer that was not throttled ends the run of throttled ones."""
        with self.db.session() as s:
            s.execute(update(BudgetDay)
                      .where(BudgetDay.scope == scope, BudgetDay.day == day,
                             BudgetDay.throttled != 0)
                      .values(throttled=0))

    def halt(self, scope: str, day: str, until: datetime, reason: str) -> None:
        """Let no call of ``scope`` go out before ``until`` (a longer halt stays)."""
        with self.db.session() as s:
            s.execute(update(BudgetDay)
                      .where(BudgetDay.scope == scope, BudgetDay.day == day,
                             or_(BudgetDay.halted_until.is_(None),
                                 BudgetDay.halted_until < until))
                      .values(halted_until=until, halt_reason=reason))

    def hold(self, scope: str, token_key: str, until: float) -> None:
        """Let no request of the token go out before ``until`` (seconds since the epoch):
        a provider's "retry after" holds every account and replica, not just the caller."""
        with self.db.session() as s:
            s.execute(update(BudgetBurst)
                      .where(BudgetBurst.scope == scope, BudgetBurst.token_key == token_key,
                             BudgetBurst.next_at < until)
                      .values(next_at=until))

    def day(self, scope: str, day: str) -> DayCount | None:
        with self.db.session() as s:
            row = s.get(BudgetDay, (scope, day))
            return None if row is None else _count(row)

    def current(self, now: datetime) -> list[DayCount]:
        """Every scope's day that has not reset yet at ``now`` (for ``syncd status``)."""
        with self.db.session() as s:
            rows = s.scalars(select(BudgetDay).where(BudgetDay.resets_at > now)
                             .order_by(BudgetDay.scope, BudgetDay.day))
            return [_count(r) for r in rows]
