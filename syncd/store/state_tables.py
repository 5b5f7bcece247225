"""syncd's own state: accounts, links with their merge bases, conflicts, quarantine.

These tables sit beside the activity tables in the same database, so that a CRM write
and the link update that records it can share one transaction.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from syncd.store.base import Base, UTCDateTime, utcnow


class SyncAccount(Base):
    """One configured account's sync status, cursors and lease."""

    __tablename__ = "sync_accounts"

    name: Mapped[str] = mapped_column(String(200), primary_key=True)
    # ok | needs_reauth | cooldown | paused | flagged | failing
    status: Mapped[str] = mapped_column(String(20), default="ok")
    status_reason: Mapped[str | None] = mapped_column(Text)
    cooldown_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    fingerprint: Mapped[str | None] = mapped_column(Text)
    # a salted hash of the credentials last refused (syncd.auth_fingerprint), never them
    auth_fingerprint: Mapped[str | None] = mapped_column(Text)
    # the CRM source's opaque cursor (syncd.crm.source); None: from the beginning
    crm_cursor: Mapped[str | None] = mapped_column(Text)
    calendar_cursor: Mapped[str | None] = mapped_column(Text)
    window_end: Mapped[datetime | None] = mapped_column(UTCDateTime)
    initial_done: Mapped[bool] = mapped_column(Boolean, default=False)
    failures: Mapped[int] = mapped_column(Integer, default=0)
    # usage limits (QuotaCooldown) met in a row: each doubles the next rest (store.status)
    quota_cooldowns: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    last_run_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_outcome: Mapped[str | None] = mapped_column(String(20))
    last_counts: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    last_message: Mapped[str | None] = mapped_column(Text)
    # guest-visible writes in the current hour, for the invitation circuit breaker
    guest_window_start: Mapped[datetime | None] = mapped_column(UTCDateTime)
    guest_window_count: Mapped[int] = mapped_column(Integer, default=0)
    # lease: which replica syncs this account now; the token fences stale holders
    lease_owner: Mapped[str | None] = mapped_column(String(200))
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    lease_token: Mapped[int] = mapped_column(BigInteger, default=0)
    # set by a push (webhook) when the account has changes to read; the earliest one is
    # kept until a cycle takes it (syncd.store.dirty)
    dirty_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # the work queue (syncd.store.queue): when the account's next cycle is due (NULL: now),
    # and how many times a replica took its lease from a holder that never released it
    due_at: Mapped[datetime | None] = mapped_column(UTCDateTime, index=True)
    takeovers: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # the daemon's scheduled audit (syncd.verify_schedule): when it last read the account,
    # and what it found then, by kind (syncd.engine.audit.KINDS)
    verified_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    verify_findings: Mapped[dict[str, int] | None] = mapped_column(JSON)
    # the daily deletion budget (syncd.engine.guards.deletion_hold): since when the
    # account's propagated deletions wait for an admin, and when one last let them through
    # (deletions before that no longer count)
    deletions_held_since: Mapped[datetime | None] = mapped_column(UTCDateTime)
    deletions_allowed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # the write log's first create (SyncWrite.id) that no committed calendar listing has
    # shown yet: read by id if the next listing leaves it out (syncd.engine.fetch)
    creates_unlisted_from: Mapped[int | None] = mapped_column(BigInteger)


class SyncDeletion(Base):
    """Propagated deletions (an event deleted for its activity, or an activity for its
    event) one batch of a cycle recorded, with the cycle's time: what the daily deletion
    budget counts. Pruned with the write log."""

    __tablename__ = "sync_deletions"
    __table_args__ = (Index("ix_sync_deletions_account_at", "account", "at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    account: Mapped[str] = mapped_column(String(200))
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    count: Mapped[int] = mapped_column(Integer)


class SyncLink(Base):
    """One activity's event in one account's calendar, with each side's merge base.

    There is no foreign key to activities on purpose: a purged activity must still find
    its link so that its event can be deleted.
    """

    __tablename__ = "sync_links"
    __table_args__ = (
        UniqueConstraint("account", "activity_id", name="uq_sync_links_account_activity"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    account: Mapped[str] = mapped_column(ForeignKey("sync_accounts.name", ondelete="CASCADE"),
                                         index=True)
    activity_id: Mapped[int] = mapped_column(BigInteger)
    sync_uid: Mapped[str] = mapped_column(String(64), index=True)
    event_id: Mapped[str | None] = mapped_column(String(1100), index=True)
    etag: Mapped[str | None] = mapped_column(Text)
    generation: Mapped[int] = mapped_column(Integer, default=0)
    pending: Mapped[bool] = mapped_column(Boolean, default=False)
    crm_base: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    cal_base: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    # the guests holding an invitation to the event (docs/guest-mail.md); NULL: unknown
    invited: Mapped[list[str] | None] = mapped_column(JSON)
    # set when someone else organises the meeting: its people are never written
    organizer: Mapped[str | None] = mapped_column(Text)
    # the event updates sent since the bases were recorded, outcome unrecorded, oldest
    # first: [{field: value as JSON}, ...]
    sent: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class SyncMeeting(Base):
    """Which account a meeting belongs to, by its iCalendar UID (failure mode 20).

    Every attendee's copy of a meeting carries the same UID. The first account to import
    it (or the account whose event syncd created) holds it; other owners' copies are
    then left alone instead of becoming one activity each.
    """

    __tablename__ = "sync_meetings"

    # UIDs have no length limit, so the key is their SHA-256.
    uid_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    ical_uid: Mapped[str] = mapped_column(Text)
    account: Mapped[str] = mapped_column(String(200), index=True)
    activity_id: Mapped[int | None] = mapped_column(BigInteger)
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class SyncConflict(Base):
    """A field changed on both sides; both values are kept, with the side that won."""

    __tablename__ = "sync_conflicts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    account: Mapped[str] = mapped_column(String(200), index=True)
    activity_id: Mapped[int | None] = mapped_column(BigInteger)
    event_id: Mapped[str | None] = mapped_column(String(1100))
    field: Mapped[str] = mapped_column(String(40))
    crm_value: Mapped[Any] = mapped_column(JSON, nullable=True)
    calendar_value: Mapped[Any] = mapped_column(JSON, nullable=True)
    winner: Mapped[str] = mapped_column(String(20))
    policy: Mapped[str] = mapped_column(String(40))
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    resolved: Mapped[bool] = mapped_column(Boolean, default=False)


class SyncQuarantine(Base):
    """An item set aside with its reason, so the rest of the account keeps syncing.

    ``state`` is "retrying" while a write keeps failing (``attempts`` counts) and
    "quarantined" once it is given up; a new ``version`` of the item releases it.
    """

    __tablename__ = "sync_quarantine"
    __table_args__ = (UniqueConstraint("account", "item_key", name="uq_sync_quarantine_item"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    account: Mapped[str] = mapped_column(String(200), index=True)
    item_key: Mapped[str] = mapped_column(String(1200))
    version: Mapped[str | None] = mapped_column(Text)
    reason: Mapped[str] = mapped_column(Text)
    attempts: Mapped[int] = mapped_column(Integer, default=1)
    state: Mapped[str] = mapped_column(String(20), default="retrying")
    first_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class SyncCredential(Base):
    """Provider credentials obtained at run time (OAuth tokens), encrypted at rest."""

    __tablename__ = "sync_credentials"

    account: Mapped[str] = mapped_column(String(200), primary_key=True)
    kind: Mapped[str] = mapped_column(String(40), primary_key=True)
    ciphertext: Mapped[str] = mapped_column(Text)  # a Fernet token
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class PipedriveMarker(Base):
    """A Pipedrive activity's marker (``sync_uid``) and what the source remembers of it.

    A remote CRM keeps syncd's markers here, not in its records (syncd.crm.pipedrive). A
    row with ``pending_since`` set and no ``activity_id`` is an import whose POST may have
    gone out: its ``fingerprint`` and ``floor`` find the activity again after a crash.
    """

    __tablename__ = "pipedrive_markers"
    __table_args__ = (
        UniqueConstraint("company", "activity_id", name="uq_pipedrive_markers_activity"),
    )

    company: Mapped[str] = mapped_column(String(200), primary_key=True)
    sync_uid: Mapped[str] = mapped_column(String(64), primary_key=True)
    activity_id: Mapped[int | None] = mapped_column(BigInteger)
    # the owner as last read (the previous owners still to be told: PipedriveMove)
    owner_id: Mapped[int | None] = mapped_column(BigInteger, index=True)
    # when a read last showed it alive; the deletion reconciliation asks for the oldest
    seen_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    gone: Mapped[bool] = mapped_column(Boolean, default=False)
    pending_since: Mapped[datetime | None] = mapped_column(UTCDateTime)
    fingerprint: Mapped[str | None] = mapped_column(String(64))
    floor: Mapped[str | None] = mapped_column(String(40))  # an update_time (server clock)


class PipedriveMove(Base):
    """A previous owner of a Pipedrive activity whose feed has still to show that the
    activity was handed to someone else: one row per owner, so an activity handed on
    again (A to B to C) before A's feed was told keeps both A and B."""

    __tablename__ = "pipedrive_moves"

    company: Mapped[str] = mapped_column(String(200), primary_key=True)
    owner_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    activity_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)


class CalendarDiscovery(Base):
    """What a connector found out about its server, kept between runs (one row per
    account): a CalDAV principal, calendar home and collection URL, and the auth scheme
    the server asked for, so that a ``syncd sync`` from cron skips discovery and the 401
    challenge. Valid only for the account's identity it was found with (``key``, a hash
    of the URL, user name and calendar: no secret); forgotten on a 404, a redirect or a
    refused login."""

    __tablename__ = "calendar_discovery"
    account: Mapped[str] = mapped_column(String(200), primary_key=True)
    key: Mapped[str] = mapped_column(String(64))
    found: Mapped[dict[str, str]] = mapped_column(JSON)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class SyncWrite(Base):
    """Every calendar write syncd made: which event, the etag it left, and when.

    Kept so that ``syncd verify`` can prove syncd never changed an event that is not its
    own (an event without our marker that this log names). Pruned with the daily purge
    after ``retention_days``.
    """

    __tablename__ = "sync_writes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    account: Mapped[str] = mapped_column(String(200), index=True)
    event_id: Mapped[str] = mapped_column(String(1100))
    etag: Mapped[str | None] = mapped_column(Text)
    op: Mapped[str] = mapped_column(String(10))  # create | update | delete
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
