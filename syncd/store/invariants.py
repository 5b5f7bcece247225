"""The state database's invariants, checked in SQL alone (failure mode 29).

Cheap on purpose: nothing is read from a calendar or the CRM, and each check is a fixed
number of statements on indexed columns, so the daemon can run them at every start and
after every cycle that wrote (:mod:`syncd.invariant_check` decides what a violation does).

Per account (:func:`check_account`, one statement on the ``sync_links.account`` index):

* ``event_linked_twice``: two settled pairs of one account point at one event, so two
  activities would write it (``syncd verify`` reports it as ``paired_twice``).
* ``marker_linked_twice``: two pairs of one account carry one marker, so each would take
  the other's event for its own (adoption after a lost create, duplicate repair).

Over the whole database (:func:`check_database`, at start; three statements):

* the two above for every account at once;
* ``link_without_account``: pairs whose account has no row, which only a database edited
  by hand or copied without its foreign keys can hold;
* ``schema_not_current``: the recorded schema revision is not this release's newest
  (the database was opened by another release since it was migrated on open).

Not checked because the schema enforces it: one pair per (account, activity) is the
unique key ``uq_sync_links_account_activity``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Select, func, literal, select, text, union_all
from sqlalchemy.exc import SQLAlchemyError

from syncd.store.db import Database
from syncd.store.lite import head_revision
from syncd.store.state_tables import SyncAccount, SyncLink

#: The invariants one account's pairs keep.
PER_ACCOUNT = ("event_linked_twice", "marker_linked_twice")
#: Every invariant, in the order reports list them.
INVARIANTS = (*PER_ACCOUNT, "link_without_account", "schema_not_current")


@dataclass(frozen=True)
class Violation:
    """``count`` breaches of ``invariant`` (events or markers linked twice, pairs without
    an account, 1 for the schema) in ``account`` (None: the database as a whole);
    ``detail`` names what is at fault by id (a revision, account names), never content."""

    invariant: str
    account: str | None
    count: int
    detail: str = ""


def _linked_twice(column: Any, invariant: str, account: str | None, *, settled: bool
                  ) -> Select[Any]:
    """(invariant, account, how many values of ``column`` two or more pairs share);
    ``settled``: pending pairs left out (a pending create's event is not known yet)."""
    where = [column.is_not(None)]
    if settled:
        where.append(SyncLink.pending.is_(False))
    if account is not None:
        where.append(SyncLink.account == account)
    shared = (select(SyncLink.account, column).where(*where)
              .group_by(SyncLink.account, column).having(func.count() > 1).subquery())
    return (select(literal(invariant), shared.c.account, func.count())
            .group_by(shared.c.account))


def _per_account(db: Database, account: str | None) -> list[Violation]:
    statement = union_all(
        _linked_twice(SyncLink.event_id, PER_ACCOUNT[0], account, settled=True),
        _linked_twice(SyncLink.sync_uid, PER_ACCOUNT[1], account, settled=False))
    with db.read() as conn:
        rows = conn.execute(statement).all()
    return sorted((Violation(str(kind), str(name), int(count)) for kind, name, count in rows
                   if count), key=lambda v: (v.account or "", INVARIANTS.index(v.invariant)))


def check_account(db: Database, account: str) -> list[Violation]:
    """The per-account invariants of ``account`` (one statement)."""
    return _per_account(db, account)


def check_database(db: Database) -> list[Violation]:
    """Every invariant, over every account (three statements)."""
    found = _per_account(db, None)
    with db.read() as conn:
        orphans = conn.execute(
            select(SyncLink.account, func.count()).outerjoin(
                SyncAccount, SyncAccount.name == SyncLink.account)
            .where(SyncAccount.name.is_(None)).group_by(SyncLink.account)).all()
        try:
            revisions = [row[0] for row in conn.execute(
                text("SELECT version_num FROM alembic_version")).all()]
        except SQLAlchemyError:  # no version table: not a database syncd migrated
            revisions = []
    if orphans:
        found.append(Violation("link_without_account", None, sum(n for _, n in orphans),
                               ", ".join(sorted(str(name) for name, _ in orphans))))
    head = head_revision()
    if revisions != [head]:
        found.append(Violation("schema_not_current", None, 1,
                               f"{', '.join(revisions) or 'none'} (this release: {head})"))
    return found
