"""Purge, conflicts and quarantine in the sync state, on both backends."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from sqlalchemy import delete

from syncd.admin import purge_expired, restore_activity
from syncd.crm.builtin.activities import ActivityStore
from syncd.errors import NotFound
from syncd.pairs import Conflict, SyncPair
from syncd.store.state import StateStore
from syncd.store.state_tables import SyncLink
from tests.store.helpers import NOW, make_world


def test_a_purge_takes_the_conflicts_and_crm_quarantine_of_purged_activities_only(
        store: ActivityStore) -> None:
    state = StateStore(store.db)
    account = f"acc-{uuid.uuid4().hex}"  # the PostgreSQL database outlives one test
    state.account(account)
    w = make_world(store)
    old, recent, live = (store.add_activity(owner_id=w.ann, subject=s, note="n")
                         for s in ("old", "recent", "live"))
    for a in (old, recent, live):
        state.record(account, conflicts=[
            (a.id, f"ev-{a.id}", Conflict("title", "crm", "cal", "crm", "crm_wins"))])
        state.record_failure(account, f"crm:{a.id}", "v1", "refused", immediate=True)
    state.record_failure(account, "calendar:ev-x", "etag", "unreadable", immediate=True)
    state.save_link(account, SyncPair(old.id, old.sync_uid, f"ev-{old.id}", "e1", None, None))
    store.delete_activity(old.id, now=NOW - timedelta(days=31))
    store.delete_activity(recent.id, now=NOW - timedelta(days=29))

    assert purge_expired(store, state, 30, now=NOW, dry_run=True) == [old.id]
    assert state.open_conflict_count(account) == 3
    assert purge_expired(store, state, 30, now=NOW) == [old.id]
    assert {c["activity_id"] for c in state.conflicts(account)} == {recent.id, live.id}
    assert {q["item"] for q in state.quarantine_list(account)} == {
        f"crm:{recent.id}", f"crm:{live.id}", "calendar:ev-x"}
    # The link stays until a cycle has deleted the event the tombstone stands for.
    assert old.id in state.links(account)
    with pytest.raises(NotFound):
        store.get_note(old.id)
    assert purge_expired(store, state, 30, now=NOW) == []


def test_conflicts_close_one_by_one_and_failed_items_are_released_for_one_retry(
        store: ActivityStore) -> None:
    state = StateStore(store.db)
    account = f"acc-{uuid.uuid4().hex}"
    state.record(account, conflicts=[(1, "ev", Conflict("title", "a", "b", "crm", "crm_wins")),
                                     (1, "ev", Conflict("busy", True, False, "crm", "crm_wins"))])
    first, second = state.conflicts(account)
    state.close_conflict(first["id"])
    assert state.open_conflict_count(account) == 1
    assert state.conflict(first["id"])["resolved"] is True
    assert [c["id"] for c in state.conflicts(account, open_only=False)] == [first["id"],
                                                                            second["id"]]
    with pytest.raises(NotFound):
        state.conflict(2**31 - 1)

    state.record_failure(account, "calendar:a", "e1", "bad", immediate=True)
    state.record_failure(account, "calendar:b", "e1", "bad", immediate=True)
    items = {q["item"]: q for q in state.quarantine_list(account)}
    assert state.retry_item(items["calendar:a"]["id"])["was"] == "quarantined"
    assert state.retry_keys(account) == ["calendar:a"]
    assert state.quarantined(account) == {"calendar:b": "e1"}  # no longer skipped
    assert state.quarantine_count(account) == 1
    state.clear_retries(account, ["calendar:a", "calendar:b"])  # only released ones go
    assert [q["item"] for q in state.quarantine_list(account)] == ["calendar:b"]
    with pytest.raises(NotFound):
        state.retry_item(items["calendar:a"]["id"])


def test_restore_renews_the_sync_uid_only_when_no_event_is_linked(store: ActivityStore
                                                                   ) -> None:
    state = StateStore(store.db)
    account = f"acc-{uuid.uuid4().hex}"
    state.account(account)
    w = make_world(store)
    linked = store.add_activity(owner_id=w.ann, subject="linked")
    bare = store.add_activity(owner_id=w.ann, subject="bare")
    unlinked = store.add_activity(owner_id=w.ann, subject="unlinked")
    with store.db.session() as s:  # links other tests left for these (reset) ids
        s.execute(delete(SyncLink).where(SyncLink.activity_id.in_(
            [linked.id, bare.id, unlinked.id])))
    state.save_link(account, SyncPair(linked.id, linked.sync_uid, "ev-1", "e1", None, None))
    # on_calendar_delete = "unlink": a pair remembered without its event
    state.save_link(account, SyncPair(unlinked.id, unlinked.sync_uid, None, None, None, None))
    for a in (linked, bare, unlinked):
        store.delete_activity(a.id)
    assert restore_activity(store, state, linked.id).sync_uid == linked.sync_uid
    assert restore_activity(store, state, bare.id).sync_uid != bare.sync_uid
    assert restore_activity(store, state, unlinked.id).sync_uid != unlinked.sync_uid
