"""Every Graph request asks for immutable ids (failure mode 9).

An Outlook event's regular id changes when the item moves between folders, and an id
syncd keeps must be the one Graph answers with next time: one request without
``Prefer: IdType="ImmutableId"`` hands back a regular id, which the next cycle no longer
finds. The emulator records, per request (each item of a ``$batch`` on its own), whether
it asked; a sync through creates, edits on both sides, a deletion and an expired delta
token must never leave it out.
"""

from __future__ import annotations

from tests.outlook.conftest import ALICE, OutlookWorld


def sync_ok(world: OutlookWorld) -> None:
    report = world.sync()
    assert report.outcome == "ok", report.message
    world.advance(minutes=1)


def test_every_request_of_a_sync_asks_for_immutable_ids(world: OutlookWorld) -> None:
    graph = world.env.graph
    kept, edited, gone = (world.add(f"Call {n}", day=10 + i) for i, n in enumerate("abc"))
    sync_ok(world)
    sync_ok(world)
    world.store.edit_activity(kept.id, subject="Call a (CRM)")
    graph.put_event(ALICE, world.event_id_of(edited.id), {"subject": "Call b (Outlook)"})
    world.store.delete_activity(gone.id)
    sync_ok(world)
    graph.expire_delta_tokens(ALICE, mode="syncStateNotFound")
    sync_ok(world)
    sync_ok(world)
    assert world.store.get(edited.id).subject == "Call b (Outlook)"

    calls = [r for r in graph.requests if "/$batch" not in r.path]
    kinds = {(r.method, r.in_batch) for r in calls}
    # the sync did read, write inside batches and list the delta: all were looked at
    assert {("GET", False), ("POST", True), ("PATCH", True), ("DELETE", True)} <= kinds
    assert any("/delta" in r.path for r in calls)
    without = [f"{r.method} {r.path}" for r in calls if not r.immutable_id_requested]
    assert without == []
