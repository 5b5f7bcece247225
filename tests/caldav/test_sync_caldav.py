"""The engine with the CalDAV connector against real Radicale and Xandikos servers."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, time
from pathlib import Path

import icalendar
import pytest

from syncd_testkit.servers import DavServer, RecordingProxy
from tests.caldav.world import DavWorld, close_world, make_dav_world


@pytest.fixture
def world(tmp_path: Path, dav_server: DavServer) -> Iterator[DavWorld]:
    w = make_dav_world(tmp_path, dav_server)
    yield w
    close_world(w)


def test_activities_appear_on_the_server_and_an_idle_cycle_changes_nothing(world: DavWorld
                                                                             ) -> None:
    a = world.add("Call Ada", guests=["ada@example.com"], location="Phone")
    world.add("Trade fair", due_time=None)
    assert world.sync().outcome == "ok"
    assert world.sync().outcome == "ok"  # reads the echo of our own writes
    before = world.objects()
    assert len(before) == 2
    summaries = {str(v["SUMMARY"]) for _, v in before.values()}
    assert summaries == {"Call Ada", "Trade fair"}
    vevent = next(v for _, v in before.values() if str(v["SUMMARY"]) == "Call Ada")
    assert str(vevent["X-SYNCD-ID"]) == a.sync_uid
    # No invitations by default: the server is told not to schedule (RFC 6638).
    assert vevent["ATTENDEE"].params["SCHEDULE-AGENT"] == "CLIENT"

    world.connector.forbid_writes = True
    for _ in range(2):
        report = world.sync()
        assert report.outcome == "ok" and report.counts["calendar_changes"] == 0
    assert world.objects().keys() == before.keys()
    assert {k: e for k, (e, _) in world.objects().items()} == {k: e for k, (e, _) in
                                                                before.items()}


def test_edit_in_a_calendar_app_comes_back_to_the_activity(world: DavWorld) -> None:
    a = world.add("Call Ada", note="do not leak")
    world.sync()
    [href] = world.objects().keys()
    event = world.dav().event_by_url(world.dav().url.join(href))
    event.load()
    component = event.icalendar_component
    component.pop("SUMMARY")
    component.add("SUMMARY", "Call Ada Lovelace")
    start = component.decoded("DTSTART").replace(hour=14)
    component.pop("DTSTART")
    component.pop("DTEND")
    component.add("DTSTART", start)
    component.add("DTEND", start.replace(hour=15))
    event.save()
    report = world.sync()
    assert report.counts["activities_updated"] == 1, report
    after = world.store.get(a.id)
    assert (after.subject, after.due_time, after.duration_minutes) == (
        "Call Ada Lovelace", time(14, 0), 60)
    assert world.store.get_note(a.id) == "do not leak"
    world.connector.forbid_writes = True
    assert world.sync().outcome == "ok"


def test_crm_edit_updates_the_event_without_touching_other_properties(world: DavWorld) -> None:
    a = world.add("Call Ada")
    world.sync()
    [(href, _)] = world.objects().items()
    event = world.dav().event_by_url(world.dav().url.join(href))
    event.load()
    alarm = icalendar.Alarm()
    alarm.add("ACTION", "DISPLAY")
    alarm.add("TRIGGER", icalendar.vDuration(-__import__("datetime").timedelta(minutes=10)))
    alarm.add("DESCRIPTION", "reminder")
    event.icalendar_component.add_component(alarm)
    event.save()
    world.sync()  # reads the user's alarm edit: nothing to sync
    [(_, (_, before))] = world.objects().items()
    world.store.edit_activity(a.id, location="Room 4")
    assert world.sync().counts["events_updated"] == 1
    [(_, (_, vevent))] = world.objects().items()
    assert str(vevent["LOCATION"]) == "Room 4"
    assert [c.name for c in vevent.subcomponents] == ["VALARM"]
    # A location change is not a reschedule: SEQUENCE stays where the user's app left it.
    assert int(vevent.get("SEQUENCE", 0)) == int(before.get("SEQUENCE", 0))


def test_expired_sync_token_relists_and_writes_nothing(world: DavWorld) -> None:
    for i in range(3):
        world.add(f"A{i}")
    world.sync()
    world.sync()
    bogus = ("sync:http://radicale.org/ns/sync/" + "0" * 64 if world.server.kind == "radicale"
             else "sync:" + "0" * 40)
    world.state.update_account("dav", calendar_cursor=bogus)
    world.connector.forbid_writes = True
    report = world.sync()
    assert report.outcome == "ok" and report.counts["full_resync"] == 1
    assert len(world.objects()) == 3


def test_hostile_objects_are_quarantined_while_the_rest_syncs(tmp_path: Path,
                                                              radicale: DavServer) -> None:
    world = make_dav_world(tmp_path, radicale, import_events=True)
    world.sync()
    dav = world.dav()
    huge = ("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:x\r\nBEGIN:VEVENT\r\nUID:huge\r\n"
            "DTSTAMP:20260101T000000Z\r\nDTSTART:20261210T100000Z\r\n"
            "DTEND:20261210T110000Z\r\nSUMMARY:big\r\nDESCRIPTION:" + "x" * (1100 * 1024)
            + "\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n")
    dav.add_event(huge)
    dav.add_event("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:x\r\nBEGIN:VEVENT\r\nUID:bomb\r\n"
                  "DTSTAMP:20260101T000000Z\r\nDTSTART:20261210T100000Z\r\n"
                  "DTEND:20261210T110000Z\r\nRRULE:FREQ=SECONDLY;COUNT=9999\r\n"
                  "SUMMARY:bomb\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n")
    dav.add_event("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:x\r\nBEGIN:VEVENT\r\nUID:backwards\r\n"
                  "DTSTAMP:20260101T000000Z\r\nDTSTART:20261210T100000Z\r\n"
                  "DTEND:20261209T110000Z\r\nSUMMARY:backwards\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n")
    dav.add_event("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:x\r\nBEGIN:VEVENT\r\nUID:fine\r\n"
                  "DTSTAMP:20260101T000000Z\r\nDTSTART:20261210T100000Z\r\n"
                  "DTEND:20261210T110000Z\r\nSUMMARY:<p>Fine</p><script>alert(1)</script>\r\n"
                  "END:VEVENT\r\nEND:VCALENDAR\r\n")
    report = world.sync()
    assert report.outcome == "ok", report.message
    assert report.counts["quarantined"] == 2  # the huge one and the backwards one
    assert report.counts["skipped_recurring"] == 1  # detected, never expanded
    subjects = [a.subject for a in world.store.list_activities(_owner(world))]
    assert subjects == ["Fine"]
    reasons = " ".join(q["reason"] for q in world.state.quarantine_list("dav"))
    assert "byte cap" in reasons and "DTEND is before DTSTART" in reasons
    world.connector.forbid_writes = True
    assert world.sync().counts["quarantined"] == 0  # quarantined items stay set aside


def _owner(world: DavWorld):  # type: ignore[no-untyped-def]
    from syncd.crm.builtin.views import ActivityFilter

    return ActivityFilter(owner_id=world.owner_id)


@pytest.fixture
def proxied(tmp_path: Path, radicale: DavServer) -> Iterator[tuple[DavWorld, RecordingProxy]]:
    """A world whose connector reaches Radicale through a proxy that records requests."""
    world = make_dav_world(tmp_path, radicale, proxied=True)
    assert world.proxy is not None
    yield world, world.proxy
    close_world(world)


def test_idle_cycle_and_the_echo_of_our_writes_cost_one_request_each(
    proxied: tuple[DavWorld, RecordingProxy]
) -> None:
    world, proxy = proxied
    for i in range(20):
        world.add(f"Meeting {i}", due_date=date(2026, 12, 1 + i))
    world.sync()
    proxy.requests.clear()
    world.connector.forbid_writes = True
    # The echo of our own 20 creates is recognised by etag: nothing is downloaded.
    assert world.sync().outcome == "ok"
    assert [r.method for r in proxy.requests] == ["REPORT"]
    assert not world.connector._written  # an echo seen is forgotten: memory is freed
    proxy.requests.clear()
    assert world.sync().outcome == "ok"
    assert [r.method for r in proxy.requests] == ["REPORT"]  # one sync-collection


def test_crm_edits_fetch_their_objects_in_one_multiget_then_put_each(
    proxied: tuple[DavWorld, RecordingProxy]
) -> None:
    world, proxy = proxied
    activities = [world.add(f"Meeting {i}", due_date=date(2026, 12, 1 + i)) for i in range(5)]
    world.sync()
    world.sync()
    for a in activities:
        world.store.edit_activity(a.id, location="Room 4")
    proxy.requests.clear()
    assert world.sync().counts["events_updated"] == 5
    # sync-collection, one calendar-multiget for the five objects, five PUTs
    assert sorted(r.method for r in proxy.requests) == ["PUT"] * 5 + ["REPORT"] * 2
    assert all(e.get("LOCATION") == "Room 4" for _, e in world.objects().values())
