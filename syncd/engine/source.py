"""The CRM side as the engine sees it.

The built-in store (:class:`syncd.store.activities.ActivityStore`) implements this; a
Pipedrive source will too. Nothing here can reach an activity's note.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date, time
from typing import Any, Protocol

from syncd.model import Activity, Guest, Tombstone


class ChangePageLike(Protocol):
    """One page of the CRM change feed."""

    @property
    def items(self) -> Sequence[Activity | Tombstone]: ...

    @property
    def last_seq(self) -> int: ...

    @property
    def more(self) -> bool: ...

    @property
    def handed_over(self) -> frozenset[int]: ...


class UserLike(Protocol):
    @property
    def id(self) -> int: ...

    @property
    def time_zone(self) -> str: ...


class ActivitySource(Protocol):
    """What one sync cycle reads from and writes to the CRM."""

    def get_user_by_email(self, email: str) -> UserLike | None:
        """The CRM user an account belongs to."""

    def changes_after(self, after: int, *, owner_id: int | None = None,
                      limit: int = 1000) -> ChangePageLike:
        """Activities changed after change number ``after`` (deletions included).

        With ``owner_id``, those that belong or belonged to that owner, so an activity
        handed to someone else shows up in both owners' feeds.
        """

    def activities_due_between(self, owner_id: int, start: date, end: date
                               ) -> Sequence[Activity]:
        """The owner's live activities with a due date in [start, end], both inclusive."""

    def get(self, activity_id: int, *, include_deleted: bool = False) -> Activity:
        """One activity; raises NotFound when it does not exist (or was purged)."""

    def get_many(self, ids: Sequence[int]) -> Mapping[int, Activity]:
        """Activities by id, deleted ones included; purged ones are simply absent."""

    def get_by_sync_uid(self, sync_uid: str) -> Activity | None:
        """The activity whose ownership marker is ``sync_uid``, deleted ones included."""

    def apply_calendar_changes(self, activity_id: int, fields: Mapping[str, Any]) -> Activity:
        """Apply edits that came from the calendar (never the note, never the owner)."""

    def add_activity(
        self, *, owner_id: int, subject: str, type: str = ..., sync_uid: str | None = ...,
        due_date: date | None = ..., due_time: time | None = ..., duration_minutes: int = ...,
        busy: bool = ..., description: str = ..., location: str = ...,
        guests: Sequence[Guest | str | int] = ..., done: bool = ...,
    ) -> Activity:
        """Create an activity imported from the calendar."""

    def delete_activity(self, activity_id: int) -> None:
        """Soft-delete an activity whose event was deleted in the calendar."""
