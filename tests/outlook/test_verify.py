"""``syncd verify`` on the Graph emulator: a meeting of someone else's that syncd wrote to
is reported with whether it still holds what syncd left, and no repair ever writes it
(the other findings are planted on every provider by ``tests/sync_contract.py``)."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

from syncd.crm.builtin import BuiltinSource
from syncd.engine.audit import Finding
from syncd.engine.execute import LEASE_TTL
from syncd.model import Projection, When
from syncd.service import account_policy
from syncd.verify import audit_calendar, realign_drift, unpair_shared
from tests.outlook.conftest import GraphUser, OutlookWorld


def test_a_foreign_meeting_syncd_wrote_is_reported_and_left_as_it_is(
        tmp_path: Path, world: OutlookWorld) -> None:
    world.add("Demo", day=3)
    world.converge()
    start = datetime(2026, 12, 14, 9).astimezone()
    user = GraphUser(world.env.graph, world.upn)
    theirs = user.create(Projection(title="Their meeting", busy=True, when=When(
        start, start + timedelta(hours=1), "Europe/Oslo")))
    connector = world.cycle_connector()
    try:  # the etag as syncd's connector reads it
        (etag,) = [e.etag for e in connector.changes(None).events if e.event_id == theirs]
    finally:
        world.release(connector)
    world.state.record(world.account.name, writes=[(theirs, etag, "update")])

    def findings() -> list[Finding]:
        connector = world.cycle_connector()
        try:
            return audit_calendar(world.account, BuiltinSource(world.store), world.state,
                                  connector, account_policy(world.account), world.now
                                  )[0].findings
        finally:
            world.release(connector)

    (found,) = findings()
    assert (found.kind, found.event_ids, found.reason) == (
        "foreign_touched", (theirs,), "unchanged")
    # Neither repair touches it: it is not a duplicate, an orphan, drift or a shared event.
    token = world.state.acquire_lease(world.account.name, "verify", LEASE_TTL)
    assert token is not None
    assert realign_drift(world.state, world.account.name, [found], [], token=token,
                         log_dir=tmp_path) == []
    assert unpair_shared(world.state, world.account.name, [found], [], token=token,
                         log_dir=tmp_path) == []
    world.state.release_lease(world.account.name, token)
    assert not found.remove and not (tmp_path / "repairs.jsonl").exists()

    user.edit(theirs, title="Their meeting, moved")  # its organizer edits it after our write
    (found,) = findings()
    assert (found.kind, found.reason) == ("foreign_touched", "changed")
