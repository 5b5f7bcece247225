"""The soak's CRM side: a salesperson editing activities, and the end state read back.

:class:`BuiltinCrm` edits syncd's own activity store (the database file the ``syncd sync``
children use, between their runs, as the CLI or the import would). :class:`PipedriveCrm`
edits the Pipedrive emulator as its users would in the web app (no API request of syncd's
is involved, so nothing of it passes the fault proxy). Both read the end state as plain
data for :func:`bench.soak_model.judge`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, Protocol
from zoneinfo import ZoneInfo

from bench.backends import TZ
from bench.soak_model import CrmItem
from syncd.crm.builtin.activities import ActivityStore
from syncd.model import Activity, project_activity
from syncd.store.db import Database


class Crm(Protocol):
    """What the driver does in the CRM, by activity id."""

    def add_users(self, owners: Sequence[str]) -> None: ...

    def add(self, items: Sequence[Mapping[str, Any]]) -> list[int]:
        """Create activities (``owner`` an e-mail); their ids in order."""

    def edit(self, activity_id: int, **fields: Any) -> Mapping[str, Any]:
        """Change fields (the store's names); returns the projection after (JSON)."""

    def delete(self, activity_id: int) -> None: ...

    def set_done(self, activity_id: int, done: bool) -> None: ...

    def move(self, activity_id: int, owner: str) -> None: ...

    def current(self, activity_id: int) -> Mapping[str, Any] | None:
        """The activity's fields now (due_date, due_time, duration_minutes, guests ...)."""

    def read(self, ids: Sequence[int]) -> dict[int, CrmItem]: ...

    def close(self) -> None: ...


class BuiltinCrm:
    """syncd's built-in activity store, in the database the children use."""

    def __init__(self, url: str) -> None:
        self.db = Database(url)
        self.store = ActivityStore(self.db)
        self.users: dict[str, int] = {}
        self.emails: dict[int, str] = {}

    def add_users(self, owners: Sequence[str]) -> None:
        for owner in owners:
            user = self.store.get_user_by_email(owner)
            uid = user.id if user else self.store.add_user(owner, owner.split("@")[0], TZ)
            self.users[owner], self.emails[uid] = uid, owner

    def add(self, items: Sequence[Mapping[str, Any]]) -> list[int]:
        rows = [{**{k: v for k, v in item.items() if k != "owner"},
                 "owner_id": self.users[item["owner"]]} for item in items]
        return list(self.store.add_activities(rows))

    def edit(self, activity_id: int, **fields: Any) -> Mapping[str, Any]:
        return _projection(self.store.edit_activity(activity_id, **fields))

    def delete(self, activity_id: int) -> None:
        self.store.delete_activity(activity_id)

    def set_done(self, activity_id: int, done: bool) -> None:
        (self.store.mark_done if done else self.store.mark_undone)(activity_id)

    def move(self, activity_id: int, owner: str) -> None:
        self.store.edit_activity(activity_id, owner_id=self.users[owner])

    def current(self, activity_id: int) -> Mapping[str, Any] | None:
        activity = self.store.get_many([activity_id]).get(activity_id)
        if activity is None or activity.deleted:
            return None
        return {"due_date": activity.due_date, "due_time": activity.due_time,
                "duration_minutes": activity.duration_minutes,
                "guests": [g.email for g in activity.guests]}

    def read(self, ids: Sequence[int]) -> dict[int, CrmItem]:
        out: dict[int, CrmItem] = {}
        for first in range(0, len(ids), 500):
            found = self.store.get_many(list(ids[first:first + 500]))
            for activity_id in ids[first:first + 500]:
                activity = found.get(activity_id)
                if activity is None or activity.deleted:
                    out[activity_id] = CrmItem(False)
                    continue
                out[activity_id] = CrmItem(True, self.emails.get(activity.owner_id, "?"),
                                           activity.done, _projection(activity))
        return out

    def close(self) -> None:
        self.db.close()


def _projection(activity: Activity) -> Mapping[str, Any]:
    projection = project_activity(activity)
    return projection.to_json() if projection is not None else {}


def local_parts(when: datetime) -> tuple[date, time]:
    """A UTC instant as the owner's wall-clock date and time."""
    local = when.astimezone(ZoneInfo(TZ))
    return local.date(), local.time().replace(tzinfo=None)


def utc_now() -> datetime:
    return datetime.now(UTC)


__all__ = ["BuiltinCrm", "Crm", "local_parts", "timedelta", "utc_now"]
