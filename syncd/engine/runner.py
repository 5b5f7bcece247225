"""The runner: one sync cycle of one account, around the pure planner.

Order of a cycle (DESIGN section 2):

1. take the account's lease; skip it while paused, flagged, cooling down or needing
   re-authorisation;
2. settle pending creates (read before writing again, failure mode 15);
3. read CRM changes since the CRM cursor, plus activities that just entered the window;
4. read calendar changes since the calendar cursor (an expired cursor means a full
   listing, reconciled by id and marker, never deletions);
5. plan (pure), then check the guards;
6. run: CRM writes first, then create intents are committed, then calendar writes in
   batches; a 412 re-reads the event and plans that pair again;
7. commit the cursors only when every change they cover was applied or quarantined.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Literal

from connectors.base import (
    CalendarConnector,
    ChangeSet,
    CreateOp,
    DeleteOp,
    RemoteEvent,
    UpdateOp,
    Window,
    WriteOp,
    WriteResult,
)
from syncd.config import AccountConfig
from syncd.crm.source import (
    ApplyChanges,
    CrmSource,
    ImportActivity,
    RemoveActivity,
    SourceOp,
)
from syncd.engine.actions import (
    CreateActivity,
    CreateEvent,
    DeleteActivity,
    DeleteEvent,
    PairPlan,
    UpdateActivity,
    UpdateEvent,
)
from syncd.engine.guards import check_plan, count_guest_emails
from syncd.engine.plan import AccountPolicy, PlanInput, cal_key, crm_key, plan_account
from syncd.errors import (
    AccountCooldown,
    AccountUnavailable,
    AccountWide,
    ActivityChanged,
    AuthFailed,
    CursorExpired,
    EventGone,
    ItemLevel,
    NotFound,
    RateLimited,
    Stale,
    SyncdError,
)
from syncd.failpoints import failpoint
from syncd.model import Activity, DoneStyle, Tombstone, project_activity, projection_version
from syncd.pairs import Conflict, SyncPair
from syncd.report import describe, refusal_reason
from syncd.store.state import AccountState, StateStore

log = logging.getLogger("syncd.engine")

#: Namespace of the sync_uid given to activities imported from a calendar: derived from
#: (account, event id), so a crash between the import and its link cannot import twice.
IMPORT_NAMESPACE = uuid.UUID("8f0c7e52-5a43-4a47-9d8e-2f3c1b7a6e10")
LEASE_TTL = timedelta(minutes=10)
REPLAN_ROUNDS = 2
CRM_PAGE = 1000  # change rows per read of the CRM feed
BACKFILL_SLICE = 500  # activities planned, written and committed together in a first sync


@dataclass
class CycleReport:
    """What one cycle did, for the CLI, the status table and the tests."""

    account: str
    outcome: str = "ok"  # ok | partial | failed | refused | skipped | busy | dry-run
    counts: Counter[str] = field(default_factory=Counter)
    message: str | None = None
    plans: list[PairPlan] = field(default_factory=list)  # only when the cycle keeps them

    def line(self) -> str:
        counts = ", ".join(f"{k} {v}" for k, v in sorted(self.counts.items()) if v)
        if not counts and self.outcome in ("ok", "dry-run"):
            counts = "no changes"
        text = f"{self.account}: {self.outcome}"
        text += f": {counts}" if counts else ""
        return text + (f" ({self.message})" if self.message else "")


@dataclass
class _Done:
    """Finished pairs waiting to be recorded together (see ``AccountCycle._flush``)."""

    saves: list[SyncPair] = field(default_factory=list)
    drops: list[int] = field(default_factory=list)
    conflicts: list[tuple[int | None, str | None, Conflict]] = field(default_factory=list)
    cleared: list[str] = field(default_factory=list)
    meetings: list[tuple[str, int]] = field(default_factory=list)  # (ical_uid, activity)


@dataclass(eq=False, kw_only=True)
class LeaseLost(SyncdError):
    """Another replica took the account's lease; this cycle stops (``account``)."""

    account: str


def account_window(cfg: AccountConfig, now: datetime) -> Window:
    return Window(now - timedelta(days=cfg.window_days_back),
                  now + timedelta(days=cfg.window_days_ahead))


Outgoing = tuple[PairPlan, WriteOp, Activity | None]  # plan, its write, the CRM result


def _chunks(items: Sequence[Outgoing], size: int) -> Iterator[Sequence[Outgoing]]:
    for i in range(0, len(items), max(1, size)):
        yield items[i:i + size]


class AccountCycle:
    """One cycle of one account. Construct, then :meth:`run`."""

    def __init__(
        self,
        cfg: AccountConfig,
        connector: CalendarConnector,
        source: CrmSource,
        state: StateStore,
        *,
        now: datetime | None = None,
        dry_run: bool = False,
        force_delete: bool = False,
        lease_owner: str = "syncd",
        keep_plans: bool = False,
        deadline: float | None = None,
    ) -> None:
        """``keep_plans`` puts the cycle's plans in its report (``syncd sync --verbose``).

        Off by default: a report outlives its cycle, and a plan per pair kept for every
        account of a run would make memory grow with all the accounts' items together.
        ``deadline`` (``time.monotonic()`` seconds): past it no further batch is written,
        and what is left waits for the next cycle, as after a rate limit.
        """
        self.cfg = cfg
        self.connector = connector
        self.source = source
        self.state = state
        self.now = now or datetime.now(UTC)
        self.dry_run = dry_run
        self.force_delete = force_delete
        self.lease_owner = lease_owner
        self.keep_plans = keep_plans
        self.deadline = deadline
        self.report = CycleReport(cfg.name)
        self.done_style: DoneStyle = "prefix" if cfg.done_style == "prefix" else "keep"
        self.failed = False  # something must be retried: cursors stay put
        self._done = _Done()
        self.failing: set[str] = set()  # items with a failure on record
        self.retried: list[str] = []  # items an admin released, tried again this cycle
        self.token: int | None = None
        self.handed_over: set[int] = set()  # activities another owner handed to this one
        # guest e-mails this cycle may still send (None: the account invites nobody)
        self.guest_left: int | None = None

    # --- entry point --------------------------------------------------------------------

    def run(self) -> CycleReport:
        acct = self.state.account(self.cfg.name)
        if not self._available(acct.status, acct.cooldown_until, acct.status_reason):
            return self.report
        self.token = self.state.acquire_lease(self.cfg.name, self.lease_owner, LEASE_TTL, self.now)
        if self.token is None:
            # Not a problem: another replica is syncing the account right now.
            self.report.outcome, self.report.message = "busy", "another replica holds the lease"
            return self.report
        try:
            self._cycle()
        except AuthFailed as exc:
            self._end("failed", describe(exc, self.cfg), status="needs_reauth",
                      status_reason=exc.reason)
        except AccountCooldown as exc:
            until = self.now + timedelta(seconds=exc.seconds)
            self._end("failed", describe(exc, self.cfg), status="cooldown", cooldown_until=until)
        except Exception as exc:  # any other failure: this account backs off, others go on
            # The report carries the sentence; the traceback is for --debug only.
            log.debug("account %s: cycle failed", self.cfg.name, exc_info=True)
            # Back off an account that keeps failing, so it cannot crowd out the others.
            failures = acct.failures + 1
            until = self.now + timedelta(seconds=min(60 * 2 ** (failures - 1), 3600))
            self._end("failed", describe(exc, self.cfg), status="failing", failures=failures,
                      cooldown_until=until)
        finally:
            self.state.release_lease(self.cfg.name, self.token)
        return self.report

    def _available(self, status: str, cooldown_until: datetime | None, reason: str | None) -> bool:
        resting = status in ("cooldown", "failing") and cooldown_until and cooldown_until > self.now
        if resting or status in ("needs_reauth", "paused") or (
                status == "flagged" and not self.force_delete):
            self.report.outcome = "skipped"
            self.report.message = describe(AccountUnavailable(
                account=self.cfg.name, status=status, reason=reason,
                until=cooldown_until if resting else None), self.cfg)
            return False
        return True

    def _end(self, outcome: str, message: str | None = None, **account: object) -> None:
        self.report.outcome = outcome
        self.report.message = message
        if self.dry_run:
            return
        values: dict[str, object] = {
            "last_run_at": self.now, "last_outcome": outcome,
            "last_counts": dict(self.report.counts), "last_message": message,
        }
        values.update(account)
        self.state.update_account(self.cfg.name, **values)

    # --- the cycle ----------------------------------------------------------------------

    def _cycle(self) -> None:
        acct = self.state.account(self.cfg.name)
        owner = self.source.user(self.cfg.owner)
        if owner is None:
            raise NotFound(kind="CRM user", key=self.cfg.owner)
        window = account_window(self.cfg, self.now)
        policy = AccountPolicy(
            owner_id=owner.id,
            # Activity times are wall-clock values in the owner's own zone; an account's
            # time_zone only changes how events are rendered, never how times are stored.
            owner_tz=owner.time_zone,
            conflict_policy=self.cfg.conflict_policy,
            on_calendar_delete=self.cfg.on_calendar_delete,
            done_style=self.done_style,
            import_events=self.cfg.import_events,
            import_type=self.cfg.import_type,
            invite_guests=self.cfg.invite_guests,
            carried=self.connector.capabilities.fields,
            window=window,
            backfill=not acct.initial_done,
            now=self.now,
            silent_writes=self.connector.capabilities.silent_writes,
        )
        self.failing = self.state.failing_keys(self.cfg.name)
        budget = self._guest_budget(acct.guest_window_start, acct.guest_window_count)
        self.guest_left = budget

        # A first sync takes the CRM feed a slice at a time, each slice planned, written
        # and its cursor committed before the next is read: memory stays bounded by the
        # slice, and an interrupted backfill resumes where it stopped. A first sync
        # deletes nothing and e-mails nobody, so no guard needs to see it whole. Later
        # cycles take all their changes at once: the guards judge the whole cycle before
        # anything is written.
        slice_size = BACKFILL_SLICE if policy.backfill else None
        crm_cursor, first = acct.crm_cursor, True
        changes = ChangeSet((), acct.calendar_cursor, full=False)
        while True:
            crm, crm_cursor, more = self._read_crm(crm_cursor, owner.id, slice_size)
            entries: set[int] = set()
            if first:
                entries = self._window_entries(acct.window_end, window, owner.id, crm)
                changes = self._with_retries(self._read_calendar(acct.calendar_cursor), crm)
            round_ = self._round(acct, policy, budget, crm, entries, changes)
            if round_ == "ended":
                return
            if round_ == "failed":
                self._record_guest_writes(acct.guest_window_start, acct.guest_window_count)
                self._end("partial", "some changes will be retried next cycle", failures=0)
                return
            # Later slices: the calendar's changes went with the first one.
            first, changes = False, ChangeSet((), changes.cursor, full=False)
            if not more:
                break
            # The slice is written: its cursors are committed before the deadline is
            # checked, so a cycle stopped by it resumes after the slice, not before it.
            if not self.dry_run and not self.state.commit_cursors(
                    self.cfg.name, self.token, crm_cursor=crm_cursor,
                    calendar_cursor=changes.cursor, fingerprint=self.cfg.fingerprint()):
                self._end("partial", "the lease was lost; another replica continues")
                return
            if self._past_deadline():
                self._end("partial", "the cycle reached its deadline; the next one goes on")
                return
        if self.dry_run:
            self._end("dry-run")
            return
        self._record_guest_writes(acct.guest_window_start, acct.guest_window_count)
        failpoint("before_cursor_commit")
        committed = self.state.commit_cursors(
            self.cfg.name, self.token, crm_cursor=crm_cursor, calendar_cursor=changes.cursor,
            window_end=window.end, initial_done=True, fingerprint=self.cfg.fingerprint(),
        )
        if not committed:
            self._end("partial", "the lease was lost; another replica continues")
            return
        self.state.clear_retries(self.cfg.name, self.retried)
        self._end("ok", None, status="ok", status_reason=None, failures=0, cooldown_until=None)

    def _round(self, acct: AccountState, policy: AccountPolicy, budget: int | None,
               crm: dict[int, Activity | Tombstone], entries: set[int], changes: ChangeSet
               ) -> Literal["ok", "failed", "ended"]:
        """Plan, guard and run one set of changes: "ok", "failed" (retry next cycle) or
        "ended" (refused; the report is final)."""
        # Only the links of what changed (and pending creates): a full listing never
        # reads a missing event as a deletion, so untouched pairs need no link loaded.
        links = self.state.links_touching(
            self.cfg.name, activity_ids=crm,
            event_ids=[e.event_id for e in changes.events],
            markers=[e.marker for e in changes.events if e.marker])
        linked = {link.event_id: link for link in links.values() if link.event_id}
        events = [e for e in changes.events if not _echo(e, linked.get(e.event_id))]
        events = self._uid_copies_set_aside(events, linked)
        events += self._settle_pending(links)
        self._load_related(events, links, crm)

        plan_input = PlanInput(policy, links, crm, events,
                               self.state.quarantined(self.cfg.name), frozenset(entries),
                               self._meetings_elsewhere(events, links),
                               frozenset(self.handed_over))
        plans = plan_account(plan_input)
        if self.keep_plans:
            self.report.plans.extend(plans)
        self.report.counts["crm_changes"] += len(crm)
        self.report.counts["calendar_changes"] += len(changes.events)
        if changes.outside:
            self.report.counts["outside_calendar"] += changes.outside

        refusal = check_plan(
            plans, account=self.cfg.name,
            link_count=self.state.link_count(self.cfg.name, settled=True),
            full_listing_empty=changes.full and not changes.events,
            force_delete=self.force_delete,
            guest_cap=self.cfg.max_guest_updates_per_hour if budget is not None else None,
            scope_changed=acct.fingerprint not in (None, self.cfg.fingerprint()),
        )
        if refusal is not None:
            status = "paused" if refusal.guard == "guest-updates" else "flagged"
            self.report.counts["refused_actions"] = sum(p.writes for p in plans)
            self._end("refused", describe(refusal, self.cfg),
                      status=status, status_reason=refusal_reason(refusal))
            log.warning("account %s refused by the %s guard: %s", self.cfg.name,
                        refusal.guard, refusal_reason(refusal))
            return "ended"
        if self.dry_run:
            self._count_plans(plans)
            return "ok"
        self._execute(plans, policy)
        return "failed" if self.failed else "ok"

    # --- reading ------------------------------------------------------------------------

    def _read_crm(self, cursor: str | None, owner_id: int, limit: int | None = None
                  ) -> tuple[dict[int, Activity | Tombstone], str | None, bool]:
        """The CRM changes after ``cursor``: all of them, or whole pages up to ``limit``
        items; with the cursor after them and whether more are left."""
        items: dict[int, Activity | Tombstone] = {}
        page_size = CRM_PAGE if limit is None else min(CRM_PAGE, limit)
        while True:
            page = self.source.changes(cursor, owner_id=owner_id, limit=page_size)
            for item in page.items:
                items[item.id] = item
            self.handed_over.update(page.handed_over)
            cursor = page.cursor
            if not page.more or (limit is not None and len(items) >= limit):
                return items, cursor, page.more

    def _window_entries(self, window_end: datetime | None, window: Window, owner_id: int,
                        crm: dict[int, Activity | Tombstone]) -> set[int]:
        """Activities that time carried into the window since the last cycle."""
        # Whole days are enough: a day already scanned holds nothing new unless a change
        # touched it, and changes arrive through the feed. So idle cycles within one day
        # cost no query.
        if window_end is None or window_end.date() >= window.end.date():
            return set()
        entered = set()
        for activity in self.source.due_between(owner_id, window_end.date(), window.end.date()):
            if activity.id not in crm:
                crm[activity.id] = activity
                entered.add(activity.id)
        return entered

    def _read_calendar(self, cursor: str | None) -> ChangeSet:
        try:
            return self.connector.changes(cursor)
        except CursorExpired:
            log.info("account %s: calendar cursor expired; listing the window", self.cfg.name)
            self.report.counts["full_resync"] += 1
            return self.connector.changes(None)

    def _with_retries(self, changes: ChangeSet, crm: dict[int, Activity | Tombstone]
                      ) -> ChangeSet:
        """Add the items released by ``syncd quarantine retry`` to this cycle's changes.

        Their cursors moved on long ago, so they are read again: the event by id, and the
        activity of the pair (or the one whose create failed). Purged activities and
        events that are gone have nothing left to retry.
        """
        keys = self.state.retry_keys(self.cfg.name)
        if not keys:
            return changes
        self.retried = keys
        self.report.counts["retried"] += len(keys)
        event_ids = {k.removeprefix("calendar:") for k in keys if k.startswith("calendar:")}
        activity_ids = {int(k[4:]) for k in keys if k.startswith("crm:") and k[4:].isdigit()}
        links = self.state.links_touching(self.cfg.name, event_ids=event_ids)
        activity_ids |= {link.activity_id for link in links.values()
                         if link.event_id in event_ids}
        crm.update(self.source.get_many(sorted(activity_ids - crm.keys())))
        listed = {e.event_id for e in changes.events}
        fresh = [event for event_id in sorted(event_ids - listed)
                 if (event := self.connector.get(event_id)) is not None]
        return replace(changes, events=[*changes.events, *fresh]) if fresh else changes

    def _settle_pending(self, links: dict[int, SyncPair]) -> list[RemoteEvent]:
        """Creates whose outcome is unknown: find what reached the server."""
        found = []
        for link in links.values():
            if link.pending:
                event = self.connector.find(link.sync_uid, link.generation)
                if event is not None:
                    found.append(event)
                    self.report.counts["recovered_creates"] += 1
        return found

    def _load_related(self, events: Sequence[RemoteEvent], links: dict[int, SyncPair],
                      crm: dict[int, Activity | Tombstone]) -> None:
        """Load the activities the planner needs beyond the CRM feed.

        Every pair the calendar touched is planned against the activity as it is now,
        never against the stored base: an edit whose cursor already moved on (a pair that
        was quarantined once, say) must still count as an edit.
        """
        by_event = {link.event_id: link for link in links.values() if link.event_id}
        by_uid = {link.sync_uid: link for link in links.values()}
        wanted = {link.activity_id for link in links.values() if link.pending}
        for event in events:
            link = by_event.get(event.event_id) or (by_uid.get(event.marker)
                                                     if event.marker else None)
            if link is not None:
                wanted.add(link.activity_id)
            elif event.marker:
                activity = self.source.find(event.marker)
                if activity is not None:
                    crm.setdefault(activity.id, activity)
            elif self.cfg.import_events and not event.deleted:
                self._relink_import(event, links, crm)
        wanted -= crm.keys()
        found = self.source.get_many(sorted(wanted)) if wanted else {}
        for activity_id in wanted:
            crm[activity_id] = found.get(activity_id) or Tombstone(
                activity_id, next(lk.sync_uid for lk in links.values()
                                  if lk.activity_id == activity_id))

    def _relink_import(self, event: RemoteEvent, links: dict[int, SyncPair],
                       crm: dict[int, Activity | Tombstone]) -> None:
        """An event imported before a crash cut its link: link it again, never re-import."""
        activity = self.source.find(self._import_uid(event.event_id))
        if activity is None or self.dry_run:
            return
        link = SyncPair(activity.id, activity.sync_uid, event.event_id, None,
                    project_activity(activity, self.done_style), event.projection)
        self.state.save_link(self.cfg.name, link)  # no etag: the marker is still to write
        links[activity.id] = link
        crm.setdefault(activity.id, activity)

    def _meetings_elsewhere(self, events: Sequence[RemoteEvent], links: dict[int, SyncPair]
                            ) -> frozenset[str]:
        """UIDs of the foreign events here whose meeting another account already holds."""
        if not self.cfg.import_events:
            return frozenset()
        linked = {link.event_id for link in links.values() if link.event_id}
        uids = {e.ical_uid for e in events
                if e.ical_uid and not e.marker and not e.deleted and e.event_id not in linked}
        if not uids:
            return frozenset()
        holders = self.state.meeting_holders(uids)
        return frozenset(uid for uid, account in holders.items() if account != self.cfg.name)

    def _uid_copies_set_aside(self, events: list[RemoteEvent], linked: dict[str, SyncPair]
                              ) -> list[RemoteEvent]:
        """Quarantine a new foreign event whose UID this account already holds for an
        activity linked to another event that is still there.

        One calendar holds one event per UID (RFC 4791 5.3.2.1); a connector sets aside a
        repeat within one listing, but a copy at a second href that appears in a later
        cycle would otherwise be imported as a second activity.
        """
        fresh = [e for e in events if e.ical_uid and not e.marker and not e.deleted
                 and not e.recurring and e.projection is not None and e.event_id not in linked]
        if not fresh:
            return events
        held = self.state.meeting_activities(self.cfg.name, {e.ical_uid for e in fresh
                                                             if e.ical_uid})
        if not held:
            return events
        holders = self.state.links_touching(self.cfg.name, activity_ids=held.values())
        gone = {e.event_id for e in events if e.deleted}
        holder_of: dict[str, str] = {}
        for uid, activity_id in held.items():
            link = holders.get(activity_id)
            if link is not None and link.event_id and link.event_id not in gone:
                holder_of[uid] = link.event_id
        copies = {e.event_id: holder_of[e.ical_uid] for e in fresh
                  if e.ical_uid in holder_of and holder_of[e.ical_uid] != e.event_id}
        return [RemoteEvent(e.event_id, e.etag, problem=(
                    f"the same UID as {copies[e.event_id]}: one calendar holds one event "
                    "per UID")) if e.event_id in copies else e for e in events]

    def _claim_import(self, plan: PairPlan) -> PairPlan:
        """Claim the meeting an import is made from; skip it if another account has it.

        The planner already skips meetings held elsewhere; this closes the race of two
        accounts importing copies of one meeting in the same moment.
        """
        write = plan.crm_write
        if not isinstance(write, CreateActivity) or write.ical_uid is None:
            return plan
        if self.state.claim_meeting(self.cfg.name, write.ical_uid) == self.cfg.name:
            return plan
        return PairPlan(None, plan.event_id, skip="meeting_elsewhere")

    def _import_uid(self, event_id: str) -> str:
        return uuid.uuid5(IMPORT_NAMESPACE, f"{self.cfg.name}/{event_id}").hex

    # --- guest budget -------------------------------------------------------------------

    def _guest_budget(self, start: datetime | None, count: int) -> int | None:
        if not self.cfg.invite_guests:
            return None
        if start is None or self.now - start >= timedelta(hours=1):
            count = 0
        return max(0, self.cfg.max_guest_updates_per_hour - count)

    def _record_guest_writes(self, start: datetime | None, count: int) -> None:
        sent = self.report.counts.get("guest_emails", 0)
        if not sent:
            return
        if start is None or self.now - start >= timedelta(hours=1):
            start, count = self.now, 0
        self.state.update_account(self.cfg.name, guest_window_start=start,
                                  guest_window_count=count + sent)

    # --- running ------------------------------------------------------------------------

    def _count_plans(self, plans: Sequence[PairPlan]) -> None:
        """What a dry run would do (a real run counts each write as it succeeds)."""
        for plan in plans:
            if plan.skip:
                self.report.counts[f"skipped_{plan.skip}"] += 1
            if plan.quarantine:
                self.report.counts["quarantined"] += 1
            for write in (plan.crm_write, plan.cal_write):
                if write is not None:
                    self.report.counts[_write_name(write)] += 1
            self.report.counts["conflicts"] += len(plan.conflicts)

    def _execute(self, plans: Sequence[PairPlan], policy: AccountPolicy) -> None:
        """Run the plans; pairs that met a stale etag are read and planned again, twice at
        most."""
        for round_ in range(REPLAN_ROUNDS + 1):
            stale = self._execute_round(plans, policy)
            if not stale:
                return
            if round_ == REPLAN_ROUNDS:
                self.failed = True
                return
            # The events changed under us: read them again and plan those pairs anew.
            fresh: list[RemoteEvent] = []
            crm: dict[int, Activity | Tombstone] = {}
            for plan in stale:
                assert plan.event_id is not None and plan.activity_id is not None
                event = self.connector.get(plan.event_id)
                fresh.append(event or RemoteEvent(plan.event_id, deleted=True))
                crm[plan.activity_id] = (self.source.get(plan.activity_id)
                                         or Tombstone(plan.activity_id, plan.marker or ""))
            links = self.state.links_touching(self.cfg.name, activity_ids=crm)
            subset = {a: links[a] for a in crm if a in links}
            plans = plan_account(PlanInput(policy, subset, crm, fresh,
                                           self.state.quarantined(self.cfg.name)))
            self.report.counts["replanned"] += len(plans)

    def _execute_round(self, plans: Sequence[PairPlan], policy: AccountPolicy
                       ) -> list[PairPlan]:
        """Run plans; returns those that met a stale etag or a vanished event."""
        try:
            return self._run_plans(plans, policy)
        finally:
            self._flush()  # whatever finished is recorded, even when the account fails

    def _run_plans(self, plans: Sequence[PairPlan], policy: AccountPolicy) -> list[PairPlan]:
        outgoing: list[Outgoing] = []
        stale: list[PairPlan] = []
        for plan in plans:
            if self._held_by_guest_cap(plan):
                continue
            plan = self._claim_import(plan)
            if plan.skip:
                self.report.counts[f"skipped_{plan.skip}"] += 1
                continue
            if plan.quarantine:
                self.report.counts["quarantined"] += 1
                assert plan.event_id is not None
                self.state.record_failure(self.cfg.name, cal_key(plan.event_id),
                                          plan.item_version, plan.quarantine, immediate=True)
                continue
            try:
                plan, crm_after = self._crm_write(plan, policy)
            except (AuthFailed, AccountCooldown):
                # Account-wide (the CRM's credentials, or a company budget spent until its
                # reset): no other item can be written either. The cycle stops with its
                # cursors where they were; the runner rests the account.
                raise
            except SyncdError as exc:
                if (isinstance(exc, ActivityChanged) and plan.event_id is not None
                        and plan.activity_id is not None):
                    # A read-check-write source saw the activity move since it was read:
                    # nothing was written; read both sides and plan again, as after a 412.
                    self.report.counts["stale_activity"] += 1
                    stale.append(plan)
                    continue
                key = (crm_key(plan.activity_id) if plan.activity_id is not None
                       else cal_key(plan.event_id or ""))
                self._item_failed(key, _version(plan), exc)
                continue
            if plan.crm_write is not None:  # counts say what was done, not what was planned
                self.report.counts[_write_name(plan.crm_write)] += 1
            if plan.cal_write is None:
                self._finish(plan, crm_after, None)
                continue
            outgoing.append((plan, self._op(plan), crm_after))

        self._flush()
        for chunk in _chunks(outgoing, self.connector.capabilities.max_batch):
            if self._past_deadline():
                self.failed = True  # the rest is planned again next cycle
                break
            # Renew the lease before every batch: a long first sync must not let it lapse
            # and another replica start the same account meanwhile.
            if self.token is not None and not self.state.renew_lease(
                self.cfg.name, self.token, LEASE_TTL, max(self.now, datetime.now(UTC))
            ):
                raise LeaseLost(account=self.cfg.name)
            # A batch's intents just before its request: creates a deadline or a rate
            # limit leaves unsent are planned again, not looked up one GET each.
            self._commit_intents(chunk)
            results = self.connector.write([op for _, op, _ in chunk])
            failpoint("after_write_request")
            for (plan, op, crm_after), result in zip(chunk, results, strict=True):
                if self._handle_result(plan, op, crm_after, result):
                    stale.append(plan)
            self._flush()
            if any(isinstance(r.error, RateLimited) for r in results):
                # The provider asked us to slow down: leave the rest for the next cycle.
                self.failed = True
                break
        return stale

    def _past_deadline(self) -> bool:
        if self.deadline is None or time.monotonic() < self.deadline:
            return False
        if not self.report.counts["deadline_reached"]:
            log.warning("account %s: the cycle reached its deadline", self.cfg.name)
        self.report.counts["deadline_reached"] = 1
        return True

    def _held_by_guest_cap(self, plan: PairPlan) -> bool:
        """A pair whose write would send more guest e-mails than the hour has left waits
        for a later cycle (its cursor stays, so it is planned again); the others go on.
        This also covers a merge after a 412 that turned a silent write into a loud one.
        """
        emails = count_guest_emails([plan])
        if self.guest_left is None or not emails:
            return False
        if emails > self.guest_left:
            log.warning("account %s: a write to %d guest(s) waits for the hourly cap",
                        self.cfg.name, emails)
            self.report.counts["held_by_guest_cap"] += 1
            self.failed = True
            return True
        self.guest_left -= emails
        return False

    def _crm_write(self, plan: PairPlan, policy: AccountPolicy
                   ) -> tuple[PairPlan, Activity | None]:
        write = plan.crm_write
        if isinstance(write, UpdateActivity):
            return plan, self._source_write(ApplyChanges(write.activity_id, write.changes))
        if isinstance(write, DeleteActivity):
            self._source_write(RemoveActivity(write.activity_id))
            return plan, None
        if isinstance(write, CreateActivity):
            assert plan.event_id is not None
            uid = self._import_uid(plan.event_id)
            activity = self._source_write(
                ImportActivity(uid, write.owner_id, write.type, write.changes))
            assert activity is not None
            # Pair at once, before the marker write: if that fails the event is still
            # known as this activity's and is never imported a second time. No etag yet:
            # that tells the next cycle the marker still has to be written.
            if write.ical_uid is not None:
                self.state.claim_meeting(self.cfg.name, write.ical_uid, activity.id)
            plan = replace(plan, activity_id=activity.id, marker=uid)
            crm_now = project_activity(activity, policy.done_style)
            self.state.save_link(self.cfg.name, SyncPair(activity.id, uid, plan.event_id,
                                                     None, crm_now, plan.cal_now,
                                                     invited=plan.invited,
                                                     organizer=plan.organizer))
            return replace(plan, crm_now=crm_now), activity
        return plan, None

    def _source_write(self, op: SourceOp) -> Activity | None:
        """One CRM write; its error is raised, so the pair fails as an item."""
        result = self.source.write([op])[0]
        if result.error is not None:
            raise result.error
        return result.activity

    def _op(self, plan: PairPlan) -> WriteOp:
        key = str(plan.activity_id)
        write = plan.cal_write
        if isinstance(write, CreateEvent):
            return CreateOp(key, write.marker, write.generation, write.projection, write.notify,
                            write.retry, write.invited)
        if isinstance(write, UpdateEvent):
            marker = write.marker or plan.marker or ""
            return UpdateOp(key, write.event_id, write.etag, write.projection, write.fields,
                            marker, write.notify, write.invited, write.theirs)
        assert isinstance(write, DeleteEvent)
        return DeleteOp(key, write.event_id, write.etag, write.notify)

    def _commit_intents(self, outgoing: Sequence[Outgoing]) -> None:
        """Record every create before its request leaves (the outbox of failure mode 1)."""
        intents = [
            SyncPair(plan.activity_id, op.marker, None, None, op.projection, None, op.generation,
                 pending=True, invited=op.invited)
            for plan, op, _ in outgoing
            if isinstance(op, CreateOp) and plan.activity_id is not None
        ]
        if intents:
            self.state.record(self.cfg.name, saves=intents)
            failpoint("after_intent_commit")

    def _handle_result(self, plan: PairPlan, op: WriteOp, crm_after: Activity | None,
                       result: WriteResult) -> bool:
        """Apply one write's outcome; True when the pair must be planned again."""
        error = result.error
        if op.notify and error is None:
            self.report.counts["notifying_writes"] += 1
            self.report.counts["guest_emails"] += count_guest_emails([plan])
        if error is None:
            self._finish(plan, crm_after, result.event)
            return False
        key = cal_key(plan.event_id) if plan.event_id else crm_key(plan.activity_id or 0)
        version = plan.etag_now if plan.event_id else _version(plan)
        if isinstance(op, DeleteOp) and isinstance(error, EventGone):
            self._finish(plan, crm_after, None)  # already gone: the goal is met
            return False
        if isinstance(error, Stale) and plan.activity_id is not None and not isinstance(
                op, CreateOp):
            self.report.counts["stale_etag"] += 1
            return True
        if isinstance(error, ItemLevel):
            self.state.record_failure(self.cfg.name, key, version, describe(error, self.cfg),
                                      immediate=True)
            self.report.counts["quarantined"] += 1
            return False
        if isinstance(error, AccountWide):
            raise error
        self._item_failed(key, version, error)
        return False

    def _item_failed(self, key: str, version: str | None, exc: SyncdError) -> None:
        reason = describe(exc, self.cfg)
        given_up = self.state.record_failure(self.cfg.name, key, version, reason)
        self.report.counts["quarantined" if given_up else "failed"] += 1
        if not given_up:
            self.failed = True
        log.warning("account %s: %s failed: %s", self.cfg.name, key, reason)

    def _finish(self, plan: PairPlan, crm_after: Activity | None, event: RemoteEvent | None
                ) -> None:
        """Note the new merge bases once every write of the pair has succeeded.

        Recorded in one transaction per batch by :meth:`_flush`. Until then a create
        stays pending, which a crash turns into a read-before-write, never a duplicate.
        """
        done = self._done
        if plan.cal_write is not None:
            self.report.counts[_write_name(plan.cal_write)] += 1
        self.report.counts["conflicts"] += len(plan.conflicts)
        done.conflicts.extend((plan.activity_id, plan.event_id, c) for c in plan.conflicts)
        if plan.link == "drop" and plan.activity_id is not None:
            done.drops.append(plan.activity_id)
        elif plan.link == "save" and plan.activity_id is not None:
            crm_base = (project_activity(crm_after, self.done_style) if crm_after
                        else plan.crm_now)
            cal_base = (event.projection if event is not None and event.projection is not None
                        else plan.cal_now)
            done.saves.append(SyncPair(
                plan.activity_id, plan.marker or (crm_after.sync_uid if crm_after else ""),
                event.event_id if event is not None else plan.event_id,
                event.etag if event is not None else plan.etag_now,
                crm_base, cal_base, plan.generation, pending=False, invited=plan.invited,
                organizer=plan.organizer))
        if (isinstance(plan.cal_write, CreateEvent) and event is not None and event.ical_uid
                and plan.activity_id is not None):
            # Our event's meeting: attendees' copies of it are never imported elsewhere.
            done.meetings.append((event.ical_uid, plan.activity_id))
        keys = [cal_key(plan.event_id)] if plan.event_id else []
        keys += [crm_key(plan.activity_id)] if plan.activity_id is not None else []
        done.cleared.extend(k for k in keys if k in self.failing)

    def _flush(self) -> None:
        done, self._done = self._done, _Done()
        if done.saves or done.drops or done.conflicts or done.cleared or done.meetings:
            self.state.record(self.cfg.name, saves=done.saves, drops=done.drops,
                              conflicts=done.conflicts, cleared=done.cleared,
                              meetings=done.meetings)
            self.failing.difference_update(done.cleared)


def _echo(event: RemoteEvent, link: SyncPair | None) -> bool:
    """The event is as we last wrote or read it: same etag as its link (typically the
    echo of our own write, listed in the next cycle). Nothing on that side to plan, so
    neither the event nor its activity need be looked at; a CRM change of the pair is
    still planned, against the link's base."""
    return (link is not None and not link.pending and event.etag is not None
            and event.etag == link.etag and not event.deleted and not event.left_window
            and event.problem is None and event.projection is not None)


def _version(plan: PairPlan) -> str | None:
    """What identifies the CRM side's state of a pair: a new edit releases its quarantine."""
    return projection_version(plan.crm_now)


def _write_name(write: object) -> str:
    return {
        UpdateActivity: "activities_updated", CreateActivity: "activities_imported",
        DeleteActivity: "activities_deleted", CreateEvent: "events_created",
        UpdateEvent: "events_updated", DeleteEvent: "events_deleted",
    }[type(write)]


def sync_account(
    cfg: AccountConfig,
    connector: CalendarConnector,
    source: CrmSource,
    state: StateStore,
    **options: object,
) -> CycleReport:
    """Run one cycle for one account and return what it did."""
    return AccountCycle(cfg, connector, source, state, **options).run()  # type: ignore[arg-type]
