"""The write helpers behind ``ActivityStore``: checking new activities and inserting them.

One insert path serves ``add_activity`` (a batch of one), ``add_activities`` (bulk
creation and the CLI import) and the benchmark, so the fast path is also the tested one:
it writes the guests, the note, the links, the change rows and the derived dates exactly
as a single add does, with one ``executemany`` per table.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Table, select
from sqlalchemy.orm import Session

from syncd.crm.builtin import change_feed, derived
from syncd.crm.builtin.change_feed import ChangeRow
from syncd.crm.builtin.checks import (
    LINK_FIELDS,
    GuestSpec,
)
from syncd.crm.builtin.fields import PersonCache
from syncd.crm.builtin.item_links import ItemRef, LinkResolver, LinkSet, link_rows
from syncd.crm.builtin.rows import (
    activity_row,
    check_new,
    guest_rows,
)
from syncd.crm.builtin.tables import (
    ActivityGuest,
    ActivityLink,
    ActivityNote,
    ActivityRow,
    ActivityType,
    User,
)
from syncd.errors import InvalidInput
from syncd.model import Guest, normalize_email


def core_table(model: type[Any]) -> Table:
    """The Core table of an ORM class (typed: ``__table__`` is only a FromClause)."""
    table = model.__table__
    assert isinstance(table, Table)
    return table


CHUNK = 500  # ids per IN (...) list
_INSERT_BATCH = 1000  # rows per INSERT ... RETURNING


@dataclass(frozen=True)
class Prepared:
    """A new activity, checked and looked up, ready to insert."""

    values: dict[str, Any]
    guests: list[GuestSpec]
    links: LinkSet


class Lookups:
    """Per-transaction caches for the references a batch of activities repeats."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self.links = LinkResolver(session)
        self.persons = PersonCache(session)
        self._zones: dict[int, str | None] = {}
        self._types: set[str] | None = None

    def owner_zone(self, owner_id: int) -> str:
        """The owner's IANA zone; InvalidInput(field="owner_id") for an unknown user."""
        if owner_id not in self._zones:
            self._zones[owner_id] = self.session.scalar(
                select(User.time_zone).where(User.id == owner_id))
        zone = self._zones[owner_id]
        if zone is None:
            raise InvalidInput(field="owner_id", value=owner_id, reason="no such user")
        return zone

    def check_type(self, key: str) -> None:
        """InvalidInput(field="type") unless ``key`` is an active type (A2)."""
        if self._types is None:
            self._types = set(self.session.scalars(
                select(ActivityType.key).where(ActivityType.active.is_(True))))
        if key not in self._types:
            known = ", ".join(sorted(self._types))
            raise InvalidInput(field="type", value=key, reason=f"is not a type; known: {known}")


def move_to_zone(due_date: date, due_time: time, old_tz: str, new_tz: str) -> tuple[date, time]:
    """The same moment as a wall-clock date and time in another zone (fold included)."""
    moment = datetime.combine(due_date, due_time, tzinfo=ZoneInfo(old_tz))
    local = moment.astimezone(ZoneInfo(new_tz))
    return local.date(), local.time()


def prefetch_guests(lookups: Lookups, items: Sequence[Mapping[str, Any]]) -> None:
    """Look up, in one go, every person the guests of a batch may name."""
    ids: set[int] = set()
    emails: set[str] = set()
    for item in items:
        guests = item.get("guests", ())
        if isinstance(guests, str | bytes) or not isinstance(guests, Sequence):
            continue  # clean_fields reports it
        for g in guests:
            if isinstance(g, int) and not isinstance(g, bool):
                ids.add(g)
            elif isinstance(g, str):
                emails.add(normalize_email(g))
            elif isinstance(g, Guest):
                if g.person_id is not None:
                    ids.add(g.person_id)
                if isinstance(g.email, str):
                    emails.add(normalize_email(g.email))
    lookups.persons.prefetch(ids, emails)


def prepare(lookups: Lookups, fields: Mapping[str, Any]) -> Prepared:
    """Check one new activity's fields and resolve its references; writes nothing.

    Raises:
        InvalidInput: a missing ``owner_id``/``subject`` or any unacceptable value.
    """
    values, guests = check_new(lookups, fields)
    links = lookups.links.resolve({f: values[f] for f in LINK_FIELDS})
    return Prepared(values, guests, links)


def check_unique_uids(session: Session, uids: Sequence[str | None]) -> None:
    """InvalidInput(field="sync_uid") when a given uid repeats or is already taken."""
    given = [u for u in uids if u is not None]
    if len(set(given)) != len(given):
        raise InvalidInput(field="sync_uid", value=given, reason="repeats within the batch")
    for start in range(0, len(given), CHUNK):
        taken = session.scalar(select(ActivityRow.sync_uid).where(
            ActivityRow.sync_uid.in_(given[start:start + CHUNK])).limit(1))
        if taken is not None:
            raise InvalidInput(field="sync_uid", value=taken, reason="is already used")


def insert_activities(session: Session, prepared: Sequence[Prepared], now: datetime) -> list[int]:
    """Insert checked activities with their guests, notes, links and change rows.

    Returns:
        The new ids, in the order of ``prepared``.
    """
    check_unique_uids(session, [p.values["sync_uid"] for p in prepared])
    rows = [activity_row(p.values, p.links.columns(), now) for p in prepared]
    # Core INSERT ... RETURNING, matched back by the unique sync_uid: the ORM's bulk path
    # with sort_by_parameter_order is several times slower on large batches.
    table = core_table(ActivityRow)
    new_ids: dict[str, int] = {}
    conn = session.connection()
    for start in range(0, len(rows), _INSERT_BATCH):
        result = conn.execute(table.insert().returning(table.c.sync_uid, table.c.id),
                              rows[start:start + _INSERT_BATCH])
        new_ids.update((uid, activity_id) for uid, activity_id in result)
    ids = [new_ids[row["sync_uid"]] for row in rows]
    guests: list[dict[str, Any]] = []
    notes: list[dict[str, Any]] = []
    links: list[dict[str, Any]] = []
    changes: list[ChangeRow] = []
    refs: set[ItemRef] = set()
    for activity_id, p, row in zip(ids, prepared, rows, strict=True):
        guests.extend(guest_rows(activity_id, p.guests))
        if p.values["note"]:
            notes.append({"activity_id": activity_id, "text": p.values["note"]})
        links.extend(link_rows(activity_id, p.links))
        refs |= p.links.refs()
        changes.append(ChangeRow(activity_id, row["sync_uid"], "insert", row["owner_id"]))
    for model, batch in ((ActivityGuest, guests), (ActivityNote, notes), (ActivityLink, links)):
        if batch:
            conn.execute(core_table(model).insert(), batch)
    change_feed.append(session, changes, now)
    derived.refresh_items(session, refs, now)
    return ids
