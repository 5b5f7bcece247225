"""The built-in CRM's tables: users, activity types, linked items, activities and the feed.

These are the SQLAlchemy 2 typed ORM classes on :class:`syncd.store.base.Base`; the
schema itself is owned by Alembic (revision ``0001_initial``). Only
:mod:`syncd.crm.builtin.activities` and its helper modules write these tables.

There are no server-side defaults: SQLite and PostgreSQL spell boolean literals
differently, so one generated migration could not carry them, and every insert names
each value anyway.

Design notes (the why behind the columns):

* ``activities.due_date`` / ``due_time`` are the wall-clock date and time **in the
  owner's zone** (``users.time_zone``, an IANA name), as a CRM user types them. A UTC
  instant would turn a whole-day activity into a time and would move "09:00 every day"
  across DST; the instant is derived when needed (``syncd.model.activity_when``).
  ``due_fold`` completes the wall time on the one night a year it is ambiguous: true
  for the second of two repeated readings (clocks going back), as Python's ``fold``.
  A flag rather than a UTC column because every other row reads the same as before,
  agenda order and day filters stay wall-clock, and a future meeting at 10:00 stays at
  10:00 if its country's DST rules change before it happens.
* The private note (seed rule A5) is in ``activity_notes`` and nowhere else, so no query
  that builds an :class:`syncd.model.Activity` can pick it up by accident.
* ``activities.id`` and ``activity_changes.seq`` never reuse numbers (AUTOINCREMENT on
  SQLite, a sequence/identity on PostgreSQL): a purged activity's id must not come back
  as a different activity, or a Tombstone in the change feed would name the wrong thing.
* Every linked item (deal, person, organization, lead, project) carries its derived dates
  (A10) and a minimal visibility model (B4): an optional ``owner_id`` and a
  ``visible_to_owner_only`` flag. An item is visible to a user when the flag is off or
  the user is its owner.
"""

from __future__ import annotations

from datetime import date, datetime, time

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Date,
    ForeignKey,
    Identity,
    Index,
    Integer,
    String,
    Text,
    Time,
    false,
)
from sqlalchemy.orm import Mapped, mapped_column

from syncd.store.base import Base, UTCDateTime

#: The kinds of change recorded in ``activity_changes``.
CHANGE_KINDS: tuple[str, ...] = ("insert", "update", "delete", "purge")

#: The kinds of item an activity can be linked to (seed rules B1-B3).
LINK_KINDS: tuple[str, ...] = ("deal", "person", "org", "lead", "project")

# Ids that must never be reused get AUTOINCREMENT on SQLite (a plain INTEGER PRIMARY KEY
# may hand out the id of the last deleted row again) and a 64-bit identity on PostgreSQL.
_NEVER_REUSED = {"sqlite_autoincrement": True}
_BIG_ID = BigInteger().with_variant(Integer, "sqlite")


class User(Base):
    """A CRM user: the owner of activities (A9) and of a calendar."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(254), unique=True)  # stored normalised
    name: Mapped[str] = mapped_column(String(200), default="")
    time_zone: Mapped[str] = mapped_column(String(64), default="UTC")  # IANA name
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class ActivityType(Base):
    """An activity type (A2): one of the six defaults or a company's own."""

    __tablename__ = "activity_types"

    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(String(40), unique=True)
    name: Mapped[str] = mapped_column(String(100))
    color: Mapped[str] = mapped_column(String(7), default="#888888")
    is_default: Mapped[bool] = mapped_column(Boolean, default=False)
    active: Mapped[bool] = mapped_column(Boolean, default=True)


class LinkedItem:
    """Columns shared by everything an activity can be linked to.

    ``last_activity_date``, ``next_activity_date`` and ``update_time`` are derived (A10)
    and maintained by :mod:`syncd.crm.builtin.derived`; nothing else writes them.
    """

    owner_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    visible_to_owner_only: Mapped[bool] = mapped_column(Boolean, default=False)
    last_activity_date: Mapped[date | None] = mapped_column(Date)
    next_activity_date: Mapped[date | None] = mapped_column(Date)
    update_time: Mapped[datetime] = mapped_column(UTCDateTime())


class Organization(LinkedItem, Base):
    """A company the CRM deals with."""

    __tablename__ = "organizations"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(255))


class Person(LinkedItem, Base):
    """A contact person; ``email`` lets a guest address find its CRM contact (A6)."""

    __tablename__ = "persons"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(255))
    # Not unique: two contacts may share an office address. Lookups take the lowest id.
    email: Mapped[str | None] = mapped_column(String(254), index=True)
    org_id: Mapped[int | None] = mapped_column(ForeignKey("organizations.id"))


class Deal(LinkedItem, Base):
    """A deal; its person and organization are what B1 links automatically."""

    __tablename__ = "deals"

    id: Mapped[int] = mapped_column(primary_key=True)
    title: Mapped[str] = mapped_column(String(255))
    person_id: Mapped[int | None] = mapped_column(ForeignKey("persons.id"))
    org_id: Mapped[int | None] = mapped_column(ForeignKey("organizations.id"))


class Lead(LinkedItem, Base):
    """A lead; its id is a UUID string, as in Pipedrive."""

    __tablename__ = "leads"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    title: Mapped[str] = mapped_column(String(255))
    person_id: Mapped[int | None] = mapped_column(ForeignKey("persons.id"))
    org_id: Mapped[int | None] = mapped_column(ForeignKey("organizations.id"))


class Project(LinkedItem, Base):
    """A project."""

    __tablename__ = "projects"

    id: Mapped[int] = mapped_column(primary_key=True)
    title: Mapped[str] = mapped_column(String(255))


class ActivityRow(Base):
    """One activity (seed rules A1-A10). Read it through ``syncd.model.Activity`` views."""

    __tablename__ = "activities"
    __table_args__ = (
        CheckConstraint("duration_minutes >= 0", name="duration_not_negative"),
        # A3: a time without a date means nothing; a date without a time is whole-day.
        CheckConstraint("due_time IS NULL OR due_date IS NOT NULL", name="time_needs_date"),
        Index("ix_activities_owner_due", "owner_id", "due_date"),
        _NEVER_REUSED,
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    # Opaque, random (uuid4 hex); never derived from content, so it can sit in a calendar
    # event's ownership marker without revealing anything.
    sync_uid: Mapped[str] = mapped_column(String(32), unique=True)
    owner_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    type: Mapped[str] = mapped_column(ForeignKey("activity_types.key"), index=True)
    subject: Mapped[str] = mapped_column(String(255))
    due_date: Mapped[date | None] = mapped_column(Date)
    due_time: Mapped[time | None] = mapped_column(Time)  # wall clock, owner's zone
    # True for the second of two repeated wall times (clocks going back): a TIME column
    # has no fold, and without it the instant, and so the duration, would be lost.
    due_fold: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    duration_minutes: Mapped[int] = mapped_column(Integer, default=0)
    busy: Mapped[bool] = mapped_column(Boolean, default=False)  # A4
    description: Mapped[str] = mapped_column(Text, default="")  # public (A8)
    location: Mapped[str] = mapped_column(String(500), default="")
    done: Mapped[bool] = mapped_column(Boolean, default=False)
    marked_done_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    deleted_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
    deal_id: Mapped[int | None] = mapped_column(ForeignKey("deals.id"))
    person_id: Mapped[int | None] = mapped_column(ForeignKey("persons.id"))
    org_id: Mapped[int | None] = mapped_column(ForeignKey("organizations.id"))
    lead_id: Mapped[str | None] = mapped_column(ForeignKey("leads.id"))
    project_id: Mapped[int | None] = mapped_column(ForeignKey("projects.id"))


class ActivityGuest(Base):
    """One invited guest (A6): a CRM person, an external address, or both."""

    __tablename__ = "activity_guests"
    __table_args__ = (
        CheckConstraint("person_id IS NOT NULL OR email IS NOT NULL", name="person_or_email"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    activity_id: Mapped[int] = mapped_column(
        ForeignKey("activities.id", ondelete="CASCADE"), index=True
    )
    position: Mapped[int] = mapped_column(Integer, default=0)  # keeps the order given
    person_id: Mapped[int | None] = mapped_column(ForeignKey("persons.id"))
    email: Mapped[str | None] = mapped_column(String(254))  # normalised
    name: Mapped[str | None] = mapped_column(String(200))


class ActivityNote(Base):
    """The private note (A5). Only ``ActivityStore.get_note`` reads this table (and
    ``get_notes``, for ``syncd verify``'s privacy audit)."""

    __tablename__ = "activity_notes"

    activity_id: Mapped[int] = mapped_column(
        ForeignKey("activities.id", ondelete="CASCADE"), primary_key=True
    )
    text: Mapped[str] = mapped_column(Text)


class ActivityLink(Base):
    """An item an activity is linked to (B1-B3); ``automatic`` marks B1/B2 links.

    One row per linked item, with exactly one of the item columns set, so every link has
    a real foreign key. The ``activities.<kind>_id`` columns mirror these rows (one link
    of each kind at most); this table is what visibility (B4) and A10 query.
    """

    __tablename__ = "activity_links"
    __table_args__ = (
        CheckConstraint(
            "(CASE WHEN deal_id IS NULL THEN 0 ELSE 1 END"
            " + CASE WHEN person_id IS NULL THEN 0 ELSE 1 END"
            " + CASE WHEN org_id IS NULL THEN 0 ELSE 1 END"
            " + CASE WHEN lead_id IS NULL THEN 0 ELSE 1 END"
            " + CASE WHEN project_id IS NULL THEN 0 ELSE 1 END) = 1",
            name="exactly_one_item",
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    activity_id: Mapped[int] = mapped_column(
        ForeignKey("activities.id", ondelete="CASCADE"), index=True
    )
    kind: Mapped[str] = mapped_column(String(8))
    automatic: Mapped[bool] = mapped_column(Boolean, default=False)
    deal_id: Mapped[int | None] = mapped_column(ForeignKey("deals.id"), index=True)
    person_id: Mapped[int | None] = mapped_column(ForeignKey("persons.id"), index=True)
    org_id: Mapped[int | None] = mapped_column(ForeignKey("organizations.id"), index=True)
    lead_id: Mapped[str | None] = mapped_column(ForeignKey("leads.id"), index=True)
    project_id: Mapped[int | None] = mapped_column(ForeignKey("projects.id"), index=True)


class ActivityChange(Base):
    """The change feed: one row per change to an activity, in commit order.

    ``activity_id`` has no foreign key on purpose: the row outlives a purged activity,
    and the feed then reports a Tombstone for it.
    """

    __tablename__ = "activity_changes"
    __table_args__ = (
        CheckConstraint(
            "kind IN ('insert', 'update', 'delete', 'purge')", name="known_kind"
        ),
        # The per-owner feed reads "owner_id = X OR previous_owner_id = X" in seq order.
        Index("ix_activity_changes_owner_seq", "owner_id", "seq"),
        Index("ix_activity_changes_previous_owner_seq", "previous_owner_id", "seq"),
        _NEVER_REUSED,
    )

    seq: Mapped[int] = mapped_column(_BIG_ID, Identity(), primary_key=True)
    activity_id: Mapped[int] = mapped_column(Integer, index=True)
    sync_uid: Mapped[str] = mapped_column(String(32))
    kind: Mapped[str] = mapped_column(String(8))
    owner_id: Mapped[int] = mapped_column(ForeignKey("users.id"))  # after the change
    previous_owner_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    at: Mapped[datetime] = mapped_column(UTCDateTime())
