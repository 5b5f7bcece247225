"""``syncd activity list`` without SQLAlchemy: sqlite3 or psycopg (:mod:`syncd.store.lite`).

The same selection and order as the store's ``filter_query`` and the same views as its
``load_views`` (:func:`syncd.crm.builtin.rows.to_view` on the row, the owner's zone and
the guests in their order), with each column read back as SQLAlchemy reads it on the
backend. ``tests/test_cli_quick.py`` compares both paths' output on SQLite and PostgreSQL.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from syncd.crm.builtin.rows import to_view
from syncd.crm.builtin.views import ActivityFilter
from syncd.model import Activity, Guest
from syncd.store.lite import QuickDatabase

#: The columns a view is made from, in the SELECT's order after the owner's zone.
_COLUMNS = ("id", "sync_uid", "owner_id", "type", "subject", "due_date", "due_time",
            "due_fold", "duration_minutes", "busy", "description", "location", "done",
            "marked_done_at", "deleted_at", "created_at", "updated_at", "deal_id",
            "person_id", "org_id", "lead_id", "project_id")
#: The columns read back through the backend's reader of their type
#: (:class:`syncd.store.lite.QuickDatabase`); the others are taken as the driver gives them.
_READ: dict[str, str] = {
    "due_date": "day", "due_time": "clock",
    **dict.fromkeys(("due_fold", "busy", "done"), "flag"),
    **dict.fromkeys(("marked_done_at", "deleted_at", "created_at", "updated_at"),
                    "maybe_instant"),
}
#: Bounded IN lists, as the store's reads (SQLite allows 32,766 parameters).
_CHUNK = 500


def _where(flt: ActivityFilter) -> tuple[str, list[Any]]:
    """The WHERE clause of ``filter_query`` (but its ids filter, which the CLI's list
    never sets)."""
    terms: list[str] = []
    params: list[Any] = []
    if not flt.include_deleted:
        terms.append("a.deleted_at IS NULL")
    for column, value in (("owner_id", flt.owner_id), ("type", flt.type)):
        if value is not None:
            terms.append(f"a.{column} = ?")
            params.append(value)
    if flt.done is not None:  # the column holds no NULL: "=" is the store's "IS"
        terms.append("a.done = ?")
        params.append(flt.done)
    for column in ("deal_id", "person_id", "org_id"):
        if (value := getattr(flt, column)) is not None:
            terms.append(f"EXISTS (SELECT 1 FROM activity_links l WHERE "
                         f"l.activity_id = a.id AND l.{column} = ?)")
            params.append(value)
    for bound, op in ((flt.due_from, ">="), (flt.due_to, "<=")):
        if bound is not None:
            terms.append(f"a.due_date {op} ?")
            params.append(bound)
    return (" WHERE " + " AND ".join(terms) if terms else ""), params


def list_activities(db: QuickDatabase, flt: ActivityFilter) -> list[Activity]:
    """The activities matching ``flt``, by due date and time (undated last), as the
    store's ``list_activities`` returns them."""
    if flt.ids is not None:
        raise ValueError("a list by ids is the store's")
    where, params = _where(flt)
    limit = "" if flt.limit is None else " LIMIT ?"
    ids = [row[0] for row in db.execute(
        f"SELECT a.id FROM activities a{where} ORDER BY a.due_date IS NULL, a.due_date, "
        f"a.due_time IS NOT NULL, a.due_time, a.due_fold, a.id{limit}",
        [*params, *([flt.limit] if flt.limit is not None else [])])]
    views: dict[int, Activity] = {}
    for start in range(0, len(ids), _CHUNK):
        chunk = ids[start:start + _CHUNK]
        marks = ", ".join("?" for _ in chunk)
        guests: dict[int, list[Guest]] = {}
        for activity_id, email, name, person_id in db.execute(
                f"SELECT activity_id, email, name, person_id FROM activity_guests WHERE "
                f"activity_id IN ({marks}) ORDER BY activity_id, position", chunk):
            guests.setdefault(activity_id, []).append(
                Guest(email=email or "", name=name, person_id=person_id))
        columns = ", ".join(f"a.{c}" for c in _COLUMNS)
        for zone, *values in db.execute(
                f"SELECT u.time_zone, {columns} FROM activities a JOIN users u ON "
                f"u.id = a.owner_id WHERE a.id IN ({marks})", chunk):
            row = SimpleNamespace(**{c: getattr(db, _READ[c])(v) if c in _READ else v
                                     for c, v in zip(_COLUMNS, values, strict=True)})
            views[row.id] = to_view(row, zone, guests.get(row.id, ()))
    return [views[i] for i in ids]
