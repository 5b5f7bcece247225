"""Hostile CalDAV objects and servers: each bad item is set aside alone, the rest syncs.

The corpus (``ics_corpus``) is served by a real Xandikos and Radicale wherever they
accept an object, and by the misbehaving responder (``dav_responder``) for all of it and
for what no real server would send: invalid XML, hrefs outside the collection, one UID
at two hrefs, replies that lie about sizes or add objects nobody asked for.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import date, time
from pathlib import Path

import pytest
import requests

from syncd.crm.builtin.views import ActivityFilter
from syncd.engine.outcome import CycleReport
from syncd_testkit.dav_responder import MisbehavingDav
from syncd_testkit.ics_corpus import CORPUS, SKIPPED_RECURRING, SYNCED, Hostile, oversized
from syncd_testkit.servers import DavServer
from syncd_testkit.world import CalDAVWorld, make_caldav_world
from tests.conftest import fresh_calendar

#: Objects that make Radicale 3.9 itself spin (it expands rules while it stores them:
#: Kozea/Radicale#2188); they are served by Xandikos and the responder instead.
RADICALE_HANGS = {"tz-secondly", "tz-minutely", "tz-yearly-byhour", "rrule-and-exrule"}
#: Objects Radicale rewrites into harmless ones as it stores them (it keeps one RDATE of
#: a list), which syncd then reads like any other.
RADICALE_DEFUSES = {"tz-many-rdates"}
OWNER = "owner@example.com"


def good_event(n: int) -> bytes:
    return (f"BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//good//EN\r\nBEGIN:VEVENT\r\n"
            f"UID:good-{n}\r\nDTSTAMP:20261201T000000Z\r\nDTSTART:20261211T{8 + n % 9:02d}0000Z"
            f"\r\nDTEND:20261211T{9 + n % 9:02d}0000Z\r\nSUMMARY:Good {n}\r\nEND:VEVENT\r\n"
            "END:VCALENDAR\r\n").encode()


@pytest.fixture
def responder() -> Iterator[MisbehavingDav]:
    server = MisbehavingDav().start()
    yield server
    server.stop()


def check_corpus(world: CalDAVWorld, report: CycleReport, served: dict[str, Hostile],
                 goods: int) -> None:
    """Every served corpus object met its expectation, and every good event was imported."""
    assert report.outcome == "ok", report.message
    reasons = world.reasons()
    by_name = {path.rsplit("/", 1)[-1].removesuffix(".ics"): r for path, r in reasons.items()}
    quarantined = {n: h for n, h in served.items() if h.expect not in (SYNCED,
                                                                        SKIPPED_RECURRING)}
    for name, item in quarantined.items():
        assert item.expect in by_name.get(name, "<not quarantined>"), name
    assert set(by_name) == set(quarantined)
    recurring = [n for n, h in served.items() if h.expect == SKIPPED_RECURRING]
    assert report.counts["skipped_recurring"] == len(recurring)
    synced = [n for n, h in served.items() if h.expect == SYNCED]
    assert len(world.subjects()) == goods + len(synced)
    assert [s for s in world.subjects() if s.startswith("Good")] == sorted(
        f"Good {n}" for n in range(goods))


def test_the_whole_corpus_served_by_the_responder_is_set_aside_item_by_item(
        tmp_path: Path, responder: MisbehavingDav) -> None:
    for item in CORPUS:
        responder.put(f"{item.name}.ics", item.data)
    for n in range(5):
        responder.put(f"good-{n}.ics", good_event(n))
    world = make_caldav_world(tmp_path, responder.url)
    check_corpus(world, world.sync(), {h.name: h for h in CORPUS}, goods=5)
    again = world.sync()
    assert again.outcome == "ok" and again.counts["quarantined"] == 0


@pytest.mark.parametrize("server_name", ["xandikos", "radicale"])
def test_the_corpus_a_real_server_accepts_is_set_aside_item_by_item(
        tmp_path: Path, server_name: str, request: pytest.FixtureRequest) -> None:
    server: DavServer = request.getfixturevalue(server_name)
    user, url = fresh_calendar(server)
    served = {}
    for item in CORPUS:
        if server_name == "radicale" and item.name in RADICALE_HANGS:
            continue
        answer = requests.put(f"{url}{item.name}.ics", data=item.data, timeout=60,
                              headers={"Content-Type": "text/calendar"}, auth=(user, "x"))
        if answer.ok:  # what the server refuses is the responder's to serve
            defused = server_name == "radicale" and item.name in RADICALE_DEFUSES
            served[item.name] = replace(item, expect=SYNCED) if defused else item
    for n in range(5):
        requests.put(f"{url}good-{n}.ics", data=good_event(n), timeout=60,
                     headers={"Content-Type": "text/calendar"}, auth=(user, "x")
                     ).raise_for_status()
    assert len(served) >= 8  # most of the corpus is served by the real server
    world = make_caldav_world(tmp_path, url, user)
    check_corpus(world, world.sync(), served, goods=5)


@pytest.mark.parametrize("lie_about_sizes", [False, True], ids=["honest", "lying"])
def test_a_12_mb_object_and_an_invalid_xml_byte_among_300_good_objects(
        tmp_path: Path, responder: MisbehavingDav, lie_about_sizes: bool) -> None:
    """The large object is set aside (before download when the listing gives its size,
    by the streamed cap when it lies); the object whose bytes spoil the XML of every
    multiget that carries it is found by halving and read alone by GET, so it is not lost."""
    for n in range(300):
        responder.put(f"good-{n}.ics", good_event(n))
    big = oversized("big", 12)
    responder.put("big.ics", big.data)
    responder.put("bell.ics", good_event(999).replace(b"SUMMARY:Good 999",
                                                      b"SUMMARY:Bell \x07 999"))
    responder.lie_about_sizes = lie_about_sizes
    world = make_caldav_world(tmp_path, responder.url)
    report = world.sync()
    assert report.outcome == "ok", report.message
    assert len(world.subjects()) == 301 and "Bell 999" in world.subjects()
    reasons = world.reasons()
    assert list(reasons) == ["/cal/big.ics"]
    assert "over the" in reasons["/cal/big.ics"]
    big_fetches = [r for r in responder.requests if r == ("GET", "/cal/big.ics")]
    assert big_fetches == []  # never fetched alone: its size is known, or its reply capped
    assert world.sync().counts["quarantined"] == 0


def test_hrefs_outside_the_collection_are_ignored_counted_and_never_fetched(
        tmp_path: Path, responder: MisbehavingDav) -> None:
    responder.put("good-1.ics", good_event(1))
    responder.outside = ["/other/stolen.ics", "/cal/../other/stolen2.ics",
                         "http://127.0.0.2:1/cal/far.ics", "/cal/nested/deep.ics", "/cal/",
                         "/cal/%2e%2e/secret.ics"]
    world = make_caldav_world(tmp_path, responder.url)
    report = world.sync()
    assert report.outcome == "ok", report.message
    assert world.subjects() == ["Good 1"]
    assert report.counts["outside_calendar"] == 5  # the collection's own href is not counted
    touched = [path for _method, path in responder.requests if path != "/cal/"]
    assert touched and all(path == "/cal/good-1.ics" for path in touched)


def test_one_uid_at_two_hrefs_is_imported_once(tmp_path: Path,
                                               responder: MisbehavingDav) -> None:
    responder.put("a.ics", good_event(7))
    responder.put("b.ics", good_event(7))
    world = make_caldav_world(tmp_path, responder.url)
    assert world.sync().outcome == "ok"
    assert world.subjects() == ["Good 7"]
    assert world.reasons() == {"/cal/b.ics": "the same UID as /cal/a.ics: one calendar "
                                             "holds one event per UID"}


def test_objects_a_multiget_reply_adds_unasked_are_not_read(
        tmp_path: Path, responder: MisbehavingDav) -> None:
    responder.put("good-1.ics", good_event(1))
    extra = good_event(2).replace(b"<", b"&lt;")
    responder.multiget_extra = (b"<D:response><D:href>/cal/planted.ics</D:href><D:propstat>"
                                b'<D:prop><D:getetag>"p"</D:getetag><C:calendar-data>' + extra
                                + b"</C:calendar-data></D:prop><D:status>HTTP/1.1 200 OK"
                                b"</D:status></D:propstat></D:response>")
    world = make_caldav_world(tmp_path, responder.url)
    assert world.sync().outcome == "ok"
    assert world.subjects() == ["Good 1"]


def test_an_entity_bomb_in_a_reply_is_not_expanded(tmp_path: Path,
                                                   responder: MisbehavingDav) -> None:
    responder.put("good-1.ics", good_event(1))
    responder.put("good-2.ics", good_event(2))
    laughs = "".join(f'<!ENTITY l{i} "{"&l" + str(i - 1) + ";" * 1 if i else "lol"}' * 1
                     + ("&l" + str(i - 1) + ";") * 9 + '">' if i else '<!ENTITY l0 "lol">'
                     for i in range(10))
    original = responder.multiget

    def bombed(hrefs: list[str]) -> bytes:
        body = original(hrefs)
        return body.replace(b"?>", b"?><!DOCTYPE D:multistatus [" + laughs.encode() + b"]>",
                            1).replace(b"<D:getetag>", b"<D:getetag>&l9;", 1)

    responder.multiget = bombed  # type: ignore[method-assign]
    world = make_caldav_world(tmp_path, responder.url)
    report = world.sync()
    assert report.outcome == "ok", report.message
    assert world.subjects() == ["Good 1", "Good 2"]


def test_an_object_neither_multiget_nor_get_can_deliver_is_set_aside(
        tmp_path: Path, responder: MisbehavingDav) -> None:
    responder.put("good-1.ics", good_event(1))
    responder.put("bell.ics", good_event(2).replace(b"SUMMARY:Good 2", b"SUMMARY:\x01"))
    responder.get_status["bell.ics"] = 500
    world = make_caldav_world(tmp_path, responder.url)
    assert world.sync().outcome == "ok"
    assert world.subjects() == ["Good 1"]
    assert "a GET answered HTTP 500" in world.reasons()["/cal/bell.ics"]


@pytest.mark.parametrize("status", [403, 413, 415, 507])
def test_a_write_refused_for_one_event_is_that_events_failure_not_the_accounts(
        tmp_path: Path, responder: MisbehavingDav, status: int) -> None:
    world = make_caldav_world(tmp_path, responder.url)
    for n in range(3):
        world.store.add_activity(owner_id=world.owner_id, subject=f"Call {n}",
                                 due_date=date(2026, 12, 10), due_time=time(9 + n),
                                 duration_minutes=30)
    assert world.sync().outcome == "ok"
    first = sorted(responder.objects)[0]
    responder.put_status[first] = status
    for activity in world.store.list_activities(ActivityFilter(owner_id=world.owner_id)):
        world.store.edit_activity(activity.id, location="Room 2")
    report = world.sync()
    assert report.outcome in ("ok", "partial"), report.message
    assert world.state.account("dav").status == "ok"
    assert sum(b"Room 2" in data for data in responder.objects.values()) == 2


def test_a_calendar_deleted_on_the_server_stops_only_its_account_with_its_name(
        tmp_path: Path, radicale: DavServer) -> None:
    user, url = fresh_calendar(radicale)
    world = make_caldav_world(tmp_path, url, user)
    assert world.sync().outcome == "ok"
    requests.delete(url, auth=(user, "x"), timeout=30).raise_for_status()
    report = world.sync()
    assert report.outcome == "failed"
    assert url.rstrip("/") in (report.message or "")


def test_an_object_gone_between_the_listing_and_its_download_is_not_quarantined(
        tmp_path: Path, responder: MisbehavingDav) -> None:
    responder.put("good-1.ics", good_event(1))
    responder.put("gone.ics", good_event(2))
    original = responder.multiget

    def vanishing(hrefs: list[str]) -> bytes:
        responder.objects.pop("gone.ics", None)
        return original(hrefs)

    responder.multiget = vanishing  # type: ignore[method-assign]
    world = make_caldav_world(tmp_path, responder.url)
    assert world.sync().outcome == "ok"
    assert world.subjects() == ["Good 1"] and world.reasons() == {}


def test_a_second_href_with_a_uid_synced_in_an_earlier_cycle_is_not_imported_again(
        tmp_path: Path, responder: MisbehavingDav) -> None:
    responder.put("a.ics", good_event(7))
    world = make_caldav_world(tmp_path, responder.url)
    assert world.sync().outcome == "ok"
    assert world.subjects() == ["Good 7"]
    responder.put("b.ics", good_event(7))  # a copy of the same event at another href
    report = world.sync()
    assert report.outcome == "ok", report.message
    assert world.subjects() == ["Good 7"]
    assert world.reasons() == {"/cal/b.ics": "the same UID as /cal/a.ics: one calendar "
                                             "holds one event per UID"}


def test_a_copy_that_sorts_first_never_displaces_the_event_already_synced(
        tmp_path: Path, responder: MisbehavingDav) -> None:
    responder.put("m.ics", good_event(7))
    world = make_caldav_world(tmp_path, responder.url)
    assert world.sync().outcome == "ok"
    responder.put("0.ics", good_event(7))  # the same UID at an href that sorts first
    assert world.sync().outcome == "ok"
    # The sync token expires: a full listing holds both objects again.
    world.state.commit_cursors(world.account.name, None, calendar_cursor=None)
    report = world.sync()
    assert report.outcome == "ok", report.message
    assert world.subjects() == ["Good 7"]
    assert world.reasons() == {"/cal/0.ics": "the same UID as /cal/m.ics: one calendar "
                                             "holds one event per UID"}
