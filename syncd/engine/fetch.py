"""The fetch phase: everything one round of a cycle reads, gathered into a CycleInput.

A round reads, in this order (each step one kind of request, so the bench can count
them per phase):

1. the CRM changes after the CRM cursor, a page at a time (a first sync takes a slice);
2. in the first round only: the activities that time carried into the window, the
   calendar changes after the calendar cursor (an expired cursor means a full listing,
   reconciled by id and marker, never a deletion), and the items an admin released
   with ``syncd quarantine retry``;
3. the links of what changed, then :mod:`syncd.engine.settle`: echoes of our own
   writes dropped, pending creates settled, imports relinked, the activities behind
   touched events loaded.

The result, :class:`CycleInput`, is everything the pure planner needs plus what the
guards and the counts need to know about the listing.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, time

from connectors.base import CalendarConnector, ChangeSet, RemoteEvent, Window
from syncd.crm.source import CrmSource
from syncd.engine.echo import may_be_echo
from syncd.engine.plan import PlanInput, PlanPolicy
from syncd.engine.policy import AccountPolicy
from syncd.engine.settle import Settler
from syncd.errors import CursorExpired
from syncd.model import Activity, Projection, Tombstone
from syncd.store.state import StateStore

log = logging.getLogger("syncd.engine")

CRM_PAGE = 1000  # change rows per read of the CRM feed

Crm = dict[int, Activity | Tombstone]


@dataclass
class Slice:
    """What one round read: CRM changes (with the cursor after them) and, in the first
    round, the calendar's changes; later rounds carry an empty change set."""

    crm: Crm
    crm_cursor: str | None
    more: bool  # the CRM feed has more after this slice
    changes: ChangeSet
    entries: set[int] = field(default_factory=set)  # activities that entered the window


@dataclass(frozen=True)
class CycleInput:
    """One round's input: the planner's, and what the guards judge the listing by."""

    plan: PlanInput
    crm_changes: int
    calendar_changes: int
    outside: int  # events the listing left out as outside the window
    full_listing_empty: bool  # a full listing that found nothing at all


def _overlaps(base: Projection | None, window: Window) -> bool:
    """Whether a pair's last synced time span lies in the window (unknown: it may)."""
    if base is None:
        return True
    start, end = base.when.start, base.when.end
    if not isinstance(start, datetime):
        start = datetime.combine(start, time.min, tzinfo=UTC)
        end = datetime.combine(end, time.min, tzinfo=UTC)
    return start < window.end and end > window.start


class Fetcher:
    """Reads one account's CRM source, calendar and state for a cycle.

    Keeps what the reads of a whole cycle share: activities handed over by another
    owner, and the retried keys that a clean cycle clears at the end.
    """

    def __init__(self, policy: AccountPolicy, connector: CalendarConnector, source: CrmSource,
                 state: StateStore, counts: Counter[str], *, dry_run: bool = False,
                 token: int | None = None, force_delete: bool = False) -> None:
        self.policy = policy
        self.force_delete = force_delete  # the admin let deletions through the guards
        self.connector = connector
        self.source = source
        self.state = state
        self.counts = counts
        self.handed_over: set[int] = set()  # activities another owner handed to this one
        self.retried: list[str] = []  # items an admin released, tried again this cycle
        # the write log's last create the calendar listing covered (confirm_created): the
        # cursor committed with it leaves only later creates to look for
        self.listed_upto: int | None = None
        # The quarantine as the first round read it (one query for both the retried and
        # the given-up items); later rounds read what is given up afresh.
        self._quarantined: dict[str, str | None] | None = None
        self.settler = Settler(policy, connector, source, state, counts, dry_run=dry_run,
                               token=token)

    # --- reading ------------------------------------------------------------------------

    def read_slice(self, crm_cursor: str | None, owner_id: int, limit: int | None, *,
                   calendar_cursor: str | None, first: bool, window: Window,
                   window_end: datetime | None, unlisted_from: int | None = None) -> Slice:
        """Read one round: a slice of CRM changes and, when ``first``, the calendar's
        (``unlisted_from``: the account's first create no committed listing showed)."""
        crm, cursor, more = self.read_crm(crm_cursor, owner_id, limit)
        if not first:
            return Slice(crm, cursor, more, ChangeSet((), calendar_cursor, full=False))
        entries = self.window_entries(window_end, window, owner_id, crm)
        held = self.state.held_items(self.policy.name)
        self._quarantined = held.quarantined
        changes = self.confirm_created(self.read_calendar(calendar_cursor, window),
                                       unlisted_from)
        changes = self.with_retries(changes, crm, held.retry)
        return Slice(crm, cursor, more, changes, entries)

    def read_crm(self, cursor: str | None, owner_id: int, limit: int | None = None
                 ) -> tuple[Crm, str | None, bool]:
        """The CRM changes after ``cursor``: all of them, or whole pages up to ``limit``
        items; with the cursor after them and whether more are left."""
        items: Crm = {}
        page_size = CRM_PAGE if limit is None else min(CRM_PAGE, limit)
        while True:
            page = self.source.changes(cursor, owner_id=owner_id, limit=page_size)
            for item in page.items:
                items[item.id] = item
            self.handed_over.update(page.handed_over)
            cursor = page.cursor
            if not page.more or (limit is not None and len(items) >= limit):
                return items, cursor, page.more

    def window_entries(self, window_end: datetime | None, window: Window, owner_id: int,
                       crm: Crm) -> set[int]:
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

    def read_calendar(self, cursor: str | None, window: Window) -> ChangeSet:
        try:
            if cursor is None:
                # No cursor yet: the first sync, maybe resumed after an earlier cycle left
                # it half done (its cursor is committed only at its end) with pairs made
                # whose events a user may have deleted since.
                return self.confirm_gone(self.connector.changes(None), window)
            return self.connector.changes(cursor)
        except CursorExpired:
            log.info("account %s: calendar cursor expired; listing the window",
                     self.policy.name)
            self.counts["full_resync"] += 1
            return self.confirm_gone(self.connector.changes(None), window)

    def confirm_gone(self, listing: ChangeSet, window: Window) -> ChangeSet:
        """After a full listing (an expired cursor, or a first sync resumed after a cycle
        that left it half done): ask for each paired event the listing left out.

        A deletion made before the cursor expired (or before the first sync kept one) is
        in no change feed, and absence from a listing is no delete signal: such a pair
        would keep its activity and never get an event again. So each in-window pair
        whose event is not listed is read by id; the calendar saying it does not exist
        (or was deleted) is an explicit signal, passed on like a deletion in a change
        feed. An empty listing is left to the guards (a wiped or wrong calendar: nothing
        is read by id for it) unless the admin forces deletions through them; an event
        that is still there stays untouched. No pairs (a first sync's start): no query.
        """
        if not listing.events and not self.force_delete:
            return listing
        listed = {e.event_id for e in listing.events}
        gone = [RemoteEvent(link.event_id, deleted=True)
                for link in self.state.links(self.policy.name).values()
                if link.event_id is not None and not link.pending
                and link.event_id not in listed and _overlaps(link.cal_base, window)
                and self.connector.get(link.event_id) is None]
        if not gone:
            return listing
        self.counts["confirmed_gone"] += len(gone)
        return replace(listing, events=[*listing.events, *gone])

    def confirm_created(self, changes: ChangeSet, since: int | None) -> ChangeSet:
        """Read by id each event we created after the listing behind the cursor (write
        log id ``since`` on) that this listing leaves out; one that is gone is passed on
        like a deletion in a change feed.

        The cursor a cycle commits is its listing's token, taken before its own writes,
        so the next listing runs from before our creates. A server that lists changes as
        the difference of two snapshots (Xandikos: two git trees) never names an event
        created and deleted between them: its pair would keep the activity for good. Other
        servers list such an event as removed, and a listing names every create it
        covers, so reads by id happen only for the ones it leaves out. A full listing
        needs none: :meth:`confirm_gone` reads the pairs it leaves out. Either way the
        creates looked for are covered once the cursor is committed (``listed_upto``).
        """
        if since is None:
            return changes
        created = self.state.unlisted_creates(self.policy.name, since)
        self.listed_upto = max((write_id for write_id, _ in created), default=since)
        listed = {e.event_id for e in changes.events}
        unlisted = {event_id for _, event_id in created if event_id not in listed}
        if changes.full or not unlisted:
            return changes
        # Only pairs that still hold the event: one dropped or re-created since is done.
        links = self.state.links_touching(self.policy.name, event_ids=unlisted)
        paired = sorted(link.event_id for link in links.values()
                        if link.event_id is not None and link.event_id in unlisted
                        and not link.pending)
        gone = [RemoteEvent(event_id, deleted=True) for event_id in paired
                if self.connector.get(event_id) is None]
        if not gone:
            return changes
        self.counts["confirmed_gone"] += len(gone)
        return replace(changes, events=[*changes.events, *gone])

    def with_retries(self, changes: ChangeSet, crm: Crm, keys: list[str]) -> ChangeSet:
        """Add the items released by ``syncd quarantine retry`` (``keys``) to this
        cycle's changes.

        Their cursors moved on long ago, so they are read again: the event by id, and the
        activity of the pair (or the one whose create failed). Purged activities and
        events that are gone have nothing left to retry.
        """
        if not keys:
            return changes
        self.retried = keys
        self.counts["retried"] += len(keys)
        event_ids = {k.removeprefix("calendar:") for k in keys if k.startswith("calendar:")}
        activity_ids = {int(k[4:]) for k in keys if k.startswith("crm:") and k[4:].isdigit()}
        links = self.state.links_touching(self.policy.name, event_ids=event_ids)
        activity_ids |= {link.activity_id for link in links.values()
                         if link.event_id in event_ids}
        crm.update(self.source.get_many(sorted(activity_ids - crm.keys())))
        listed = {e.event_id for e in changes.events}
        fresh = [event for event_id in sorted(event_ids - listed)
                 if (event := self.connector.get(event_id)) is not None]
        return replace(changes, events=[*changes.events, *fresh]) if fresh else changes

    # --- the round's input --------------------------------------------------------------

    def cycle_input(self, plan_policy: PlanPolicy, read: Slice) -> CycleInput:
        """Load the links of what changed and settle them into the planner's input."""
        changes, crm = read.changes, read.crm
        name = self.policy.name
        # Only the links of what changed (and pending creates): a full listing never
        # reads a missing event as a deletion, so untouched pairs need no link loaded.
        links = self.state.links_touching(
            name, activity_ids=crm, event_ids=[e.event_id for e in changes.events],
            markers=[e.marker for e in changes.events if e.marker])
        events = self.settler.settle(changes.events, links, crm)
        # A copy from another sync of this calendar comes later than what it copies (not
        # in the first sync, whose slices would each read every pair made so far).
        everything = self.state.links(name) if not plan_policy.backfill and may_be_echo(
            crm, events, links, importing=plan_policy.import_events) else None
        quarantined, self._quarantined = self._quarantined, None
        if quarantined is None:
            quarantined = self.state.quarantined(name)
        plan_input = PlanInput(plan_policy, links, crm, events, quarantined,
                               frozenset(read.entries),
                               self.settler.meetings_elsewhere(events, links),
                               frozenset(self.handed_over), all_links=everything,
                               unsettled=frozenset(self.settler.unsettled))
        # (the deletions confirmed by id are no live event: still "empty" for the guard)
        return CycleInput(plan_input, len(crm), len(changes.events), changes.outside,
                          changes.full and all(e.deleted for e in changes.events))
