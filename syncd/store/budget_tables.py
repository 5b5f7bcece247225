"""Provider budgets shared by every account and replica: a row per scope and day, a burst
row per scope and token (see :mod:`syncd.store.budgets`), and a scope's concurrency slots
(see :mod:`syncd.store.limits`).

A scope is whatever a provider's limit is counted for: ``pipedrive:<company>`` for a
Pipedrive company's daily tokens, ``google:<user>`` for a Google user's requests a minute,
``graph:<host>|<mailbox>`` for a mailbox's requests in flight. The rows hold counts only,
never a token or a secret.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Float, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from syncd.store.base import Base, UTCDateTime


class BudgetDay(Base):
    """What one scope spent on one day (the provider's day: ``resets_at`` ends it)."""

    __tablename__ = "budget_days"

    scope: Mapped[str] = mapped_column(String(200), primary_key=True)
    day: Mapped[str] = mapped_column(String(10), primary_key=True)  # YYYY-MM-DD
    used: Mapped[int] = mapped_column(BigInteger, default=0)
    # the day's budget as last configured, so `syncd status` needs no provider config
    allowance: Mapped[int] = mapped_column(BigInteger)
    resets_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # answers the provider throttled in a row, counted across accounts and replicas
    throttled: Mapped[int] = mapped_column(Integer, default=0)
    # no call goes out before this (a block page seen, or too many throttled answers)
    halted_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    halt_reason: Mapped[str | None] = mapped_column(Text)


class BudgetBurst(Base):
    """The short-window limit of one token, paced as evenly spaced send slots: ``next_at``
    is the earliest time (seconds since the epoch) the next request may go out."""

    __tablename__ = "budget_bursts"

    scope: Mapped[str] = mapped_column(String(200), primary_key=True)
    # an opaque name of the token the limit counts for (never the token itself)
    token_key: Mapped[str] = mapped_column(String(200), primary_key=True)
    next_at: Mapped[float] = mapped_column(Float, default=0.0)


class BudgetSlot(Base):
    """One of a scope's concurrency slots (Graph's 4 requests in flight per mailbox): free
    when ``ticket`` is NULL or ``until`` has passed, so a replica that dies holding it
    frees it by itself."""

    __tablename__ = "budget_slots"

    scope: Mapped[str] = mapped_column(String(200), primary_key=True)
    slot: Mapped[int] = mapped_column(Integer, primary_key=True)
    # a random name of the holder's request (never anything the provider issued)
    ticket: Mapped[str | None] = mapped_column(String(64))
    until: Mapped[datetime | None] = mapped_column(UTCDateTime)
