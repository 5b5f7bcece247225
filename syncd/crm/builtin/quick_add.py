"""``syncd activity add`` without SQLAlchemy: sqlite3 or psycopg (:mod:`syncd.store.lite`).

The same checks (:func:`syncd.crm.builtin.rows.check_new`), the same rows
(:func:`~syncd.crm.builtin.rows.activity_row`, the guests, the note) and the same
change-feed entry as :meth:`ActivityStore.add_activity`, in one write transaction that
holds the store's write lock from its start, as the store's do (on PostgreSQL the
advisory lock that keeps the feed's numbers in commit order). Only for an activity linked
to no item: a link also links the deal's person and organization (B1, B2) and recomputes
the items' derived dates (A10), which stay the store's alone, so the command takes the
full path when ``--deal``, ``--person`` or ``--org`` is given.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

from syncd.crm.builtin.checks import LINK_FIELDS, PersonRow, Persons
from syncd.crm.builtin.rows import activity_row, check_new, guest_rows, to_view
from syncd.crm.builtin.views import ActivityFilter, UserView
from syncd.errors import InvalidInput
from syncd.model import Activity, Guest, normalize_email
from syncd.store.lite import QuickDatabase


class _Persons(Persons):
    """The persons the guests name, looked up once (as the store's PersonCache)."""

    def __init__(self, db: QuickDatabase) -> None:
        super().__init__()
        self.db = db

    def _with_ids(self, ids: list[int]) -> Iterable[PersonRow]:
        marks = ", ".join("?" for _ in ids)
        return self.db.execute(f"SELECT id, name, email FROM persons WHERE id IN ({marks})",
                               ids)

    def _with_emails(self, emails: list[str]) -> Iterable[PersonRow]:
        marks = ", ".join("?" for _ in emails)
        return self.db.execute(f"SELECT id, name, email FROM persons WHERE email IN "
                               f"({marks}) ORDER BY id DESC", emails)


class _Lookups:
    """The owner's zone, the active types and the persons, in the write transaction."""

    def __init__(self, db: QuickDatabase) -> None:
        self.db = db
        self.persons = _Persons(db)
        self._zones: dict[int, str] = {}

    def owner_zone(self, owner_id: int) -> str:
        if owner_id not in self._zones:
            found = self.db.one("SELECT time_zone FROM users WHERE id = ?", (owner_id,))
            if found is None:
                raise InvalidInput(field="owner_id", value=owner_id, reason="no such user")
            self._zones[owner_id] = str(found[0])
        return self._zones[owner_id]

    def check_type(self, key: str) -> None:
        types = {row[0] for row in self.db.execute(
            "SELECT key FROM activity_types WHERE active = ?", (True,))}
        if key not in types:
            known = ", ".join(sorted(types))
            raise InvalidInput(field="type", value=key, reason=f"is not a type; known: {known}")


class QuickActivities:
    """What ``syncd activity add`` and ``activity list`` ask of the store, answered
    without SQLAlchemy (sqlite3 or psycopg)."""

    def __init__(self, db: QuickDatabase) -> None:
        self.db = db

    def get_user_by_email(self, email: str) -> UserView | None:
        """The user with this address (case-insensitive), or None."""
        with self.db.worded():
            found = self.db.one("SELECT id, email, name, time_zone FROM users WHERE email = ?",
                                (normalize_email(email),))
        return UserView(*found) if found is not None else None

    def list_users(self) -> list[UserView]:
        """Every user, by id."""
        with self.db.worded():
            rows = self.db.execute("SELECT id, email, name, time_zone FROM users ORDER BY id")
            return [UserView(*row) for row in rows]

    def list_activities(self, flt: ActivityFilter) -> list[Activity]:
        """The activities matching ``flt`` (:mod:`syncd.crm.builtin.quick_list`)."""
        from syncd.crm.builtin.quick_list import list_activities

        with self.db.worded():
            return list_activities(self.db, flt)

    def add_activity(self, *, owner_id: int, subject: str, **fields: Any) -> Activity:
        """Add one activity linked to no item, as the store's ``add_activity`` does.

        Raises:
            InvalidInput: any unacceptable value; nothing is written.
        """
        now = datetime.now(UTC)
        with self.db.write() as db:
            lookups = _Lookups(db)
            values, guests = check_new(lookups, {"owner_id": owner_id, "subject": subject,
                                                 **fields})
            if any(values[f] is not None for f in LINK_FIELDS):
                raise ValueError("an activity with links is added by the store")
            row = activity_row(values, dict.fromkeys(LINK_FIELDS), now)
            activity_id = int(db.insert("activities", row, returning="id"))
            for guest in guest_rows(activity_id, guests):
                db.insert("activity_guests", guest)
            if values["note"]:
                db.insert("activity_notes", {"activity_id": activity_id,
                                             "text": values["note"]})
            db.insert("activity_changes", {
                "activity_id": activity_id, "sync_uid": row["sync_uid"], "kind": "insert",
                "owner_id": row["owner_id"], "previous_owner_id": None, "at": now})
            zone = lookups.owner_zone(owner_id)
        return to_view(SimpleNamespace(id=activity_id, **row), zone,
                       [Guest(email=g.email or "", name=g.name, person_id=g.person_id)
                        for g in guests])
