"""Checking and normalising the fields of an activity, without a database.

:func:`clean_fields` checks each given value on its own (types, ranges, text hygiene);
:func:`resolve_guests_with` then looks the guests up through a cache of persons that
either writer fills (the store's :class:`syncd.crm.builtin.fields.PersonCache`, or the
plain one of ``syncd activity add``, :mod:`syncd.crm.builtin.quick_add`). Both raise
:class:`~syncd.errors.InvalidInput` naming the field, so a caller can show the user
which value to fix. Error values never carry the note (errors end up in logs).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time
from typing import Any

from syncd.errors import InvalidInput
from syncd.model import (
    ACTIVITY_FIELDS,
    FIRST_DAY,
    LAST_DAY,
    MAX_DURATION_MINUTES,
    ActivityField,
    Guest,
    Kind,
    day_in_range,
    is_valid_email,
    normalize_email,
)
from syncd.text import clean_text

#: Every field ``edit_activity`` accepts (``add_activity`` also takes ``sync_uid``).
EDITABLE_FIELDS: frozenset[str] = frozenset(f.name for f in ACTIVITY_FIELDS)

#: The fields a calendar may change (the projection's, plus done and type). The note,
#: the owner, the links and the identity are the CRM's alone.
CALENDAR_FIELDS: frozenset[str] = frozenset(f.name for f in ACTIVITY_FIELDS if f.calendar)

#: Link fields and the kind of item each one names (``deal_id`` -> ``deal``).
LINK_FIELDS: dict[str, str] = {f.name: f.name.removesuffix("_id") for f in ACTIVITY_FIELDS
                               if f.kind in (Kind.ITEM, Kind.LEAD)}

_SYNC_UID = re.compile(r"^[0-9a-f]{32}$")
_TEXT_LIMITS = {f.name: f.limit for f in ACTIVITY_FIELDS if f.limit is not None}

GuestInput = Guest | str | int


@dataclass(frozen=True)
class GuestSpec:
    """A guest as given, checked for syntax but not yet looked up."""

    email: str | None
    name: str | None
    person_id: int | None


def _text_value(value: object) -> object:
    # Text may be long or private: an error shows its type and length, not its content.
    return f"<{len(value)} characters>" if isinstance(value, str) else type(value).__name__


def _id(name: str, value: object, *, optional: bool = True) -> int | None:
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise InvalidInput(field=name, value=value, reason="must be a positive whole number")
    return value


def _flag(name: str, value: object) -> bool:
    if not isinstance(value, bool):
        raise InvalidInput(field=name, value=value, reason="must be true or false")
    return value


def _text(name: str, value: object, *, single_line: bool) -> str:
    if not isinstance(value, str):
        raise InvalidInput(field=name, value=_text_value(value), reason="must be text")
    cleaned = clean_text(value, single_line=single_line)
    if len(cleaned) > _TEXT_LIMITS[name]:
        raise InvalidInput(field=name, value=_text_value(value),
                           reason=f"is longer than {_TEXT_LIMITS[name]} characters")
    return cleaned


def _line(name: str, value: object, *, required: bool) -> str:
    text = _text(name, value, single_line=True)
    if required and not text:
        reason = "must not be empty (A1)" if name == "subject" else "must not be empty"
        raise InvalidInput(field=name, value=value, reason=reason)
    return text


def _note(value: object) -> str:
    # The note is kept exactly as written (it never leaves the CRM, so there is nothing
    # to normalise for); only its type and size are checked.
    if not isinstance(value, str):
        raise InvalidInput(field="note", value=type(value).__name__, reason="must be text")
    if len(value) > _TEXT_LIMITS["note"]:
        raise InvalidInput(field="note", value=_text_value(value),
                           reason=f"is longer than {_TEXT_LIMITS['note']} characters")
    return value


def _type_key(value: object) -> str:
    if not isinstance(value, str) or not value.strip():
        raise InvalidInput(field="type", value=value, reason="must be a type key, e.g. 'call'")
    return value.strip()


def _date(name: str, value: object) -> date | None:
    # datetime is a subclass of date; accepting one would silently drop its time.
    if value is not None and (not isinstance(value, date) or isinstance(value, datetime)):
        raise InvalidInput(field=name, value=value, reason="must be a date (YYYY-MM-DD)")
    if value is not None and not day_in_range(value):
        raise InvalidInput(field=name, value=value.isoformat(),
                           reason=f"must be between {FIRST_DAY.isoformat()} and "
                                  f"{LAST_DAY.isoformat()}")
    return value


def _time(name: str, value: object) -> time | None:
    if value is None:
        return None
    if not isinstance(value, time):
        raise InvalidInput(field=name, value=value, reason="must be a time of day (HH:MM)")
    if value.tzinfo is not None:
        raise InvalidInput(field=name, value=value.isoformat(),
                           reason="must be a wall-clock time in the owner's zone, without offset")
    # The fold (which of two repeated wall times) is kept; the store settles it against
    # the date and the owner's zone (syncd.model.wall_time).
    return value


def _minutes(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidInput(field=name, value=value, reason="must be whole minutes")
    if value < 0:
        raise InvalidInput(field=name, value=value, reason="must not be negative")
    if value > MAX_DURATION_MINUTES:
        raise InvalidInput(field=name, value=value,
                           reason=f"must be at most {MAX_DURATION_MINUTES} (366 days)")
    return value


def _lead_id(value: object) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value:
        raise InvalidInput(field="lead_id", value=value, reason="must be a lead id (text)")
    return value


def _sync_uid(value: object) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not _SYNC_UID.match(value):
        raise InvalidInput(field="sync_uid", value=value,
                           reason="must be 32 lower-case hex digits (a uuid4 hex)")
    return value


def _guest(value: object) -> GuestSpec:
    if isinstance(value, Guest):
        email = normalize_email(value.email) if value.email else None
        if email is not None and not is_valid_email(email):
            raise InvalidInput(field="guests", value=value.email, reason="is not an e-mail address")
        if value.person_id is not None:
            _id("guests", value.person_id)
        if email is None and value.person_id is None:
            raise InvalidInput(field="guests", value=repr(value),
                               reason="a guest needs an e-mail address or a person id")
        name = clean_text(value.name, single_line=True) or None
        return GuestSpec(email, name, value.person_id)
    if isinstance(value, str):
        email = normalize_email(value)
        if not is_valid_email(email):
            raise InvalidInput(field="guests", value=value, reason="is not an e-mail address")
        return GuestSpec(email, None, None)
    if isinstance(value, int) and not isinstance(value, bool):
        return GuestSpec(None, None, _id("guests", value))
    raise InvalidInput(field="guests", value=repr(value),
                       reason="each guest must be an e-mail address, a person id or a Guest")


def _guests(value: object) -> tuple[GuestSpec, ...]:
    if isinstance(value, str | bytes) or not isinstance(value, Iterable):
        raise InvalidInput(field="guests", value=repr(value), reason="must be a list of guests")
    return tuple(_guest(g) for g in value)


def _check(spec: ActivityField) -> Any:
    """The check of one declared field: value -> cleaned value, or InvalidInput."""
    name = spec.name
    checks: dict[Kind, Any] = {
        Kind.USER: lambda v: _id(name, v, optional=False),
        Kind.LINE: lambda v: _line(name, v, required=spec.required),
        Kind.TEXT: lambda v: _text(name, v, single_line=False),
        Kind.NOTE: _note,
        Kind.FLAG: lambda v: _flag(name, v),
        Kind.DATE: lambda v: _date(name, v),
        Kind.TIME: lambda v: _time(name, v),
        Kind.MINUTES: lambda v: _minutes(name, v),
        Kind.GUESTS: _guests,
        Kind.TYPE: _type_key,
        Kind.ITEM: lambda v: _id(name, v),
        Kind.LEAD: _lead_id,
    }
    return checks[spec.kind]


_CHECKS: dict[str, Any] = {**{f.name: _check(f) for f in ACTIVITY_FIELDS},
                           "sync_uid": _sync_uid}


def clean_fields(fields: Mapping[str, Any], allowed: Iterable[str]) -> dict[str, Any]:
    """Check each given field on its own and return the normalised values.

    Args:
        fields: field name -> value, as the caller passed them.
        allowed: the names accepted here; any other name is an error.

    Returns:
        The same keys with cleaned values (text trimmed, e-mails lower-cased, guests as
        :class:`GuestSpec`).

    Raises:
        InvalidInput: for the first unknown field or unacceptable value.
    """
    allowed = frozenset(allowed)
    out: dict[str, Any] = {}
    for name, value in fields.items():
        if name not in allowed:
            raise InvalidInput(field=name, value=_text_value(value) if name == "note" else value,
                               reason="is not a field that can be set here")
        out[name] = _CHECKS[name](value)
    return out


def check_time_needs_date(due_date: date | None, due_time: time | None) -> None:
    """A3: a date without a time is whole-day; a time without a date is meaningless."""
    if due_time is not None and due_date is None:
        raise InvalidInput(field="due_time", value=due_time.isoformat(),
                           reason="a time needs a due date")


@dataclass(frozen=True)
class PersonRef:
    """What a guest needs of a CRM person."""

    id: int
    name: str
    email: str | None


PersonRow = tuple[int, str, str | None]  # id, name, e-mail


class Persons:
    """Persons looked up by id and by e-mail within one transaction, misses cached too.

    A bulk insert calls :meth:`prefetch` once with every address of the batch, so that
    linking guests to persons costs one query per batch instead of one per activity. A
    writer supplies the two queries (:meth:`_with_ids`, :meth:`_with_emails`).
    """

    CHUNK = 500  # values per IN (...) list

    def __init__(self) -> None:
        self.by_id: dict[int, PersonRef | None] = {}
        self.by_email: dict[str, PersonRef | None] = {}

    def _with_ids(self, ids: list[int]) -> Iterable[PersonRow]:
        raise NotImplementedError

    def _with_emails(self, emails: list[str]) -> Iterable[PersonRow]:
        """The persons with these addresses, the highest id first."""
        raise NotImplementedError

    def prefetch(self, ids: Iterable[int] = (), emails: Iterable[str] = ()) -> None:
        """Load the given persons and addresses that are not cached yet."""
        new_ids = sorted({i for i in ids if i not in self.by_id})
        new_emails = sorted({e for e in emails if e not in self.by_email})
        for start in range(0, len(new_ids), self.CHUNK):
            chunk = new_ids[start:start + self.CHUNK]
            self.by_id.update(dict.fromkeys(chunk))
            for pid, name, email in self._with_ids(chunk):
                self.by_id[pid] = PersonRef(pid, name, email)
        for start in range(0, len(new_emails), self.CHUNK):
            addresses = new_emails[start:start + self.CHUNK]
            self.by_email.update(dict.fromkeys(addresses))
            for pid, name, email in self._with_emails(addresses):
                if email is not None:
                    self.by_email[email] = PersonRef(pid, name, email)  # lowest id wins


def resolve_guests_with(specs: Sequence[GuestSpec], cache: Persons) -> list[GuestSpec]:
    """Look guests up (A6): person ids must exist, e-mails link their CRM person.

    Every returned guest has an e-mail address (a calendar can only invite addresses);
    duplicates (same address) are dropped, keeping the first.

    Args:
        specs: the guests as checked by :func:`clean_fields`.
        cache: the persons, looked up in the writer's transaction (one cache may serve
            the activities of a batch).

    Raises:
        InvalidInput: a person id that does not exist or has no e-mail address.
    """
    cache.prefetch(ids=(s.person_id for s in specs if s.person_id is not None),
                   emails=(s.email for s in specs if s.email is not None))
    out: list[GuestSpec] = []
    seen: set[str] = set()
    for spec in specs:
        person: PersonRef | None = None
        if spec.person_id is not None:
            person = cache.by_id.get(spec.person_id)
            if person is None:
                raise InvalidInput(field="guests", value=spec.person_id, reason="no such person")
        elif spec.email is not None:
            person = cache.by_email.get(spec.email)
        email = spec.email or (person.email if person else None)
        if email is None:
            raise InvalidInput(field="guests", value=spec.person_id,
                               reason="that person has no e-mail address to invite")
        if email in seen:
            continue
        seen.add(email)
        name = spec.name or (person.name if person else None)
        out.append(GuestSpec(email, name, person.id if person else None))
    return out
