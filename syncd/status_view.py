"""What ``syncd status`` shows of each account, whichever way the database was read.

Two readers answer the same few questions: the full stores, through the service
(:meth:`syncd.service.Service.status`), and the plain one, :class:`syncd.store.lite.LiteStatus`
(sqlite3 or psycopg alone, for a short command that must not import SQLAlchemy). The
rows are built here from either, so both paths print the same.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any, Protocol

from syncd.config_types import AccountConfig
from syncd.report import push_status
from syncd.store.records import REFUSED, WARN_SHARE, ChannelRow, DayCount

STATUS_ITEMS = 10  # failed items listed per account by `syncd status`


class AccountRow(Protocol):
    """What ``syncd status`` reads of an account's row (``sync_accounts``)."""

    @property
    def status(self) -> str: ...
    @property
    def status_reason(self) -> str | None: ...
    @property
    def last_run_at(self) -> datetime | None: ...
    @property
    def last_outcome(self) -> str | None: ...
    @property
    def last_counts(self) -> Mapping[str, Any] | None: ...
    @property
    def last_message(self) -> str | None: ...


class StatusReads(Protocol):
    """The per-account counts and lists ``syncd status`` shows."""

    def link_count(self, account: str) -> int: ...
    def open_conflict_count(self, account: str) -> int: ...
    def quarantine_count(self, account: str) -> int: ...
    def quarantine_list(self, account: str, *, limit: int) -> list[dict[str, Any]]: ...


def budget_rows(days: Iterable[DayCount], now: datetime) -> list[dict[str, Any]]:
    """Each provider budget's current day (a Pipedrive company's tokens), as counted by
    every replica; ``warning`` from 75 % used, a halt shown while it lasts."""
    return [{"scope": c.scope, "day": c.day, "used": c.used, "allowance": c.allowance,
             "left": c.left, "share": round(c.share, 4), "resets_at": c.resets_at,
             "warning": c.share >= WARN_SHARE,
             "halted_until": c.halted_until if c.halted_until and c.halted_until > now
             else None, "halt_reason": c.halt_reason}
            for c in days]


def push_row(row: ChannelRow | None, public_url: str | None) -> dict[str, Any]:
    """An account's push channel as ``syncd status`` shows it (``line`` is the sentence)."""
    line = push_status(row, public_url=public_url)
    if row is None:
        return {"state": "polled", "reason": None, "expires_at": None,
                "last_notification_at": None, "expect_by": None, "line": line}
    return {"state": "polled" if row.state == REFUSED else row.state, "reason": row.reason,
            "kind": row.kind, "expires_at": row.expires_at,
            "last_notification_at": row.last_message_at, "expect_by": row.expect_by,
            "line": line}


def status_rows(accounts: Sequence[AccountConfig], states: Mapping[str, AccountRow],
                reads: StatusReads, channels: Iterable[ChannelRow],
                budgets: list[dict[str, Any]], public_url: str | None
                ) -> list[dict[str, Any]]:
    """One row per account served: its status, last run, counts, first failed items, push
    channel, and the CRM's shared budgets (the same on every row). ``states`` must hold
    every account's row."""
    by_account = {row.account: row for row in channels}
    rows = []
    for account in accounts:
        st = states[account.name]
        rows.append({
            "account": account.name, "provider": account.provider, "owner": account.owner,
            "status": st.status, "status_reason": st.status_reason,
            "last_run_at": st.last_run_at, "last_outcome": st.last_outcome,
            "last_counts": st.last_counts, "last_message": st.last_message,
            "links": reads.link_count(account.name),
            "open_conflicts": reads.open_conflict_count(account.name),
            "quarantined": reads.quarantine_count(account.name),
            # The first few failed items with their reasons; `syncd quarantine` has all.
            "failed_items": reads.quarantine_list(account.name, limit=STATUS_ITEMS),
            "crm_budgets": budgets,
            "push": push_row(by_account.get(account.name), public_url),
        })
    return rows
