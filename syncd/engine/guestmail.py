"""Who a calendar write e-mails: the guest-mail policy of docs/guest-mail.md, pure.

Vocabulary, per (activity, calendar) pair:

* G: the activity's guests after the write (none for a delete);
* I: the guests holding an invitation to this event before the write (stored with the
  link; a guest added in the calendar app counts as invited by that app);
* a write NOTIFIES when the provider is asked to e-mail attendees.

Rules:

1. Without ``invite_guests``, or for a meeting someone else organises, nothing is ever
   sent and nobody is invited. Attendees the owner invited in the calendar app still
   hold their invitation (I), and rule 5 keeps syncd's writes from reaching them.
2. A write notifies only when all of these hold: the meeting ends after now (judged at
   its time after the write; for a delete, at its last known time); the write is not
   bookkeeping (the first sync, an activity entering the window, an owner move, a
   re-create, adopting an event, the done mark); it changes something guests see (title,
   time, place, description, guests); and G or I is not empty.
3. A notifying write e-mails each guest once: G minus I an invitation, G and I an update,
   I minus G a cancellation; afterwards I = G.
4. A silent write invites nobody: afterwards I = I & G. Guests not in I are written as
   description text (Google, Graph) or client-scheduled attendees (CalDAV).
5. A provider that cannot write silently to an event with invited attendees (Graph
   always mails; CalDAV attendees stay server-scheduled) is not sent such a write while I
   is not empty: the fields guests see are withheld (they stay in the CRM), a delete is
   withheld (the event stays, and a conflict says why).
6. The done mark is never shown to invited guests: a title change that only adds or
   removes ``done_style = "prefix"``'s mark is withheld while I is not empty.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time
from zoneinfo import ZoneInfo

from syncd.model import DONE_PREFIX, MATERIAL, Projection, When

# MATERIAL (from the field declaration in syncd.model): the fields guests see; a change
# to one of them is worth an e-mail (rule 2).
#: A withheld delete (rule 5).
DELETE = "delete"


@dataclass(frozen=True)
class GuestRules:
    """What the rules need to know of the account and the cycle."""

    invite: bool = False
    now: datetime | None = None  # None: every meeting counts as upcoming
    silent_writes: bool = True
    done_prefix: bool = False


@dataclass(frozen=True)
class Mail:
    """The outcome of the rules for one write."""

    notify: bool = False
    invited: frozenset[str] = frozenset()  # I after the write
    recipients: int = 0  # e-mails the write sends, one per recipient
    withheld: frozenset[str] = frozenset()  # fields (or DELETE) not written


def upcoming(when: When, now: datetime | None) -> bool:
    """Whether the meeting ends after ``now`` (whole days end at midnight in their zone)."""
    if now is None:
        return True
    end = when.end
    if not isinstance(end, datetime):
        assert isinstance(end, date)
        end = datetime.combine(end, time(), ZoneInfo(when.tz))
    return end > now


def _mark_only(before: Projection | None, after: Projection) -> bool:
    """The title differs only by the done mark."""
    if before is None or before.title == after.title:
        return False
    mark = DONE_PREFIX.strip()
    return (before.title.removeprefix(mark).lstrip()
            == after.title.removeprefix(mark).lstrip())


def write_mail(rules: GuestRules, *, invited: frozenset[str], before: Projection | None,
               after: Projection, fields: frozenset[str], bookkeeping: bool = False,
               theirs: bool = False) -> Mail:
    """The rules for a create (``before`` None) or an update of ``fields``.

    ``before`` is the event as the calendar holds it now, ``after`` what is written.
    """
    if theirs:
        return Mail(invited=invited)
    if not rules.invite:
        if invited and not rules.silent_writes:
            return Mail(invited=invited, withheld=fields & MATERIAL)  # rules 1 and 5
        return Mail(invited=invited)
    material = fields & MATERIAL
    mark_only = "title" in material and rules.done_prefix and _mark_only(before, after)
    if mark_only:
        material -= {"title"}
    guests = after.guests
    if (material and not bookkeeping and (guests or invited)
            and upcoming(after.when, rules.now)):
        # rule 6: the mark never reaches the guests this write invites or updates
        withheld = frozenset({"title"}) if mark_only and guests else frozenset()
        return Mail(True, guests, len(guests | invited), withheld)
    if invited and not rules.silent_writes:
        return Mail(invited=invited, withheld=fields & MATERIAL)  # rule 5
    return Mail(invited=invited & guests,
                withheld=frozenset({"title"}) if mark_only and invited & guests else frozenset())


def delete_mail(rules: GuestRules, *, invited: frozenset[str], last: Projection | None,
                bookkeeping: bool = False, theirs: bool = False) -> Mail:
    """The rules for deleting an event last known as ``last``."""
    if theirs or not invited:
        return Mail()
    if not rules.invite:  # rules 1 and 5: never a cancellation, so the event stays
        return Mail() if rules.silent_writes else Mail(invited=invited,
                                                      withheld=frozenset({DELETE}))
    if not bookkeeping and (last is None or upcoming(last.when, rules.now)):
        return Mail(True, frozenset(), len(invited))
    if not rules.silent_writes:
        return Mail(invited=invited, withheld=frozenset({DELETE}))
    return Mail()
