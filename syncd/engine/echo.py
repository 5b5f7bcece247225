"""Echoes of another two-way sync on the same calendar (Pipedrive's own calendar sync).

Pipedrive's built-in calendar sync (per user, Google or Microsoft calendars) writes each
activity it syncs as an event and, two-way, each event of the calendar as an activity,
and marks neither in a way the API shows. Run on a calendar syncd syncs too, each copies
the other's items, and then the copies of the copies: a loop that grows every cycle. The
planner breaks it by treating as an *echo*, skipped with reason ``echo`` (``syncd sync``
counts them as ``skipped_echo``; nothing is deleted on either side):

* a calendar event without syncd's marker that shows an activity already paired in this
  calendar (never imported): its title is the activity's subject, or ends with
  ``" > " + subject`` (the *deal > person > organization > subject* form Pipedrive titles
  its events with), and it has the same start and end;
* a new activity with no deal, person, organization or lead that shows a paired event
  (never sent to the calendar): the same title, start and end as that pair.

A cycle loads only the pairs of what changed, but a copy usually comes in a later cycle
than what it copies: when something new could be an echo (:func:`may_be_echo`), the
cycle loads every pair of the account for this check (not in an account's first sync:
there are no pairs to copy yet, so Pipedrive's events already in the calendar are imported
once, with ``import_events``, and paired; their later copies are echoes).

The README says to use one of the two syncs per calendar; this only keeps a mistake from
multiplying. The price: a second activity identical to a paired one in subject and time,
linked to nothing, is not put in the calendar (``syncd sync -v`` shows it as an echo).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from connectors.base import RemoteEvent
from syncd.model import Activity, Projection, Tombstone, When
from syncd.pairs import SyncPair

#: What Pipedrive puts between the deal, person, organization and subject of an event title.
TITLE_PARTS = " > "


def _standalone(item: Activity) -> bool:
    return all(x is None for x in (item.deal_id, item.person_id, item.org_id, item.lead_id))


def may_be_echo(crm: Mapping[int, Activity | Tombstone], events: Iterable[RemoteEvent],
                links: Mapping[int, SyncPair], *, importing: bool) -> bool:
    """Whether anything read could be an echo: an activity not paired yet and linked to
    nothing, or (when events are imported) an event without syncd's marker."""
    if any(isinstance(item, Activity) and not item.deleted and _standalone(item)
           and activity_id not in links for activity_id, item in crm.items()):
        return True
    return importing and any(not e.marker and not e.deleted and e.projection is not None
                             for e in events)


def _key(title: str, when: When) -> tuple[str, When]:
    return title.strip().casefold(), when


class Echoes:
    """The paired items of one account, by title and time, to recognise copies of them."""

    def __init__(self, links: Mapping[int, SyncPair]) -> None:
        self._paired: dict[tuple[str, When], int] = {}
        for link in links.values():
            for base in (link.crm_base, link.cal_base):
                if base is not None and base.title.strip():
                    self._paired.setdefault(_key(base.title, base.when), link.activity_id)

    def of_event(self, projection: Projection) -> int | None:
        """The paired activity an unmarked event copies, if any."""
        found = self._paired.get(_key(projection.title, projection.when))
        if found is None and TITLE_PARTS in projection.title:
            subject = projection.title.rsplit(TITLE_PARTS, 1)[1]
            found = self._paired.get(_key(subject, projection.when))
        return found

    def of_activity(self, item: Activity, projection: Projection) -> int | None:
        """The paired activity a new, unlinked ``item`` copies, if any (never itself)."""
        if not _standalone(item):
            return None
        found = self._paired.get(_key(projection.title, projection.when))
        return found if found != item.id else None
