"""The engine with the Outlook connector against the Graph emulator, end to end."""

from __future__ import annotations

import json
import logging
import time as wall
from collections import Counter
from datetime import time
from pathlib import Path
from typing import Any

import pytest

from connectors.outlook import OutlookCalendar
from syncd_testkit.emulators.graph import FaultRule
from tests.outlook.conftest import (
    ALICE,
    SECRET,
    Env,
    GuardedOutlook,
    OutlookWorld,
    make_world,
)


def converge(world: OutlookWorld) -> None:
    """A cycle that writes, then one that reads the echoes; both must succeed."""
    for _ in range(2):
        report = world.sync()
        assert report.outcome == "ok", report.message
        world.advance(minutes=1)


def idle(world: OutlookWorld, cycles: int = 1) -> None:
    """Cycles that must not write anything."""
    world.forbid_writes = True
    for _ in range(cycles):
        report = world.sync()
        assert report.outcome == "ok", report.message
        world.advance(minutes=1)
    world.forbid_writes = False


def markers(world: OutlookWorld) -> Counter[str]:
    """How many events carry each marker (a duplicate shows as a count above 1)."""
    out: Counter[str] = Counter()
    for event in world.events():
        for prop in event.get("singleValueExtendedProperties", []):
            if prop["id"].endswith("Name syncdMarker"):
                out[prop["value"]] += 1
    return out


def writes_sent(env: Env) -> int:
    return sum(1 for r in env.graph.requests if r.in_batch and r.method != "GET")


# --- idempotent creates (failure mode 1) --------------------------------------------------


def test_a_create_applied_before_a_504_leaves_one_event(world: OutlookWorld) -> None:
    activity = world.add("Call Ada")
    world.env.graph.inject(FaultRule(method="POST", path=r"/events$", status=504,
                                     code="GatewayTimeout", apply_then_fail=True, count=1))
    first = world.sync()
    assert first.outcome == "partial"
    assert len(world.events()) == 1  # the server did create it
    world.advance(minutes=1)
    second = world.sync()
    assert second.outcome == "ok", second.message
    assert second.counts["recovered_creates"] == 1
    assert markers(world) == {activity.sync_uid: 1}
    assert world.event_id_of(activity.id) == world.events()[0]["id"]
    idle(world, 2)


def test_a_create_whose_answer_timed_out_is_adopted_not_repeated(
    tmp_path: Path, env: Env
) -> None:
    world = make_world(tmp_path, env, env.account())
    world.options = {"timeout": (5.0, 0.4)}
    activities = [world.add(f"Call {i}", day=10 + i) for i in range(3)]
    env.graph.inject(FaultRule(method="POST", path=r"/events$", status=None,
                               delay_seconds=0.8, count=1))
    assert world.sync().outcome == "partial"  # the client gave up on the whole batch
    deadline = wall.monotonic() + 5
    while len(world.events()) < 3 and wall.monotonic() < deadline:
        wall.sleep(0.05)  # the server finishes the batch after the client left
    world.advance(minutes=1)
    report = world.sync()
    assert report.outcome == "ok", report.message
    assert report.counts["recovered_creates"] == 3
    assert markers(world) == {a.sync_uid: 1 for a in activities}
    idle(world)


def test_a_retried_create_with_newer_content_adopts_and_updates_the_event(
    world: OutlookWorld
) -> None:
    activity = world.add("Call Ada")
    world.env.graph.inject(FaultRule(method="POST", path=r"/events$", status=504,
                                     code="GatewayTimeout", apply_then_fail=True, count=1))
    world.sync()
    world.store.edit_activity(activity.id, subject="Call Ada Lovelace")
    # The pending create is settled by reading first; the CRM edit then flows as an update.
    world.advance(minutes=1)
    assert world.sync().outcome == "ok"
    world.advance(minutes=1)
    assert world.sync().outcome == "ok"
    [event] = world.events()
    assert event["subject"] == "Call Ada Lovelace"
    assert markers(world) == {activity.sync_uid: 1}


# --- delta resets and the rolling window (failure modes 11 and 12) -------------------------


@pytest.mark.parametrize("mode", ["410", "syncStateNotFound"])
def test_an_expired_delta_token_relists_without_duplicates_or_lost_edits(
    world: OutlookWorld, mode: str
) -> None:
    a, b, c = (world.add(f"Call {n}", day=10 + i) for i, n in enumerate("abc"))
    converge(world)
    user_edited = world.event_id_of(a.id)
    world.env.graph.put_event(ALICE, user_edited, {"subject": "Call a (edited in Outlook)"})
    world.store.edit_activity(b.id, subject="Call b (edited in the CRM)")
    world.env.graph.expire_delta_tokens(ALICE, mode=mode)
    report = world.sync()
    assert report.outcome == "ok", report.message
    assert report.counts["full_resync"] == 1
    assert world.store.get(a.id).subject == "Call a (edited in Outlook)"
    subjects = {e["id"]: e["subject"] for e in world.events()}
    assert subjects[world.event_id_of(b.id)] == "Call b (edited in the CRM)"
    assert markers(world) == {x.sync_uid: 1 for x in (a, b, c)}
    world.advance(minutes=1)
    idle(world)
    # Expired again with nothing changed: the full listing reconciles to zero writes.
    world.env.graph.expire_delta_tokens(ALICE, mode=mode)
    idle(world)
    assert world.reports[-1].counts["full_resync"] == 1


def test_the_delta_window_rolls_forward_weekly_with_zero_writes_when_idle(
    world: OutlookWorld
) -> None:
    a = world.add("Call a", day=20)
    converge(world)
    first = json.loads(world.state.account("alice").calendar_cursor or "")
    world.advance(days=3)
    idle(world)  # within a week: the same chain
    assert json.loads(world.state.account("alice").calendar_cursor or "")["start"] == \
        first["start"]
    world.advance(days=5)
    world.env.graph.put_event(ALICE, world.event_id_of(a.id), {"subject": "Call a (moved)"})
    report = world.sync()
    assert report.outcome == "ok", report.message
    rolled = json.loads(world.state.account("alice").calendar_cursor or "")
    assert rolled["start"] > first["start"] and rolled["delta"] != first["delta"]
    assert world.store.get(a.id).subject == "Call a (moved)"
    world.advance(days=8)
    idle(world)  # another roll, nothing changed: zero writes
    assert markers(world) == {a.sync_uid: 1}


def test_an_event_that_leaves_the_window_is_untracked_not_deleted(world: OutlookWorld) -> None:
    a = world.add("Call a", day=20)
    converge(world)
    event_id = world.event_id_of(a.id)
    far = {"start": {"dateTime": "2029-01-05T09:00:00", "timeZone": "UTC"},
           "end": {"dateTime": "2029-01-05T10:00:00", "timeZone": "UTC"}}
    world.env.graph.put_event(ALICE, event_id, far)
    world.forbid_writes = True
    report = world.sync()
    assert report.outcome == "ok", report.message
    after = world.store.get(a.id, include_deleted=True)
    assert not after.deleted and after.due_date == a.due_date  # untracked: nothing flows
    assert len(world.events()) == 1


def test_a_real_delete_in_outlook_reaches_the_crm(world: OutlookWorld) -> None:
    a = world.add("Call a", day=20)
    converge(world)
    world.env.graph.delete_event_as_user(ALICE, world.event_id_of(a.id))
    assert world.sync().outcome == "ok"
    assert world.store.get(a.id, include_deleted=True).deleted


# --- invitations (failure mode 6) -------------------------------------------------------


def test_describe_mode_sends_no_invitation_for_fifty_activities_with_guests(
    world: OutlookWorld
) -> None:
    for i in range(50):
        world.add(f"Meeting {i}", day=10 + i % 15, hour=8 + i % 9,
                  guests=[f"guest{i}@example.com", "boss@example.org"])
    converge(world)
    assert len(world.events()) == 50
    assert all(e["attendees"] == [] for e in world.events())
    idle(world, 2)
    assert world.env.graph.invitations_sent == 0


def test_invite_mode_mails_each_guest_once_per_time_change_and_never_when_idle(
    tmp_path: Path, env: Env
) -> None:
    world = make_world(tmp_path, env, env.account(invite_guests=True))
    converge(world)  # the first sync: what it creates invites nobody
    guests = ["ada@example.com", "bob@example.org"]
    moved = world.add("Review", guests=guests)
    world.add("Planning", day=11, guests=guests)
    converge(world)
    # Graph mails every attendee it is given: each guest got two invitations.
    assert env.graph.invitations_by_recipient == {g: 2 for g in guests}
    before = len(env.graph.mail_log)
    world.store.edit_activity(moved.id, due_time=time(15))
    assert world.sync().outcome == "ok"
    new = env.graph.mail_log[before:]
    assert sorted((m.kind, m.recipient) for m in new) == [("update", g) for g in guests]
    world.advance(minutes=1)
    idle(world, 3)
    assert len(env.graph.mail_log) == before + 2


# --- limits -----------------------------------------------------------------------------


def test_an_initial_sync_of_sixty_activities_keeps_four_requests_in_flight(
    world: OutlookWorld
) -> None:
    graph = world.env.graph
    graph.latency_seconds = 0.02
    for i in range(60):
        world.add(f"Call {i}", day=1 + i % 28, hour=8 + i % 10)
    report = world.sync()
    assert report.outcome == "ok", report.message
    assert report.counts["events_created"] == 60
    assert graph.max_in_flight_seen[ALICE.lower()] == 4  # used, never exceeded
    assert all(r.status != 429 for r in graph.requests)
    outer = [r for r in graph.requests if not r.in_batch]
    assert [r.path for r in outer if r.method == "POST"] == ["/$batch"] * 3
    assert len(outer) == 4  # one delta page (empty calendar, no listing) + three batches
    assert all(r.immutable_id_requested for r in graph.requests)
    assert not any(r.path.lower().startswith("/me") for r in graph.requests)
    graph.latency_seconds = 0.0
    world.advance(minutes=1)
    idle(world)
    assert len(graph.events(ALICE)) == 60


# --- privacy (failure modes 27 and 28) -----------------------------------------------------


def test_notes_and_secrets_never_reach_graph_the_token_endpoint_or_the_logs(
    world: OutlookWorld, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    canary = "CANARY-7f3e-private-note"
    a = world.add("Call Ada", note=f"budget 40k {canary}", description="public agenda",
                  guests=["ada@example.com"])
    converge(world)
    world.env.graph.put_event(ALICE, world.event_id_of(a.id), {"subject": "Call Ada!"})
    assert world.sync().outcome == "ok"
    assert world.store.get_note(a.id).endswith(canary)
    for request in world.env.graph.requests:
        blob = f"{request.url} {request.headers} {request.body!r}"
        assert canary not in blob
        assert SECRET not in blob
    assert all(canary not in json.dumps(form) for form in world.env.identity.token_requests)
    assert canary not in caplog.text and SECRET not in caplog.text
    assert any(r.name == "syncd.outlook" for r in caplog.records)  # logging did happen


# --- what Graph may do to a round ------------------------------------------------------------


class HtmlOutlook(GuardedOutlook):
    """A connector whose server ignores ``outlook.body-content-type="text"``."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.http.prefer = self.http.prefer.replace(', outlook.body-content-type="text"', "")


def test_html_bodies_read_as_text_and_never_ping_pong(world: OutlookWorld) -> None:
    world.cls = HtmlOutlook
    a = world.add("Call", description="Agenda:\n1. pricing  &  terms\n\n2. <b>not html</b>",
                  guests=["ada@example.com"])
    converge(world)
    idle(world, 2)
    body = "<html><body><p>New <b>agenda</b></p><p>Guests: ada@example.com</p></body></html>"
    world.env.graph.put_event(ALICE, world.event_id_of(a.id),
                              {"body": {"contentType": "html", "content": body}})
    assert world.sync().outcome == "ok"
    assert world.store.get(a.id).description == "New agenda"
    world.advance(minutes=1)
    idle(world, 2)
    assert all(r.header("Prefer") and "body-content-type" not in (r.header("Prefer") or "")
               for r in world.env.graph.requests if not r.in_batch)


def test_empty_pages_and_replayed_changes_are_followed_and_harmless(world: OutlookWorld) -> None:
    world.env.graph.empty_pages = True
    world.env.graph.replay_duplicates = True
    activities = [world.add(f"Call {i}", day=10 + i) for i in range(3)]
    converge(world)
    world.env.graph.put_event(ALICE, world.event_id_of(activities[0].id),
                              {"subject": "Call 0 (edited)"})
    assert world.sync().outcome == "ok"
    assert world.store.get(activities[0].id).subject == "Call 0 (edited)"
    world.advance(minutes=1)
    idle(world, 2)
    assert markers(world) == {a.sync_uid: 1 for a in activities}


def test_a_configured_calendar_is_synced_instead_of_the_default(tmp_path: Path,
                                                                env: Env) -> None:
    calendar = env.graph.add_calendar(ALICE, "CRM")
    world = make_world(tmp_path, env, env.account(calendar=calendar))
    a = world.add("Call")
    converge(world)
    assert [e["subject"] for e in env.graph.events(ALICE, calendar_id=calendar)] == ["Call"]
    assert env.graph.events(ALICE) == []
    env.graph.put_event(ALICE, world.event_id_of(a.id), {"subject": "Call (edited)"})
    assert world.sync().outcome == "ok"
    assert world.store.get(a.id).subject == "Call (edited)"


def test_the_registry_opens_the_connector_without_any_request(env: Env) -> None:
    from connectors import ConnectorContext, open_connector
    from tests.outlook.conftest import WINDOW

    connector = open_connector(env.account(), ConnectorContext("Europe/Oslo", WINDOW))
    assert isinstance(connector, OutlookCalendar)
    assert connector.capabilities.max_batch == 20
    assert env.graph.requests == [] and env.identity.token_requests == []
    connector.close()


# --- recurring series (calendarView delta lists occurrences, never the master) ------------

WEEKLY = {"pattern": {"type": "weekly", "interval": 1, "daysOfWeek": ["monday"]},
          "range": {"type": "numbered", "startDate": "2026-12-07", "numberOfOccurrences": 5}}


def _weekly(env: Env) -> dict[str, Any]:
    return env.graph.create_event_as_user(ALICE, {
        "subject": "Team standup", "recurrence": WEEKLY,
        "start": {"dateTime": "2026-12-07T09:00:00", "timeZone": "Europe/Oslo"},
        "end": {"dateTime": "2026-12-07T09:15:00", "timeZone": "Europe/Oslo"}})


def test_a_weekly_series_made_in_outlook_is_never_imported_nor_touched(
        tmp_path: Path, env: Env) -> None:
    # import_events imports what users make in the calendar, never a recurring series.
    world = make_world(tmp_path, env, env.account(import_events=True))
    world.add("Call Ada")
    converge(world)
    series = _weekly(env)
    world.forbid_writes = True
    report = world.sync()
    assert report.outcome == "ok", report.message
    # The delta round named the five occurrences (and the master, outside the view): each
    # read, seen as part of a series and left alone.
    assert report.counts["skipped_recurring"] == 6, report.counts
    assert world.subjects() == ["Call Ada"]
    assert [e["id"] for e in world.events() if e["subject"] == "Team standup"] == [
        series["id"]]
    world.advance(minutes=1)
    idle(world)

    env.graph.delete_event_as_user(ALICE, series["id"])
    report = world.sync()
    assert report.outcome == "ok", report.message
    assert world.subjects() == ["Call Ada"]
    assert [e["subject"] for e in world.events()] == ["Call Ada"]
    world.forbid_writes = False


def test_a_synced_event_made_weekly_in_outlook_is_set_aside_and_its_activity_kept(
        world: OutlookWorld, env: Env) -> None:
    activity = world.add("Weekly review", day=7)
    converge(world)
    event_id = world.event_id_of(activity.id)
    env.graph.put_event(ALICE, event_id, {"recurrence": WEEKLY})
    world.forbid_writes = True
    report = world.sync()
    assert report.outcome == "ok", report.message
    # The series keeps the pair's id and our marker, its occurrences copy the marker:
    # the pair is quarantined (never deleted), the occurrences are not taken for it.
    assert report.counts["quarantined"] == 1, report.counts
    assert report.counts["skipped_duplicate_marker"] == 5, report.counts
    assert world.subjects() == ["Weekly review"]
    assert world.event_id_of(activity.id) == event_id
    world.forbid_writes = False
