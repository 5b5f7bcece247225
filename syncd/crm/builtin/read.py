"""Reading activities: building :class:`syncd.model.Activity` views and list queries.

Nothing here touches ``activity_notes``: the queries select from ``activities``,
``users`` and ``activity_guests`` only, which is what keeps the note (A5) out of every
view by construction.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import Select, exists, select
from sqlalchemy.orm import Session

from syncd.crm.builtin.rows import to_view
from syncd.crm.builtin.tables import ActivityGuest, ActivityLink, ActivityRow, User
from syncd.crm.builtin.views import ActivityFilter
from syncd.model import Activity, Guest

_CHUNK = 500


def load_guests(session: Session, activity_ids: Sequence[int]) -> dict[int, list[Guest]]:
    """activity id -> its guests, in the order they were given."""
    out: dict[int, list[Guest]] = {}
    for start in range(0, len(activity_ids), _CHUNK):
        chunk = activity_ids[start:start + _CHUNK]
        query = (
            select(ActivityGuest)
            .where(ActivityGuest.activity_id.in_(chunk))
            .order_by(ActivityGuest.activity_id, ActivityGuest.position)
        )
        for g in session.scalars(query):
            # The store always records an address (resolve_guests); "" only guards
            # against rows written by hand.
            out.setdefault(g.activity_id, []).append(
                Guest(email=g.email or "", name=g.name, person_id=g.person_id)
            )
    return out


def load_views(session: Session, activity_ids: Iterable[int]) -> dict[int, Activity]:
    """Views for the given ids that exist (deleted ones included), keyed by id."""
    ids = list(dict.fromkeys(activity_ids))
    rows: list[tuple[ActivityRow, str]] = []
    for start in range(0, len(ids), _CHUNK):
        chunk = ids[start:start + _CHUNK]
        query = (
            select(ActivityRow, User.time_zone)
            .join(User, User.id == ActivityRow.owner_id)
            .where(ActivityRow.id.in_(chunk))
        )
        rows.extend((row, tz) for row, tz in session.execute(query))
    guests = load_guests(session, [row.id for row, _ in rows])
    return {row.id: to_view(row, tz, guests.get(row.id, ())) for row, tz in rows}


def _linked(field: str, value: Any) -> Any:
    column = getattr(ActivityLink, field)
    return exists().where(ActivityLink.activity_id == ActivityRow.id, column == value)


def filter_query(flt: ActivityFilter) -> Select[int]:
    """The ids matching ``flt``, in agenda order: by due date and time, undated last."""
    query = select(ActivityRow.id)
    if not flt.include_deleted:
        query = query.where(ActivityRow.deleted_at.is_(None))
    if flt.owner_id is not None:
        query = query.where(ActivityRow.owner_id == flt.owner_id)
    if flt.type is not None:
        query = query.where(ActivityRow.type == flt.type)
    if flt.done is not None:
        query = query.where(ActivityRow.done.is_(flt.done))
    for field in ("deal_id", "person_id", "org_id"):
        value = getattr(flt, field)
        if value is not None:
            query = query.where(_linked(field, value))
    if flt.due_from is not None:
        query = query.where(ActivityRow.due_date >= flt.due_from)
    if flt.due_to is not None:
        query = query.where(ActivityRow.due_date <= flt.due_to)
    if flt.ids is not None:
        query = query.where(ActivityRow.id.in_(list(flt.ids)))
    query = query.order_by(
        ActivityRow.due_date.is_(None),  # undated last, portably (no NULLS LAST needed)
        ActivityRow.due_date,
        ActivityRow.due_time.is_not(None),  # whole-day before timed on the same day
        ActivityRow.due_time,
        ActivityRow.due_fold,  # the first 02:30 of the night clocks go back, then the second
        ActivityRow.id,
    )
    if flt.limit is not None:
        query = query.limit(flt.limit)
    return query
