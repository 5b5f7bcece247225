"""The rows of a new activity and the view built from them, as both writers make them:
the store's (:mod:`syncd.crm.builtin.write`) and the plain one of ``syncd activity add``
(:mod:`syncd.crm.builtin.quick_add`, which imports no SQLAlchemy).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from datetime import date, datetime, time
from typing import Any, Protocol

from syncd.crm.builtin.checks import (
    EDITABLE_FIELDS,
    GuestSpec,
    Persons,
    check_time_needs_date,
    clean_fields,
    resolve_guests_with,
)
from syncd.errors import InvalidInput
from syncd.model import ACTIVITY_FIELDS, Activity, Guest, Kind, wall_time

#: What an omitted field of a new activity is (A4: free by default).
NEW_DEFAULTS: dict[str, Any] = {**{f.name: f.default for f in ACTIVITY_FIELDS
                                   if not f.required}, "sync_uid": None}
#: The fields a new activity must name.
REQUIRED: tuple[str, ...] = tuple(f.name for f in ACTIVITY_FIELDS if f.required)
#: The plain columns an add or an edit copies from the checked values (``done`` also
#: stamps ``marked_done_at``, D2, so it has code of its own).
SCALARS: tuple[str, ...] = tuple(f.name for f in ACTIVITY_FIELDS
                                 if f.plain and f.name != "done")


def time_columns(due_date: date | None, due_time: time | None, zone: str) -> dict[str, Any]:
    """``due_time`` and ``due_fold`` as stored: the fold settled for that day and zone."""
    if due_date is None or due_time is None:
        return {"due_time": due_time, "due_fold": False}
    clock = wall_time(due_date, due_time, zone)
    return {"due_time": clock, "due_fold": bool(clock.fold)}


def guest_rows(activity_id: int, guests: Sequence[GuestSpec]) -> list[dict[str, Any]]:
    """The ``activity_guests`` rows for one activity, keeping the order given."""
    return [{"activity_id": activity_id, "position": n, "person_id": g.person_id,
             "email": g.email, "name": g.name} for n, g in enumerate(guests)]


class NewLookups(Protocol):
    """What checking a new activity looks up, in the writer's transaction."""

    @property
    def persons(self) -> Persons: ...
    def owner_zone(self, owner_id: int) -> str: ...
    def check_type(self, key: str) -> None: ...


def check_new(lookups: NewLookups, fields: Mapping[str, Any]
              ) -> tuple[dict[str, Any], list[GuestSpec]]:
    """Check one new activity's fields, look up its owner, type and guests, and settle
    its time's fold; writes nothing. Its links are the caller's to resolve.

    Returns:
        The checked values (every field, defaults filled in) and the guests.

    Raises:
        InvalidInput: a missing ``owner_id``/``subject`` or any unacceptable value.
    """
    for required in REQUIRED:
        if required not in fields:
            raise InvalidInput(field=required, value=None, reason="is required")
    values = clean_fields({**NEW_DEFAULTS, **fields}, EDITABLE_FIELDS | {"sync_uid"})
    check_time_needs_date(values["due_date"], values["due_time"])
    zone = lookups.owner_zone(values["owner_id"])
    values.update(time_columns(values["due_date"], values["due_time"], zone))
    lookups.check_type(values["type"])
    return values, resolve_guests_with(values["guests"], lookups.persons)


def activity_row(values: Mapping[str, Any], links: Mapping[str, Any], now: datetime
                 ) -> dict[str, Any]:
    """The ``activities`` row of a new activity from its checked ``values`` (with
    :func:`time_columns`'s) and its links' columns."""
    return {
        **{name: values[name] for name in SCALARS},
        "due_fold": values["due_fold"],
        **links,
        "sync_uid": values["sync_uid"] or uuid.uuid4().hex,  # random: reveals nothing
        "owner_id": values["owner_id"],
        "done": values["done"],
        "marked_done_at": now if values["done"] else None,  # D2
        "deleted_at": None,
        "created_at": now,
        "updated_at": now,
    }


#: The declared fields a view copies from the row as they are.
_COPIED = tuple(f.name for f in ACTIVITY_FIELDS
                if f.on_view and f.kind is not Kind.GUESTS and f.name != "due_time")


def to_view(row: Any, owner_tz: str, guests: Sequence[Guest]) -> Activity:
    """One activity row as a frozen view (no note: it is not on the row). ``row``: a
    mapped row, or anything with its columns as attributes."""
    return Activity(
        id=row.id,
        sync_uid=row.sync_uid,
        owner_tz=owner_tz,
        # A TIME column has no fold: due_fold carries it (the second of a repeated hour).
        due_time=row.due_time.replace(fold=1) if row.due_time and row.due_fold else row.due_time,
        guests=tuple(guests),
        marked_done_at=row.marked_done_at,
        deleted=row.deleted_at is not None,
        updated_at=row.updated_at,
        **{name: getattr(row, name) for name in _COPIED},
    )


