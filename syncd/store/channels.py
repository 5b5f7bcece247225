"""The push channels syncd keeps, and their health (table ``push_channels``).

One row per account. The keeper (:mod:`syncd.channels`) opens, renews and stops channels
and writes them here; the hooks (:mod:`syncd.http`) look a notification's channel up here
and record that it was heard. Because the rows are in the database, a restart keeps its
channels, and any replica behind a load balancer can verify a notification.

A channel's token (Google's channel token, Graph's ``clientState``, the secret part of a
WebDAV-Push address) is stored only as a SHA-256 hash: a copy of the database cannot be
used to forge notifications. :meth:`ChannelStore.verify` compares hashes in constant time.

Liveness: after one of our own writes reaches the calendar, the provider should notify us
about it; :meth:`ChannelStore.expect` sets a deadline, a notification clears it, and
:meth:`ChannelStore.overdue` lists the accounts whose deadline passed (their channel is
presumed dead).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, or_, select, update

from syncd.store.base import utcnow
from syncd.store.channel_tables import PushChannel
from syncd.store.db import Database
from syncd.store.records import ACTIVE, DEGRADED, REFUSED, ChannelRow
from syncd.store.state_tables import SyncAccount


def token_hash(token: str) -> str:
    """What is stored of a channel token."""
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class Checked:
    """A notification's channel as one read found it: ``known`` whether the id is a
    channel of ours, ``row`` the channel when the token is its token (else None)."""

    known: bool
    row: ChannelRow | None = None


def _row(r: PushChannel) -> ChannelRow:
    return ChannelRow(account=r.account, kind=r.kind, state=r.state, reason=r.reason,
                      channel_id=r.channel_id, resource_id=r.resource_id,
                      details=dict(r.details or {}), created_at=r.created_at,
                      expires_at=r.expires_at, owner=r.owner,
                      last_message_at=r.last_message_at,
                      last_message_number=r.last_message_number, expect_by=r.expect_by)


class ChannelStore:
    """Read and write ``push_channels``."""

    def __init__(self, db: Database) -> None:
        self.db = db

    # --- reads -------------------------------------------------------------------------

    def get(self, account: str) -> ChannelRow | None:
        with self.db.session() as s:
            r = s.get(PushChannel, account)
            return _row(r) if r is not None else None

    def all(self) -> list[ChannelRow]:
        with self.db.session() as s:
            return [_row(r) for r in s.scalars(select(PushChannel).order_by(PushChannel.account))]

    def check(self, channel_id: str, token: str | None) -> Checked:
        """Whether ``channel_id`` is known and ``token`` is its token, from ONE read: a
        hook that asked twice (verify, then "is it known?") could see the channel saved or
        replaced in between and call a genuine notification forged."""
        with self.db.session() as s:
            r = s.scalar(select(PushChannel).where(PushChannel.channel_id == channel_id))
            if r is None:
                return Checked(known=False)
            ok = token is not None and r.token_hash is not None and hmac.compare_digest(
                r.token_hash, token_hash(token))
            return Checked(known=True, row=_row(r) if ok else None)

    def verify(self, channel_id: str, token: str | None) -> ChannelRow | None:
        """The channel ``channel_id`` if ``token`` is its token; None when the channel is
        unknown or the token wrong (:meth:`check` tells which)."""
        return self.check(channel_id, token).row

    def overdue(self, now: datetime | None = None) -> list[str]:
        """Accounts whose expected notification did not come in time."""
        at = now or utcnow()
        with self.db.session() as s:
            return list(s.scalars(select(PushChannel.account)
                                  .where(PushChannel.expect_by.is_not(None),
                                         PushChannel.expect_by < at)
                                  .order_by(PushChannel.account)))

    # --- writes by the keeper ----------------------------------------------------------

    def save(self, account: str, kind: str, *, channel_id: str, token: str,
             expires_at: datetime, resource_id: str | None = None,
             details: Mapping[str, Any] | None = None, owner: str | None = None,
             now: datetime | None = None) -> None:
        """Record a channel just opened or renewed: it is active and nothing is expected
        of it yet. Replaces the account's previous channel (stop that one first)."""
        at = now or utcnow()
        values: dict[str, Any] = dict(
            kind=kind, state=ACTIVE, reason=None, channel_id=channel_id,
            resource_id=resource_id, token_hash=token_hash(token),
            details=dict(details or {}), created_at=at, expires_at=expires_at,
            owner=owner, last_message_at=None, last_message_number=None, expect_by=None)
        with self.db.session() as s:
            self._ensure_account(s, account)
            r = s.get(PushChannel, account)
            if r is None:
                s.add(PushChannel(account=account, **values))
            else:
                for key, value in values.items():
                    setattr(r, key, value)

    def extend(self, account: str, expires_at: datetime) -> None:
        """The provider extended the channel in place (a Graph subscription PATCH)."""
        with self.db.session() as s:
            s.execute(update(PushChannel).where(PushChannel.account == account)
                      .values(expires_at=expires_at))

    def refuse(self, account: str, kind: str, reason: str, *,
               details: Mapping[str, Any] | None = None, now: datetime | None = None) -> None:
        """The provider will not notify for this account: it is polled; ``reason`` is
        for the status line. Forgets any channel the account had. ``created_at`` keeps
        when it was refused and ``details`` what it was refused under (the keeper asks
        again after a while, or when the config changed)."""
        at = now or utcnow()
        with self.db.session() as s:
            self._ensure_account(s, account)
            r = s.get(PushChannel, account)
            if r is None:
                s.add(PushChannel(account=account, kind=kind, state=REFUSED, reason=reason,
                                  details=dict(details or {}), created_at=at))
                return
            r.kind, r.state, r.reason = kind, REFUSED, reason
            r.channel_id = r.resource_id = r.token_hash = None
            r.details, r.created_at = dict(details or {}), at
            r.expires_at, r.expect_by, r.owner = None, None, None

    def degrade(self, account: str, reason: str) -> None:
        """A notification was missed: poll at the normal interval until a new channel."""
        with self.db.session() as s:
            s.execute(update(PushChannel).where(PushChannel.account == account)
                      .values(state=DEGRADED, reason=reason, expect_by=None))

    def expect(self, account: str, by: datetime, *, unheard_since: datetime | None = None
               ) -> None:
        """One of our writes reached the calendar: a notification is due by ``by``. An
        earlier deadline is kept. Only active channels expect anything. With
        ``unheard_since`` (when the writes began), a notification heard since then already
        answered them: nothing is expected (checked in the same statement, so one that
        comes while this runs is not missed)."""
        conditions = [PushChannel.account == account, PushChannel.state == ACTIVE,
                      PushChannel.expect_by.is_(None)]
        if unheard_since is not None:
            conditions.append(or_(PushChannel.last_message_at.is_(None),
                                  PushChannel.last_message_at < unheard_since))
        with self.db.session() as s:
            s.execute(update(PushChannel).where(*conditions).values(expect_by=by))

    def remove(self, account: str) -> None:
        with self.db.session() as s:
            s.execute(delete(PushChannel).where(PushChannel.account == account))

    # --- writes by the hooks -----------------------------------------------------------

    def heard(self, channel_id: str, *, number: int | None = None,
              now: datetime | None = None) -> bool:
        """A verified notification came on ``channel_id``: the channel is alive and any
        expected notification has come. Returns False when ``number`` is not above the
        highest number heard (a replay or a late duplicate; still harmless as a hint)."""
        at = now or utcnow()
        with self.db.session() as s:
            r = s.scalar(select(PushChannel).where(PushChannel.channel_id == channel_id))
            if r is None:
                return False
            r.last_message_at, r.expect_by = at, None
            if number is None:
                return True
            if r.last_message_number is not None and number <= r.last_message_number:
                return False
            r.last_message_number = number
            return True

    @staticmethod
    def _ensure_account(s: Any, account: str) -> None:
        if s.get(SyncAccount, account) is None:
            s.add(SyncAccount(name=account, status="ok", crm_cursor=None, initial_done=False,
                              failures=0, guest_window_count=0, lease_token=0))
            s.flush()
