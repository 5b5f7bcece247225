"""Meetings held by one account, by iCalendar UID (failure mode 20), on both backends."""

from __future__ import annotations

import uuid

from sqlalchemy import select

from syncd.crm.builtin.activities import ActivityStore
from syncd.pairs import SyncPair
from syncd.store.state import StateStore
from syncd.store.state_tables import SyncMeeting


def test_the_first_claim_on_a_meeting_wins_and_later_ones_see_its_holder(
        store: ActivityStore) -> None:
    state = StateStore(store.db)
    run = uuid.uuid4().hex  # the PostgreSQL database outlives one test
    uid, other = f"kickoff-{run}@client.example", f"other-{run}@client.example"
    alice, bob = f"alice-{run}", f"bob-{run}"
    assert state.claim_meeting(alice, uid) == alice
    assert state.claim_meeting(bob, uid) == alice
    assert state.claim_meeting(alice, uid, activity_id=42) == alice
    assert state.claim_meeting(bob, uid, activity_id=7) == alice  # never overwrites
    assert state.meeting_holders([uid, other]) == {uid: alice}
    with store.db.session() as s:
        row = s.scalar(select(SyncMeeting).where(SyncMeeting.ical_uid == uid))
        assert row is not None and (row.account, row.activity_id) == (alice, 42)


def test_recording_created_events_claims_their_meetings_without_taking_any(
        store: ActivityStore) -> None:
    state = StateStore(store.db)
    run = uuid.uuid4().hex
    alice, bob = f"alice-{run}", f"bob-{run}"
    state.account(alice)
    state.account(bob)
    held, fresh = f"held-{run}", "x" * 3000 + run  # a UID of any length
    state.claim_meeting(alice, held)
    state.record(bob, saves=[SyncPair(1, "uid-1", "ev-1", None, None, None)],
                 meetings=[(held, 1), (fresh, 1), (fresh, 1)])
    assert state.meeting_holders([held, fresh]) == {held: alice, fresh: bob}
