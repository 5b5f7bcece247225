"""The runner: one sync cycle of one account, as fetch -> plan -> guards -> execute.

The caller (the service) has begun the cycle in the state store, which checked the
account's status and took its lease; it words the report and finishes the cycle there
afterwards. In between, this module ties the phases together (DESIGN section 2):

1. fetch (:mod:`~syncd.engine.fetch`): CRM changes since the CRM cursor, activities
   that entered the window, calendar changes since the calendar cursor, then settling
   (:mod:`~syncd.engine.settle`) into a :class:`~syncd.engine.fetch.CycleInput`;
2. plan (:mod:`~syncd.engine.plan`, pure), then the guards (:mod:`~syncd.engine.guards`);
3. execute (:mod:`~syncd.engine.execute`): CRM writes first, then create intents, then
   calendar writes in batches; a 412 re-reads the event and plans that pair again;
4. commit the cursors only when every change they cover was applied or quarantined.

A first sync takes the CRM feed a slice at a time, each slice planned, written and its
cursor committed before the next is read: memory stays bounded by the slice, and an
interrupted backfill resumes where it stopped. A first sync deletes nothing and e-mails
nobody, so no guard needs to see it whole. Later cycles take all their changes at once:
the guards judge the whole cycle before anything is written.

Nothing here words anything: the report carries an :class:`~syncd.engine.outcome.Outcome`,
a :class:`~syncd.engine.outcome.Note` and the error object.
"""

from __future__ import annotations

import logging
import time
from datetime import datetime, timedelta
from typing import Literal

from connectors.base import CalendarConnector
from syncd.crm.source import CrmSource
from syncd.engine.actions import PairPlan
from syncd.engine.execute import LEASE_TTL, Executor, Lease, Wording
from syncd.engine.fetch import Fetcher, Slice
from syncd.engine.guards import DELETION_DAY, check_plan, count_deletions, deletion_hold
from syncd.engine.outcome import CycleReport, Note, Outcome, tally_plans
from syncd.engine.plan import PlanPolicy, plan_account
from syncd.engine.policy import AccountPolicy
from syncd.engine.record import Bookkeeper
from syncd.errors import DeletionsHeld, LeaseLost, NotFound, SyncRefused
from syncd.failpoints import failpoint
from syncd.store.state import AccountState, StateStore

log = logging.getLogger("syncd.engine")

BACKFILL_SLICE = 500  # activities planned, written and committed together in a first sync
GUEST_HOUR = timedelta(hours=1)


class AccountCycle:
    """One cycle of one account, under a lease the caller holds. Construct, then
    :meth:`run`."""

    def __init__(self, policy: AccountPolicy, connector: CalendarConnector, source: CrmSource,
                 state: StateStore, *, token: int | None, now: datetime, wording: Wording,
                 dry_run: bool = False, force_delete: bool = False, keep_plans: bool = False,
                 deadline: float | None = None, lease_ttl: timedelta = LEASE_TTL,
                 known: AccountState | None = None) -> None:
        """``keep_plans`` puts the cycle's plans in its report (``syncd sync --verbose``).

        Off by default: a report outlives its cycle, and a plan per pair kept for every
        account of a run would make memory grow with all the accounts' items together.
        ``deadline`` (``time.monotonic()`` seconds): past it no further batch is written,
        and what is left waits for the next cycle, as after a rate limit. ``wording``
        turns an item's error into the reason kept with it in the quarantine.
        ``lease_ttl``: how long each renewal of the lease lasts (``[syncd] lease_seconds``).
        ``known``: the account's row as the caller read it when it began the cycle
        (else read here).
        """
        self.policy = policy
        self.name = policy.name
        self.connector = connector
        self.source = source
        self.state = state
        self.token = token
        self.now = now
        self.wording = wording
        self.dry_run = dry_run
        self.force_delete = force_delete
        self.keep_plans = keep_plans
        self.deadline = deadline
        self.lease_ttl = lease_ttl
        self.known = known
        self.report = CycleReport(policy.name)
        self.deletions_held: DeletionsHeld | None = None  # the daily deletion budget's hold
        self.fetcher = Fetcher(policy, connector, source, state, self.report.counts,
                               dry_run=dry_run, token=token, force_delete=force_delete)

    def run(self) -> CycleReport:
        """Run the cycle; any error ends it as failed, with the error in the report."""
        try:
            self._cycle()
        except LeaseLost:  # another replica took the account over: it continues there
            self.report.end(Outcome.PARTIAL, Note.LEASE_LOST)
        except Exception as exc:  # any failure: this account backs off, others go on
            # The report carries the error; the traceback is for --debug only.
            log.debug("account %s: cycle failed", self.name, exc_info=True)
            self.report.end(Outcome.FAILED, error=exc)
        return self.report

    def _cycle(self) -> None:
        acct = self.known or self.state.account(self.name)
        owner = self.source.user(self.policy.owner)
        if owner is None:
            raise NotFound(kind="CRM user", key=self.policy.owner)
        window = self.policy.window(self.now)
        policy = self._plan_policy(acct, owner.id, owner.time_zone)
        books = Bookkeeper(self.name, self.state, self.policy.done_style, token=self.token,
                           now=self.now)
        executor = Executor(Lease(self.name, self.token, self.now, self.lease_ttl), self.connector,
                            self.source, self.state, books, self.report.counts,
                            planner=plan_account, wording=self.wording,
                            past_deadline=self._past_deadline,
                            guest_left=self._guest_budget(acct))
        slice_size = BACKFILL_SLICE if policy.backfill else None
        crm_cursor, calendar_cursor, first = acct.crm_cursor, acct.calendar_cursor, True
        midway = False  # cursors committed after a slice (acct's are then behind)
        while True:
            read = self.fetcher.read_slice(crm_cursor, owner.id, slice_size,
                                           calendar_cursor=calendar_cursor, first=first,
                                           window=window, window_end=acct.window_end,
                                           unlisted_from=acct.creates_unlisted_from)
            crm_cursor, calendar_cursor = read.crm_cursor, read.changes.cursor
            round_ = self._round(acct, policy, executor, read)
            if round_ == "ended":
                return
            if round_ == "failed":
                self._record_guest_emails(acct)
                self.report.end(Outcome.PARTIAL, Note.RETRY_NEXT, error=self.deletions_held)
                return
            first = False  # later slices: the calendar's changes went with the first one
            if not read.more:
                break
            # The slice is written: its cursors are committed before the deadline is
            # checked, so a cycle stopped by it resumes after the slice, not before it.
            if not self.dry_run and not self.state.commit_cursors(
                    self.name, self.token, crm_cursor=crm_cursor,
                    calendar_cursor=calendar_cursor, fingerprint=self.policy.fingerprint,
                    listed_upto=self.fetcher.listed_upto):
                self.report.end(Outcome.PARTIAL, Note.LEASE_LOST)
                return
            midway = True
            if self._past_deadline():
                self.report.end(Outcome.PARTIAL, Note.DEADLINE)
                return
        if self.dry_run:
            self.report.end(Outcome.DRY_RUN)
            return
        self._record_guest_emails(acct)
        failpoint("before_cursor_commit")
        cursors = {"crm_cursor": crm_cursor, "calendar_cursor": calendar_cursor,
                   "initial_done": True, "fingerprint": self.policy.fingerprint}
        # Nothing moved (an idle cycle): nothing to store, and nothing written to fence.
        # The window's end counts by the day (all that window_entries looks at).
        unchanged = not midway and acct.window_end is not None \
            and acct.window_end.date() == window.end.date() \
            and all(getattr(acct, key) == value for key, value in cursors.items()) \
            and self.fetcher.listed_upto is None
        if not unchanged and not self.state.commit_cursors(
                self.name, self.token, window_end=window.end,
                listed_upto=self.fetcher.listed_upto, **cursors):
            self.report.end(Outcome.PARTIAL, Note.LEASE_LOST)
            return
        self.state.clear_retries(self.name, self.fetcher.retried, token=self.token)
        self.report.end(Outcome.OK)

    def _plan_policy(self, acct: AccountState, owner_id: int, owner_tz: str) -> PlanPolicy:
        p, caps = self.policy, self.connector.capabilities
        return PlanPolicy(
            owner_id=owner_id,
            # Activity times are wall-clock values in the owner's own zone; an account's
            # time_zone only changes how events are rendered, never how times are stored.
            owner_tz=owner_tz, conflict_policy=p.conflict_policy,
            on_calendar_delete=p.on_calendar_delete, done_style=p.done_style,
            import_events=p.import_events, import_type=p.import_type,
            invite_guests=p.invite_guests, carried=caps.fields, window=p.window(self.now),
            backfill=not acct.initial_done, now=self.now, silent_writes=caps.silent_writes)

    def _round(self, acct: AccountState, policy: PlanPolicy, executor: Executor, read: Slice
               ) -> Literal["ok", "failed", "ended"]:
        """Plan, guard and run one slice: "ok", "failed" (retry next cycle) or "ended"
        (refused; the report is final)."""
        data = self.fetcher.cycle_input(policy, read)
        plans = plan_account(data.plan)
        if self.keep_plans:
            self.report.plans.extend(plans)
        counts = self.report.counts
        counts["crm_changes"] += data.crm_changes
        counts["calendar_changes"] += data.calendar_changes
        if data.outside:
            counts["outside_calendar"] += data.outside
        guest_cap = self.policy.max_guest_updates_per_hour if self.policy.invite_guests \
            else None
        moved = self.policy.scope_change(acct.fingerprint)
        refusal = check_plan(
            plans, account=self.name,
            link_count=lambda: self.state.link_count(self.name, settled=True),
            full_listing_empty=data.full_listing_empty, force_delete=self.force_delete,
            guest_cap=guest_cap, scope_changed=moved is not None,
            deletions_wait=acct.deletions_held_since is not None and not self.force_delete,
        )
        if refusal is not None and refusal.guard == "scope-changed":
            # what moved, and where it was configured, for the sentence (syncd.report)
            refusal = SyncRefused(guard=refusal.guard, account=self.name, changed=moved or "",
                                  config_file=self.policy.config_file)
        if refusal is not None:
            counts["refused_actions"] = sum(p.writes for p in plans)
            self.report.end(Outcome.REFUSED, error=refusal)
            log.warning("account %s refused by the %s guard (%d planned, %d allowed)",
                        self.name, refusal.guard, refusal.count, refusal.limit)
            return "ended"
        if self.dry_run:
            tally_plans(counts, plans)
            return "ok"
        executor.hold_deletions = self._hold_deletions(acct, plans)
        executor.run(plans, policy)
        return "failed" if executor.failed else "ok"

    def _hold_deletions(self, acct: AccountState, plans: list[PairPlan]) -> bool:
        """Whether the daily deletion budget holds this round's deletions (recording the
        hold); a forced cycle that deletes is the admin's word, ending any hold."""
        if self.force_delete:
            if count_deletions(plans):
                self.state.allow_deletions(self.name, self.now, self.token)
            return False
        allowed = acct.deletions_allowed_at
        since = self.now - DELETION_DAY if allowed is None else max(allowed,
                                                                     self.now - DELETION_DAY)
        hold = deletion_hold(
            plans, account=self.name, held_since=acct.deletions_held_since,
            recent=lambda: self.state.deletions_since(self.name, since),
            link_count=lambda: self.state.link_count(self.name, settled=True),
            percent=self.policy.max_daily_deletion_percent)
        if hold is None:
            return False
        if hold.since is None:
            self.state.hold_deletions(self.name, self.now, self.token)
            log.warning("account %s: deletions wait for an admin (%d within a day, budget %d)",
                        self.name, hold.count, hold.limit)
        self.deletions_held = DeletionsHeld(account=self.name, waiting=hold.waiting,
                                            count=hold.count, limit=hold.limit,
                                            since=hold.since)
        return True

    def _past_deadline(self) -> bool:
        if self.deadline is None or time.monotonic() < self.deadline:
            return False
        if not self.report.counts["deadline_reached"]:
            log.warning("account %s: the cycle reached its deadline", self.name)
        self.report.counts["deadline_reached"] = 1
        return True

    # --- guest budget -------------------------------------------------------------------

    def _guest_budget(self, acct: AccountState) -> int | None:
        """Guest e-mails this cycle may still send (None: the account invites nobody)."""
        if not self.policy.invite_guests:
            return None
        count = acct.guest_window_count
        if acct.guest_window_start is None or self.now - acct.guest_window_start >= GUEST_HOUR:
            count = 0
        return max(0, self.policy.max_guest_updates_per_hour - count)

    def _record_guest_emails(self, acct: AccountState) -> None:
        sent = self.report.counts.get("guest_emails", 0)
        if not sent:
            return
        start, count = acct.guest_window_start, acct.guest_window_count
        if start is None or self.now - start >= GUEST_HOUR:
            start, count = self.now, 0
        self.state.record_guest_emails(self.name, start, count + sent, token=self.token)


def run_cycle(policy: AccountPolicy, connector: CalendarConnector, source: CrmSource,
              state: StateStore, *, token: int | None, now: datetime, wording: Wording,
              dry_run: bool = False, force_delete: bool = False, keep_plans: bool = False,
              deadline: float | None = None, lease_ttl: timedelta = LEASE_TTL,
              known: AccountState | None = None) -> CycleReport:
    """Run one cycle of one account (begun by the caller) and return what it did; see
    :class:`AccountCycle` for the options."""
    return AccountCycle(policy, connector, source, state, token=token, now=now,
                        wording=wording, dry_run=dry_run, force_delete=force_delete,
                        keep_plans=keep_plans, deadline=deadline, lease_ttl=lease_ttl,
                        known=known).run()
