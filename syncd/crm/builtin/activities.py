"""The built-in activity store: the CRM side of syncd (seed rules A1-A10, B1-B4, D, E).

:class:`ActivityStore` is the one way in. Its contract:

* Every write is one transaction, serialised against the store's other writers. Bad input
  raises :class:`~syncd.errors.InvalidInput` before anything is written; the transaction
  makes even a late failure write nothing.
* Error kinds: a bad value in a field, including a reference to something that does not
  exist (an owner, a type, a deal, a guest's person id), is ``InvalidInput`` naming the
  field; the activity an operation is *about* not existing is ``NotFound``.
* Every change to an activity appends exactly one row to the change feed, in the same
  transaction; an edit that changes nothing writes nothing at all.
* After every change the derived dates of the linked items are recomputed (A10).
* Activities come back as frozen :class:`syncd.model.Activity` views, which have no note.
  The note (A5) is written through ``note=`` and read only by :meth:`get_note`.

Times: ``due_date``/``due_time`` are wall-clock values in the owner's zone
(``users.time_zone``). Reassigning an activity keeps the moment it happens: a timed
activity's date and time are converted to the new owner's zone (a call at 15:00 in Oslo
becomes 09:00 for a New York owner, not a call six hours later). Whole-day activities
keep their date. A ``due_date``/``due_time`` given in the same edit is read in the new
owner's zone.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import delete, insert, select, update
from sqlalchemy.orm import Session

from syncd.crm.builtin import change_feed, derived
from syncd.crm.builtin.change_feed import ChangeRow
from syncd.crm.builtin.checks import (
    CALENDAR_FIELDS,
    EDITABLE_FIELDS,
    LINK_FIELDS,
    check_time_needs_date,
    clean_fields,
)
from syncd.crm.builtin.fields import resolve_guests
from syncd.crm.builtin.item_links import (
    ITEM_TABLES,
    LinkSet,
    explicit_links,
    linked_items,
    replace_links,
)
from syncd.crm.builtin.items import CrmDirectory, check_now
from syncd.crm.builtin.read import filter_query, load_views
from syncd.crm.builtin.rows import SCALARS, guest_rows, time_columns
from syncd.crm.builtin.tables import (
    ActivityGuest,
    ActivityLink,
    ActivityNote,
    ActivityRow,
    User,
)
from syncd.crm.builtin.views import ActivityFilter, CanSee, ChangePage
from syncd.crm.builtin.visibility import visible_ids_query, visible_ids_with
from syncd.crm.builtin.write import (
    CHUNK,
    Lookups,
    check_unique_uids,
    insert_activities,
    move_to_zone,
    prefetch_guests,
    prepare,
)
from syncd.errors import InvalidInput, NotFound, SlotTaken
from syncd.model import MAX_SPAN, Activity, Tombstone, activity_when


class ActivityStore(CrmDirectory):
    """Activities, their links, guests, private notes and change feed.

    Args:
        db: an open :class:`syncd.store.db.Database` (migrated on open).
    """

    # --- adding -------------------------------------------------------------------------

    def add_activity(self, *, owner_id: int, subject: str, now: datetime | None = None,
                     **fields: Any) -> Activity:
        """Add one activity.

        Args:
            owner_id: the user it is assigned to (A9).
            subject: its title (A1).
            now: the time of the change (default: the current time).
            **fields: any other field of :data:`syncd.model.ACTIVITY_FIELDS` (``type``,
                ``due_date``, ``due_time``, ``duration_minutes``, ``busy``, ``description``,
                ``location``, ``guests`` as person ids, e-mail addresses or
                :class:`Guest` objects, ``note``, the link ids, ``done``), each defaulting
                to its declared default; and ``sync_uid``, an opaque id to reuse (32 hex
                digits; a fresh one by default). ``done`` creates it already done, at
                ``now``; ``deal_id`` also links the deal's person and organization (B1),
                ``person_id`` the person's organization (B2).

        Returns:
            The new activity.

        Raises:
            InvalidInput: an unknown field or any unacceptable value; nothing is written.
        """
        stamp = check_now(now)
        with self._write() as session:
            item = {"owner_id": owner_id, "subject": subject, **fields}
            ids = insert_activities(session, [prepare(Lookups(session), item)], stamp)
            return load_views(session, ids)[ids[0]]

    def book_slot(self, booking_uid: str, *, owner_id: int, type: str, start: datetime,
                  end: datetime, now: datetime | None = None,
                  clear_before: timedelta = timedelta(0), clear_after: timedelta = timedelta(0),
                  **fields: Any) -> tuple[Activity, bool]:
        """Book ``[start, end)``: a busy timed activity of the owner's, unless a busy live
        activity of theirs overlaps it; the check and the insert are one write transaction
        (serialised against every other writer), so of two racing bookings one wins.

        Args:
            booking_uid: the booking's identity, used as the activity's ``sync_uid``: when
                an activity has it already, that one is returned and nothing is written.
            owner_id, type: the new activity's owner and type.
            start, end: the slot, aware datetimes (``end`` after ``start``).
            clear_before, clear_after: the owner's buffers: a busy activity within this
                long before ``start`` or after ``end`` takes the slot too (checked in the
                same transaction, so racing neighbours cannot both eat the buffer).
            **fields: other fields of :meth:`add_activity` (``subject`` required).

        Returns:
            (the activity, whether it was created now).

        Raises:
            SlotTaken: a busy activity overlaps (or comes within a buffer); nothing is
                written.
            InvalidInput: a bad value; nothing is written.
        """
        if clear_before < timedelta(0) or clear_after < timedelta(0):
            raise InvalidInput(field="buffer", value=f"{clear_before}/{clear_after}",
                               reason="must not be negative")
        if start.tzinfo is None or end.tzinfo is None or not start < end:
            raise InvalidInput(field="slot", value=f"{start.isoformat()}/{end.isoformat()}",
                               reason="must be two aware times, the end after the start")
        stamp = check_now(now)
        with self._write() as session:
            done = session.scalar(select(ActivityRow.id)
                                  .where(ActivityRow.sync_uid == booking_uid))
            if done is not None:
                return load_views(session, [done])[done], False
            zone = Lookups(session).owner_zone(owner_id)
            local = start.astimezone(ZoneInfo(zone))
            if self._busy_overlap(session, owner_id, zone, start - clear_before,
                                  end + clear_after):
                raise SlotTaken(owner_id=owner_id, start=start, end=end)
            minutes = int((end - start) / timedelta(minutes=1))
            item = {**fields, "owner_id": owner_id, "type": type, "busy": True,
                    "due_date": local.date(), "due_time": local.time().replace(tzinfo=None),
                    "duration_minutes": minutes, "sync_uid": booking_uid}
            ids = insert_activities(session, [prepare(Lookups(session), item)], stamp)
            return load_views(session, ids)[ids[0]], True

    @staticmethod
    def _busy_overlap(session: Session, owner_id: int, zone: str, start: datetime,
                      end: datetime) -> bool:
        """Whether a busy live activity of the owner overlaps ``[start, end)`` (an
        activity lasts at most MAX_SPAN, so only those due from that far back count)."""
        tz = ZoneInfo(zone)
        first = start.astimezone(tz).date() - MAX_SPAN - timedelta(days=1)
        last = end.astimezone(tz).date() + timedelta(days=1)
        ids = list(session.scalars(select(ActivityRow.id).where(
            ActivityRow.owner_id == owner_id, ActivityRow.busy.is_(True),
            ActivityRow.deleted_at.is_(None), ActivityRow.due_date >= first,
            ActivityRow.due_date <= last)))
        for activity in load_views(session, ids).values():
            when = activity_when(activity)
            if when is None:
                continue
            begins, ends = when.start, when.end
            if not isinstance(begins, datetime):  # a whole day, in the owner's zone
                begins = datetime.combine(begins, time(), tz).astimezone(UTC)
                ends = datetime.combine(ends, time(), tz).astimezone(UTC)
            else:  # a busy call with no duration still takes its minute
                ends = max(ends, begins + timedelta(minutes=1))
            if begins < end and start < ends:
                return True
        return False

    def add_activities(self, items: Sequence[Mapping[str, Any]], *,
                       now: datetime | None = None) -> list[int]:
        """Add many activities in one transaction: all of them or none (bulk creation, F).

        Args:
            items: one mapping per activity with the keyword arguments of
                :meth:`add_activity` (``owner_id`` and ``subject`` required).
            now: the time of the change.

        Returns:
            The new ids, in the order of ``items``.

        Raises:
            InvalidInput: the first item with a problem (its ``field`` is prefixed with
                ``items[N].``); nothing is written. Use :meth:`check_activities` to get
                every problem at once.
        """
        stamp = check_now(now)
        with self._write() as session:
            lookups = Lookups(session)
            prefetch_guests(lookups, items)
            prepared = []
            for n, item in enumerate(items):
                try:
                    prepared.append(prepare(lookups, item))
                except InvalidInput as exc:
                    raise InvalidInput(field=f"items[{n}].{exc.field}", value=exc.value,
                                       reason=exc.reason) from None
            return insert_activities(session, prepared, stamp)

    def check_activities(
        self, items: Sequence[Mapping[str, Any]]
    ) -> list[tuple[int, InvalidInput]]:
        """Every problem :meth:`add_activities` would refuse, without writing anything.

        Returns:
            (index in ``items``, the error) for each item with a problem; empty when all
            would be accepted.
        """
        problems: list[tuple[int, InvalidInput]] = []
        uids: dict[str, int] = {}
        with self._read() as session:
            lookups = Lookups(session)
            prefetch_guests(lookups, items)
            for n, item in enumerate(items):
                try:
                    values = prepare(lookups, item).values
                    uid = values["sync_uid"]
                    if uid is not None:
                        if uid in uids:
                            raise InvalidInput(field="sync_uid", value=uid,
                                               reason=f"repeats item {uids[uid]}")
                        uids[uid] = n
                        check_unique_uids(session, [uid])
                except InvalidInput as exc:
                    problems.append((n, exc))
        return problems

    # --- editing ------------------------------------------------------------------------

    def edit_activity(self, activity_id: int, *, now: datetime | None = None,
                      **fields: Any) -> Activity:
        """Change some fields of a live activity.

        Args:
            activity_id: the activity.
            now: the time of the change.
            **fields: any of :meth:`add_activity`'s fields except ``sync_uid``;
                ``owner_id`` reassigns it, ``note`` replaces the note, ``done`` marks it
                done or not done (D2), ``guests`` replaces the guest list, a link field
                replaces that link (automatic links follow, B1/B2).

        Returns:
            The activity after the edit. An edit that changes nothing writes nothing and
            adds no change row.

        Raises:
            NotFound: no live activity has this id.
            InvalidInput: an unknown field or unacceptable value; nothing is written.
        """
        return self._edit(activity_id, fields, EDITABLE_FIELDS, now)

    def apply_calendar_changes(self, activity_id: int, fields: Mapping[str, Any], *,
                               now: datetime | None = None) -> Activity:
        """:meth:`edit_activity` for changes coming from a calendar.

        Only the fields a calendar can carry are accepted (subject, type, due date and
        time, duration, busy, description, location, guests, done). The note (A5), the
        owner and the links are the CRM's: naming one is refused.

        Raises:
            InvalidInput: a refused or unknown field, or an unacceptable value.
            NotFound: no live activity has this id.
        """
        for name in fields:
            if name not in CALENDAR_FIELDS:
                reason = ("is private to the CRM and never changes from a calendar (A5)"
                          if name == "note" else "cannot be changed from a calendar")
                value = "<note>" if name == "note" else fields[name]
                raise InvalidInput(field=name, value=value, reason=reason)
        return self._edit(activity_id, dict(fields), CALENDAR_FIELDS, now)

    def mark_done(self, activity_id: int, *, now: datetime | None = None) -> Activity:
        """Mark a live activity done (D1); its done time becomes ``now`` (D2).

        The due date stays as planned (D3). Marking a done activity again changes
        nothing, so the first done time is kept.
        """
        return self._edit(activity_id, {"done": True}, EDITABLE_FIELDS, now)

    def mark_undone(self, activity_id: int, *, now: datetime | None = None) -> Activity:
        """Reopen a done activity; its done time is cleared (D2, D4)."""
        return self._edit(activity_id, {"done": False}, EDITABLE_FIELDS, now)

    def _live_row(self, session: Session, activity_id: int) -> ActivityRow:
        row = session.get(ActivityRow, activity_id) if isinstance(activity_id, int) else None
        if row is None or row.deleted_at is not None:
            raise NotFound(kind="activity", key=activity_id)
        return row

    def _edit(self, activity_id: int, fields: Mapping[str, Any], allowed: frozenset[str],
              now: datetime | None) -> Activity:
        values = clean_fields(fields, allowed)
        stamp = check_now(now)
        with self._write() as session:
            row = self._live_row(session, activity_id)
            lookups = Lookups(session)
            old_owner = row.owner_id
            old_refs = {(link.kind, getattr(link, ITEM_TABLES[link.kind][1]))
                        for link in session.scalars(
                            select(ActivityLink).where(ActivityLink.activity_id == row.id))}
            updates = self._scalar_updates(lookups, row, values, stamp)

            guests_changed = False
            if "guests" in values:
                guests = resolve_guests(session, values["guests"], lookups.persons)
                current = session.execute(
                    select(ActivityGuest.email, ActivityGuest.name, ActivityGuest.person_id)
                    .where(ActivityGuest.activity_id == row.id).order_by(ActivityGuest.position)
                ).all()
                # Compared as a set: a calendar listing the same guests in another order
                # is not an edit (the projection compares guests as a set too).
                guests_changed = {tuple(r) for r in current} != {
                    (g.email, g.name, g.person_id) for g in guests}

            note_changed = False
            if "note" in values:
                current_note = session.scalar(
                    select(ActivityNote.text).where(ActivityNote.activity_id == row.id)) or ""
                note_changed = current_note != values["note"]

            new_links: LinkSet | None = None
            if any(f in values for f in LINK_FIELDS):
                chosen = explicit_links(session, row.id)
                chosen.update({f: values[f] for f in LINK_FIELDS if f in values})
                candidate = lookups.links.resolve(chosen)
                automatic = frozenset(link.kind for link in session.scalars(
                    select(ActivityLink).where(ActivityLink.activity_id == row.id,
                                               ActivityLink.automatic.is_(True))))
                if candidate.refs() != old_refs or candidate.automatic != automatic:
                    new_links = candidate
                    updates.update(candidate.columns())

            if not (updates or guests_changed or note_changed or new_links):
                return load_views(session, [row.id])[row.id]  # nothing to write

            for name, value in updates.items():
                setattr(row, name, value)
            row.updated_at = stamp
            if guests_changed:
                session.execute(delete(ActivityGuest).where(ActivityGuest.activity_id == row.id))
                if guests:
                    session.execute(insert(ActivityGuest), guest_rows(row.id, guests))
            if note_changed:
                self._write_note(session, row.id, values["note"])
            if new_links is not None:
                replace_links(session, row.id, new_links)
            session.flush()
            moved = row.owner_id != old_owner
            change_feed.append(session, [ChangeRow(
                row.id, row.sync_uid, "update", row.owner_id, old_owner if moved else None)],
                stamp)
            refs = old_refs | (new_links.refs() if new_links is not None else set())
            derived.refresh_items(session, refs, stamp)
            return load_views(session, [row.id])[row.id]

    def _scalar_updates(self, lookups: Lookups, row: ActivityRow, values: Mapping[str, Any],
                        now: datetime) -> dict[str, Any]:
        """The column changes an edit asks for, checked; only values that differ."""
        target: dict[str, Any] = {}
        if "owner_id" in values and values["owner_id"] != row.owner_id:
            new_zone = lookups.owner_zone(values["owner_id"])
            target["owner_id"] = values["owner_id"]
            if row.due_date is not None and row.due_time is not None:
                # Keep the moment, not the wall-clock reading (see the module docstring).
                old_zone = lookups.owner_zone(row.owner_id)
                target["due_date"], target["due_time"] = move_to_zone(
                    row.due_date, row.due_time.replace(fold=int(row.due_fold)), old_zone,
                    new_zone)
        for name in SCALARS:
            if name in values:
                target[name] = values[name]
        if "type" in target and target["type"] != row.type:
            lookups.check_type(target["type"])
        if target.keys() & {"owner_id", "due_date", "due_time"}:
            # The fold is settled against the final day and zone (a new date may not
            # repeat the hour the old one did).
            stored = row.due_time.replace(fold=1) if row.due_time and row.due_fold else row.due_time
            target.update(time_columns(target.get("due_date", row.due_date),
                                       target.get("due_time", stored),
                                       lookups.owner_zone(target.get("owner_id", row.owner_id))))
        check_time_needs_date(target.get("due_date", row.due_date),
                              target.get("due_time", row.due_time))
        if "done" in values and values["done"] != row.done:
            target["done"] = values["done"]
            target["marked_done_at"] = now if values["done"] else None  # D2; D3: date kept
        return {k: v for k, v in target.items() if getattr(row, k) != v}

    @staticmethod
    def _write_note(session: Session, activity_id: int, text: str) -> None:
        session.execute(delete(ActivityNote).where(ActivityNote.activity_id == activity_id))
        if text:
            session.execute(insert(ActivityNote), [{"activity_id": activity_id, "text": text}])

    # --- deleting -----------------------------------------------------------------------

    def delete_activity(self, activity_id: int, *, now: datetime | None = None) -> None:
        """Soft-delete one activity (E1); it stays in the feed and is purged later.

        Deleting an already deleted activity changes nothing.

        Raises:
            NotFound: there is no such activity (or it has been purged).
        """
        self.delete_activities([activity_id], now=now)

    def delete_activities(self, ids: Sequence[int], *, now: datetime | None = None) -> int:
        """Soft-delete several activities at once (E2): all of them or none.

        Returns:
            How many were deleted (already deleted ones are skipped, not counted).

        Raises:
            NotFound: one of the ids does not exist; nothing is deleted.
        """
        stamp = check_now(now)
        wanted = list(dict.fromkeys(ids))
        for activity_id in wanted:
            if isinstance(activity_id, bool) or not isinstance(activity_id, int):
                raise InvalidInput(field="ids", value=activity_id, reason="must be activity ids")
        with self._write() as session:
            return self._soft_delete(session, wanted, stamp)

    def delete_where(self, filter: ActivityFilter, *, now: datetime | None = None) -> int:
        """Soft-delete every live activity matching ``filter`` (bulk delete, E2).

        Returns:
            How many were deleted.

        Raises:
            InvalidInput: the filter has no criterion (that would delete everything).
        """
        if not filter.has_criteria():
            raise InvalidInput(field="filter", value="(no criteria)",
                               reason="names no criterion; refusing to delete every activity")
        stamp = check_now(now)
        live = dataclasses.replace(filter, include_deleted=False)
        with self._write() as session:
            ids = list(session.scalars(filter_query(live)))
            return self._soft_delete(session, ids, stamp)

    def _soft_delete(self, session: Session, ids: list[int], now: datetime) -> int:
        found: dict[int, Any] = {}
        for start in range(0, len(ids), CHUNK):
            query = select(
                ActivityRow.id, ActivityRow.sync_uid, ActivityRow.owner_id, ActivityRow.deleted_at
            ).where(ActivityRow.id.in_(ids[start:start + CHUNK]))
            found.update({r.id: r for r in session.execute(query)})
        missing = [i for i in ids if i not in found]
        if missing:
            raise NotFound(kind="activity", key=missing[0])
        live = [i for i in ids if found[i].deleted_at is None]
        for start in range(0, len(live), CHUNK):
            session.execute(update(ActivityRow)
                            .where(ActivityRow.id.in_(live[start:start + CHUNK]))
                            .values(deleted_at=now, updated_at=now))
        change_feed.append(session, [ChangeRow(i, found[i].sync_uid, "delete", found[i].owner_id)
                                     for i in live], now)
        refs = set().union(*linked_items(session, live).values())
        derived.refresh_items(session, refs, now)
        return len(live)

    def restore_activity(self, activity_id: int, *, new_sync_uid: bool = False,
                         now: datetime | None = None) -> Activity:
        """Bring back a soft-deleted activity (E1/E2: restorable until it is purged).

        The activity, its note, guests and links are as they were; the feed gets an
        ``update`` row, so every sync sees it live again as an ordinary change. Restoring
        a live activity changes nothing.

        Args:
            activity_id: the activity.
            new_sync_uid: give it a fresh random sync uid, so the events made for it from
                now on carry identities no server has seen (a calendar may keep the
                deleted event's id or UID in a trash bin and refuse it; failure mode 2).
            now: the time of the change.

        Raises:
            NotFound: there is no such activity (or it has been purged).
        """
        stamp = check_now(now)
        with self._write() as session:
            row = session.get(ActivityRow, activity_id) if isinstance(activity_id, int) \
                and not isinstance(activity_id, bool) else None
            if row is None:
                raise NotFound(kind="activity", key=activity_id)
            if row.deleted_at is not None:
                row.deleted_at = None
                row.updated_at = stamp
                if new_sync_uid:
                    row.sync_uid = uuid.uuid4().hex  # random, like a new activity's
                session.flush()
                change_feed.append(session, [ChangeRow(row.id, row.sync_uid, "update",
                                                       row.owner_id)], stamp)
                refs = set().union(*linked_items(session, [row.id]).values())
                derived.refresh_items(session, refs, stamp)
            return load_views(session, [row.id])[row.id]

    def purgeable(self, *, older_than_days: int = 30, now: datetime | None = None
                  ) -> list[Activity]:
        """The deleted activities :meth:`purge_deleted` would remove now, by id."""
        cutoff = self._purge_cutoff(older_than_days, now)
        with self._read() as session:
            ids = list(session.scalars(select(ActivityRow.id).where(
                ActivityRow.deleted_at.is_not(None), ActivityRow.deleted_at <= cutoff)
                .order_by(ActivityRow.id)))
            views = load_views(session, ids)
        return [views[i] for i in ids]

    @staticmethod
    def _purge_cutoff(older_than_days: int, now: datetime | None) -> datetime:
        if isinstance(older_than_days, bool) or not isinstance(older_than_days, int) \
                or older_than_days < 0:
            raise InvalidInput(field="older_than_days", value=older_than_days,
                               reason="must be a whole number of days, 0 or more")
        return check_now(now) - timedelta(days=older_than_days)

    def purge_deleted(self, *, older_than_days: int = 30, now: datetime | None = None) -> int:
        """Remove for good the activities deleted at least ``older_than_days`` ago.

        Returns:
            How many activities were purged (see :meth:`purge_deleted_ids`).
        """
        return len(self.purge_deleted_ids(older_than_days=older_than_days, now=now))

    def purge_deleted_ids(self, *, older_than_days: int = 30, now: datetime | None = None
                          ) -> list[int]:
        """Remove for good the activities deleted at least ``older_than_days`` ago, with
        their notes, guests and links.

        Each purged activity gets a ``purge`` row in the feed, which then reports it as a
        :class:`Tombstone`.

        Returns:
            The ids purged, in order.
        """
        stamp = check_now(now)
        cutoff = self._purge_cutoff(older_than_days, stamp)
        with self._write() as session:
            rows = session.execute(
                select(ActivityRow.id, ActivityRow.sync_uid, ActivityRow.owner_id)
                .where(ActivityRow.deleted_at.is_not(None), ActivityRow.deleted_at <= cutoff)
                .order_by(ActivityRow.id)
            ).all()
            ids = [r.id for r in rows]
            refs = set().union(*linked_items(session, ids).values())
            for start in range(0, len(ids), CHUNK):
                chunk = ids[start:start + CHUNK]
                # Children first: correct even where the FK cascade is not enforced.
                for table in (ActivityGuest, ActivityNote, ActivityLink):
                    session.execute(delete(table).where(table.activity_id.in_(chunk)))
                session.execute(delete(ActivityRow).where(ActivityRow.id.in_(chunk)))
            change_feed.append(session, [ChangeRow(r.id, r.sync_uid, "purge", r.owner_id)
                                         for r in rows], stamp)
            derived.refresh_items(session, refs, stamp)
            return ids

    # --- reading ------------------------------------------------------------------------

    def get(self, activity_id: int, *, include_deleted: bool = False) -> Activity:
        """One activity.

        Raises:
            NotFound: no such activity, or it is deleted and ``include_deleted`` is false.
        """
        with self._read() as session:
            view = load_views(session, [activity_id]).get(activity_id)
        if view is None or (view.deleted and not include_deleted):
            raise NotFound(kind="activity", key=activity_id)
        return view

    def get_by_sync_uid(self, sync_uid: str) -> Activity | None:
        """The activity with this sync uid, deleted or not; None when there is none."""
        with self._read() as session:
            activity_id = session.scalar(
                select(ActivityRow.id).where(ActivityRow.sync_uid == sync_uid))
            if activity_id is None:
                return None
            return load_views(session, [activity_id])[activity_id]

    def list_activities(self, filter: ActivityFilter) -> list[Activity]:
        """The activities matching ``filter``, by due date and time (undated last)."""
        with self._read() as session:
            ids = list(session.scalars(filter_query(filter)))
            views = load_views(session, ids)
        return [views[i] for i in ids]

    def visible_to(self, user_id: int, *, can_see: CanSee | None = None) -> list[Activity]:
        """The live activities ``user_id`` may see (B4), by id.

        A user sees their own activities, and another user's only when they can see every
        item it is linked to. Without ``can_see`` an item is visible unless it is marked
        ``visible_to_owner_only`` and owned by someone else (see
        :mod:`syncd.crm.builtin.visibility`); with it, ``can_see(kind, item_id)`` decides.

        Raises:
            NotFound: there is no such user.
        """
        with self._read() as session:
            if session.get(User, user_id) is None:
                raise NotFound(kind="user", key=user_id)
            if can_see is None:
                ids = list(session.scalars(visible_ids_query(user_id)))
            else:
                ids = visible_ids_with(session, user_id, can_see)
            views = load_views(session, ids)
        return [views[i] for i in ids]

    def get_note(self, activity_id: int) -> str:
        """The private note of an activity (A5): the only way to read one.

        Raises:
            NotFound: there is no such activity (deleted ones still have their note).
        """
        with self._read() as session:
            if session.get(ActivityRow, activity_id) is None:
                raise NotFound(kind="activity", key=activity_id)
            return session.scalar(
                select(ActivityNote.text).where(ActivityNote.activity_id == activity_id)) or ""

    def get_notes(self, activity_ids: Sequence[int]) -> dict[int, str]:
        """The non-empty private notes of these activities, for ``syncd verify``'s privacy
        audit (the other way to read notes; nothing that syncs uses it)."""
        notes: dict[int, str] = {}
        ids = list(activity_ids)
        with self._read() as session:
            for start in range(0, len(ids), 500):  # bounded IN lists
                rows = session.execute(select(ActivityNote.activity_id, ActivityNote.text)
                                       .where(ActivityNote.activity_id.in_(ids[start:start + 500])))
                notes.update({aid: text for aid, text in rows if text})
        return notes

    # --- change feed --------------------------------------------------------------------

    def changes_after(self, after: int, *, owner_id: int | None = None,
                      limit: int = 1000) -> ChangePage:
        """The activities changed after sequence number ``after`` (the sync cursor).

        Args:
            after: the last seq already processed (0 for everything).
            owner_id: only changes where this user is the owner after the change, or was
                the owner before it (a reassigned activity shows in both feeds).
            limit: how many change rows one page covers.

        Returns:
            A :class:`ChangePage`: each changed activity once, in its current state
            (deleted included, purged ones as :class:`Tombstone`); continue with
            ``after=page.last_seq`` while ``page.more``.
        """
        for name, value, low in (("after", after, 0), ("limit", limit, 1)):
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise InvalidInput(field=name, value=value,
                                   reason=f"must be a whole number >= {low}")
        # The page on its own (what every idle cycle asks, and finds empty: one
        # statement outside a transaction); the views, when there are any, after it.
        with self.db.read() as conn:
            page = change_feed.read_page(conn, after, owner_id, limit)
        views: dict[int, Activity] = {}
        if page.latest:
            with self._read() as session:
                views = load_views(session, list(page.latest))
        items: list[Activity | Tombstone] = [
            views.get(i) or Tombstone(id=i, sync_uid=page.sync_uids[i]) for i in page.latest
        ]
        return ChangePage(items=items, last_seq=page.last_seq, more=page.more,
                          handed_over=page.handed_over)

    def last_change_seq(self) -> int:
        """The highest change number so far (0 when nothing has changed yet)."""
        with self._read() as session:
            return change_feed.last_seq(session)

    def owners_changed_after(self, after: int, *, limit: int = 1000
                             ) -> tuple[set[int], int, bool]:
        """Whose activities changed after change number ``after``: (the owner ids, before
        and after a reassignment; the last change number read; whether more are left).
        One small query, none of the activities read (the change watcher's tick)."""
        with self._read() as session:
            return change_feed.owners_after(session, after, limit)

    def get_many(self, ids: Sequence[int]) -> dict[int, Activity]:
        """The activities with these ids, deleted ones included; purged ids are absent."""
        found: dict[int, Activity] = {}
        unique = sorted(set(ids))
        for start in range(0, len(unique), 500):  # well under any backend's parameter cap
            chunk = unique[start:start + 500]
            for activity in self.list_activities(ActivityFilter(ids=chunk, include_deleted=True)):
                found[activity.id] = activity
        return found

    def activities_due_between(self, owner_id: int, start: date, end: date) -> list[Activity]:
        """The owner's live activities due on a day in [start, end] (both inclusive).

        The sync engine asks this when time moves its window forward, to find activities
        that no change touched but that now fall inside the window.
        """
        return self.list_activities(ActivityFilter(owner_id=owner_id, due_from=start,
                                                   due_to=end))


__all__ = ["ActivityFilter", "ActivityStore", "ChangePage"]
