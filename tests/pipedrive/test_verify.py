"""``syncd verify`` with Pipedrive as the CRM (issue 18), on Radicale, Xandikos, the Google
emulator and the Graph emulator: clean after a normal sync, then each kind of finding planted and
reported, read through Pipedrive's own source (its markers, its notes, its deleted
activities), and the drift repair written by the next cycle.

The built-in CRM's counterpart is ``tests/sync_contract.py``; the rules themselves are
table-tested in ``tests/engine/test_audit.py``.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime

import pytest

from connectors.base import CreateOp
from syncd.engine.execute import LEASE_TTL
from syncd.model import project_activity
from syncd.store.db import Database
from syncd.verify import realign_drift
from tests.pipedrive.conftest import open_side
from tests.pipedrive.world import CalendarSide, PipedriveWorld, company, make_world


@pytest.fixture(params=["radicale", "xandikos", "google", "graph"])
def side(request: pytest.FixtureRequest, e2e_db: Database) -> Iterator[CalendarSide]:
    """Every calendar provider (the package's ``side`` leaves Xandikos out for time)."""
    yield from open_side(request, e2e_db)


@pytest.fixture
def world(e2e_db: Database, side: CalendarSide) -> Iterator[PipedriveWorld]:
    emulator = company()
    # No imports: the foreign event planted below must stay the calendar user's own.
    yield make_world(emulator, e2e_db, side, import_events=False)
    emulator.stop()


def test_verify_on_pipedrive_is_clean_after_a_sync_and_reports_each_planted_fault(
        world: PipedriveWorld) -> None:
    secret = world.add("Call Ada", "2026-12-10", "09:00",
                       note="<p>Ask about the <b>merger</b> terms, quietly</p>")
    copied = world.add("Lunch", "2026-12-10", "12:00")
    drifted = world.add("Review", "2026-12-11", "09:00")
    gone = world.add("Demo", "2026-12-11", "13:00")
    world.converge()
    clean = world.verify()[0]
    assert (clean.findings, clean.privacy_checked, clean.pairs) == ([], True, 4)
    name = world.account.name

    # A note pasted into the event in the calendar app (re-cased, re-spaced, no HTML).
    world.user_edit(world.event_of(secret).event_id,
                    description="Call Ada: ask about  the MERGER terms, quietly")
    # A second event carrying one activity's marker, and one whose marker is nobody's.
    link = world.state.links(name)[copied]
    projection = world.event_of(copied).projection
    assert projection is not None
    connector = world.side.connector(world.account, world.zone, world.now)
    try:
        results = connector.write([
            CreateOp("copy", link.sync_uid, link.generation + 7, projection),
            CreateOp("stray", uuid.uuid4().hex, 0, projection)])
    finally:
        connector.close()
    assert all(r.error is None for r in results), results
    # An activity deleted in Pipedrive whose pair was dropped while its event stayed: the
    # event's marker is found through Pipedrive's marker table, as a deleted activity.
    gone_event = world.event_of(gone).event_id
    world.emulator.delete_as_user(world.owner, gone)
    world.state.record(name, drops=[gone])
    # A pair that recorded a Pipedrive edit as written although the event never got it.
    world.edit(drifted, subject="Review (moved)")
    crm_now = world.source().get(drifted)
    assert crm_now is not None
    drift_link = world.state.links(name)[drifted]
    world.state.save_link(name, replace(drift_link, crm_base=project_activity(crm_now)))
    # An activity made in Pipedrive since the last cycle.
    unsynced = world.add("Not yet", "2026-12-12", "10:00")
    # Someone else's meeting in the calendar that the write log says syncd wrote to.
    world.side.user_create(world.account, "Their meeting",
                           datetime(2026, 12, 14, 9, tzinfo=UTC), 60)
    (theirs,) = [e for e in world.events().values() if e.marker is None]
    world.state.record(name, writes=[(theirs.event_id, theirs.etag, "update")])

    audit, events = world.verify()
    found = {(f.kind, f.activity_id, f.reason) for f in audit.findings}
    assert found == {("privacy", secret, None), ("duplicate", copied, None),
                     ("orphan", None, "unknown_marker"), ("orphan", gone, "deleted"),
                     ("drift", drifted, None), ("missing", unsynced, "not_synced_yet"),
                     ("foreign_touched", None, "unchanged")}, audit.findings
    assert "merger" not in repr(audit.findings).lower()  # named by ids, never by its text
    by_kind = {(f.kind, f.reason): f for f in audit.findings}
    # --repair would delete only the copy (the pair keeps its event) and the orphans.
    assert by_kind[("duplicate", None)].remove == tuple(
        e for e in by_kind[("duplicate", None)].event_ids if e != link.event_id)
    assert by_kind[("orphan", "deleted")].remove == (gone_event,)
    assert not by_kind[("foreign_touched", "unchanged")].remove

    # The drift repair: the next cycle writes Pipedrive's subject over the event's.
    token = world.state.acquire_lease(name, "verify", LEASE_TTL)
    assert token is not None
    assert realign_drift(world.state, name, audit.findings, events, token=token,
                         log_dir=None) == [drifted]
    world.state.release_lease(name, token)
    world.converge()
    assert world.event_of(drifted).projection.title == "Review (moved)"  # type: ignore[union-attr]
    assert "drift" not in {f.kind for f in world.verify()[0].findings}
