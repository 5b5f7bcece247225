"""The push dirty flag: "this account has changes to read", set by webhooks, taken by cycles.

A notification is a hint, never the truth (the cycle reads what changed through its
cursor), so the flag carries no detail: only when the first unread hint came
(``sync_accounts.dirty_at``). Marking keeps the earliest time, so a burst of hints is one
flag. A cycle takes the flag *before* it reads: a hint that arrives while the cycle runs
sets it again and earns one more cycle, and a hint that came before the take is covered by
the reading that follows it. That is why a burst makes at most two cycles.

The flag lives in the database, not in memory, so any replica holding the account sees it
and a restart does not lose it.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import cast

from sqlalchemy import Table, bindparam, select, update

from syncd.store.base import utcnow
from syncd.store.db import Database
from syncd.store.state_tables import SyncAccount

_ACCOUNTS = cast(Table, SyncAccount.__table__)
_DIRTY_AT = select(_ACCOUNTS.c.dirty_at).where(_ACCOUNTS.c.name == bindparam("name"))
_FLAGGED_ONE = select(_ACCOUNTS.c.name).where(_ACCOUNTS.c.name == bindparam("name"),
                                              _ACCOUNTS.c.dirty_at.is_not(None))


class DirtyFlags:
    """Mark, take and list the accounts a push said have changes."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def mark(self, names: Iterable[str], now: datetime | None = None) -> None:
        """Flag ``names`` (an account never synced yet gets its row); an account already
        flagged keeps its earlier time."""
        wanted = set(names)
        if not wanted:
            return
        at = now or utcnow()
        with self.db.session() as s:
            known = set(s.scalars(select(SyncAccount.name).where(SyncAccount.name.in_(wanted))))
            for name in sorted(wanted - known):
                s.add(SyncAccount(name=name, status="ok", crm_cursor=None, initial_done=False,
                                  failures=0, guest_window_count=0, lease_token=0,
                                  dirty_at=at))
            s.execute(update(SyncAccount)
                      .where(SyncAccount.name.in_(known), SyncAccount.dirty_at.is_(None))
                      .values(dirty_at=at))

    def take(self, name: str, *, seen: tuple[datetime | None] | None = None
             ) -> datetime | None:
        """Clear the account's flag; returns when it was set, or None if it was not.

        Every cycle asks, and nearly always finds none: that look is one statement
        outside a transaction, or none when the caller looked already (``seen``: the
        flag as the claim of the account read it, before the cycle reads anything). A
        hint landing between the look and the clearing is covered, as one landing just
        before the look: the cycle reads after both."""
        if seen is None:
            with self.db.read() as conn:
                at: datetime | None = conn.execute(_DIRTY_AT, {"name": name}).scalar()
        else:
            at = seen[0]
        if at is not None:
            with self.db.transaction() as conn:
                conn.execute(update(_ACCOUNTS).where(_ACCOUNTS.c.name == name)
                             .values(dirty_at=None))
        return at

    def flagged(self, names: Iterable[str] | None = None) -> set[str]:
        """The accounts flagged now (of ``names``, if given)."""
        wanted = None if names is None else set(names)
        if wanted is not None and len(wanted) == 1:  # every cycle's end: a built statement
            with self.db.read() as conn:
                return set(conn.execute(_FLAGGED_ONE, {"name": wanted.pop()}).scalars())
        query = select(_ACCOUNTS.c.name).where(_ACCOUNTS.c.dirty_at.is_not(None))
        if wanted is not None:
            query = query.where(_ACCOUNTS.c.name.in_(wanted))
        with self.db.read() as conn:
            return set(conn.execute(query).scalars())
