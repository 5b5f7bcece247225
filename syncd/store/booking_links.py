"""Booking links as stored (table ``booking_links``): made, listed, revoked, resolved.

A link's token is 256 random bits, shown once when the link is made (it is the last
part of the page's URL) and stored only as its SHA-256. :meth:`BookingLinkStore.resolve`
finds a live link by the hash of the token it is given and compares the stored hash in
constant time; an unknown, malformed or revoked token is simply None, so a page cannot
tell them apart.
"""

from __future__ import annotations

import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select

from syncd.errors import InvalidInput, NotFound
from syncd.store.base import utcnow
from syncd.store.booking_tables import BookingLink
from syncd.store.channels import token_hash  # what is stored of a token: its SHA-256
from syncd.store.db import Database

TOKEN_BYTES = 32  # 256 bits; token_urlsafe makes 43 characters of them
_TOKEN = re.compile(r"^[A-Za-z0-9_-]{43}$")
MAX_DURATION_MINUTES = 8 * 60
MAX_HORIZON_DAYS = 90


@dataclass(frozen=True)
class LinkRow:
    """One booking link as stored (no token)."""

    id: int
    owner: str
    activity_type: str
    duration_minutes: int
    horizon_days: int
    created_at: datetime
    revoked_at: datetime | None = None

    @property
    def live(self) -> bool:
        return self.revoked_at is None


def _row(r: BookingLink) -> LinkRow:
    return LinkRow(r.id, r.owner, r.activity_type, r.duration_minutes, r.horizon_days,
                   r.created_at, r.revoked_at)


def check_link(duration_minutes: int, horizon_days: int) -> None:
    """Refuse a duration or horizon a booking page cannot offer.

    Raises:
        InvalidInput: naming ``duration`` or ``days``.
    """
    if isinstance(duration_minutes, bool) or not isinstance(duration_minutes, int) \
            or not 5 <= duration_minutes <= MAX_DURATION_MINUTES:
        raise InvalidInput(field="duration", value=duration_minutes,
                           reason=f"must be 5 to {MAX_DURATION_MINUTES} minutes")
    if isinstance(horizon_days, bool) or not isinstance(horizon_days, int) \
            or not 1 <= horizon_days <= MAX_HORIZON_DAYS:
        raise InvalidInput(field="days", value=horizon_days,
                           reason=f"must be 1 to {MAX_HORIZON_DAYS} days")


class BookingLinkStore:
    """The booking links of one database."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def create(self, owner: str, activity_type: str, *, duration_minutes: int = 30,
               horizon_days: int = 14, now: datetime | None = None) -> tuple[LinkRow, str]:
        """A new link; returns it and its token (shown once, never stored).

        The caller checks that ``owner`` is a CRM user and ``activity_type`` a type.

        Raises:
            InvalidInput: a duration or horizon out of range.
        """
        check_link(duration_minutes, horizon_days)
        token = secrets.token_urlsafe(TOKEN_BYTES)
        with self.db.session() as session:
            row = BookingLink(token_hash=token_hash(token), owner=owner,
                              activity_type=activity_type, duration_minutes=duration_minutes,
                              horizon_days=horizon_days, created_at=now or utcnow())
            session.add(row)
            session.flush()
            return _row(row), token

    def links(self) -> list[LinkRow]:
        """Every link, revoked ones included, by id."""
        with self.db.session() as session:
            return [_row(r) for r in session.scalars(select(BookingLink)
                                                     .order_by(BookingLink.id))]

    def get(self, link_id: int) -> LinkRow | None:
        with self.db.session() as session:
            found = session.get(BookingLink, link_id)
            return _row(found) if found is not None else None

    def revoke(self, link_id: int, *, now: datetime | None = None) -> LinkRow:
        """Revoke a link: its page answers 404 from now on (revoking twice keeps the
        first time).

        Raises:
            NotFound: no link has this id.
        """
        with self.db.session() as session:
            found = session.get(BookingLink, link_id)
            if found is None:
                raise NotFound(kind="booking link", key=link_id)
            if found.revoked_at is None:
                found.revoked_at = now or utcnow()
            return _row(found)

    def resolve(self, token: str) -> LinkRow | None:
        """The live link ``token`` opens, or None (unknown, malformed or revoked)."""
        if not isinstance(token, str) or _TOKEN.match(token) is None:
            return None
        wanted = token_hash(token)
        with self.db.session() as session:
            found = session.scalar(select(BookingLink)
                                   .where(BookingLink.token_hash == wanted))
            if found is None or not hmac.compare_digest(found.token_hash, wanted):
                return None
            return _row(found) if found.revoked_at is None else None
