"""Users, activity types and the items activities link to (the CRM around activities).

:class:`CrmDirectory` is the part of ``ActivityStore`` that manages everything except
activities: it is a base class rather than a separate object so that callers have one
store handle, as the sync engine and the CLI expect.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any, TypeVar, cast
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import Table, bindparam, func, select
from sqlalchemy.orm import Session

from syncd.crm.builtin.change_feed import lock_writers
from syncd.crm.builtin.tables import (
    ActivityType,
    Deal,
    Lead,
    LinkedItem,
    Organization,
    Person,
    Project,
    User,
)
from syncd.crm.builtin.views import (
    DealView,
    ItemDates,
    LeadView,
    OrgView,
    PersonView,
    ProjectView,
    TypeView,
    UserView,
)
from syncd.errors import InvalidInput, NotFound
from syncd.model import is_valid_email, normalize_email
from syncd.store.base import utcnow
from syncd.store.db import Database
from syncd.text import clean_text

_TYPE_KEY = re.compile(r"^[a-z][a-z0-9_-]{0,39}$")
_COLOR = re.compile(r"^#[0-9a-fA-F]{6}$")
_T = TypeVar("_T")


def _dates(item: LinkedItem) -> ItemDates:
    return ItemDates(item.last_activity_date, item.next_activity_date, item.update_time)


_USERS = cast(Table, User.__table__)
_USER_BY_EMAIL = select(_USERS.c.id, _USERS.c.email, _USERS.c.name, _USERS.c.time_zone).where(
    _USERS.c.email == bindparam("email"))


def _user_view(u: User) -> UserView:
    return UserView(u.id, u.email, u.name, u.time_zone)


def _person_view(p: Person) -> PersonView:
    return PersonView(p.id, p.name, p.email, p.org_id, p.owner_id, p.visible_to_owner_only,
                      _dates(p))


def _org_view(o: Organization) -> OrgView:
    return OrgView(o.id, o.name, o.owner_id, o.visible_to_owner_only, _dates(o))


def _deal_view(d: Deal) -> DealView:
    return DealView(d.id, d.title, d.person_id, d.org_id, d.owner_id, d.visible_to_owner_only,
                    _dates(d))


def _lead_view(d: Lead) -> LeadView:
    return LeadView(d.id, d.title, d.person_id, d.org_id, d.owner_id, d.visible_to_owner_only,
                    _dates(d))


def _project_view(p: Project) -> ProjectView:
    return ProjectView(p.id, p.title, p.owner_id, p.visible_to_owner_only, _dates(p))


def check_now(now: datetime | None) -> datetime:
    """``now`` as an aware datetime (the current time when None)."""
    if now is None:
        return utcnow()
    if now.tzinfo is None:
        raise InvalidInput(field="now", value=now.isoformat(), reason="must carry a time zone")
    return now


def _name(field: str, value: object, limit: int = 255) -> str:
    if not isinstance(value, str):
        raise InvalidInput(field=field, value=value, reason="must be text")
    cleaned = clean_text(value, single_line=True)
    if not cleaned:
        raise InvalidInput(field=field, value=value, reason="must not be empty")
    if len(cleaned) > limit:
        raise InvalidInput(field=field, value=value, reason=f"is longer than {limit} characters")
    return cleaned


class CrmDirectory:
    """Users, types, persons, organizations, deals, leads and projects.

    Args:
        db: the database; its schema is migrated when it is opened.
    """

    def __init__(self, db: Database) -> None:
        self.db = db

    # --- transactions -----------------------------------------------------------------

    @contextmanager
    def _write(self) -> Iterator[Session]:
        """One write transaction, serialised against every other store writer."""
        with self.db.session() as session:
            lock_writers(session)
            yield session

    @contextmanager
    def _read(self) -> Iterator[Session]:
        with self.db.session() as session:
            yield session

    def _require(self, session: Session, table: type[_T], key: Any, field: str,
                 what: str) -> _T:
        """The row, or InvalidInput naming the field that referred to it."""
        if key is None:
            raise InvalidInput(field=field, value=key, reason=f"must name a {what}")
        if isinstance(key, bool) or not isinstance(key, int | str):
            raise InvalidInput(field=field, value=key, reason=f"must be a {what} id")
        row = session.get(table, key)
        if row is None:
            raise InvalidInput(field=field, value=key, reason=f"no such {what}")
        return row

    def _owner(self, session: Session, owner_id: int | None, only: bool) -> int | None:
        if owner_id is not None:
            self._require(session, User, owner_id, "owner_id", "user")
        if only and owner_id is None:
            raise InvalidInput(field="visible_to_owner_only", value=True,
                               reason="an item visible to its owner only needs an owner")
        return owner_id

    # --- users ------------------------------------------------------------------------

    def add_user(self, email: str, name: str = "", time_zone: str = "UTC") -> int:
        """Add a CRM user.

        Args:
            email: the user's address (unique, compared case-insensitively).
            name: a display name.
            time_zone: the IANA zone the user's activity times are written in.

        Returns:
            The new user's id.

        Raises:
            InvalidInput: a malformed or already used address, or an unknown zone.
        """
        address = normalize_email(email) if isinstance(email, str) else ""
        if not is_valid_email(address):
            raise InvalidInput(field="email", value=email, reason="is not an e-mail address")
        try:
            ZoneInfo(time_zone)
        except (ZoneInfoNotFoundError, ValueError, TypeError):
            raise InvalidInput(field="time_zone", value=time_zone,
                               reason="is not an IANA time zone name, e.g. Europe/Oslo") from None
        display = clean_text(name, single_line=True) if isinstance(name, str) else ""
        with self._write() as session:
            if session.scalar(select(User.id).where(User.email == address)) is not None:
                raise InvalidInput(field="email", value=email, reason="a user with it exists")
            user = User(email=address, name=display, time_zone=time_zone, created_at=utcnow())
            session.add(user)
            session.flush()
            return user.id

    def get_user(self, user_id: int) -> UserView:
        """The user with this id.

        Raises:
            NotFound: there is no such user.
        """
        with self._read() as session:
            user = session.get(User, user_id)
            if user is None:
                raise NotFound(kind="user", key=user_id)
            return _user_view(user)

    def get_user_by_email(self, email: str) -> UserView | None:
        """The user with this address (case-insensitive), or None. (Every sync cycle asks
        for its owner: one statement built once, outside a transaction.)"""
        with self.db.read() as conn:
            row = conn.execute(_USER_BY_EMAIL, {"email": normalize_email(email)}).first()
        return UserView(*row) if row is not None else None

    def list_users(self) -> list[UserView]:
        """Every user, by id."""
        with self._read() as session:
            return [_user_view(u) for u in session.scalars(select(User).order_by(User.id))]

    # --- activity types ---------------------------------------------------------------

    def add_type(self, key: str, name: str, color: str = "#888888") -> None:
        """Define a custom activity type (A2).

        Args:
            key: a short identifier: lower-case letters, digits, ``-`` and ``_``.
            name: the display name.
            color: ``#RRGGBB``.

        Raises:
            InvalidInput: a malformed or already used key, an empty name, a bad colour.
        """
        if not isinstance(key, str) or not _TYPE_KEY.match(key):
            raise InvalidInput(field="key", value=key, reason=(
                "must start with a lower-case letter and hold only a-z, 0-9, - and _ "
                "(at most 40)"))
        display = _name("name", name, 100)
        if not isinstance(color, str) or not _COLOR.match(color):
            raise InvalidInput(field="color", value=color, reason="must be #RRGGBB")
        with self._write() as session:
            if session.scalar(select(ActivityType.id).where(ActivityType.key == key)):
                raise InvalidInput(field="key", value=key, reason="that type exists already")
            session.add(ActivityType(key=key, name=display, color=color.lower(),
                                     is_default=False, active=True))

    def list_types(self) -> list[TypeView]:
        """Every activity type: the six defaults first, then custom ones by creation."""
        with self._read() as session:
            rows = session.scalars(
                select(ActivityType).order_by(ActivityType.is_default.desc(), ActivityType.id)
            )
            return [TypeView(t.key, t.name, t.color, t.is_default, t.active) for t in rows]

    # --- linked items -----------------------------------------------------------------

    def add_org(self, name: str, *, owner_id: int | None = None,
                visible_to_owner_only: bool = False, now: datetime | None = None) -> int:
        """Add an organization; returns its id.

        Args:
            name: the organization's name.
            owner_id: the user who owns it (needed with ``visible_to_owner_only``).
            visible_to_owner_only: hide it, and activities linked to it, from other
                users (B4).
            now: the creation time (default: the current time).
        """
        clean = _name("name", name)
        stamp = check_now(now)
        with self._write() as session:
            owner = self._owner(session, owner_id, visible_to_owner_only)
            org = Organization(name=clean, owner_id=owner,
                               visible_to_owner_only=visible_to_owner_only, update_time=stamp)
            session.add(org)
            session.flush()
            return org.id

    def add_person(self, name: str, email: str | None = None, org_id: int | None = None, *,
                   owner_id: int | None = None, visible_to_owner_only: bool = False,
                   now: datetime | None = None) -> int:
        """Add a contact person; returns its id.

        Args:
            name: the person's name.
            email: their address; a guest with this address is linked to them (A6).
            org_id: the organization they belong to (B2 links it automatically).
            owner_id: see :meth:`add_org`.
            visible_to_owner_only: see :meth:`add_org`.
            now: the creation time.

        Raises:
            InvalidInput: an empty name, a malformed address, an unknown organization.
        """
        clean = _name("name", name)
        address = None
        if email is not None:
            address = normalize_email(email) if isinstance(email, str) else ""
            if not is_valid_email(address):
                raise InvalidInput(field="email", value=email, reason="is not an e-mail address")
        stamp = check_now(now)
        with self._write() as session:
            if org_id is not None:
                self._require(session, Organization, org_id, "org_id", "organization")
            owner = self._owner(session, owner_id, visible_to_owner_only)
            person = Person(name=clean, email=address, org_id=org_id, owner_id=owner,
                            visible_to_owner_only=visible_to_owner_only, update_time=stamp)
            session.add(person)
            session.flush()
            return person.id

    def add_deal(self, title: str, person_id: int | None = None, org_id: int | None = None, *,
                 owner_id: int | None = None, visible_to_owner_only: bool = False,
                 now: datetime | None = None) -> int:
        """Add a deal; its person and organization are what B1 links automatically.

        Raises:
            InvalidInput: an empty title, an unknown person or organization.
        """
        clean = _name("title", title)
        stamp = check_now(now)
        with self._write() as session:
            if person_id is not None:
                self._require(session, Person, person_id, "person_id", "person")
            if org_id is not None:
                self._require(session, Organization, org_id, "org_id", "organization")
            owner = self._owner(session, owner_id, visible_to_owner_only)
            deal = Deal(title=clean, person_id=person_id, org_id=org_id, owner_id=owner,
                        visible_to_owner_only=visible_to_owner_only, update_time=stamp)
            session.add(deal)
            session.flush()
            return deal.id

    def find_person_by_email(self, email: str) -> int | None:
        """The id of the (lowest-numbered) person with this address, or None."""
        with self._read() as session:
            return session.scalar(
                select(func.min(Person.id)).where(Person.email == normalize_email(email))
            )

    def list_persons(self) -> list[PersonView]:
        """Every person, by id."""
        with self._read() as session:
            return [_person_view(p) for p in session.scalars(select(Person).order_by(Person.id))]

    def list_orgs(self) -> list[OrgView]:
        """Every organization, by id."""
        with self._read() as session:
            rows = session.scalars(select(Organization).order_by(Organization.id))
            return [_org_view(o) for o in rows]

    def list_deals(self) -> list[DealView]:
        """Every deal, by id."""
        with self._read() as session:
            return [_deal_view(d) for d in session.scalars(select(Deal).order_by(Deal.id))]

    def get_person(self, person_id: int) -> PersonView:
        """One person (raises NotFound)."""
        return self._get(Person, person_id, "person", _person_view)

    def get_org(self, org_id: int) -> OrgView:
        """One organization (raises NotFound)."""
        return self._get(Organization, org_id, "organization", _org_view)

    def get_deal(self, deal_id: int) -> DealView:
        """One deal (raises NotFound)."""
        return self._get(Deal, deal_id, "deal", _deal_view)

    def get_lead(self, lead_id: str) -> LeadView:
        """One lead (raises NotFound)."""
        return self._get(Lead, lead_id, "lead", _lead_view)

    def get_project(self, project_id: int) -> ProjectView:
        """One project (raises NotFound)."""
        return self._get(Project, project_id, "project", _project_view)

    def _get(self, table: type[Any], key: Any, kind: str, view: Any) -> Any:
        with self._read() as session:
            row = session.get(table, key)
            if row is None:
                raise NotFound(kind=kind, key=key)
            return view(row)
