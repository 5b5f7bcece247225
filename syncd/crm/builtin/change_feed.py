"""The activity change feed: one row per change, read back by sequence number.

The sync engine keeps a cursor (the last ``seq`` it has applied) per account and asks
for everything after it. That only works if a reader can never see ``seq`` N+1 before
N has committed, otherwise its cursor would skip N for good. On SQLite there is a single
writer at a time anyway. On PostgreSQL a sequence hands out numbers at insert time, not at
commit, so ``ActivityStore`` serialises its writers with a transaction-scoped advisory
lock (:func:`lock_writers`): numbers are then handed out in commit order.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, Integer, Select, bindparam, func, insert, or_, select, text
from sqlalchemy.orm import Session

from syncd.crm.builtin.tables import ActivityChange
from syncd.store.lite import WRITER_LOCK_KEY


def lock_writers(session: Session) -> None:
    """Serialise write transactions (call first thing in every write transaction).

    PostgreSQL: a transaction-scoped advisory lock, released by commit or rollback.
    SQLite: ``BEGIN IMMEDIATE`` takes the database's write lock now rather than at the
    first write, so a read-check-write sequence cannot be overtaken by another writer
    (a deferred transaction would fail with "database is locked" on upgrade instead).
    """
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": WRITER_LOCK_KEY})
    elif dialect == "sqlite":
        session.connection().exec_driver_sql("BEGIN IMMEDIATE")


@dataclass(frozen=True)
class ChangeRow:
    """A change to record."""

    activity_id: int
    sync_uid: str
    kind: str  # insert, update, delete, purge
    owner_id: int  # the owner after the change
    previous_owner_id: int | None = None  # set only when the owner changed


def append(session: Session, changes: Sequence[ChangeRow], at: datetime) -> None:
    """Append change rows, in the order given, to the feed."""
    if not changes:
        return
    session.execute(
        insert(ActivityChange),
        [
            {"activity_id": c.activity_id, "sync_uid": c.sync_uid, "kind": c.kind,
             "owner_id": c.owner_id, "previous_owner_id": c.previous_owner_id, "at": at}
            for c in changes
        ],
    )


def last_seq(session: Session) -> int:
    """The highest sequence number written so far (0 for an empty feed)."""
    return int(session.scalar(select(func.max(ActivityChange.seq))) or 0)


@dataclass(frozen=True)
class RawPage:
    """The change rows of one page, reduced to what the store needs."""

    latest: dict[int, int]  # activity id -> its highest seq in the page
    sync_uids: dict[int, str]
    last_seq: int
    more: bool
    handed_over: frozenset[int] = frozenset()  # reassigned to the reader's owner


def _page_query(*, by_owner: bool) -> Select[int, int, str, int, int | None]:
    """A page of the feed after ``after``, ``limit`` rows, of one owner's changes when
    ``by_owner``: built once (every idle cycle reads a page and finds it empty)."""
    query = select(ActivityChange.seq, ActivityChange.activity_id, ActivityChange.sync_uid,
                   ActivityChange.owner_id, ActivityChange.previous_owner_id)
    query = query.where(ActivityChange.seq > bindparam("after"))
    if by_owner:
        # Both owners of a reassigned activity see it: the new one gains it and the old
        # one must take it off their calendar.
        owner = bindparam("owner", type_=Integer)
        query = query.where(or_(ActivityChange.owner_id == owner,
                                ActivityChange.previous_owner_id == owner))
    return query.order_by(ActivityChange.seq).limit(bindparam("limit"))


_PAGE = {by_owner: _page_query(by_owner=by_owner) for by_owner in (False, True)}


def read_page(session: Session | Connection, after: int, owner_id: int | None, limit: int
              ) -> RawPage:
    """Read up to ``limit`` change rows with ``seq > after`` (one more, to know ``more``)."""
    fetched = session.execute(_PAGE[owner_id is not None],
                              {"after": after, "owner": owner_id, "limit": limit + 1}).all()
    more = len(fetched) > limit
    rows = fetched[:limit]
    latest: dict[int, int] = {}
    uids: dict[int, str] = {}
    handed: set[int] = set()
    for seq, activity_id, sync_uid, owner, previous in rows:
        latest.pop(activity_id, None)  # re-insert so dict order follows the latest seq
        latest[activity_id] = seq
        uids[activity_id] = sync_uid
        if previous is not None and previous != owner and owner == owner_id:
            handed.add(activity_id)
    return RawPage(latest, uids, rows[-1][0] if rows else after, more, frozenset(handed))


def owners_after(session: Session, after: int, limit: int) -> tuple[set[int], int, bool]:
    """The owners (before and after) of up to ``limit`` change rows with ``seq > after``:
    (owner ids, the last seq read, whether rows are left). One query on the primary key,
    answering no row at all when nothing changed, so a watcher may ask it every second."""
    query = (select(ActivityChange.seq, ActivityChange.owner_id,
                    ActivityChange.previous_owner_id)
             .where(ActivityChange.seq > after).order_by(ActivityChange.seq).limit(limit + 1))
    fetched = session.execute(query).all()
    rows = fetched[:limit]
    owners = {owner for _, owner, _ in rows}
    owners.update(previous for _, _, previous in rows if previous is not None)
    return owners, rows[-1][0] if rows else after, len(fetched) > limit
