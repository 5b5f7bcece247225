"""Wiring: accounts, connectors and the engine, with one account's failure kept to itself."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from datetime import UTC, date, datetime
from typing import Any
from urllib.parse import quote

from connectors import ConnectorContext, open_connector
from connectors.base import CalendarConnector
from syncd.auth_fingerprint import changed_since, fingerprint
from syncd.config import AccountConfig, Config
from syncd.crm import open_source
from syncd.crm.builtin.activities import ActivityStore
from syncd.embedded_auth import SERVICE_USER, EmbeddedCredentials, can_log_in, login_name
from syncd.engine.runner import CycleReport, account_window, sync_account
from syncd.errors import AuthFailed
from syncd.report import describe
from syncd.store.db import Database
from syncd.store.state import StateStore, lease_owner_id

log = logging.getLogger("syncd.service")

EMBEDDED_CALENDAR = "crm"
STATUS_ITEMS = 10  # failed items listed per account by `syncd status`


def embedded_url(host: str, port: int) -> str:
    """The embedded calendar server's root URL."""
    return f"http://[{host}]:{port}/" if ":" in host else f"http://{host}:{port}/"


def embedded_calendar_url(host: str, port: int, email: str, *, readable: bool = False) -> str:
    """A user's calendar on the embedded server; ``readable`` keeps the ``@`` for people."""
    login = login_name(email)
    return f"{embedded_url(host, port)}{login if readable else quote(login, safe='')}/" \
           f"{EMBEDDED_CALENDAR}/"


def embedded_accounts(config: Config, store: ActivityStore) -> list[AccountConfig]:
    """With no accounts configured, each CRM user gets a calendar on the embedded server.

    syncd reaches every user's calendar as its own service user, whose password is in a
    private file of the data directory (:mod:`syncd.embedded_auth`); the calendar is named
    by URL because it is not under the service user's own principal. The daemon makes it
    before the account's first cycle.
    """
    host, port = config.embedded_host, config.embedded_port
    secret = EmbeddedCredentials(config.data_path).service_secret
    return [
        AccountConfig(name=f"embedded:{user.email}", provider="caldav", owner=user.email,
                      calendar=embedded_calendar_url(host, port, user.email),
                      auth={"url": embedded_url(host, port), "username": SERVICE_USER,
                            "password": secret})
        for user in store.list_users() if can_log_in(user.email)
    ]


class Service:
    """What ``syncd sync``, ``syncd run`` and ``syncd status`` share."""

    def __init__(self, config: Config, db: Database | None = None) -> None:
        self.config = config
        self.db = db or Database(config.database_url)
        self.store = ActivityStore(self.db)  # users of the embedded calendar server
        self.source = open_source(config.crm_kind, self.db, config.crm_options)
        self.state = StateStore(self.db)
        self.replica = lease_owner_id()
        # Connectors live across cycles: keep-alive connections, cached tokens and a
        # resolved calendar make an idle cycle one request, not a handshake and a lookup.
        # A connector is rebuilt each day, because its sync window is fixed when it is made.
        self._connectors: dict[str, tuple[AccountConfig, date, CalendarConnector]] = {}

    def accounts(self) -> list[AccountConfig]:
        if self.config.accounts:
            return [a for a in self.config.accounts if a.enabled]
        return embedded_accounts(self.config, self.store)

    def credentials(self) -> Any:
        from syncd.store.credentials import CredentialStore

        return CredentialStore(self.db, self.config.state_key)

    def _connector(self, account: AccountConfig, now: datetime) -> CalendarConnector:
        cached = self._connectors.get(account.name)
        if cached is not None and cached[0] == account and cached[1] == now.date():
            return cached[2]
        self._drop_connector(account.name)
        connector = self._open(account, now)
        self._connectors[account.name] = (account, now.date(), connector)
        return connector

    def _open(self, account: AccountConfig, now: datetime, read_only: bool = False
              ) -> CalendarConnector:
        owner = self.source.user(account.owner)
        tz = account.time_zone or (owner.time_zone if owner else self.config.default_time_zone)
        context = ConnectorContext(tz, account_window(account, now), self.credentials(),
                                   read_only=read_only)
        return open_connector(account, context)

    def _drop_connector(self, name: str) -> None:
        cached = self._connectors.pop(name, None)
        if cached is not None:
            try:
                cached[2].close()
            except Exception:  # closing must never mask the cycle's outcome
                log.debug("closing the connector of %s failed", name, exc_info=True)

    def sync_one(self, account: AccountConfig, **options: Any) -> CycleReport:
        """One cycle of one account. Never raises: a failure is that account's report."""
        now = datetime.now(UTC)
        # A dry run gets a read-only connector of its own, closed after its cycle, so the
        # cached one never carries (or loses) that mode.
        dry_run = bool(options.get("dry_run"))
        options.setdefault("deadline", time.monotonic() + self.config.cycle_deadline_seconds)
        connector: CalendarConnector | None = None
        if not dry_run:
            self._retry_changed_credentials(account)
        try:
            connector = self._open(account, now, read_only=True) if dry_run else \
                self._connector(account, now)
            report = sync_account(account, connector, self.source, self.state, now=now,
                                  lease_owner=self.replica, **options)
        except Exception as exc:  # isolation: one account's bug must not stop the others
            # The report carries the sentence; the traceback is for --debug only.
            log.debug("account %s failed before its cycle", account.name, exc_info=True)
            report = CycleReport(account.name, outcome="failed", message=describe(exc, account))
            if not dry_run:
                self._failed_before_cycle(account, now, exc, report.message)
        if dry_run and connector is not None:
            connector.close()
        elif report.outcome == "failed":
            self._drop_connector(account.name)  # start afresh: new session, new lookup
            self._remember_refused_credentials(account)
        return report

    def _retry_changed_credentials(self, account: AccountConfig) -> None:
        """An account waiting for re-authorisation tries again once its credentials
        changed (a fixed password secret): fixing the secret is the whole fix."""
        st = self.state.account(account.name)
        if st.status == "needs_reauth" and changed_since(st.auth_fingerprint, account):
            log.info("account %s: its credentials changed since they were refused; "
                     "trying again", account.name)
            self.state.update_account(account.name, status="ok", status_reason=None,
                                      auth_fingerprint=None)

    def _remember_refused_credentials(self, account: AccountConfig) -> None:
        if self.state.account(account.name).status == "needs_reauth":
            self.state.update_account(account.name, auth_fingerprint=fingerprint(account))

    def _failed_before_cycle(self, account: AccountConfig, now: datetime, exc: Exception,
                             message: str | None) -> None:
        """Record a failure that came before the cycle could start (a missing secret, a
        refused sign-in), so ``status`` shows it instead of the last good state.

        No back-off: nothing reached the provider, so retrying costs it nothing, and the
        fix (setting the secret) takes effect on the next cycle.
        """
        before = self.state.account(account.name)
        status = "needs_reauth" if isinstance(exc, AuthFailed) else "failing"
        self.state.update_account(
            account.name, status=status,
            status_reason=exc.reason if isinstance(exc, AuthFailed) else None,
            failures=before.failures + 1, last_run_at=now, last_outcome="failed",
            last_counts={}, last_message=message)

    def close(self) -> None:
        for name in list(self._connectors):
            self._drop_connector(name)
        self.db.close()

    def sync_all(self, names: Sequence[str] | None = None, **options: Any) -> list[CycleReport]:
        accounts = self.accounts()
        if names:
            known = {a.name for a in accounts}
            from syncd.errors import UsageError

            unknown = [n for n in names if n not in known]
            if unknown:
                raise UsageError(message=f"unknown account(s): {', '.join(unknown)}")
            accounts = [a for a in accounts if a.name in names]
        return [self.sync_one(a, **options) for a in accounts]

    def budgets(self, now: datetime | None = None) -> list[dict[str, Any]]:
        """Each provider budget's current day (a Pipedrive company's tokens), as counted
        by every replica; ``warning`` from 75 % used."""
        from syncd.crm.pipedrive_budget import WARN_SHARE
        from syncd.store.budgets import BudgetLedger

        now = now or datetime.now(UTC)
        return [{"scope": c.scope, "day": c.day, "used": c.used, "allowance": c.allowance,
                 "left": c.left, "share": round(c.share, 4), "resets_at": c.resets_at,
                 "warning": c.share >= WARN_SHARE,
                 "halted_until": c.halted_until if c.halted_until and c.halted_until > now
                 else None, "halt_reason": c.halt_reason}
                for c in BudgetLedger(self.db).current(now)]

    def status(self) -> list[dict[str, Any]]:
        states = {s.name: s for s in self.state.accounts()}
        budgets = self.budgets()
        rows = []
        for account in self.accounts():
            st = states.get(account.name) or self.state.account(account.name)
            rows.append({
                "account": account.name, "provider": account.provider, "owner": account.owner,
                "status": st.status, "status_reason": st.status_reason,
                "last_run_at": st.last_run_at, "last_outcome": st.last_outcome,
                "last_counts": st.last_counts, "last_message": st.last_message,
                "links": self.state.link_count(account.name),
                "open_conflicts": self.state.open_conflict_count(account.name),
                "quarantined": self.state.quarantine_count(account.name),
                # The first few failed items with their reasons; `syncd quarantine` has all.
                "failed_items": self.state.quarantine_list(account.name,
                                                           limit=STATUS_ITEMS),
                # the CRM's shared budgets (one Pipedrive company), the same on every row
                "crm_budgets": budgets,
            })
        return rows
