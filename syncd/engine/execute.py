"""The executor: runs a cycle's pair plans and returns one result per pair.

Per pair, in this order: the hourly guest e-mail cap (a pair that would pass what is
left of the hour waits), the daily deletion budget (a deletion it holds waits), the
meeting claim of an import, the CRM write (its error fails
only that pair), then the calendar write in batches of the connector's ``max_batch``.
Before each batch the lease is renewed and the batch's create intents are committed
(the outbox of failure mode 1). A pair that met a stale etag, or whose activity moved
under a read-check-write CRM source, is read again and planned anew,
:data:`REPLAN_ROUNDS` times at most. A rate limit or the cycle's deadline leaves the
rest for the next cycle. Account-wide errors and a lost lease are raised; whatever
finished before them is recorded first.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from connectors.base import (
    CalendarConnector,
    CreateOp,
    DeleteOp,
    RemoteEvent,
    UpdateOp,
    WriteOp,
    WriteResult,
)
from syncd.crm.source import CrmSource
from syncd.engine.actions import PairPlan
from syncd.engine.guards import count_deletions, count_guest_emails
from syncd.engine.outcome import PairResult, PairStatus, tally
from syncd.engine.plan import PlanInput, PlanPolicy, cal_key, crm_key
from syncd.engine.planning import sent_fields
from syncd.engine.record import Bookkeeper
from syncd.engine.writes import CrmWriter, calendar_op
from syncd.errors import (
    AccountCooldown,
    AccountWide,
    ActivityChanged,
    AuthFailed,
    EventGone,
    ItemLevel,
    LeaseLost,
    RateLimited,
    Stale,
    SyncdError,
)
from syncd.failpoints import failpoint
from syncd.model import Activity, Tombstone, projection_version
from syncd.pairs import SyncPair
from syncd.store.state import StateStore

log = logging.getLogger("syncd.engine")

#: How long a cycle's lease lasts unless renewed (``[syncd] lease_seconds`` sets it).
LEASE_TTL = timedelta(minutes=10)
REPLAN_ROUNDS = 2

Outgoing = tuple[PairPlan, WriteOp, Activity | None]  # plan, its write, the CRM result
Planner = Callable[[PlanInput], list[PairPlan]]
#: Words an item's error for its quarantine record (the service passes syncd.report's).
Wording = Callable[[BaseException], str]


@dataclass
class Lease:
    """The account's lease as a cycle holds it: renewed for ``ttl`` before every batch."""

    account: str
    token: int | None
    now: datetime
    ttl: timedelta = LEASE_TTL


def _chunks(items: Sequence[Outgoing], size: int) -> Iterator[Sequence[Outgoing]]:
    for i in range(0, len(items), max(1, size)):
        yield items[i:i + size]


def _version(plan: PairPlan) -> str | None:
    """What identifies the CRM side's state of a pair: a new edit releases its quarantine."""
    return projection_version(plan.crm_now)


class Executor:
    """Runs one account's plans; see the module doc for the order of things."""

    def __init__(self, lease: Lease, connector: CalendarConnector, source: CrmSource,
                 state: StateStore, books: Bookkeeper, counts: Counter[str], *,
                 planner: Planner, wording: Wording, past_deadline: Callable[[], bool],
                 guest_left: int | None) -> None:
        self.lease = lease
        self.account = lease.account
        self.connector = connector
        self.source = source
        self.state = state
        self.books = books
        self.counts = counts
        self.planner = planner
        self.wording = wording
        self.past_deadline = past_deadline
        self.writer = CrmWriter(self.account, source, state, token=lease.token)
        self.guest_left = guest_left  # e-mails the hour has left (None: invites nobody)
        self.failed = False  # something must be retried: cursors stay put
        # the daily deletion budget holds this round's deletions (guards.deletion_hold)
        self.hold_deletions = False
        # this run's results only: a cycle's slices are run one at a time, and keeping
        # every slice's plans would make a first sync's memory grow with the account
        self.results: list[PairResult] = []

    def run(self, plans: Sequence[PairPlan], policy: PlanPolicy) -> list[PairResult]:
        """Run the plans; pairs that met a stale etag are read and planned again, twice at
        most. Returns every pair's result, replanned pairs once per round."""
        self.results = []
        for round_ in range(REPLAN_ROUNDS + 1):
            stale = self._round(plans, policy)
            if not stale:
                break
            if round_ == REPLAN_ROUNDS:
                self.failed = True
                break
            plans = self._replan(stale, policy)
            self.counts["replanned"] += len(plans)
        return self.results

    def _replan(self, stale: Sequence[PairPlan], policy: PlanPolicy) -> list[PairPlan]:
        """The events changed under us: read them again and plan those pairs anew."""
        fresh: list[RemoteEvent] = []
        crm: dict[int, Activity | Tombstone] = {}
        for plan in stale:
            assert plan.event_id is not None and plan.activity_id is not None
            event = self.connector.get(plan.event_id)
            fresh.append(event or RemoteEvent(plan.event_id, deleted=True))
            crm[plan.activity_id] = (self.source.get(plan.activity_id)
                                     or Tombstone(plan.activity_id, plan.marker or ""))
        links = self.state.links_touching(self.account, activity_ids=crm)
        subset = {a: links[a] for a in crm if a in links}
        return self.planner(PlanInput(policy, subset, crm, fresh,
                                      self.state.quarantined(self.account)))

    def _note(self, result: PairResult) -> PairResult:
        self.results.append(result)
        tally(self.counts, result)
        return result

    def _round(self, plans: Sequence[PairPlan], policy: PlanPolicy) -> list[PairPlan]:
        """Run plans; returns those that met a stale etag or a vanished event."""
        try:
            return self._run(plans, policy)
        finally:
            self.books.flush()  # whatever finished is recorded, even when the account fails

    def _run(self, plans: Sequence[PairPlan], policy: PlanPolicy) -> list[PairPlan]:
        outgoing: list[Outgoing] = []
        stale: list[PairPlan] = []
        try:
            for plan in plans:
                self._before_calendar(plan, policy, outgoing, stale)
        except BaseException:
            self._unsent(outgoing)  # their CRM writes were made: they count
            raise
        self.books.flush()
        return stale + self._send(outgoing)

    def _before_calendar(self, plan: PairPlan, policy: PlanPolicy, outgoing: list[Outgoing],
                         stale: list[PairPlan]) -> None:
        """One pair's steps up to its calendar write, which goes to ``outgoing``; a pair
        whose activity moved under a read-check-write source goes to ``stale``."""
        if self._held_by_guest_cap(plan):
            self._note(PairResult(plan, PairStatus.HELD))
            return
        if self.hold_deletions and count_deletions([plan]):
            # The pair keeps its state and its cursor stays: planned again each cycle,
            # and done once an admin lets deletions through.
            self.failed = True
            self._note(PairResult(plan, PairStatus.DELETION_HELD))
            return
        plan = self.writer.claim_import(plan)
        if plan.skip:
            self._note(PairResult(plan, PairStatus.SKIPPED))
            return
        if plan.quarantine:
            assert plan.event_id is not None
            self.state.record_failure(self.account, cal_key(plan.event_id),
                                      plan.item_version, plan.quarantine, immediate=True,
                                      token=self.lease.token)
            self._note(PairResult(plan, PairStatus.QUARANTINED))
            return
        # A write settles a conflict by overwriting the losing value: the conflict is on
        # record first, so a crash right after the write cannot lose that value unseen.
        self.books.keep_conflicts(plan)
        try:
            plan, crm_after = self.writer.write(plan, policy)
        except (AuthFailed, AccountCooldown, LeaseLost):
            # Account-wide (the CRM's credentials, or a company budget spent until its
            # reset; or another replica took the account, refusing the link of the write
            # just made): no other item can be written either. The cycle stops with its
            # cursors where they were; the account rests, or goes on elsewhere.
            raise
        except SyncdError as exc:
            if (isinstance(exc, ActivityChanged) and plan.event_id is not None
                    and plan.activity_id is not None):
                # A read-check-write source saw the activity move since it was read:
                # nothing was written; read both sides and plan again, as after a 412.
                self._note(PairResult(plan, PairStatus.STALE_ACTIVITY, error=exc))
                stale.append(plan)
                return
            key = (crm_key(plan.activity_id) if plan.activity_id is not None
                   else cal_key(plan.event_id or ""))
            self._note(PairResult(plan, self._item_failed(key, _version(plan), exc),
                                  error=exc))
            return
        if plan.cal_write is None:
            self.books.finish(plan, crm_after, None)
            self._note(PairResult(plan, PairStatus.DONE, plan.crm_write is not None))
            return
        outgoing.append((plan, calendar_op(plan), crm_after))

    def _unsent(self, outgoing: Sequence[Outgoing]) -> None:
        for plan, _, _ in outgoing:
            self._note(PairResult(plan, PairStatus.UNSENT, plan.crm_write is not None))

    def _send(self, outgoing: Sequence[Outgoing]) -> list[PairPlan]:
        """The calendar writes, a batch at a time; returns the pairs that met a stale
        etag. Pairs left unsent (deadline, rate limit, an account-wide error) get an
        UNSENT result, so their CRM writes still count."""
        stale: list[PairPlan] = []
        handled = 0
        try:
            for chunk in _chunks(outgoing, self.connector.capabilities.max_batch):
                if self.past_deadline():
                    self.failed = True  # the rest is planned again next cycle
                    break
                # Renew the lease before every batch: a long first sync must not let it
                # lapse and another replica start the same account meanwhile.
                lease = self.lease
                if lease.token is not None and not self.state.renew_lease(
                        self.account, lease.token, lease.ttl,
                        max(lease.now, datetime.now(UTC))):
                    raise LeaseLost(account=self.account)
                # A batch's intents just before its request: creates a deadline or a rate
                # limit leaves unsent are planned again, not looked up one GET each.
                self._commit_intents(chunk)
                results = self.connector.write([op for _, op, _ in chunk])
                failpoint("after_write_request")
                for (plan, op, crm_after), result in zip(chunk, results, strict=True):
                    done = self._handle_result(plan, op, crm_after, result)
                    handled += 1
                    if done.status == PairStatus.STALE:
                        stale.append(plan)
                self.books.flush()
                if any(isinstance(r.error, RateLimited) for r in results):
                    # The provider asked us to slow down: leave the rest for the next cycle.
                    self.failed = True
                    break
        finally:
            self._unsent(outgoing[handled:])
        return stale

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
                        self.account, emails)
            self.failed = True
            return True
        self.guest_left -= emails
        return False

    def _commit_intents(self, outgoing: Sequence[Outgoing]) -> None:
        """Record every create before its request leaves (the outbox of failure mode 1),
        and what every update sends.

        An update applied whose outcome the cycle did not live to record would otherwise
        read, next cycle, as the user's edit of the event (its etag moved, its fields left
        the base): an edit the CRM made since, back to the base's value, would be
        overwritten by our own write (the planner's :func:`~syncd.engine.planning.landed`).
        """
        intents = [
            SyncPair(plan.activity_id, op.marker, None, None, op.projection, None, op.generation,
                 pending=True, invited=op.invited)
            for plan, op, _ in outgoing
            if isinstance(op, CreateOp) and plan.activity_id is not None
        ]
        sent = [(plan.activity_id, sent_fields(op)) for plan, op, _ in outgoing
                if isinstance(op, UpdateOp) and op.fields and plan.activity_id is not None]
        if intents or sent:
            self.state.record(self.account, saves=intents, sent=sent, token=self.lease.token)
            failpoint("after_intent_commit")

    def _handle_result(self, plan: PairPlan, op: WriteOp, crm_after: Activity | None,
                       result: WriteResult) -> PairResult:
        """Apply one calendar write's outcome to its pair."""
        error = result.error
        crm_written = plan.crm_write is not None
        if error is None:
            self.books.wrote(op, result.event)
            self.books.finish(plan, crm_after, result.event)
            return self._note(PairResult(plan, PairStatus.DONE, crm_written, op.notify))
        key = cal_key(plan.event_id) if plan.event_id else crm_key(plan.activity_id or 0)
        version = plan.etag_now if plan.event_id else _version(plan)
        status: PairStatus | None = None
        if isinstance(op, DeleteOp) and isinstance(error, EventGone):
            self.books.finish(plan, crm_after, None)  # already gone: the goal is met
            status = PairStatus.DONE
        elif isinstance(error, Stale) and plan.activity_id is not None and not isinstance(
                op, CreateOp):
            status = PairStatus.STALE
        elif isinstance(error, ItemLevel):
            self.state.record_failure(self.account, key, version, self.wording(error),
                                      immediate=True, token=self.lease.token)
            status = PairStatus.QUARANTINED
        elif isinstance(error, AccountWide):
            raise error
        else:
            status = self._item_failed(key, version, error)
        return self._note(PairResult(plan, status, crm_written, error=error))

    def _item_failed(self, key: str, version: str | None, exc: BaseException) -> PairStatus:
        reason = self.wording(exc)
        given_up = self.state.record_failure(self.account, key, version, reason,
                                             token=self.lease.token)
        if not given_up:
            self.failed = True
        log.warning("account %s: %s failed: %s", self.account, key, reason)
        return PairStatus.QUARANTINED if given_up else PairStatus.FAILED
