"""The derived dates on linked items (seed rule A10).

For every deal, person, organization, lead and project:

* ``last_activity_date``: the latest due date among its done, non-deleted activities;
* ``next_activity_date``: the earliest due date among its not-done, non-deleted ones;
* ``update_time``: when anything about it last changed (here: an activity linked to it
  was added, edited, completed, reopened, deleted or purged).

They are recomputed from the activities (not adjusted incrementally) in the same
transaction as the change, so they cannot drift. Writers are serialised by
``ActivityStore`` (see its ``_write``), so two transactions never recompute the same item
from different snapshots.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from datetime import date, datetime
from typing import Any

from sqlalchemy import case, func, select, update
from sqlalchemy.orm import Session

from syncd.crm.builtin.item_links import ITEM_TABLES, ItemRef
from syncd.crm.builtin.tables import ActivityLink, ActivityRow

_CHUNK = 500  # item ids per IN (...) list; far below every backend's parameter limit


_Dates = tuple[date | None, date | None]  # (last, next)


def _dates(session: Session, column: Any, ids: list[Any]) -> dict[Any, _Dates]:
    done_due = case((ActivityRow.done.is_(True), ActivityRow.due_date))
    open_due = case((ActivityRow.done.is_(False), ActivityRow.due_date))
    query = (
        select(column, func.max(done_due), func.min(open_due))
        .join(ActivityRow, ActivityRow.id == ActivityLink.activity_id)
        .where(column.in_(ids), ActivityRow.deleted_at.is_(None))
        .group_by(column)
    )
    return {item_id: (last, nxt) for item_id, last, nxt in session.execute(query)}


def refresh_items(session: Session, refs: Iterable[ItemRef], now: datetime) -> None:
    """Recompute A10's dates for the given items and set their update time to ``now``.

    Call it after the activity rows are written, with the union of the items linked
    before and after the change (an item that lost its link needs new dates too).
    """
    by_kind: dict[str, set[Any]] = defaultdict(set)
    for kind, item_id in refs:
        by_kind[kind].add(item_id)
    for kind, ids in by_kind.items():
        table, field = ITEM_TABLES[kind]
        link_column = getattr(ActivityLink, field)
        ordered = sorted(ids)
        for start in range(0, len(ordered), _CHUNK):
            chunk = ordered[start:start + _CHUNK]
            found = _dates(session, link_column, chunk)
            rows = [
                {
                    "id": item_id,
                    "last_activity_date": found.get(item_id, (None, None))[0],
                    "next_activity_date": found.get(item_id, (None, None))[1],
                    "update_time": now,
                }
                for item_id in chunk
            ]
            # ORM bulk UPDATE by primary key: one executemany for the whole chunk.
            session.execute(update(table), rows)
