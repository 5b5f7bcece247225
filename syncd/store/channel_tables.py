"""Push channels: what syncd asked a provider to notify, one row per account.

A channel is a Google watch channel, a Microsoft Graph subscription or a WebDAV-Push
subscription on the account's one calendar (see :mod:`syncd.store.channels`). The row
keeps what a hook needs to recognise a notification (the channel id and a hash of the
token the provider echoes, never the token), what the keeper needs to renew and stop it,
and the channel's health for the backstop poll and the status line.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, ForeignKey, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from syncd.store.base import Base, UTCDateTime


class PushChannel(Base):
    """One account's push channel and its health."""

    __tablename__ = "push_channels"

    account: Mapped[str] = mapped_column(
        ForeignKey("sync_accounts.name", ondelete="CASCADE"), primary_key=True)
    kind: Mapped[str] = mapped_column(String(20))  # google | graph | webdav
    # active: notifications expected; degraded: one was missed, the poll is short and the
    # channel is being re-created; refused: the provider or tenant will not notify, so
    # the account is polled (``reason`` says why, for the status line)
    state: Mapped[str] = mapped_column(String(20), default="active")
    reason: Mapped[str | None] = mapped_column(Text)
    # what the provider's notifications name the channel by; None while refused
    channel_id: Mapped[str | None] = mapped_column(String(300), unique=True)
    # Google's resourceId, Graph's resource, the WebDAV-Push subscription URL
    resource_id: Mapped[str | None] = mapped_column(Text)
    # sha256 hex of the token the provider echoes (channel token, clientState, push path)
    token_hash: Mapped[str | None] = mapped_column(String(64))
    # non-secret provider data the connector needs again (e.g. a server's VAPID key)
    details: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    created_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # the replica that opened it (``syncd.store.state.lease_owner_id``)
    owner: Mapped[str | None] = mapped_column(String(200))
    last_message_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # the highest message number heard (Google's X-Goog-Message-Number), to spot replays
    last_message_number: Mapped[int | None] = mapped_column(BigInteger)
    # liveness: after our own write a notification is due by then (None: none expected)
    expect_by: Mapped[datetime | None] = mapped_column(UTCDateTime)
