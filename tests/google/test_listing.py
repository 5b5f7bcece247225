"""Reading a Google calendar: the window, paging, sync tokens, what is and is not an event."""

from __future__ import annotations

from datetime import timedelta

from connectors.google import GoogleCalendar
from connectors.google_map import MARKER_KEY
from syncd_testkit.emulators.google import FaultRule, GoogleEmulator
from tests.contract import timed
from tests.google.helpers import OWNER, TZ, WINDOW, user_event


def list_requests(emu: GoogleEmulator) -> list[dict[str, list[str]]]:
    return [r.query for r in emu.requests if r.method == "GET" and r.path.endswith("/events")]


def test_full_listing_covers_the_window_only(emu: GoogleEmulator, conn: GoogleCalendar) -> None:
    inside = emu.put_event(OWNER, user_event(timed("Inside")))
    past = timed("Long ago").when
    emu.put_event(OWNER, user_event(timed("Long ago").replace({"when": type(past)(
        WINDOW.start - timedelta(days=3), WINDOW.start - timedelta(days=2), "UTC")})))
    listing = conn.changes(None)
    assert [e.event_id for e in listing.events] == [inside["id"]]
    [query] = list_requests(emu)
    assert query["singleEvents"] == ["false"] and query["showDeleted"] == ["false"]
    assert query["maxResults"] == ["2500"] and "timeMin" in query and "timeMax" in query


def test_listings_follow_short_and_empty_pages_to_the_sync_token(emu: GoogleEmulator,
                                                                 conn: GoogleCalendar) -> None:
    ids = {emu.put_event(OWNER, user_event(timed(f"E{i}")))["id"] for i in range(5)}
    emu.short_pages = True
    full = conn.changes(None)
    assert {e.event_id for e in full.events} == ids
    assert len(list_requests(emu)) == 2  # an empty first page (with a token), then the rest
    for i in range(3):
        emu.put_event(OWNER, user_event(timed(f"New {i}")))
    later = conn.changes(full.cursor)
    assert sorted(e.projection.title for e in later.events if e.projection) == [
        "New 0", "New 1", "New 2"]


def test_incremental_listings_send_the_sync_token_alone(emu: GoogleEmulator,
                                                        conn: GoogleCalendar) -> None:
    cursor = conn.changes(None).cursor
    assert cursor is not None
    conn.changes(cursor)
    query = list_requests(emu)[-1]
    assert query["syncToken"] == [cursor]
    assert not {"timeMin", "timeMax", "showDeleted", "q", "orderBy"} & set(query)


def test_deletions_appear_only_in_incremental_listings(emu: GoogleEmulator,
                                                       conn: GoogleCalendar) -> None:
    kept = emu.put_event(OWNER, user_event(timed("Kept")))
    gone = emu.put_event(OWNER, user_event(timed("Gone")))
    cursor = conn.changes(None).cursor
    emu.delete_event_as_user(OWNER, gone["id"])
    later = conn.changes(cursor)
    assert [(e.event_id, e.deleted) for e in later.events] == [(gone["id"], True)]
    assert [e.event_id for e in conn.changes(None).events] == [kept["id"]]


def test_a_full_listing_invalidated_midway_starts_over(emu: GoogleEmulator,
                                                       conn: GoogleCalendar) -> None:
    emu.put_event(OWNER, user_event(timed("A")))
    emu.inject(FaultRule(method="GET", status=410, reason="fullSyncRequired",
                         message="Sync token is no longer valid, a full sync is required."))
    listing = conn.changes(None)
    assert listing.full and [e.projection.title for e in listing.events if e.projection] == ["A"]


def test_series_are_flagged_and_html_is_reduced(emu: GoogleEmulator,
                                                conn: GoogleCalendar) -> None:
    series = emu.put_event(OWNER, user_event(
        timed("Weekly"), recurrence=["RRULE:FREQ=WEEKLY;COUNT=3"],
        start={"dateTime": "2026-12-03T10:00:00+01:00", "timeZone": TZ},
        end={"dateTime": "2026-12-03T11:00:00+01:00", "timeZone": TZ}))
    html = emu.put_event(OWNER, user_event(
        timed("Notes"), description="<p>Hello <b>there</b></p><p>Line two</p>",
        extendedProperties={"private": {MARKER_KEY: "m0000042"}}))
    by_id = {e.event_id: e for e in conn.changes(None).events}
    assert by_id[series["id"]].recurring and by_id[series["id"]].projection is None
    event = by_id[html["id"]]
    assert event.marker == "m0000042"
    assert event.projection is not None
    assert event.projection.description == "Hello there\n\nLine two"
