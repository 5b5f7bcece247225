"""The engine with the CalDAV connector against real Radicale and Xandikos servers."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import date, time
from pathlib import Path
from typing import Any

import caldav
import icalendar
import pytest

from connectors.base import WriteOp, WriteResult
from connectors.caldav import CalDAVCalendar
from syncd.config import AccountConfig
from syncd.crm.builtin.activities import ActivityStore
from syncd.crm.builtin.source import BuiltinSource
from syncd.engine.runner import CycleReport, sync_account
from syncd.store.db import Database
from syncd.store.state import StateStore
from syncd_testkit.servers import DavServer, RecordingProxy
from tests.conftest import fresh_calendar
from tests.engine.world import START


class GuardedCalendar(CalDAVCalendar):
    """Counts writes, and fails the test if one happens while ``forbid_writes`` is set."""

    forbid_writes = False
    writes = 0

    def write(self, ops: Sequence[WriteOp]) -> list[WriteResult]:
        assert not self.forbid_writes, f"unexpected writes: {ops}"
        self.writes += len(ops)
        return super().write(ops)


@dataclass
class DavWorld:
    server: DavServer
    calendar_url: str
    user: str
    store: ActivityStore
    state: StateStore
    account: AccountConfig
    owner_id: int
    connector: GuardedCalendar

    def sync(self, **options: Any) -> CycleReport:
        return sync_account(self.account, self.connector, BuiltinSource(self.store), self.state,
                            now=START, **options)

    def dav(self) -> Any:
        client = caldav.DAVClient(url=self.server.url, username=self.user, password="x")
        return client.calendar(url=self.calendar_url)

    def objects(self) -> dict[str, tuple[str, icalendar.Event]]:
        """href -> (etag, VEVENT) as the server holds them."""
        out = {}
        for obj in self.dav().get_objects_by_sync_token(load_objects=True).objects:
            cal = icalendar.Calendar.from_ical(obj.data)
            out[str(obj.url.path)] = ((obj.props or {}).get("{DAV:}getetag"),
                                      next(iter(cal.walk("VEVENT"))))
        return out

    def add(self, subject: str, **values: Any) -> Any:
        values.setdefault("due_date", date(2026, 12, 10))
        values.setdefault("due_time", time(9, 0))
        values.setdefault("duration_minutes", 45)
        return self.store.add_activity(owner_id=self.owner_id, subject=subject, **values)


def make_dav_world(tmp_path: Path, server: DavServer, url: str | None = None,
                   **account: Any) -> DavWorld:
    user, calendar_url = fresh_calendar(server)
    db = Database(f"sqlite:///{tmp_path / f'{uuid.uuid4().hex}.db'}")
    store = ActivityStore(db)
    owner_id = store.add_user(user, "Owner", "Europe/Oslo")
    cfg = AccountConfig(name="dav", provider="caldav", owner=user, calendar=calendar_url,
                        auth={"url": url or server.url, "username": user}, **account)
    connector = GuardedCalendar(cfg, owner_tz="Europe/Oslo")
    return DavWorld(server, calendar_url, user, store, StateStore(db), cfg, owner_id, connector)


@pytest.fixture
def world(tmp_path: Path, dav_server: DavServer) -> Iterator[DavWorld]:
    w = make_dav_world(tmp_path, dav_server)
    yield w
    w.connector.close()


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


def test_notes_never_reach_the_server_or_the_logs(tmp_path: Path, radicale: DavServer,
                                                  caplog: pytest.LogCaptureFixture) -> None:
    proxy = RecordingProxy(radicale.port).start()
    try:
        world = make_dav_world(tmp_path, radicale, url=proxy.url)
        world.account = world.account  # calendar URL stays direct; the proxy sees the traffic
        proxy_calendar = world.calendar_url.replace(f":{radicale.port}/", f":{proxy.port}/")
        world.account = AccountConfig(**{**world.account.__dict__, "calendar": proxy_calendar})
        world.connector = GuardedCalendar(world.account, owner_tz="Europe/Oslo")
        canaries = [f"CANARY-{uuid.uuid4().hex}" for _ in range(5)]
        caplog.set_level(logging.DEBUG)
        activities = [world.add(f"Meeting {i}", note=f"secret {c}", description="public text")
                      for i, c in enumerate(canaries)]
        world.sync()
        world.store.edit_activity(activities[0].id, subject="Renamed", note=f"v2 {canaries[0]}")
        world.sync()
        sent = proxy.everything_sent()
        assert b"public text" in sent and b"Renamed" in sent  # the proxy really saw the traffic
        for canary in canaries:
            assert canary.encode() not in sent
            assert canary not in caplog.text
    finally:
        proxy.stop()


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
    proxy = RecordingProxy(radicale.port).start()
    try:
        world = make_dav_world(tmp_path, radicale, url=proxy.url)
        proxy_calendar = world.calendar_url.replace(f":{radicale.port}/", f":{proxy.port}/")
        world.account = AccountConfig(**{**world.account.__dict__, "calendar": proxy_calendar})
        world.connector = GuardedCalendar(world.account, owner_tz="Europe/Oslo")
        yield world, proxy
        world.connector.close()
    finally:
        proxy.stop()


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
