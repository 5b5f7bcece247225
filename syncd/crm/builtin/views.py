"""Read-only views and query objects returned by / passed to ``ActivityStore``.

Activities themselves are returned as :class:`syncd.model.Activity`; this module holds
the views of everything around them. All are frozen, so callers cannot mistake a view for
a live row that writes back.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime

from syncd.model import Activity, Tombstone

#: ``can_see(kind, item_id)`` answers whether a user may see one linked item (B4); kind is
#: one of ``deal``, ``person``, ``org``, ``lead`` (string ids) or ``project``.
CanSee = Callable[[str, int | str], bool]


@dataclass(frozen=True)
class UserView:
    """A CRM user; ``time_zone`` is the IANA zone its activities' times are in."""

    id: int
    email: str
    name: str
    time_zone: str


@dataclass(frozen=True)
class TypeView:
    """An activity type (A2)."""

    key: str
    name: str
    color: str
    is_default: bool
    active: bool


@dataclass(frozen=True)
class ItemDates:
    """The derived dates kept on every linked item (A10)."""

    last_activity_date: date | None
    next_activity_date: date | None
    update_time: datetime


@dataclass(frozen=True)
class OrgView:
    """An organization."""

    id: int
    name: str
    owner_id: int | None
    visible_to_owner_only: bool
    dates: ItemDates


@dataclass(frozen=True)
class PersonView:
    """A contact person."""

    id: int
    name: str
    email: str | None
    org_id: int | None
    owner_id: int | None
    visible_to_owner_only: bool
    dates: ItemDates


@dataclass(frozen=True)
class DealView:
    """A deal."""

    id: int
    title: str
    person_id: int | None
    org_id: int | None
    owner_id: int | None
    visible_to_owner_only: bool
    dates: ItemDates


@dataclass(frozen=True)
class LeadView:
    """A lead (string id)."""

    id: str
    title: str
    person_id: int | None
    org_id: int | None
    owner_id: int | None
    visible_to_owner_only: bool
    dates: ItemDates


@dataclass(frozen=True)
class ProjectView:
    """A project."""

    id: int
    title: str
    owner_id: int | None
    visible_to_owner_only: bool
    dates: ItemDates


@dataclass(frozen=True)
class ActivityFilter:
    """Which activities to list or bulk-delete; every given criterion must hold.

    ``deal_id``/``person_id``/``org_id`` match through the activity's links, automatic
    ones included (an activity linked to a deal shows on its person's page, B1).
    ``due_from``/``due_to`` are inclusive and only match activities that have a due date.
    """

    owner_id: int | None = None
    type: str | None = None
    done: bool | None = None
    deal_id: int | None = None
    person_id: int | None = None
    org_id: int | None = None
    due_from: date | None = None
    due_to: date | None = None
    include_deleted: bool = False
    ids: Sequence[int] | None = None
    limit: int | None = None

    def has_criteria(self) -> bool:
        """True when at least one criterion narrows the selection (bulk-delete guard)."""
        return any(
            v is not None
            for v in (self.owner_id, self.type, self.done, self.deal_id, self.person_id,
                      self.org_id, self.due_from, self.due_to, self.ids)
        )


@dataclass(frozen=True)
class ChangePage:
    """One page of the change feed.

    Attributes:
        items: each changed activity once, in its current state (deleted ones included),
            or a :class:`Tombstone` when it has been purged; ordered by the seq of its
            latest change within the page.
        last_seq: the highest seq this page covers; pass it as ``after`` for the next page
            (equal to ``after`` when nothing changed).
        more: whether further change rows exist after ``last_seq``.
        handed_over: activities this page hands to the owner read (an owner change to
            them), which syncd moves without e-mailing anyone (docs/guest-mail.md).
    """

    items: list[Activity | Tombstone]
    last_seq: int
    more: bool
    handed_over: frozenset[int] = frozenset()
