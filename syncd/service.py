"""Wiring: accounts, connectors and the engine, with one account's failure kept to itself."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime, timedelta
from functools import cached_property
from typing import TYPE_CHECKING, Any

from connectors import ConnectorContext, open_connector
from connectors.base import CalendarConnector
from syncd.auth_fingerprint import changed_since, fingerprint
from syncd.channels import ChannelKeeper, PushSettings
from syncd.config import AccountConfig, Config
from syncd.config_types import crm_scope
from syncd.crm.source import CrmSource
from syncd.embedded_accounts import embedded_accounts
from syncd.engine.policy import AccountPolicy, ConflictPolicy, OnCalendarDelete
from syncd.errors import SyncRefused
from syncd.model import DoneStyle
from syncd.private import exposed_secrets
from syncd.report import describe, describe_note, refusal_reason
from syncd.status_view import AccountRow, budget_rows, status_rows
from syncd.store.channels import ChannelStore
from syncd.store.db import Database
from syncd.store.state import AccountState, StateStore, lease_owner_id
from syncd.store.status import AccountStatus, CycleEnd, Note, Outcome
from syncd.team import team_accounts
from syncd.text import printable

if TYPE_CHECKING:
    # The engine is loaded by the first cycle, not by every command (``syncd status``),
    # and the CRM's tables when something reads the CRM (not ``status`` of accounts).
    from syncd.crm.builtin.activities import ActivityStore
    from syncd.engine.outcome import CycleReport

log = logging.getLogger("syncd.service")

def account_policy(account: AccountConfig, *, crm: str = "", config_file: str = ""
                   ) -> AccountPolicy:
    """The engine's typed view of an ``[[account]]`` block (the config checked every
    choice, so the enums cannot fail here). ``crm``: which CRM the links are made with
    (:func:`syncd.config_types.crm_scope`), part of the scope; ``config_file``: where both
    are configured (named in a refusal)."""
    return AccountPolicy(
        name=account.name, owner=account.owner, fingerprint=account.fingerprint(crm),
        earlier_fingerprints=account.earlier_fingerprints(), config_file=config_file,
        conflict_policy=ConflictPolicy(account.conflict_policy),
        on_calendar_delete=OnCalendarDelete(account.on_calendar_delete),
        done_style=DoneStyle(account.done_style), import_events=account.import_events,
        import_type=account.import_type, invite_guests=account.invite_guests,
        max_guest_updates_per_hour=account.max_guest_updates_per_hour,
        max_daily_deletion_percent=account.max_daily_deletion_percent,
        window_days_back=account.window_days_back,
        window_days_ahead=account.window_days_ahead)


def word(report: CycleReport, account: AccountConfig) -> str | None:
    """The sentence for a cycle's report: its error's, or why it stopped short."""
    if report.error is not None:
        return describe(report.error, account)
    return describe_note(report.note) if report.note is not None else None


#: The outcomes after which a cycle held the lease and reached the calendar: its push
#: channel is looked after (not after an account-wide failure, which a channel request
#: would only repeat).
UPKEEP_AFTER = (Outcome.OK, Outcome.PARTIAL, Outcome.REFUSED)


def sync_account(account: AccountConfig, connector: CalendarConnector, source: CrmSource,
                 state: StateStore, *, now: datetime | None = None,
                 lease_owner: str = "syncd", dry_run: bool = False,
                 force_delete: bool = False, policy: AccountPolicy | None = None,
                 claimed: int | None = None,
                 upkeep: Callable[[CycleReport], None] | None = None,
                 lease_ttl: timedelta | None = None,
                 known: AccountState | None = None,
                 **options: Any) -> CycleReport:
    """One cycle of one account, begun and finished in the state store's status machine.

    The engine runs between ``begin_cycle`` (the status check and the lease) and
    ``finish_cycle`` (the status move and the lease released, in one transaction); its
    report is worded here, through :mod:`syncd.report`. ``claimed``: the lease was taken
    from the work queue already, with this token. ``upkeep`` (the daemon's push channel
    keeper) runs after a cycle that reached the calendar, still under the lease, so only
    the replica holding the account touches its channel. ``lease_ttl``: how long the
    lease lasts unless renewed (default :data:`syncd.engine.execute.LEASE_TTL`).
    ``known``: the account's row, just read by the caller (the cycle then reads it
    no more).
    """
    from syncd.engine.execute import LEASE_TTL
    from syncd.engine.outcome import CycleReport
    from syncd.engine.runner import run_cycle

    now = now or datetime.now(UTC)
    policy = policy or account_policy(account)
    lease_ttl = lease_ttl or LEASE_TTL
    start = state.begin_cycle(account.name, lease_owner, lease_ttl, now, force=force_delete,
                              claimed=claimed, known=known)
    if start.unavailable is not None:
        report = CycleReport(account.name)
        report.end(Outcome.SKIPPED, error=start.unavailable)
    elif start.token is None:  # not a problem: another replica is syncing the account
        report = CycleReport(account.name)
        report.end(Outcome.BUSY, Note.LEASE_BUSY)
    else:
        try:
            report = run_cycle(policy, connector, source, state, token=start.token, now=now,
                               wording=lambda exc: describe(exc, account), dry_run=dry_run,
                               force_delete=force_delete, lease_ttl=lease_ttl,
                               known=start.state, **options)
            report.message = word(report, account)
        except BaseException:
            state.release_lease(account.name, start.token)
            raise
        if upkeep is not None and not dry_run and report.outcome in UPKEEP_AFTER \
                and report.note != Note.LEASE_LOST:
            upkeep(report)
        reason = refusal_reason(report.error) if isinstance(report.error, SyncRefused) \
            else None
        end = CycleEnd(Outcome.DRY_RUN if dry_run else report.outcome, report.counts,
                       report.error, report.note, report.message, reason)
        state.finish_cycle(account.name, start.token, end, now, start.state)
        return report
    report.message = word(report, account)
    return report


class Service:
    """What ``syncd sync``, ``syncd run`` and ``syncd status`` share."""

    def __init__(self, config: Config, db: Database | None = None, *,
                 open_crm: bool = True) -> None:
        """``open_crm`` False: the CRM is opened when first read (``syncd status``, which
        for configured accounts never reads it, and so never loads its tables); True
        opens it now, so a CRM that cannot be opened is the command's error at once."""
        self.config = config
        self.db = db or Database(config.database_url, workers=config.workers)
        if open_crm:
            _ = self.source
        self.state = StateStore(self.db)
        self.replica = lease_owner_id()
        # Connectors live across cycles: keep-alive connections, cached tokens and a
        # resolved calendar make an idle cycle one request, not a handshake and a lookup.
        # A connector is rebuilt each day, because its sync window is fixed when it is made.
        self._connectors: dict[str, tuple[AccountConfig, date, CalendarConnector]] = {}
        self._policies: dict[str, tuple[AccountConfig, AccountPolicy]] = {}
        self._members: tuple[AccountConfig, ...] = ()  # the teams' members last read
        self._refused: set[str] = set()  # team users already warned about
        #: Called before every calendar request (the daemon's check that its embedded
        #: server still runs); raises to stop the request.
        self.before_request: Callable[[], None] | None = None
        #: The daemon's push channel keeper: looks after each account's channel after its
        #: cycles (None: ``syncd sync`` and ``run --once`` open no channels).
        self.keeper: ChannelKeeper | None = None
        self._shared_limits: Any = None  # the LimitStore, made on first use
        #: What connectors share between accounts (ConnectorContext.shared)
        self._connector_memo: dict[str, Any] = {}

    @cached_property
    def store(self) -> ActivityStore:
        """The built-in CRM's store (the users of the embedded calendar server)."""
        from syncd.crm.builtin.activities import ActivityStore

        return ActivityStore(self.db)

    @cached_property
    def source(self) -> CrmSource:
        """The CRM, opened when first read (``syncd status`` of configured accounts never
        does, and so never loads its tables)."""
        from syncd.crm import open_source

        return open_source(self.config.crm_kind, self.db, self.config.crm_options,
                           default_zone=self.config.default_time_zone,
                           timeout=self.config.request_timeout_seconds)

    def _policy(self, account: AccountConfig) -> AccountPolicy:
        """The account's policy, built once per configured account."""
        cached = self._policies.get(account.name)
        if cached is None or cached[0] != account:
            policy = account_policy(
                account, crm=crm_scope(self.config.crm_kind, self.config.crm_options),
                config_file=self.config.source)
            cached = self._policies[account.name] = (account, policy)
        return cached[1]

    def accounts(self) -> list[AccountConfig]:
        """The accounts served now: the ``[[account]]`` blocks, the members of each
        ``[[team]]`` among the CRM's users (so a new user is served without a restart),
        or with neither, the embedded server's."""
        if not self.config.serves_accounts:
            return embedded_accounts(self.config, self.store)
        accounts = [a for a in self.config.accounts if a.enabled]
        if self.config.teams:
            accounts += self._team_members(accounts)
        return accounts

    def _team_members(self, configured: Sequence[AccountConfig]) -> list[AccountConfig]:
        """The teams' accounts; while the CRM cannot say who its users are, the last
        known members (an outage must not look like everyone leaving)."""
        try:
            emails = self.source.user_emails()
        except Exception as exc:
            log.warning("the CRM's users could not be read; teams keep their last members: "
                        "%s", describe(exc))
            return list(self._members)
        members, refused = team_accounts(self.config.teams, emails,
                                         [(a.owner, a.provider) for a in configured])
        members = [m for m in members if not self._secret_open(m, refused)]
        for email in sorted(set(refused) - self._refused):
            log.warning("%s is in a team but not served: %s; give it an [[account]] block",
                        printable(email), printable(refused[email]))
        self._refused |= set(refused)
        self._members = tuple(members)
        return members

    @staticmethod
    def _secret_open(member: AccountConfig, refused: dict[str, str]) -> bool:
        """Whether a member's own secret file (its placeholders filled in) may be opened
        by others; if so it is refused (with the chmod) like at the start for the rest."""
        found = exposed_secrets(member)
        if found:
            refused[member.owner] = "its secret " + ", ".join(
                f"{path} may be opened by other users (mode {mode}; chmod 600 {path})"
                for path, mode in found)
        return bool(found)

    def credentials(self) -> Any:
        from syncd.store.credentials import CredentialStore

        return CredentialStore(self.db, self.config.state_key)

    def _discovery(self, account: AccountConfig) -> Any:
        """What the account's connector found out about its server in earlier runs, for
        the account's identity as configured now (its URL, user name and calendar)."""
        from syncd.store.discovery import DiscoveryStore

        return DiscoveryStore(self.db).for_account(account.name, account.fingerprint())

    def _limits(self) -> Any:
        """The provider limits every replica shares (``[syncd] replica``), or None: a
        single process counts on its own, in memory."""
        if not self.config.replica:
            return None
        if self._shared_limits is None:
            from syncd.store.limits import LimitStore

            self._shared_limits = LimitStore(self.db)
        return self._shared_limits

    def prune_budgets(self) -> int:
        """Delete the provider budgets' rows no limit needs any more (idle send lines,
        unused concurrency slots, Pipedrive days long reset); returns how many went."""
        from syncd.store.limits import LimitStore

        return int((self._limits() or LimitStore(self.db, free_every=None)).prune())

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
        context = ConnectorContext(tz, self._policy(account).window(now), self.credentials(),
                                   read_only=read_only, before_request=self.before_request,
                                   discovery=self._discovery(account), limits=self._limits(),
                                   timeout=self.config.request_timeout_seconds,
                                   shared=self._connector_memo)
        return open_connector(account, context)

    def policy(self, account: AccountConfig) -> AccountPolicy:
        """The engine's view of the account's settings."""
        return self._policy(account)

    def open_connector(self, account: AccountConfig, *, read_only: bool,
                       now: datetime | None = None) -> CalendarConnector:
        """A connector of its own (not the cycles' cached one), closed by the caller: for
        audits and repairs."""
        return self._open(account, now or datetime.now(UTC), read_only=read_only)

    def _drop_connector(self, name: str) -> None:
        cached = self._connectors.pop(name, None)
        if cached is not None:
            try:
                cached[2].close()
            except Exception:  # closing must never mask the cycle's outcome
                log.debug("closing the connector of %s failed", name, exc_info=True)

    def sync_one(self, account: AccountConfig, **options: Any) -> CycleReport:
        """One cycle of one account. Never raises: a failure is that account's report."""
        from syncd.engine.outcome import CycleReport

        now = datetime.now(UTC)
        # A dry run gets a read-only connector of its own, closed after its cycle, so the
        # cached one never carries (or loses) that mode.
        dry_run = bool(options.get("dry_run"))
        options.setdefault("deadline", time.monotonic() + self.config.cycle_deadline_seconds)
        connector: CalendarConnector | None = None
        known = None if dry_run else self._retry_changed_credentials(account)
        try:
            connector = self._open(account, now, read_only=True) if dry_run else \
                self._connector(account, now)
            report = sync_account(account, connector, self.source, self.state, now=now,
                                  lease_owner=self.replica, policy=self._policy(account),
                                  lease_ttl=timedelta(seconds=self.config.lease_seconds),
                                  upkeep=self._upkeep(account, connector, now), known=known,
                                  **options)
        except Exception as exc:  # isolation: one account's bug must not stop the others
            # The report carries the sentence; the traceback is for --debug only.
            log.debug("account %s failed before its cycle", account.name, exc_info=True)
            report = CycleReport(account.name)
            report.end(Outcome.FAILED, error=exc)
            report.message = word(report, account)
            if not dry_run:
                # Recorded so that ``status`` shows it instead of the last good state. No
                # back-off: nothing reached the provider, so retrying costs it nothing,
                # and the fix (setting the secret) takes effect on the next cycle.
                self.state.finish_cycle(account.name, None, CycleEnd(
                    Outcome.FAILED, error=exc, message=report.message, started=False), now,
                    self.state.account(account.name))
        if dry_run and connector is not None:
            connector.close()
        elif report.outcome == Outcome.FAILED:
            self._drop_connector(account.name)  # start afresh: new session, new lookup
            self._remember_refused_credentials(account)
        return report

    def _upkeep(self, account: AccountConfig, connector: CalendarConnector,
                started: datetime) -> Callable[[CycleReport], None] | None:
        """The push channel's upkeep after the cycle begun at ``started`` (daemon only)."""
        keeper = self.keeper
        if keeper is None:
            return None

        def upkeep(report: CycleReport) -> None:
            keeper.maintain(account, connector, wrote_calendar=report.wrote_calendar,
                            since=started)

        return upkeep

    def forget_push(self, name: str, account: AccountConfig | None = None) -> None:
        """The account is no longer served: stop its push channel with the connector
        still cached for it (or, with none cached, one made from ``account``), remove the
        channel's row, and drop the connector."""
        cached = self._connectors.get(name)
        keeper = self.keeper or ChannelKeeper(ChannelStore(self.db), PushSettings(None),
                                              owner=self.replica)
        connector = cached[2] if cached is not None else None
        if connector is None and account is not None:
            try:
                connector = self._connector(account, datetime.now(UTC))
            except Exception:  # the channel then expires by itself
                log.debug("no connector to stop the channel of %s", name, exc_info=True)
        keeper.forget(name, connector)
        self._drop_connector(name)

    def _retry_changed_credentials(self, account: AccountConfig) -> AccountState | None:
        """An account waiting for re-authorisation tries again once its credentials
        changed (a fixed password secret): fixing the secret is the whole fix. Returns
        the account's row as read (None when it was just changed: the cycle reads it)."""
        st = self.state.account(account.name)
        if st.status == AccountStatus.NEEDS_REAUTH and changed_since(st.auth_fingerprint,
                                                                     account):
            log.info("account %s: its credentials changed since they were refused; "
                     "trying again", account.name)
            self.state.credentials_changed(account.name)
            return None
        return st

    def _remember_refused_credentials(self, account: AccountConfig) -> None:
        if self.state.account(account.name).status == AccountStatus.NEEDS_REAUTH:
            self.state.credentials_refused(account.name, fingerprint(account))

    def close(self) -> None:
        for name in list(self._connectors):
            self._drop_connector(name)
        # what the connectors shared (the process's HTTP session and its connections)
        for kept in list(self._connector_memo.values()):
            close = getattr(kept, "close", None)
            if callable(close):
                try:
                    close()
                except Exception:
                    log.debug("closing what connectors shared failed", exc_info=True)
        self._connector_memo.clear()
        if self._shared_limits is not None:
            try:  # the slots given back last are freed now, not at their expiry
                self._shared_limits.flush()
            except Exception:
                log.debug("the shared slots given back could not be freed", exc_info=True)
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
        from syncd.store.budgets import BudgetLedger

        now = now or datetime.now(UTC)
        return budget_rows(BudgetLedger(self.db).current(now), now)

    def status(self) -> list[dict[str, Any]]:
        """What ``syncd status`` shows of each account served (an account without a row
        yet gets one)."""
        states: dict[str, AccountRow] = {s.name: s for s in self.state.accounts()}
        accounts = self.accounts()
        for account in accounts:
            if account.name not in states:
                states[account.name] = self.state.account(account.name)
        return status_rows(accounts, states, self.state, ChannelStore(self.db).all(),
                           self.budgets(), self.config.http.public_url)
