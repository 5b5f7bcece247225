"""The CRM source protocol: what the engine reads from and writes to a CRM.

Vocabulary:

* **source** -- one CRM the engine syncs activities with: the built-in store
  (:mod:`syncd.crm.builtin`) or a remote CRM such as Pipedrive. The engine talks to a source
  exactly as it talks to a calendar connector: changes since a cursor, gets by id, and a
  batch of write operations with one result per operation.
* **cursor** -- an opaque string the source hands out with each page of changes and takes
  back to continue after it. ``None`` means "from the beginning". The engine stores it and
  never looks inside: the built-in store's is a change number, Pipedrive's would be an
  ``updated_since`` stamp with the ids already seen at that second.
* **change** -- an :class:`~syncd.model.Activity` as it is now, or a
  :class:`~syncd.model.Tombstone` for one that is gone. Deleted activities a source still
  holds come back as activities with ``deleted`` set. A cursor is resumable: reading from
  a page's cursor again never skips a change committed after that page was read, and may
  repeat some (the engine's planning is idempotent).
* **handed over** -- activities another owner handed to the owner being read since the
  cursor; syncd moves their events without e-mailing anyone (docs/guest-mail.md). An
  activity that changed owner shows in both owners' changes.
* **marker** -- the ``sync_uid`` that pairs an activity with its calendar event. Where it
  lives is the source's business: the built-in store keeps it on the activity row; a
  remote CRM keeps it in syncd's own state and fills ``Activity.sync_uid`` from there.
  Either way :meth:`CrmSource.find` answers by marker, deleted activities included.
* **import identity** -- the marker given to an activity created from a calendar event;
  it is derived from the event, so creating twice from the same event yields one activity.
* **consistency** -- how a source's writes meet concurrent edits: ``transactional`` (each
  operation is one transaction; the built-in store) or ``read_check_write`` (the source
  re-reads the item just before writing and refuses when it moved: a remote CRM with no
  conditional write, such as Pipedrive v2 without If-Match; the race window left is one
  round trip).

Nothing a source returns carries an activity's private note (seed rule A5): the
:class:`~syncd.model.Activity` type has no field for it.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any, Protocol, runtime_checkable

from syncd.errors import SyncdError
from syncd.model import Activity, Tombstone


class Consistency(enum.StrEnum):
    """How a source's writes meet concurrent edits (see the module docstring)."""

    TRANSACTIONAL = "transactional"
    READ_CHECK_WRITE = "read_check_write"


@dataclass(frozen=True)
class SourceChanges:
    """One page of a source's changes.

    Attributes:
        items: the changed activities and tombstones, oldest change first.
        cursor: where the next page starts (pass it to :meth:`CrmSource.changes`).
        more: whether changes are left after ``cursor`` (more pages now).
        handed_over: ids among ``items`` handed to the owner asked for by another.
    """

    items: Sequence[Activity | Tombstone]
    cursor: str
    more: bool
    handed_over: frozenset[int] = frozenset()


class SourceUser(Protocol):
    """The CRM user an account belongs to."""

    @property
    def id(self) -> int: ...

    @property
    def time_zone(self) -> str: ...


# --- write operations -----------------------------------------------------------------


@dataclass(frozen=True)
class ImportActivity:
    """Create an activity from a calendar event, once per import identity.

    When an activity with marker ``import_uid`` exists already (deleted or not), that one
    is the result and nothing is written.
    """

    import_uid: str
    owner_id: int
    type: str
    fields: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ApplyChanges:
    """Apply edits that came from the calendar: projection fields only, never the note
    or the owner."""

    activity_id: int
    fields: Mapping[str, Any]
    #: The activity as the engine read it when it planned these edits. A read-check-write
    #: source refuses the write when the activity is no longer that; None leaves the check
    #: to the source's own memory of what it last handed out (which another account of
    #: the same owner may have refreshed since).
    base: Activity | None = None


@dataclass(frozen=True)
class RemoveActivity:
    """The activity's event was deleted in the calendar: delete (or mark) it per policy.

    A source that keeps deleted activities for a while (the built-in store for 30 days,
    Pipedrive likewise) soft-deletes; the activity then shows in the feed as deleted.
    """

    activity_id: int


SourceOp = ImportActivity | ApplyChanges | RemoveActivity


@dataclass(frozen=True)
class SourceResult:
    """What became of one operation.

    Attributes:
        activity: the activity after the write (None after a removal or a failure).
        error: why the operation failed (``InvalidInput``, ``NotFound``, or for a
            read-check-write source ``Conflict`` when the item moved); None on success.
        created: whether an :class:`ImportActivity` wrote a new activity (False when the
            import identity already had one).
    """

    activity: Activity | None = None
    error: SyncdError | None = None
    created: bool = False

    @property
    def ok(self) -> bool:
        return self.error is None


class CrmSource(Protocol):
    """A CRM as one sync cycle sees it. Implementations pass ``tests/crm/contract.py``."""

    @property
    def consistency(self) -> Consistency:
        """How this source's writes meet concurrent edits."""

    def user(self, email: str) -> SourceUser | None:
        """The CRM user with this e-mail address, or None."""

    def user_emails(self) -> Sequence[str]:
        """The e-mail addresses of the CRM's active users (who a ``[[team]]`` serves)."""

    def changes(self, cursor: str | None, *, owner_id: int, limit: int = 1000
                ) -> SourceChanges:
        """Up to about ``limit`` changes after ``cursor`` (None: from the beginning) to
        activities that belong or belonged to ``owner_id``.

        Raises:
            InvalidInput: ``cursor`` is not one this source handed out.
        """

    def due_between(self, owner_id: int, start: date, end: date) -> Sequence[Activity]:
        """The owner's live activities due in [start, end], both inclusive."""

    def get(self, activity_id: int) -> Activity | None:
        """One activity, deleted ones included; None when it does not exist (or was
        purged)."""

    def get_many(self, ids: Sequence[int]) -> Mapping[int, Activity]:
        """Activities by id, deleted ones included; missing ones are simply absent."""

    def find(self, marker: str) -> Activity | None:
        """The activity paired by ``marker`` (its ``sync_uid``), deleted ones included."""

    def write(self, ops: Sequence[SourceOp]) -> list[SourceResult]:
        """Run ``ops`` in order; exactly one result per op, in the same order. A failed
        op does not stop the others."""


@runtime_checkable
class DeletionHints(Protocol):
    """A source that can use a push's word that activities were deleted (optional).

    The hint only moves those activities to the front of the source's own deletion check;
    it is never taken as the deletion itself.
    """

    def deletions_hinted(self, activity_ids: Sequence[int]) -> None:
        """A notification said ``activity_ids`` were deleted."""


@dataclass(frozen=True)
class OwnersChanged:
    """What :meth:`ChangeWatch.owners_changed` saw: whose activities changed, up to where."""

    owner_ids: frozenset[int]
    mark: int  # where the next look starts
    more: bool  # changes are left after ``mark``


@runtime_checkable
class ChangeWatch(Protocol):
    """A source syncd can watch for changes itself, cheaply (optional): a local store with
    a change feed, which has no webhook to call. The daemon asks it about every second."""

    def change_mark(self) -> int:
        """Where the feed is now (a watcher starts here)."""

    def owners_changed(self, after: int, *, limit: int = 1000) -> OwnersChanged:
        """The owners of activities changed after ``after`` (a mark), both the owner before
        and after a reassignment; one small query, nothing when nothing changed."""


@runtime_checkable
class NoteReader(Protocol):
    """A source that can read private notes, for ``syncd verify``'s privacy audit only.

    The engine never uses it: a cycle has no way to see a note (A5). The audit reads notes
    to search calendar events for them, and reports hits by activity id, never by text.
    """

    def notes(self, activity_ids: Sequence[int]) -> Mapping[int, str]:
        """activity id -> its note, for the ids that have a non-empty one."""


@dataclass(frozen=True)
class BookSlot:
    """Book ``[start, end)`` for ``owner_id``: a new busy activity of type ``type``, unless
    a busy activity of the owner overlaps that time (seed rule A4).

    ``booking_uid`` is the booking's identity (32 hex digits, the new activity's marker):
    asking again with the same one returns the activity made the first time (a form sent
    twice books once). ``fields`` are the other fields of the activity (subject, guests,
    description); its due date, time, duration and busy flag come from the slot.
    ``clear_before``/``clear_after`` are the owner's buffers: a busy activity that far
    before the start or after the end takes the slot too, so that two bookings racing
    for neighbouring slots cannot both win and leave no buffer between them.
    """

    booking_uid: str
    owner_id: int
    type: str
    start: datetime
    end: datetime
    fields: Mapping[str, Any] = field(default_factory=dict)
    clear_before: timedelta = timedelta(0)
    clear_after: timedelta = timedelta(0)


@runtime_checkable
class SlotBooker(Protocol):
    """A source that can book a slot with the availability check and the write in one
    transaction (optional; the built-in store). Two visitors racing for one slot get one
    activity and one :class:`~syncd.errors.SlotTaken`."""

    def book(self, request: BookSlot) -> SourceResult:
        """Check and create in one transaction; ``created`` False when ``booking_uid``
        had booked already.

        Raises:
            SlotTaken: a busy activity of the owner overlaps the slot; nothing written.
            InvalidInput: a bad field; nothing written.
        """
