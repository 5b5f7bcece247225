"""An account's settings as the engine takes them: typed, built once by the service.

The engine never reads the configuration itself: the service turns each
``[[account]]`` block into an :class:`AccountPolicy` (the config validated the choices,
so the enums here cannot fail), and everything below the service sees only this.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from connectors.base import Window
from syncd.config_types import CRM_PART
from syncd.model import DoneStyle


class ConflictPolicy(StrEnum):
    """Which side wins a field changed on both sides to different values."""

    CRM_WINS = "crm_wins"
    CALENDAR_WINS = "calendar_wins"
    NEWEST_WINS = "newest_wins"


class OnCalendarDelete(StrEnum):
    """What an event deleted in the calendar does to its activity."""

    DELETE_ACTIVITY = "delete_activity"
    UNLINK = "unlink"
    RECREATE = "recreate"


@dataclass(frozen=True)
class AccountPolicy:
    """One account's settings: who, which calendar scope, and how to sync.

    ``fingerprint`` identifies the synced scope (provider, owner, calendar, identity,
    endpoints, CRM): a change of it makes the scope guard look before anything is
    written. ``earlier_fingerprints`` are the same scope as earlier releases wrote it,
    accepted in place of ``fingerprint`` (and replaced by it at the cycle's end).
    ``config_file``: the file the account and the CRM are configured in, named in a
    refusal that an edit of it caused.
    """

    name: str
    owner: str
    fingerprint: str
    earlier_fingerprints: tuple[str, ...] = ()
    config_file: str = ""
    conflict_policy: ConflictPolicy = ConflictPolicy.CRM_WINS
    on_calendar_delete: OnCalendarDelete = OnCalendarDelete.DELETE_ACTIVITY
    done_style: DoneStyle = DoneStyle.KEEP
    import_events: bool = False
    import_type: str = "meeting"
    invite_guests: bool = False
    max_guest_updates_per_hour: int = 20
    max_daily_deletion_percent: int = 25  # the daily deletion budget (engine.guards)
    window_days_back: int = 30
    window_days_ahead: int = 365

    def window(self, now: datetime) -> Window:
        """The span of time this account syncs, seen from ``now``."""
        return Window(now - timedelta(days=self.window_days_back),
                      now + timedelta(days=self.window_days_ahead))

    def same_scope(self, stored: str | None) -> bool:
        """Whether a stored fingerprint (None: none kept yet) is this account's scope."""
        return self.scope_change(stored) is None

    def scope_change(self, stored: str | None) -> str | None:
        """What moved since ``stored`` was kept: None (nothing, or no fingerprint kept
        yet), "crm" (the CRM the links were made with), or "calendar" (the calendar, its
        server or who signs in)."""
        if stored is None or stored == self.fingerprint or stored in self.earlier_fingerprints:
            return None
        if CRM_PART in stored and (stored.rpartition(CRM_PART)[2]
                                   != self.fingerprint.rpartition(CRM_PART)[2]):
            return "crm"
        return "calendar"
