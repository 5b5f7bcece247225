"""The audit behind ``syncd verify``: what one account's CRM, sync state and calendar
say about syncd's promises. Pure: the service reads, this judges.

Findings, each about one account:

* ``duplicate``: two or more events carry one marker (one activity shown twice). Repair
  keeps the event the pair points at (else the newest) and deletes the others.
* ``paired_twice``: two pairs point at one event (two activities would write it).
  Repair keeps the event paired with the activity whose marker it carries (else the most
  recently changed one) and unpairs the others: the next cycle gives each its own event
  (adopting one that carries its marker). No event is deleted or written.
* ``orphan``: an event carries our marker but no pair does and its activity is gone (or
  was never this owner's): nothing will ever update or delete it; or a pair of this
  account still holds it while its activity was handed to another owner (``moved_away``:
  the meeting is in two calendars until a cycle of this account hears of the move, which
  a CRM whose feed lost it never repeats). Repair deletes it. An event a conflict says
  was kept on purpose (deleting it would e-mail its invited guests a cancellation) is
  the owner's to settle, not an orphan.
* ``drift``: a pair whose two sides differ in a synced field although neither side has a
  change to apply (both match what syncd last recorded): a sync that believes it is done
  but is not.
* ``missing``: an activity in the window with no event, with why: ``quarantined``,
  ``not_synced_yet`` (a change the next cycle takes), ``event_missing`` (its pair points
  at an event the calendar no longer lists).
* ``privacy``: the text of an activity's private note found in an event's title,
  description or location. Reported by activity and event id, never by the text.
* ``foreign_touched``: an event without our marker that the write log says syncd wrote
  to: syncd changed (or left) an event that is not its own. ``reason`` says whether it
  still holds what syncd left (``unchanged``: its etag is the one our last write left) or
  was edited since (``changed``). No repair: the write log keeps no copy of what the
  event held before, and a write through a connector would put our marker on it.

Rules kept here so the judgement can be table-tested: a pair with a pending create is
never a finding (its outcome is not known yet); a deleted activity whose pair still
exists is pending deletion, not an orphan; a note shorter than :data:`NOTE_MIN_CHARS`
after normalisation is not searched (short text is found everywhere by chance).
"""

from __future__ import annotations

import re
import unicodedata
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from connectors.base import RemoteEvent, Window
from syncd.engine.planning import crm_key, in_window
from syncd.model import Activity, DoneStyle, Projection, project_activity
from syncd.pairs import SyncPair

NOTE_MIN_CHARS = 12
TEXT_FIELDS = ("title", "description", "location")
KINDS = ("duplicate", "paired_twice", "orphan", "drift", "missing", "privacy",
         "foreign_touched")


@dataclass(frozen=True)
class Finding:
    """One broken promise (or one that will be kept only by the next cycle)."""

    kind: str
    activity_id: int | None = None
    event_ids: tuple[str, ...] = ()
    fields: tuple[str, ...] = ()
    reason: str | None = None
    # for duplicate/orphan: the events a repair deletes (the others are kept)
    remove: tuple[str, ...] = ()
    # for paired_twice: the activities whose pairs a repair drops (the first id keeps it)
    unpair: tuple[int, ...] = ()


@dataclass(frozen=True)
class AuditInput:
    """What the service read for one account.

    ``activities``: the owner's live activities in the window, and every activity a pair
    or a marker names (deleted ones included, as the CRM has them). ``markers``: the
    activity each marker found on an unpaired event belongs to (None: no such activity).
    ``notes``: activity id -> private note, for the activities above (None: the CRM cannot
    give notes, so privacy is not checked). ``written``: the events the write log names.
    """

    owner_id: int
    links: Mapping[int, SyncPair]
    events: Sequence[RemoteEvent]
    activities: Mapping[int, Activity] = field(default_factory=dict)
    markers: Mapping[str, Activity | None] = field(default_factory=dict)
    notes: Mapping[int, str] | None = None
    quarantined: Mapping[str, str | None] = field(default_factory=dict)
    carried: frozenset[str] = frozenset()
    done_style: DoneStyle = DoneStyle.KEEP
    window: Window | None = None
    written: frozenset[str] = frozenset()  # event ids the write log names
    left: Mapping[str, str | None] = field(default_factory=dict)  # event -> etag we left
    # events left in a calendar on purpose: deleting them would e-mail their invited
    # guests a cancellation, and a conflict says so (docs/guest-mail.md, "Owner moves")
    kept: frozenset[str] = frozenset()


def audit(data: AuditInput) -> list[Finding]:
    """Every finding for one account, in a stable order."""
    events = [e for e in data.events if not e.deleted]
    by_id = {e.event_id: e for e in events}
    shared = _paired_twice(data, by_id)
    # A pair on another activity's event differs from it: paired_twice, not drift.
    drift = [f for f in _drift(data, by_id)
             if not any(f.event_ids == s.event_ids for s in shared)]
    findings = [*_duplicates(data, events), *shared, *_orphans(data, events), *drift,
                *_missing(data, by_id, events), *_privacy(data, events),
                *_foreign_touched(data, events)]
    return sorted(findings, key=lambda f: (KINDS.index(f.kind), f.activity_id or 0,
                                           f.event_ids))


def _newest_first(events: Sequence[RemoteEvent]) -> list[RemoteEvent]:
    oldest = datetime.min.replace(tzinfo=UTC)
    return sorted(events, key=lambda e: (e.updated or oldest, e.event_id), reverse=True)


def _duplicates(data: AuditInput, events: Sequence[RemoteEvent]) -> list[Finding]:
    by_marker: dict[str, list[RemoteEvent]] = defaultdict(list)
    for event in events:
        if event.marker:
            by_marker[event.marker].append(event)
    paired = {link.sync_uid: link for link in data.links.values()}
    found = []
    for marker, copies in by_marker.items():
        if len(copies) < 2:
            continue
        link = paired.get(marker)
        ordered = _newest_first(copies)
        keep = next((e for e in ordered if link is not None and e.event_id == link.event_id),
                    ordered[0])
        found.append(Finding("duplicate", link.activity_id if link else None,
                             tuple(sorted(e.event_id for e in copies)),
                             remove=tuple(sorted(e.event_id for e in copies if e is not keep))))
    return found


def _paired_twice(data: AuditInput, by_id: Mapping[str, RemoteEvent]) -> list[Finding]:
    by_event: dict[str, list[SyncPair]] = defaultdict(list)
    for link in data.links.values():
        if link.event_id is not None and not link.pending:
            by_event[link.event_id].append(link)
    found = []
    for event_id, links in by_event.items():
        if len(links) < 2:
            continue
        marker = by_id[event_id].marker if event_id in by_id else None
        # the pair the event's marker names, else the activity changed last
        ordered = sorted(links, reverse=True, key=lambda link: (
            marker == link.sync_uid, _changed_at(data.activities.get(link.activity_id)),
            -link.activity_id))
        ids = sorted(link.activity_id for link in links)
        found.append(Finding("paired_twice", ordered[0].activity_id, (event_id,),
                             reason=",".join(map(str, ids)),
                             unpair=tuple(link.activity_id for link in ordered[1:])))
    return found


def _changed_at(activity: Activity | None) -> datetime:
    oldest = datetime.min.replace(tzinfo=UTC)
    if activity is None or activity.updated_at is None:
        return oldest
    at = activity.updated_at
    return at if at.tzinfo is not None else at.replace(tzinfo=UTC)


def _foreign_touched(data: AuditInput, events: Sequence[RemoteEvent]) -> list[Finding]:
    return [Finding("foreign_touched", None, (e.event_id,),
                    reason="unchanged" if e.event_id in data.left
                    and data.left[e.event_id] == e.etag else "changed")
            for e in events if not e.marker and e.event_id in data.written]


def _orphans(data: AuditInput, events: Sequence[RemoteEvent]) -> list[Finding]:
    paired = {link.sync_uid: link for link in data.links.values()}
    found = []
    for event in events:
        if not event.marker or event.event_id in data.kept:
            continue
        link = paired.get(event.marker)
        if link is not None:
            moved = data.activities.get(link.activity_id)
            if not link.pending and moved is not None and not moved.deleted \
                    and moved.owner_id != data.owner_id:
                found.append(Finding("orphan", moved.id, (event.event_id,),
                                     reason="moved_away", remove=(event.event_id,)))
            continue
        activity = data.markers.get(event.marker)
        if activity is not None and not activity.deleted and activity.owner_id == data.owner_id:
            continue  # unpaired but alive: the next cycle pairs it (missing reports it)
        found.append(Finding("orphan", activity.id if activity else None, (event.event_id,),
                             reason="deleted" if activity is not None and activity.deleted
                             else "other_owner" if activity is not None else "unknown_marker",
                             remove=(event.event_id,)))
    return found


def _changed(now: Projection | None, base: Projection | None, carried: frozenset[str]
             ) -> bool:
    if now is None or base is None:
        return now is not base
    return bool(now.diff(base) & carried)


def _drift(data: AuditInput, by_id: Mapping[str, RemoteEvent]) -> list[Finding]:
    found = []
    for link in data.links.values():
        activity = data.activities.get(link.activity_id)
        event = by_id.get(link.event_id or "")
        if link.pending or activity is None or activity.deleted or event is None \
                or event.projection is None or activity.owner_id != data.owner_id:
            continue
        crm_now = project_activity(activity, data.done_style)
        if crm_now is None or _changed(crm_now, link.crm_base, data.carried) \
                or event.etag != link.etag or _changed(event.projection, link.cal_base,
                                                       data.carried):
            continue  # a change waits on one side: the next cycle applies it
        differ = crm_now.diff(event.projection) & data.carried
        if differ:
            found.append(Finding("drift", link.activity_id, (event.event_id,),
                                 tuple(sorted(differ))))
    return found


def _missing(data: AuditInput, by_id: Mapping[str, RemoteEvent],
             events: Sequence[RemoteEvent]) -> list[Finding]:
    marked = {e.marker for e in events if e.marker}
    by_activity = {link.activity_id: link for link in data.links.values()}
    found = []
    for activity in data.activities.values():
        if activity.deleted or activity.owner_id != data.owner_id:
            continue
        projection = project_activity(activity, data.done_style)
        if projection is None or not in_window(projection.when, data.window):
            continue
        link = by_activity.get(activity.id)
        if link is not None and (link.pending or link.event_id in by_id):
            continue
        if activity.sync_uid in marked or (link is not None and link.sync_uid in marked):
            continue  # an event carries its marker: the next cycle pairs it again
        if crm_key(activity.id) in data.quarantined:
            reason = "quarantined"
        elif link is not None and link.event_id is not None:
            reason = "event_missing"
        else:
            reason = "not_synced_yet"
        found.append(Finding("missing", activity.id, reason=reason))
    return found


def normalise(text: str) -> str:
    """Case-folded, compatibility-normalised, whitespace collapsed: how a note pasted into
    an event (re-wrapped, re-cased by a calendar app) is still recognised."""
    folded = unicodedata.normalize("NFKC", text).casefold()
    return re.sub(r"\s+", " ", folded).strip()


def _privacy(data: AuditInput, events: Sequence[RemoteEvent]) -> list[Finding]:
    if data.notes is None:
        return []
    notes = {aid: normalise(text) for aid, text in data.notes.items()}
    notes = {aid: text for aid, text in notes.items() if len(text) >= NOTE_MIN_CHARS}
    if not notes:
        return []
    found = []
    for event in events:
        if event.projection is None:
            continue
        texts = [normalise(str(event.projection.get(name) or "")) for name in TEXT_FIELDS]
        for aid, note in notes.items():
            hit = tuple(name for name, text in zip(TEXT_FIELDS, texts, strict=True)
                        if note in text)
            if hit:
                found.append(Finding("privacy", aid, (event.event_id,), hit))
    return found
