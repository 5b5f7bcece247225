"""Booking links: who a public booking page books for (``/book/<token>``).

A link names an owner (a CRM user, by e-mail), the activity type a booking creates, how
long a booking lasts and how far ahead it may be. The token is never stored, only its
SHA-256: a copy of the database opens no booking page. A revoked link keeps its row (for
``syncd booking link list``) and answers like one that never existed.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from syncd.store.base import Base, UTCDateTime


class BookingLink(Base):
    """One booking link."""

    __tablename__ = "booking_links"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    # sha256 hex of the token in the link's URL
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    owner: Mapped[str] = mapped_column(String(320))  # the CRM user's e-mail
    activity_type: Mapped[str] = mapped_column(String(40))
    duration_minutes: Mapped[int] = mapped_column(Integer)
    horizon_days: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
