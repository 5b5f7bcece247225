"""Settling what the calendar listed before it is planned.

Between reading and planning, the listed events are checked against what syncd already
knows (the links, the meetings it holds, its own pending creates):

* an event exactly as we last wrote or read it (the echo of our own write) is dropped;
* a second copy of a meeting this account already holds is set aside, not imported;
* a create whose answer never arrived is looked up (read before writing again); when
  the lookup fails for now, that create stays pending and unplanned until the next cycle
  (:attr:`Settler.unsettled`), and the account's other pairs go on;
* an event imported before a crash cut its link is linked again, never re-imported;
* the activities behind every touched event are loaded as they are now.
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Sequence

from connectors.base import CalendarConnector, RemoteEvent
from syncd.crm.source import CrmSource
from syncd.engine.policy import AccountPolicy
from syncd.errors import Retriable
from syncd.model import Activity, Tombstone, project_activity
from syncd.pairs import SyncPair
from syncd.store.state import StateStore

#: Namespace of the sync_uid given to activities imported from a calendar: derived from
#: (account, event id), so a crash between the import and its link cannot import twice.
IMPORT_NAMESPACE = uuid.UUID("8f0c7e52-5a43-4a47-9d8e-2f3c1b7a6e10")

Crm = dict[int, Activity | Tombstone]


def import_uid(account: str, event_id: str) -> str:
    """The sync_uid of the activity imported from ``event_id`` in ``account``."""
    return uuid.uuid5(IMPORT_NAMESPACE, f"{account}/{event_id}").hex


def is_echo(event: RemoteEvent, link: SyncPair | None) -> bool:
    """The event is as we last wrote or read it: same etag as its link (typically the
    echo of our own write, listed in the next cycle). Nothing on that side to plan, so
    neither the event nor its activity need be looked at; a CRM change of the pair is
    still planned, against the link's base."""
    return (link is not None and not link.pending and event.etag is not None
            and event.etag == link.etag and not event.deleted and not event.left_window
            and event.problem is None and event.projection is not None)


class Settler:
    """Settles one account's listed events against its links (see the module doc)."""

    def __init__(self, policy: AccountPolicy, connector: CalendarConnector, source: CrmSource,
                 state: StateStore, counts: Counter[str], *, dry_run: bool = False,
                 token: int | None = None) -> None:
        self.policy = policy
        self.token = token  # the cycle's lease: the links it saves are fenced by it
        self.connector = connector
        self.source = source
        self.state = state
        self.counts = counts
        self.dry_run = dry_run
        #: Activities whose pending create could not be looked up this round.
        self.unsettled: set[int] = set()

    def settle(self, listed: Sequence[RemoteEvent], links: dict[int, SyncPair], crm: Crm
               ) -> list[RemoteEvent]:
        """The events to plan; ``links`` and ``crm`` gain what settling found."""
        linked = {link.event_id: link for link in links.values() if link.event_id}
        events = [e for e in listed if not is_echo(e, linked.get(e.event_id))]
        events = self.uid_copies_set_aside(events, linked)
        events += self.settle_pending(links)
        self.load_related(events, links, crm)
        return events

    def settle_pending(self, links: dict[int, SyncPair]) -> list[RemoteEvent]:
        """Creates whose outcome is unknown: find what reached the server."""
        found = []
        self.unsettled = set()
        for link in links.values():
            if link.pending:
                try:
                    event = self.connector.find(link.sync_uid, link.generation)
                except Retriable:
                    # Neither found nor known absent: writing again could duplicate it.
                    self.unsettled.add(link.activity_id)
                    self.counts["unsettled_creates"] += 1
                    continue
                if event is not None:
                    found.append(event)
                    self.counts["recovered_creates"] += 1
        return found

    def load_related(self, events: Sequence[RemoteEvent], links: dict[int, SyncPair], crm: Crm
                     ) -> None:
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
            elif self.policy.import_events and not event.deleted:
                self.relink_import(event, links, crm)
        wanted -= crm.keys()
        found = self.source.get_many(sorted(wanted)) if wanted else {}
        for activity_id in wanted:
            crm[activity_id] = found.get(activity_id) or Tombstone(
                activity_id, next(lk.sync_uid for lk in links.values()
                                  if lk.activity_id == activity_id))

    def relink_import(self, event: RemoteEvent, links: dict[int, SyncPair], crm: Crm) -> None:
        """An event imported before a crash cut its link: link it again, never re-import.

        Both bases are the activity, the copy the import made of the event: what the
        event holds now may be the user's edit made since (the crash's window), and as a
        base it would read as already in the CRM, never to come back. So where the event
        and the activity differ, the event's value goes to the CRM."""
        activity = self.source.find(import_uid(self.policy.name, event.event_id))
        if activity is None or self.dry_run:
            return
        made = project_activity(activity, self.policy.done_style)
        link = SyncPair(activity.id, activity.sync_uid, event.event_id, None, made, made)
        self.state.save_link(self.policy.name, link, self.token)  # no etag: marker to write
        links[activity.id] = link
        crm.setdefault(activity.id, activity)

    def meetings_elsewhere(self, events: Sequence[RemoteEvent], links: dict[int, SyncPair]
                           ) -> frozenset[str]:
        """UIDs of the foreign events here whose meeting another account already holds."""
        if not self.policy.import_events:
            return frozenset()
        linked = {link.event_id for link in links.values() if link.event_id}
        uids = {e.ical_uid for e in events
                if e.ical_uid and not e.marker and not e.deleted and e.event_id not in linked}
        if not uids:
            return frozenset()
        holders = self.state.meeting_holders(uids)
        return frozenset(uid for uid, account in holders.items()
                         if account != self.policy.name)

    def uid_copies_set_aside(self, events: list[RemoteEvent], linked: dict[str, SyncPair]
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
        held = self.state.meeting_activities(self.policy.name,
                                             {e.ical_uid for e in fresh if e.ical_uid})
        if not held:
            return events
        holders = self.state.links_touching(self.policy.name, activity_ids=held.values())
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
