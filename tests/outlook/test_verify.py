"""``syncd verify`` on the Graph emulator: a meeting of someone else's that syncd wrote to
is reported with whether it still holds what syncd left, and --repair deletes nothing
(the other findings are planted on every provider by ``tests/sync_contract.py``)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from syncd.crm.builtin import BuiltinSource
from syncd.engine.audit import Finding
from syncd.model import Projection, When
from syncd.service import account_policy
from syncd.verify import audit_calendar
from tests.outlook.conftest import GraphUser, OutlookWorld


def test_a_foreign_meeting_syncd_wrote_is_reported_and_left_as_it_is(world: OutlookWorld
                                                                     ) -> None:
    world.add("Demo", day=3)
    world.converge()
    start = datetime(2026, 12, 14, 8, tzinfo=UTC)
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
    assert not found.remove  # (and no other repair writes it: tests/google/test_verify.py)

    user.edit(theirs, title="Their meeting, moved")  # its organizer edits it after our write
    (found,) = findings()
    assert (found.kind, found.reason) == ("foreign_touched", "changed")
