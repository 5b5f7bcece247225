"""A link's ``sent``: the event updates sent since its bases were recorded, on both
backends (syncd.engine.planning.landed reads them)."""

from __future__ import annotations

import uuid

from syncd.crm.builtin.activities import ActivityStore
from syncd.pairs import SyncPair
from syncd.store.state import SENT_KEPT, StateStore


def _linked(store: ActivityStore) -> tuple[StateStore, str, SyncPair]:
    state = StateStore(store.db)
    account = f"acc-{uuid.uuid4().hex}"  # the PostgreSQL database outlives one test
    state.account(account)
    pair = SyncPair(7, "uid-7", "ev-7", "e1", None, None)
    state.save_link(account, pair)
    return state, account, pair


def test_each_update_sent_is_kept_after_the_earlier_ones_until_the_link_is_saved(
        store: ActivityStore) -> None:
    state, account, pair = _linked(store)
    state.record(account, sent=[(7, {"busy": False})])
    state.record(account, sent=[(7, {"busy": True})])  # the same field, later: both kept
    state.record(account, sent=[(7, {"busy": True})])  # a retry of the same update: once
    state.record(account, sent=[(7, {"title": "Call"})])
    assert state.links(account)[7].sent == ({"busy": False}, {"busy": True}, {"title": "Call"})
    state.save_link(account, pair)  # the outcome recorded: nothing is unrecorded any more
    assert state.links(account)[7].sent == ()


def test_a_link_keeps_the_newest_updates_sent_up_to_its_bound(store: ActivityStore) -> None:
    state, account, _ = _linked(store)
    for n in range(SENT_KEPT + 3):
        state.record(account, sent=[(7, {"title": f"Call {n}"})])
    kept = state.links(account)[7].sent
    assert len(kept) == SENT_KEPT and kept[-1] == {"title": f"Call {SENT_KEPT + 2}"}
    assert kept[0] == {"title": "Call 3"}

