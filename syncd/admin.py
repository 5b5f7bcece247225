"""Undo for admins: resolving a conflict the other way, and purging old deletions.

Both act on the CRM and the sync state together, and never on a calendar directly: what
they change in the CRM reaches the calendars through the next ordinary cycle, with the
same conditional writes, guards and merge bases as any other edit.

* :func:`resolve_conflict` closes a conflict. Taking the winning side only closes it (its
  value is already on both sides). Taking the losing side writes that value to the
  activity through the account's CRM source (the built-in store or a remote CRM alike);
  the next cycle sees a CRM edit and copies it to the calendar. It refuses
  (:class:`~syncd.errors.ConflictUnresolvable`, nothing changed) when the field was
  edited since the conflict, since applying the old value would undo that newer edit.
The other two are the built-in store's own (a remote CRM keeps and restores its deleted
activities itself):

* :func:`restore_activity` brings a deleted activity back, with a fresh identity for
  its events where the old ones were deleted.
* :func:`purge_expired` removes for good the activities deleted more than the retention
  period ago (notes, guests and links with them), and their conflicts and CRM-side
  quarantine entries. Links to calendar events stay: each account's next cycle gets the
  purged activity as a tombstone, deletes any event still left and drops the link.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from syncd.config import AccountConfig
from syncd.crm.builtin.activities import ActivityStore
from syncd.crm.source import ApplyChanges, CrmSource
from syncd.errors import ConflictUnresolvable
from syncd.model import (
    FIELDS,
    Activity,
    DoneStyle,
    When,
    activity_changes,
    project_activity,
)
from syncd.store.state import StateStore

Side = Literal["crm", "calendar"]


@dataclass(frozen=True)
class Resolution:
    """What :func:`resolve_conflict` did."""

    conflict_id: int
    account: str
    activity_id: int | None
    field: str
    took: Side
    applied: bool  # the losing value was written to the activity (False: only closed)
    already_closed: bool = False


def _field_value(name: str, data: Any) -> Any:
    """A projection field back from its conflicts-table JSON (``field_to_json``)."""
    if data is None:
        return None
    if name == "when":
        return When.from_json(data)
    if name == "guests":
        return frozenset(data)
    return data


def resolve_conflict(source: CrmSource, state: StateStore, conflict_id: int, take: Side,
                     accounts: Mapping[str, AccountConfig]) -> Resolution:
    """Close conflict ``conflict_id`` keeping the ``take`` side's value.

    ``accounts`` gives the account's ``done_style`` (how a title carries the done flag);
    an account no longer configured is taken with the default.

    Raises:
        NotFound: no conflict has this id.
        ConflictUnresolvable: the value cannot be applied; nothing was changed.
    """
    row = state.conflict(conflict_id)
    result = Resolution(row["id"], row["account"], row["activity_id"], row["field"], take,
                        applied=False)
    if row["resolved"]:
        return Resolution(**{**result.__dict__, "already_closed": True})
    if take != row["winner"]:
        _apply(source, row, take, accounts)
        result = Resolution(**{**result.__dict__, "applied": True})
    state.close_conflict(conflict_id)
    return result


def _apply(source: CrmSource, row: Mapping[str, Any], take: Side,
           accounts: Mapping[str, AccountConfig]) -> None:
    """Write the ``take`` side's value of the conflict's field to its activity."""
    name, activity_id = row["field"], row["activity_id"]

    def refuse(cause: str) -> ConflictUnresolvable:
        return ConflictUnresolvable(conflict_id=row["id"], activity_id=activity_id,
                                    field=name, cause=cause)

    if name not in FIELDS:  # the event itself (a delete withheld): no value to write
        raise refuse("event")
    if activity_id is None:
        raise refuse("purged")
    activity = source.get(activity_id)
    if activity is None:
        raise refuse("purged")
    if activity.deleted:
        raise refuse("deleted")
    cfg = accounts.get(row["account"])
    done_style = DoneStyle(cfg.done_style) if cfg is not None else DoneStyle.KEEP
    current = project_activity(activity, done_style)
    if current is None:
        raise refuse("undated")
    wanted = _field_value(name, row["crm_value"] if take == "crm" else row["calendar_value"])
    kept = _field_value(name, row["calendar_value"] if take == "crm" else row["crm_value"])
    # The winner's value is what both sides hold after the cycle that decided it. If the
    # activity holds something else now, someone edited it since. A CRM delete (no
    # value) was undone by restoring the activity, which is no edit of the field.
    if kept is not None and current.get(name) != kept:
        raise refuse("changed")
    changes = activity_changes(current.replace({name: wanted}), [name], activity.owner_tz,
                               done_style)
    result = source.write([ApplyChanges(activity_id, changes)])[0]
    if result.error is not None:
        raise result.error


def restore_activity(store: ActivityStore, state: StateStore, activity_id: int) -> Activity:
    """Restore a deleted activity so that it syncs again.

    Where a cycle already deleted its events (no account holds an event for it), it gets
    a fresh sync uid: the events made for it anew then carry ids, hrefs and UIDs that
    no calendar has seen, where one that keeps deleted events (Google's cancelled events,
    a CalDAV trash bin, Graph's memory of a transactionId) could refuse the old ones
    (failure mode 2). Where an event is still linked (no cycle has seen the delete
    yet), the uid stays and the pair simply carries on.

    Raises:
        NotFound: there is no such activity (or it was purged).
    """
    linked = bool(state.linked_accounts(activity_id))
    return store.restore_activity(activity_id, new_sync_uid=not linked)


def purge_expired(store: ActivityStore, state: StateStore, retention_days: int, *,
                  now: datetime | None = None, dry_run: bool = False) -> list[int]:
    """Purge the activities deleted at least ``retention_days`` ago; returns their ids.
    The calendar write log (``syncd verify``) older than that goes too.

    With ``dry_run`` nothing is removed and the ids are those that would be.
    """
    if dry_run:
        return [a.id for a in store.purgeable(older_than_days=retention_days, now=now)]
    state.prune_writes((now or datetime.now(UTC)) - timedelta(days=retention_days))
    ids = store.purge_deleted_ids(older_than_days=retention_days, now=now)
    if ids:
        state.forget_activities(ids)
    return ids
