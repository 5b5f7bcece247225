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

The README says to use one of the two syncs per calendar; this only keeps a mistake from
multiplying. The price: a second activity identical to a paired one in subject and time,
linked to nothing, is not put in the calendar (``syncd sync -v`` shows it as an echo).
"""

from __future__ import annotations

from collections.abc import Mapping

from syncd.model import Activity, Projection, When
from syncd.pairs import SyncPair

#: What Pipedrive puts between the deal, person, organization and subject of an event title.
TITLE_PARTS = " > "


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
        if any(x is not None for x in (item.deal_id, item.person_id, item.org_id,
                                       item.lead_id)):
            return None
        found = self._paired.get(_key(projection.title, projection.when))
        return found if found != item.id else None
