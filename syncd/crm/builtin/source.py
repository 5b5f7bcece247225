"""The built-in activity store as a CRM source (``[crm] kind = "builtin"``).

An adapter over :class:`syncd.crm.builtin.activities.ActivityStore`: the cursor is the store's
change number written in decimal, the marker is the activity row's ``sync_uid``, and every
write is the store's own transaction, so the consistency is ``transactional``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date

from syncd.crm.builtin.activities import ActivityStore
from syncd.crm.source import (
    ApplyChanges,
    BookSlot,
    Consistency,
    ImportActivity,
    OwnersChanged,
    RemoveActivity,
    SourceChanges,
    SourceOp,
    SourceResult,
    SourceUser,
)
from syncd.errors import InvalidInput, NotFound, SyncdError
from syncd.model import Activity


def parse_cursor(cursor: str | None) -> int:
    """The change number a built-in cursor stands for (0 for None)."""
    if cursor is None:
        return 0
    if not cursor.isascii() or not cursor.isdigit():
        raise InvalidInput(field="cursor", value=cursor,
                           reason="is not a cursor of the built-in store")
    return int(cursor)


class BuiltinSource:
    """The built-in store, seen through :class:`syncd.crm.source.CrmSource`."""

    def __init__(self, store: ActivityStore) -> None:
        self.store = store

    @property
    def consistency(self) -> Consistency:
        return Consistency.TRANSACTIONAL

    def notes(self, activity_ids: Sequence[int]) -> Mapping[int, str]:
        return self.store.get_notes(activity_ids)

    def user(self, email: str) -> SourceUser | None:
        return self.store.get_user_by_email(email)

    def user_emails(self) -> Sequence[str]:
        return [u.email for u in self.store.list_users()]

    def changes(self, cursor: str | None, *, owner_id: int, limit: int = 1000
                ) -> SourceChanges:
        page = self.store.changes_after(parse_cursor(cursor), owner_id=owner_id, limit=limit)
        return SourceChanges(page.items, str(page.last_seq), page.more, page.handed_over)

    def change_mark(self) -> int:
        return self.store.last_change_seq()

    def owners_changed(self, after: int, *, limit: int = 1000) -> OwnersChanged:
        owners, mark, more = self.store.owners_changed_after(after, limit=limit)
        return OwnersChanged(frozenset(owners), mark, more)

    def due_between(self, owner_id: int, start: date, end: date) -> Sequence[Activity]:
        return self.store.activities_due_between(owner_id, start, end)

    def get(self, activity_id: int) -> Activity | None:
        try:
            return self.store.get(activity_id, include_deleted=True)
        except NotFound:
            return None

    def get_many(self, ids: Sequence[int]) -> Mapping[int, Activity]:
        return self.store.get_many(ids)

    def find(self, marker: str) -> Activity | None:
        return self.store.get_by_sync_uid(marker)

    def book(self, request: BookSlot) -> SourceResult:
        activity, created = self.store.book_slot(
            request.booking_uid, owner_id=request.owner_id, type=request.type,
            start=request.start, end=request.end, clear_before=request.clear_before,
            clear_after=request.clear_after, **request.fields)
        return SourceResult(activity, created=created)

    def write(self, ops: Sequence[SourceOp]) -> list[SourceResult]:
        results = []
        for op in ops:
            try:
                results.append(self._write_one(op))
            except SyncdError as exc:  # the store wrote nothing for this op
                results.append(SourceResult(error=exc))
        return results

    def _write_one(self, op: SourceOp) -> SourceResult:
        if isinstance(op, ApplyChanges):
            return SourceResult(self.store.apply_calendar_changes(op.activity_id, op.fields))
        if isinstance(op, RemoveActivity):
            self.store.delete_activity(op.activity_id)
            return SourceResult()
        assert isinstance(op, ImportActivity)
        existing = self.store.get_by_sync_uid(op.import_uid)
        if existing is not None:
            return SourceResult(existing)
        try:
            created = self.store.add_activity(owner_id=op.owner_id, type=op.type,
                                              sync_uid=op.import_uid, **op.fields)
        except InvalidInput as exc:
            # Another writer imported the same event between the look-up and the insert:
            # the marker is unique, so that activity is this import's result.
            raced = self.store.get_by_sync_uid(op.import_uid) if exc.field == "sync_uid" \
                else None
            if raced is None:
                raise
            return SourceResult(raced)
        return SourceResult(created, created=True)
