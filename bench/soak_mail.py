"""The soak's e-mail oracle (``python -m bench.soak --invite``): what each guest should get.

With ``invite_guests = true`` every e-mail a provider sends must be one that
docs/guest-mail.md's table calls for. This oracle reads the driver's own record (the
:class:`~bench.soak_model.Model`'s history of actions, in order, and the :class:`Cycle`
list: where each ``syncd sync`` child started in that order and in the provider's mail
log, and which accounts it ended "ok") and the provider's mail log (kind, recipient,
event, organizer, subject, in order). It never reads syncd's state.

Mails are told apart by the item tag at the head of their subject (the meeting's title),
by organizer (the calendar) and by recipient. A guest *holds an invitation* to an item in
a calendar from their first mail of an event of it (Google and Graph mail an attendee
first when they join an event: that mail is the invitation) until a cancellation, the
user deleting the event in the calendar, or the item moving to another owner (syncd
then describes the guests in the new calendar; the policy's "Owner moves").

**Unexpected** (each mail counted once, under the first promise it breaks):

* ``not_guest``: the mail is about no item, or to somebody who was never a guest of the
  item (in the CRM, up to the cycle that sent it);
* ``past``: the item's meeting ended before the run (a backfill: nothing is ever sent);
* ``duplicate_invitation``: an invitation to a guest who already holds one to the item
  in that calendar: a second event, or a guest dropped and added back, after a kill or
  a lost answer;
* ``uncaused``: no CRM change that the table says mails is pending for the item: the first
  sync, a calendar-side edit, a done flag, an owner move, a calendar delete, or a change
  whose mail already went out;
* ``twice_in_cycle``: a second mail to one guest about one item in one cycle.

A CRM change *mails* when it is a create after the first sync, a write of a field guests
see (title, time, place, description, guests) or a delete, on an upcoming meeting. It is
*pending* from the driver's change until a cycle that ends "ok" for every account the
item belonged to since the change (a killed cycle ends nothing).

**Missing** (at the end, for items still upcoming):

* ``invitation``: a guest of the item at the end who holds no invitation to it in its
  owner's calendar, although it was owed: the item was created after the first sync and
  stayed in place, or the CRM value it ends with in a field guests see was written after
  the item's event was confirmed in that calendar (a cycle ended ok for the owner after
  its create or last move);
* ``cancellation``: a guest who still holds an invitation to an item that the CRM deleted,
  or that no longer has them as a guest.

**What is not decidable, and the bound checked instead.** Updates are not counted
exactly: an update whose write's answer was lost (a timeout after the server applied it,
or a kill after the request) may be written again by the next cycle, and the driver cannot
know whether the first write landed. So a pending change allows one mail per guest per
cycle until it is discharged (the bound), and the table's "expected" is what must have
been sent at least (invitations and cancellations owed), not an exact total. For the same
reason a change that has not been discharged when the run ends allows its mails, and a CRM
value that lost to a calendar edit owes nothing. Invitations are exact: a second one
without a cancellation between is a finding whatever was killed.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, Protocol

from bench.soak_model import CRM, Action, CrmItem, Model, norm, tag_in

#: The fields guests see: a CRM change to one of them mails (docs/guest-mail.md).
MATERIAL = frozenset({"title", "when", "location", "description", "guests"})
UNEXPECTED = ("not_guest", "past", "duplicate_invitation", "uncaused", "twice_in_cycle")
MISSING = ("invitation", "cancellation")


class SentMail(Protocol):
    """One e-mail of a provider's log (``syncd_testkit``'s ``MailRecord``)."""

    @property
    def kind(self) -> str: ...  # invite, update or cancel

    @property
    def recipient(self) -> str: ...

    @property
    def event_id(self) -> str: ...

    @property
    def subject(self) -> str: ...

    @property
    def organizer(self) -> str: ...


@dataclass(frozen=True)
class Cycle:
    """One ``syncd sync`` child, as the driver saw it."""

    seq: int  # the model's seq when it started: the actions with a larger one came after
    start: int  # the length of the provider's mail log when it started
    ok: frozenset[str]  # the owners whose account ended it "ok" (none when killed)
    initial: bool = False  # one of the first sync's cycles


@dataclass
class MailFindings:
    """The e-mails counted: ``expected`` is what must have gone out at least."""

    expected: int = 0
    sent: int = 0
    unexpected: Counter[str] = field(default_factory=Counter)
    missing: Counter[str] = field(default_factory=Counter)
    details: list[str] = field(default_factory=list)

    def add(self, counter: Counter[str], kind: str, text: str) -> None:
        counter[kind] += 1
        if len(self.details) < 100:
            self.details.append(f"{kind}: {text}")

    @property
    def clean(self) -> bool:
        return not (sum(self.unexpected.values()) or sum(self.missing.values()))

    def cell(self) -> str:
        """The table's e-mails cell."""
        return (f"expected ≥ {self.expected} / sent {self.sent} / unexpected "
                f"{sum(self.unexpected.values())} / missing {sum(self.missing.values())}")


@dataclass
class _Cause:
    seq: int
    owners: set[str]


class _Ledger:
    """The state the judgement walks through, action by action and mail by mail."""

    def __init__(self, first_sync: int) -> None:
        self.first_sync = first_sync
        self.owner: dict[int, str] = {}
        self.guests: dict[int, set[str]] = {}  # every guest each item had so far
        self.causes: dict[int, list[_Cause]] = {}
        self.holding: dict[tuple[int, str], set[str]] = {}  # (item, calendar) -> guests
        self.on_event: set[tuple[str, str]] = set()  # (event, guest) mailed, not cancelled

    def apply(self, action: Action) -> None:
        i = action.index
        if action.kind == "created":
            self.owner[i] = action.owner
            self.guests.setdefault(i, set()).update(norm("guests", action.value.get("guests")))
            if action.seq > self.first_sync:
                self._cause(i, action.seq)
        elif action.kind == "wrote" and action.side == CRM and action.name in MATERIAL:
            if action.name == "guests":
                self.guests.setdefault(i, set()).update(action.value)
            self._cause(i, action.seq)
        elif action.kind == "deleted":
            if action.side == CRM:
                self._cause(i, action.seq)
            else:
                self._reset(i)
        elif action.kind == "moved":
            self.owner[i] = action.owner
            for cause in self.causes.get(i, []):
                cause.owners.add(action.owner)
            self._reset(i)

    def _cause(self, i: int, seq: int) -> None:
        self.causes.setdefault(i, []).append(_Cause(seq, {self.owner[i]}))

    def _reset(self, i: int) -> None:
        for key in [k for k in self.holding if k[0] == i]:
            del self.holding[key]

    def discharge(self, ok: frozenset[str]) -> None:
        for causes in self.causes.values():
            causes[:] = [c for c in causes if not c.owners <= ok]


def judge_mail(model: Model, cycles: Sequence[Cycle], mails: Sequence[SentMail],
               crm: Mapping[int, CrmItem], now: datetime) -> MailFindings:
    """Count the e-mails that break a promise, and the ones owed but not sent.

    ``cycles``: every child in the order run (the first sync's first); ``mails``: the
    provider's whole mail log; ``crm``: item index -> what the CRM holds at the end;
    ``now``: when the run started (meetings that ended before it are past).
    """
    found = MailFindings(sent=len(mails))
    first_sync = max((c.seq for c in cycles if c.initial), default=0)
    created = {a.index: a for a in model.history if a.kind == "created"}
    past = {i for i, a in created.items() if _ended(a.value.get("when"), now)}
    ledger = _Ledger(first_sync)
    actions = iter(sorted(model.history, key=lambda a: a.seq))
    pending = next(actions, None)
    for number, cycle in enumerate(cycles):
        while pending is not None and pending.seq <= cycle.seq:
            ledger.apply(pending)
            pending = next(actions, None)
        end = cycles[number + 1].start if number + 1 < len(cycles) else len(mails)
        seen: Counter[tuple[int, str]] = Counter()
        for position in range(cycle.start, end):
            _one_mail(found, ledger, mails[position], past, seen, number)
        ledger.discharge(cycle.ok)
    while pending is not None:
        ledger.apply(pending)
        pending = next(actions, None)
    _owed(found, model, cycles, crm, ledger, past)
    return found


def _one_mail(found: MailFindings, ledger: _Ledger, mail: SentMail, past: set[int],
              seen: Counter[tuple[int, str]], cycle: int) -> None:
    tag = tag_in(mail.subject)
    i = int(tag[1:]) if tag else -1
    who = mail.recipient.lower()
    what = f"{mail.kind} to {who} about {tag or repr(mail.subject)} in cycle {cycle + 1}"
    key, event = (i, mail.organizer.lower()), (mail.event_id, who)
    holding = ledger.holding.setdefault(key, set())
    invitation = mail.kind != "cancel" and event not in ledger.on_event
    duplicate = invitation and who in holding
    if mail.kind == "cancel":
        ledger.on_event.discard(event)
        holding.discard(who)
    else:
        ledger.on_event.add(event)
        holding.add(who)
    seen[(i, who)] += 1
    if who not in ledger.guests.get(i, set()):
        found.add(found.unexpected, "not_guest", what)
    elif i in past:
        found.add(found.unexpected, "past", what)
    elif duplicate:
        found.add(found.unexpected, "duplicate_invitation", what)
    elif not ledger.causes.get(i):
        found.add(found.unexpected, "uncaused", what)
    elif seen[(i, who)] > 1:
        found.add(found.unexpected, "twice_in_cycle", what)


def _owed(found: MailFindings, model: Model, cycles: Sequence[Cycle],
          crm: Mapping[int, CrmItem], ledger: _Ledger, past: set[int]) -> None:
    """The invitations and cancellations that must have gone out by the end."""
    for i, item in model.items.items():
        if i in past:
            continue
        held = crm.get(i, CrmItem(False))
        holding = ledger.holding.get((i, item.owner.lower()), set())
        guests = set(norm("guests", held.projection.get("guests"))) if held.exists else set()
        for who in sorted(holding - guests):
            found.expected += 1
            found.add(found.missing, "cancellation", f"{who} still invited to {item.tag}")
        if held.exists and item.deleted_by is None and _invitation_owed(
                model, cycles, ledger, i, held):
            found.expected += len(guests)
            for who in sorted(guests - holding):
                found.add(found.missing, "invitation", f"{who} never invited to {item.tag} "
                                                       f"in {item.owner}")


def _invitation_owed(model: Model, cycles: Sequence[Cycle], ledger: _Ledger, i: int,
                     held: CrmItem) -> bool:
    mine = [a for a in model.history if a.index == i]
    placed = [a for a in mine if a.kind in ("created", "moved")]
    if placed[-1].kind == "created" and placed[-1].seq > ledger.first_sync:
        return True  # a new activity after the first sync, never moved: its create invites
    owner = model.items[i].owner
    confirmed = next((c.seq for c in cycles if c.seq >= placed[-1].seq and owner in c.ok),
                     None)
    if confirmed is None:
        return False
    return any(a.kind == "wrote" and a.side == CRM and a.name in MATERIAL
               and a.seq > confirmed and _final(held, a) for a in mine)


def _final(held: CrmItem, write: Action) -> bool:
    value = norm(write.name, held.projection.get(write.name))
    return (tuple(value) if isinstance(value, list) else value) == write.value


def _ended(when: Any, now: datetime) -> bool:
    """Whether a projection's ``when`` (JSON) ended before ``now``."""
    if not isinstance(when, Mapping):
        return False
    end = str(when.get("end"))
    if "T" in end:
        return datetime.fromisoformat(end) <= now
    return date.fromisoformat(end) <= now.date()
