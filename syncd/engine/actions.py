"""The plan's vocabulary: plain, frozen data with no behaviour and no I/O."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from syncd.model import Activity, Projection
from syncd.pairs import Conflict

# --- writes to the CRM ---------------------------------------------------------------------


@dataclass(frozen=True)
class UpdateActivity:
    """Apply calendar-side edits to an activity (activity field -> value)."""

    activity_id: int
    changes: Mapping[str, Any]
    fields: frozenset[str]
    #: The activity the edits were planned against, so that a read-check-write source
    #: can refuse them if it changed since (not part of what the plan *is*: not compared).
    base: Activity | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class CreateActivity:
    """Import an event created in the calendar as a new activity."""

    owner_id: int
    type: str
    changes: Mapping[str, Any]
    ical_uid: str | None = None  # the meeting's UID, claimed for this account on import


@dataclass(frozen=True)
class DeleteActivity:
    """Soft-delete an activity whose event was deleted in the calendar."""

    activity_id: int


CrmWrite = UpdateActivity | CreateActivity | DeleteActivity

# --- writes to the calendar ------------------------------------------------------------------


@dataclass(frozen=True)
class CreateEvent:
    """Create the event; ``invited`` guests become real attendees, ``recipients`` is how
    many e-mails the write sends (0 unless ``notify``; docs/guest-mail.md)."""

    marker: str
    generation: int
    projection: Projection
    notify: bool
    retry: bool = False
    invited: frozenset[str] = frozenset()
    recipients: int = 0


@dataclass(frozen=True)
class UpdateEvent:
    """Write ``fields`` of ``projection``; ``marker`` None means the imported activity's."""

    event_id: str
    etag: str | None
    projection: Projection
    fields: frozenset[str]
    marker: str | None
    notify: bool
    invited: frozenset[str] = frozenset()
    recipients: int = 0
    theirs: bool = False  # someone else organises the meeting: people are never written


@dataclass(frozen=True)
class DeleteEvent:
    event_id: str
    etag: str | None
    notify: bool
    recipients: int = 0


CalWrite = CreateEvent | UpdateEvent | DeleteEvent

# --- bookkeeping ------------------------------------------------------------------------------


LinkOp = Literal["keep", "save", "drop"]


@dataclass(frozen=True)
class PairPlan:
    """Everything to do for one (activity, event) pair, in the order the runner does it.

    The CRM write goes first (local and transactional), then the calendar write. Only
    when both succeed does the runner apply ``link``: "save" stores the new merge bases
    (the activity's projection and the event as the server returned it), "drop" removes
    the link, "keep" leaves it. If any step fails the bases stay as they were, so the next
    cycle sees the same differences and finishes the job without losing an edit.
    """

    activity_id: int | None
    event_id: str | None
    crm_write: CrmWrite | None = None
    cal_write: CalWrite | None = None
    link: LinkOp = "keep"
    crm_now: Projection | None = None  # the activity's projection before any write
    cal_now: Projection | None = None  # the event's projection before any write
    etag_now: str | None = None
    generation: int = 0
    marker: str | None = None
    conflicts: tuple[Conflict, ...] = ()
    skip: str | None = None  # why nothing is done (counted in the report)
    quarantine: str | None = None  # why the item is set aside
    item_version: str | None = None  # etag of a quarantined event
    # guests holding an invitation to the event once the writes are done (None: unknown)
    invited: frozenset[str] | None = None
    organizer: str | None = None  # someone else organises the meeting (an invitation)
    notes: tuple[str, ...] = field(default=())

    @property
    def writes(self) -> int:
        return int(self.crm_write is not None) + int(self.cal_write is not None)

    @property
    def is_noop(self) -> bool:
        return (not self.writes and self.link == "keep" and not self.conflicts
                and not self.quarantine)
