"""The plain records the stores hand out, importable without SQLAlchemy.

``syncd status`` shows them whichever way it read them: through the full stores
(:mod:`syncd.store.channels`, :mod:`syncd.store.budgets`) or through sqlite3 or psycopg
alone (:mod:`syncd.store.lite`), which a short command uses so that it does not import
SQLAlchemy at all.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

#: A push channel's states (``push_channels.state``).
ACTIVE, DEGRADED, REFUSED = "active", "degraded", "refused"

#: The share of a day's budget after which ``syncd status`` (and the log) warn.
WARN_SHARE = 0.75


@dataclass(frozen=True)
class ChannelRow:
    """One account's channel as stored (no token)."""

    account: str
    kind: str
    state: str
    reason: str | None
    channel_id: str | None
    resource_id: str | None
    details: Mapping[str, Any] = field(default_factory=dict)
    created_at: datetime | None = None
    expires_at: datetime | None = None
    owner: str | None = None
    last_message_at: datetime | None = None
    last_message_number: int | None = None
    expect_by: datetime | None = None

    @property
    def healthy(self) -> bool:
        """Notifications are expected to come: the backstop poll may be long."""
        return self.state == ACTIVE and self.channel_id is not None


@dataclass(frozen=True)
class DayCount:
    """One scope's day as the budget ledger holds it."""

    scope: str
    day: str
    used: int
    allowance: int
    resets_at: datetime
    throttled: int
    halted_until: datetime | None
    halt_reason: str | None

    @property
    def left(self) -> int:
        return max(0, self.allowance - self.used)

    @property
    def share(self) -> float:
        """The part of the day's allowance used, 0.0 to 1.0 (or more if it shrank)."""
        return self.used / self.allowance if self.allowance > 0 else 1.0
