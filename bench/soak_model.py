"""The soak's oracle: what both sides should hold, from what the driver did alone.

The driver tells the :class:`Model` every write it makes (on the CRM or directly on the
calendar server), every delete, owner move and done flag. Nothing here reads syncd's
state: at the end :func:`judge` compares what the two sides hold (read from the CRM and
from the servers) with the model and the conflicts syncd reports, and counts the broken
promises. The invariants are exact whatever was killed and wherever a fault hit:

* every synced field holds, on both sides, the value of the last write made to it on one
  of the two sides (the seed counts as a CRM write);
* when the two sides' last writes differ, the one that lost was either written before the
  winner (so syncd may have copied it across and seen it overwritten) or is recorded as a
  conflict's value;
* an item exists on both sides unless the driver deleted it on one side; after such a
  delete it is gone from both or (an edit on the other side won) present on both;
* the event is in the calendar of the activity's owner, once;
* no private note appears anywhere in any event;
* with ``--import``: an event the user made in an importing calendar becomes exactly one
  activity (its fields as the event's last write, or the CRM's), and one syncd must not
  import (a series, a calendar without ``import_events``) becomes none and is left as
  the user left it, without syncd's marker.

Items are told apart on the calendar by a tag at the head of every title the driver
writes (``S000123 ...``), so the judgement needs no marker and no link table.
"""

from __future__ import annotations

import contextlib
import json
import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

#: The projection fields the driver writes and the oracle follows.
SYNCED = ("title", "when", "busy", "description", "location", "guests")
CRM, CALENDAR = "crm", "calendar"
#: Fields with two values only: their loser check is left out (see bench/README.md).
TWO_VALUED = frozenset({"busy"})


def tag_of(index: int) -> str:
    """The tag every title of item ``index`` starts with."""
    return f"S{index:06d}"


def tag_in(title: str) -> str | None:
    """The item tag a title starts with, if any (a done mark may come first)."""
    for word in title.split()[:2]:
        if len(word) == 7 and word[0] == "S" and word[1:].isdigit():
            return word
    return None


#: The lines syncd's Pipedrive mapping ends an event's description with: links back to
#: the activity's deal, person and organization (``syncd/crm/pipedrive_map.py``).
PIPEDRIVE_LINK = re.compile(r"\n*^Pipedrive (?:deal|person|organization): \S+$", re.M)


def norm(name: str, value: Any) -> Any:
    """A projection field's JSON value in a form that compares as syncd compares it.

    A description is compared without the links back to Pipedrive: syncd adds them to
    the event, nobody writes them (a user's edit of the event drops or keeps them, and
    Pipedrive keeps only the public text), so they are no one's last write. Whether the
    event shows them is ``syncd verify``'s drift check.
    """
    if name == "when" and isinstance(value, Mapping):
        return (str(value.get("start")), str(value.get("end")))
    if name == "guests":
        return tuple(sorted(str(g).lower() for g in (value or ())))
    if name == "description" and isinstance(value, str):
        return PIPEDRIVE_LINK.sub("", value).strip()
    if isinstance(value, str):
        return value.strip()
    return value


@dataclass(frozen=True)
class Write:
    side: str
    value: Any  # normalised (see :func:`norm`)
    seq: int


@dataclass(frozen=True)
class Action:
    """One thing the driver did, in order (``seq``): for the e-mail oracle
    (:mod:`bench.soak_mail`). ``kind``: created, wrote, deleted or moved; ``value``: the
    normalised value written (created: the projection as JSON); ``owner``: the owner
    after a create or a move."""

    seq: int
    kind: str
    index: int
    side: str = CRM
    name: str = ""
    value: Any = None
    owner: str = ""


@dataclass
class Item:
    """One activity as the driver knows it."""

    index: int
    owner: str
    note: str
    last: dict[str, dict[str, Write]] = field(default_factory=dict)  # field -> side -> write
    deleted_by: str | None = None
    # the deleted side's last writes: syncd may have copied them across before the delete
    dropped: dict[str, Write] = field(default_factory=dict)  # field -> write
    done: bool = False
    guests_ever: set[str] = field(default_factory=set)
    born: str = CRM  # where it was made: the CRM, or the calendar (an event the user made)
    #: Made in a calendar syncd must not import from (a series, or an account without
    #: import_events): it stays an event only, untouched.
    foreign: bool = False
    event_id: str = ""  # born in the calendar: the event the user made
    #: Every value each side wrote to a field before its last write, in order.
    earlier: dict[str, dict[str, list[Any]]] = field(default_factory=dict)

    @property
    def tag(self) -> str:
        return tag_of(self.index)


@dataclass(frozen=True)
class CrmItem:
    """What the CRM holds for one item at the end (``projection``: JSON by field)."""

    exists: bool
    owner: str = ""
    done: bool = False
    projection: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class EventSeen:
    """One event read from a calendar server at the end."""

    calendar: str  # its owner
    event_id: str
    marker: str | None
    projection: Mapping[str, Any] | None  # JSON by field; None: unreadable
    raw: str  # everything the server holds for it, as text (for the note search)


@dataclass
class Findings:
    """The broken promises, counted; ``details`` says which (item, what) for the report."""

    duplicates: int = 0
    lost_edits: int = 0
    unexpected_deletions: int = 0
    orphans: int = 0
    misplaced: int = 0
    leaks: int = 0
    excess_emails: int = 0
    wrong_imports: int = 0  # an activity made of an event that must not be imported
    details: list[str] = field(default_factory=list)

    def add(self, kind: str, text: str) -> None:
        setattr(self, kind, getattr(self, kind) + 1)
        if len(self.details) < 200:
            self.details.append(f"{kind}: {text}")

    @property
    def clean(self) -> bool:
        return not (self.duplicates or self.lost_edits or self.unexpected_deletions
                    or self.orphans or self.misplaced or self.leaks or self.excess_emails
                    or self.wrong_imports)


class Model:
    """The driver's record of every write, in order."""

    def __init__(self) -> None:
        self.items: dict[int, Item] = {}
        self.seq = 0
        self.history: list[Action] = []

    def _tick(self) -> int:
        self.seq += 1
        return self.seq

    def created(self, index: int, owner: str, note: str, projection: Mapping[str, Any],
                done: bool = False, *, side: str = CRM, foreign: bool = False,
                event_id: str = "") -> Item:
        """A new item: an activity made in the CRM or (``side`` CALENDAR) an event the user
        made, its fields as read back from that side."""
        item = Item(index, owner, note, done=done, born=side, foreign=foreign,
                    event_id=event_id)
        seq = self._tick()
        item.last = {f: {side: Write(side, norm(f, projection.get(f)), seq)} for f in SYNCED}
        item.guests_ever.update(norm("guests", projection.get("guests")))
        self.items[index] = item
        self.history.append(Action(seq, "created", index, side, value=dict(projection),
                                   owner=owner))
        return item

    def wrote(self, index: int, side: str, name: str, value: Any) -> None:
        item = self.items[index]
        before = item.last[name].get(side)
        if before is not None:
            item.earlier.setdefault(name, {}).setdefault(side, []).append(before.value)
        item.last[name][side] = Write(side, norm(name, value), self._tick())
        self.history.append(Action(self.seq, "wrote", index, side, name, norm(name, value)))
        if name == "guests":
            item.guests_ever.update(norm(name, value))

    def deleted(self, index: int, side: str) -> None:
        """The item deleted on ``side``: what was written there went with it, unless syncd
        had copied it across before (if an edit on the other side brings the item back,
        each field holds that side's last write, or the deleted side's if it was copied;
        the deleted side's writes never count as lost)."""
        item = self.items[index]
        item.deleted_by = side
        self.history.append(Action(self._tick(), "deleted", index, side))
        for name, writes in item.last.items():
            write = writes.pop(side, None)
            if write is not None:
                item.dropped[name] = write

    def moved(self, index: int, owner: str) -> None:
        self.items[index].owner = owner
        self.history.append(Action(self._tick(), "moved", index, owner=owner))

    def set_done(self, index: int, done: bool) -> None:
        self.items[index].done = done

    def live(self) -> list[Item]:
        return [i for i in self.items.values() if i.deleted_by is None]

    def imported(self) -> list[Item]:
        """The items made in a calendar that syncd imports."""
        return [i for i in self.items.values() if i.born == CALENDAR and not i.foreign]


def _conflict_values(conflicts: Iterable[Mapping[str, Any]], crm_ids: Mapping[int, int]
                     ) -> dict[tuple[int, str], set[Any]]:
    """(item index, field) -> every value a conflict recorded for it (either side)."""
    found: dict[tuple[int, str], set[Any]] = {}
    for row in conflicts:
        index = crm_ids.get(row.get("activity_id") or -1)
        if index is None:
            continue
        values = found.setdefault((index, str(row["field"])), set())
        for key in ("crm_value", "calendar_value"):
            value = row.get(key)
            if isinstance(value, str) and row["field"] == "when":
                with contextlib.suppress(ValueError):
                    value = json.loads(value)
            values.add(_hashable(norm(str(row["field"]), value)))
    return found


def _kept(conflicts: Iterable[Mapping[str, Any]]) -> set[str]:
    """Events left in a calendar on purpose: deleting them (an owner move, an activity
    gone) would e-mail their invited guests a cancellation (docs/guest-mail.md), and a
    conflict says so. They are the owner's to settle, not misplaced copies."""
    return {str(row.get("event_id")) for row in conflicts
            if row.get("field") == "event" and row.get("policy") == "guest_mail"}


def _hashable(value: Any) -> Any:
    return tuple(value) if isinstance(value, list) else value


def _check_field(findings: Findings, item: Item, name: str, crm_value: Any, cal_value: Any,
                 recorded: set[Any]) -> None:
    writes = item.last[name]
    wanted = {w.value for w in writes.values()}
    for side, write in writes.items():
        if _hashable(write.value) in recorded:
            # That side's last write lost and is kept as a conflict (an edit in the old
            # owner's calendar as the activity moved away): the side's earlier value,
            # which syncd may have copied across before, stays legitimately.
            wanted.update(item.earlier.get(name, {}).get(side, ()))
    if name in item.dropped:
        wanted.add(item.dropped[name].value)
    for side, value in ((CRM, crm_value), (CALENDAR, cal_value)):
        if value is None:
            continue
        if value not in wanted:
            findings.add("lost_edits", f"{item.tag} {name}: the {side} holds {value!r}, "
                                       f"no last write: {sorted(map(repr, wanted))}")
            return
    if cal_value is not None and crm_value != cal_value:
        findings.add("lost_edits", f"{item.tag} {name}: the sides differ: crm {crm_value!r}, "
                                   f"calendar {cal_value!r}")
        return
    if name in TWO_VALUED:
        return  # a later write may equal an earlier one: "later" says nothing here
    final = crm_value if crm_value is not None else cal_value
    winner = [w for w in writes.values() if w.value == final]
    for loser in writes.values():
        if loser.value == final or not winner:
            continue
        if loser.seq > max(w.seq for w in winner) and _hashable(loser.value) not in recorded:
            findings.add("lost_edits", f"{item.tag} {name}: the {loser.side}'s later value "
                                       f"{loser.value!r} lost to {final!r} with no conflict "
                                       "recorded")


def _check_foreign(findings: Findings, item: Item, seen: Sequence[EventSeen],
                   events: Sequence[EventSeen], in_crm: bool) -> None:
    """An event syncd must not import: no activity, and the event as the user left it
    (there, unless the user deleted it; without syncd's marker; its fields the user's)."""
    if in_crm:
        findings.add("wrong_imports", f"{item.tag}: an activity for an event not to import")
    found = [e for e in events if e.calendar == item.owner and e.event_id == item.event_id]
    if item.deleted_by is not None:
        if found:
            findings.add("unexpected_deletions", f"{item.tag}: deleted by the user, still there")
        return
    if not found:
        findings.add("unexpected_deletions", f"{item.tag}: the user's event is gone")
        return
    if found[0].marker:
        findings.add("wrong_imports", f"{item.tag}: syncd's marker on an event not to import")
    if len(seen) > 1:
        findings.add("duplicates", f"{item.tag}: {len(seen)} events")
    projection = found[0].projection
    if projection is None:
        return  # a series: read as recurring, without fields
    for name in SYNCED:
        if name == "guests":
            continue
        value = _hashable(norm(name, projection.get(name)))
        wanted = {w.value for w in item.last[name].values()}
        if value not in wanted:
            findings.add("lost_edits", f"{item.tag} {name}: the event not to import holds "
                                       f"{value!r}, the user wrote {sorted(map(repr, wanted))}")


class NoteIndex:
    """Every item's note (case-folded) by its longest inner word, so that each event is
    searched for the few notes that can be in it, not for all of them (N notes in N
    events was the soak's end at N=10,000: minutes).

    A note found in a text has its inner words (whitespace on both sides within the note)
    among the text's whitespace-separated words, so looking only at the notes whose key
    word is there finds exactly what searching for every note finds. Notes of fewer than
    three words have no inner word: they are searched for in every text."""

    def __init__(self, items: Iterable[Item]) -> None:
        self.by_word: dict[str, list[tuple[Item, str]]] = {}
        self.everywhere: list[tuple[Item, str]] = []
        for item in items:
            if not item.note:
                continue
            note = item.note.casefold()
            inner = note.split()[1:-1]
            if inner:
                self.by_word.setdefault(max(inner, key=len), []).append((item, note))
            else:
                self.everywhere.append((item, note))

    def candidates(self, text: str) -> list[tuple[Item, str]]:
        """The notes that may be in ``text`` (case-folded), in item order."""
        found = [pair for word in set(text.split()) for pair in self.by_word.get(word, ())]
        return sorted(found + self.everywhere, key=lambda pair: pair[0].index)


def judge(model: Model, crm: Mapping[int, CrmItem], events: Sequence[EventSeen],
          conflicts: Sequence[Mapping[str, Any]], crm_ids: Mapping[int, int],
          calendar_fields: frozenset[str], emails: Mapping[str, int] | None = None,
          tagged: Mapping[str, Sequence[int]] | None = None) -> Findings:
    """Compare the end state with the model.

    ``crm``: item index -> what the CRM holds; ``events``: every event of every owner's
    calendar; ``conflicts``: ``syncd conflicts --json``; ``crm_ids``: activity id -> item
    index (the CRM's own ids, for the conflicts); ``calendar_fields``: the fields the
    calendar carries back (the connector's capabilities); ``emails``: e-mails the
    provider sent, per recipient (every one is excess: the accounts do not invite);
    ``tagged``: every live activity of the CRM by the tag its subject carries (with
    ``--import``: two for one tag are a duplicate, any for a foreign item a wrong import).
    """
    findings = Findings()
    for tag, ids in sorted((tagged or {}).items()):
        if len(ids) > 1:
            findings.add("duplicates", f"{tag}: {len(ids)} activities in the CRM {list(ids)}")
    by_tag: dict[str, list[EventSeen]] = {}
    markers: Counter[tuple[str, str]] = Counter()
    kept = _kept(conflicts)
    for event in events:
        title = str((event.projection or {}).get("title", ""))
        tag = tag_in(title)
        if tag is not None and event.event_id not in kept:
            by_tag.setdefault(tag, []).append(event)
        if event.marker:
            markers[(event.calendar, event.marker)] += 1
    for (calendar, marker), count in markers.items():
        if count > 1:
            findings.add("duplicates", f"marker {marker} on {count} events in {calendar}")
    recorded = _conflict_values(conflicts, crm_ids)
    notes = NoteIndex(model.items.values())
    for event in events:
        text = event.raw.casefold()
        for item, note in notes.candidates(text):
            if note in text:
                findings.add("leaks", f"the note of {item.tag} in event {event.event_id}")
    for item in model.items.values():
        seen = by_tag.get(item.tag, [])
        if item.foreign:
            _check_foreign(findings, item, seen, events, bool((tagged or {}).get(item.tag)))
            continue
        held = crm.get(item.index, CrmItem(False))
        if len(seen) > 1:
            places = Counter(e.calendar for e in seen)
            if any(n > 1 for n in places.values()):
                findings.add("duplicates", f"{item.tag}: {len(seen)} events {dict(places)}")
            else:
                findings.add("misplaced", f"{item.tag}: events in {sorted(places)}")
        if item.deleted_by is not None:
            if held.exists != bool(seen):
                kind = "orphans" if seen else "unexpected_deletions"
                findings.add(kind, f"{item.tag} deleted in the {item.deleted_by}: "
                                   f"activity {'kept' if held.exists else 'gone'}, "
                                   f"{len(seen)} event(s)")
            if not held.exists:
                continue
        elif not held.exists or not seen:
            findings.add("unexpected_deletions", f"{item.tag}: activity "
                         f"{'kept' if held.exists else 'gone'}, {len(seen)} event(s)"
                         + (" (made in the calendar)" if item.born == CALENDAR else ""))
            if not held.exists:
                continue
        if held.owner != item.owner:
            findings.add("lost_edits", f"{item.tag}: owner {held.owner}, moved to {item.owner}")
        if held.done != item.done:
            findings.add("lost_edits", f"{item.tag}: done {held.done}, set to {item.done}")
        mine = [e for e in seen if e.calendar == item.owner]
        if seen and not mine:
            findings.add("misplaced", f"{item.tag}: in {seen[0].calendar}, owner {item.owner}")
        event = mine[0] if mine else None
        for name in SYNCED:
            crm_value = _hashable(norm(name, held.projection.get(name)))
            cal_value = None
            if event is not None and event.projection is not None and name in calendar_fields:
                cal_value = _hashable(norm(name, event.projection.get(name)))
            _check_field(findings, item, name, crm_value, cal_value,
                         recorded.get((item.index, name), set()))
    for recipient, count in sorted((emails or {}).items()):
        for _ in range(count):
            findings.add("excess_emails", f"an e-mail to {recipient}")
    return findings
