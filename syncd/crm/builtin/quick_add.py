"""``syncd activity add`` through plain sqlite3, without importing SQLAlchemy.

The same checks (:func:`syncd.crm.builtin.rows.check_new`), the same rows
(:func:`~syncd.crm.builtin.rows.activity_row`, the guests, the note) and the same
change-feed entry as :meth:`ActivityStore.add_activity`, in one write transaction that
holds the write lock from its start, as the store's do. Only for an activity linked to
no item: a link also links the deal's person and organization (B1, B2) and recomputes
the items' derived dates (A10), which stay the store's alone, so the command takes the
full path when ``--deal``, ``--person`` or ``--org`` is given.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from datetime import UTC, date, datetime, time
from types import SimpleNamespace
from typing import Any

from syncd.crm.builtin.checks import LINK_FIELDS, PersonRow, Persons
from syncd.crm.builtin.rows import activity_row, check_new, guest_rows, to_view
from syncd.crm.builtin.views import ActivityFilter, UserView
from syncd.errors import InvalidInput
from syncd.model import Activity, Guest, normalize_email
from syncd.store.lite import LiteDatabase, clock, day, stamp


def _stored(value: Any) -> Any:
    """A value as SQLAlchemy stores it in a SQLite column of its type."""
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, datetime):
        return stamp(value)
    if isinstance(value, date):
        return day(value)
    if isinstance(value, time):
        return clock(value)
    return value


def _insert(conn: sqlite3.Connection, table: str, row: dict[str, Any]) -> int:
    """Insert one row (column names from code, values bound); returns its rowid."""
    columns = ", ".join(row)
    marks = ", ".join("?" for _ in row)
    cursor = conn.execute(f"INSERT INTO {table} ({columns}) VALUES ({marks})",
                          [_stored(v) for v in row.values()])
    return int(cursor.lastrowid or 0)


class _Persons(Persons):
    """The persons the guests name, looked up once (as the store's PersonCache)."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        super().__init__()
        self.conn = conn

    def _with_ids(self, ids: list[int]) -> Iterable[PersonRow]:
        marks = ", ".join("?" for _ in ids)
        return self.conn.execute(f"SELECT id, name, email FROM persons WHERE id IN ({marks})",
                                 ids)

    def _with_emails(self, emails: list[str]) -> Iterable[PersonRow]:
        marks = ", ".join("?" for _ in emails)
        return self.conn.execute(f"SELECT id, name, email FROM persons WHERE email IN "
                                 f"({marks}) ORDER BY id DESC", emails)


class _Lookups:
    """The owner's zone, the active types and the persons, in the write transaction."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        self.persons = _Persons(conn)
        self._zones: dict[int, str] = {}

    def owner_zone(self, owner_id: int) -> str:
        if owner_id not in self._zones:
            found = self.conn.execute("SELECT time_zone FROM users WHERE id = ?",
                                      (owner_id,)).fetchone()
            if found is None:
                raise InvalidInput(field="owner_id", value=owner_id, reason="no such user")
            self._zones[owner_id] = str(found[0])
        return self._zones[owner_id]

    def check_type(self, key: str) -> None:
        types = {row[0] for row in self.conn.execute(
            "SELECT key FROM activity_types WHERE active = 1")}
        if key not in types:
            known = ", ".join(sorted(types))
            raise InvalidInput(field="type", value=key, reason=f"is not a type; known: {known}")


class QuickActivities:
    """What ``syncd activity add`` and ``activity list`` ask of the store, answered through
    sqlite3."""

    def __init__(self, db: LiteDatabase) -> None:
        self.db = db

    def get_user_by_email(self, email: str) -> UserView | None:
        """The user with this address (case-insensitive), or None."""
        found = self.db.conn.execute(
            "SELECT id, email, name, time_zone FROM users WHERE email = ?",
            (normalize_email(email),)).fetchone()
        return UserView(*found) if found is not None else None

    def list_users(self) -> list[UserView]:
        """Every user, by id."""
        rows = self.db.conn.execute("SELECT id, email, name, time_zone FROM users ORDER BY id")
        return [UserView(*row) for row in rows]

    def list_activities(self, flt: ActivityFilter) -> list[Activity]:
        """The activities matching ``flt`` (:mod:`syncd.crm.builtin.quick_list`)."""
        from syncd.crm.builtin.quick_list import list_activities

        with self.db.worded():
            return list_activities(self.db.conn, flt)

    def add_activity(self, *, owner_id: int, subject: str, **fields: Any) -> Activity:
        """Add one activity linked to no item, as the store's ``add_activity`` does.

        Raises:
            InvalidInput: any unacceptable value; nothing is written.
        """
        now = datetime.now(UTC)
        with self.db.write() as conn:
            lookups = _Lookups(conn)
            values, guests = check_new(lookups, {"owner_id": owner_id, "subject": subject,
                                                 **fields})
            if any(values[f] is not None for f in LINK_FIELDS):
                raise ValueError("an activity with links is added by the store")
            row = activity_row(values, dict.fromkeys(LINK_FIELDS), now)
            activity_id = _insert(conn, "activities", row)
            for guest in guest_rows(activity_id, guests):
                _insert(conn, "activity_guests", guest)
            if values["note"]:
                _insert(conn, "activity_notes", {"activity_id": activity_id,
                                                 "text": values["note"]})
            _insert(conn, "activity_changes", {
                "activity_id": activity_id, "sync_uid": row["sync_uid"], "kind": "insert",
                "owner_id": row["owner_id"], "previous_owner_id": None, "at": now})
            zone = lookups.owner_zone(owner_id)
        return to_view(SimpleNamespace(id=activity_id, **row), zone,
                       [Guest(email=g.email or "", name=g.name, person_id=g.person_id)
                        for g in guests])
