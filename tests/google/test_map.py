"""Projection <-> Event resource, without any server."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from connectors.google_map import (
    EVENT_ID,
    MARKER_KEY,
    attendees_for,
    event_body,
    event_id_for,
    read_event,
)
from syncd.model import Projection, When
from tests.contract import all_day, rich, timed

OWNER = "alice@example.com"


def read(resource: dict[str, Any], *, describe_guests: bool = False) -> Any:
    return read_event({"id": "e1", "etag": '"1"', **resource}, owner=OWNER,
                      default_tz="Europe/Oslo", describe_guests=describe_guests)


# --- identity ------------------------------------------------------------------------------------


def test_marker_key_fits_googles_44_character_limit() -> None:
    assert len(MARKER_KEY) <= 44


def test_a_sync_uid_becomes_its_own_event_id_plus_the_generation() -> None:
    uid = "0f8e3c2a9b1d4e5f8a7b6c5d4e3f2a1b"
    assert event_id_for(uid, 0) == uid + "g0"
    assert event_id_for(uid, 12) == uid + "g12"


@given(st.text(min_size=1, max_size=80), st.integers(0, 10_000))
def test_every_event_id_is_valid_base32hex(marker: str, generation: int) -> None:
    assert EVENT_ID.match(event_id_for(marker, generation))
    assert event_id_for(marker, generation) == event_id_for(marker, generation)


@given(st.tuples(st.text(min_size=1, max_size=20), st.integers(0, 200)),
       st.tuples(st.text(min_size=1, max_size=20), st.integers(0, 200)))
def test_different_identities_never_share_an_event_id(a: tuple[str, int],
                                                      b: tuple[str, int]) -> None:
    if a != b:
        assert event_id_for(*a) != event_id_for(*b)


def test_hex_lookalikes_do_not_collide() -> None:
    assert event_id_for("ab1", 2) != event_id_for("ab", 12)
    assert event_id_for("6d30", 0) != event_id_for("m0", 0)  # "m0" is 6d30 in hex


# --- outbound -------------------------------------------------------------------------------------


def test_timed_event_carries_rfc3339_and_the_iana_zone() -> None:
    body = event_body(timed(), marker="m1", invited=frozenset())
    assert body["start"] == {"dateTime": "2026-12-03T10:30:00+01:00", "timeZone": "Europe/Oslo"}
    assert body["end"] == {"dateTime": "2026-12-03T11:15:00+01:00", "timeZone": "Europe/Oslo"}
    assert body["extendedProperties"] == {"private": {MARKER_KEY: "m1"}}
    assert body["transparency"] == "transparent"


def test_all_day_event_uses_dates_with_an_exclusive_end() -> None:
    body = event_body(all_day(), invited=frozenset())
    assert (body["start"], body["end"]) == ({"date": "2026-12-07"}, {"date": "2026-12-09"})
    assert body["transparency"] == "opaque"


def test_a_patch_names_only_the_fields_asked_for() -> None:
    for invited in (rich().guests, None):
        assert set(event_body(rich(), {"title"}, marker="m1", patch=True,
                              invited=invited)) == {"summary", "extendedProperties"}
        assert set(event_body(rich(), set(), marker="m1", patch=True,
                              invited=invited)) == {"extendedProperties"}


def test_a_patch_between_timed_and_all_day_clears_the_other_form() -> None:
    to_all_day = event_body(all_day(), {"when"}, patch=True, invited=frozenset())
    assert to_all_day["start"] == {"date": "2026-12-07", "dateTime": None, "timeZone": None}
    to_timed = event_body(timed(), {"when"}, patch=True, invited=frozenset())
    assert to_timed["start"]["date"] is None


def test_a_patch_clears_emptied_texts_and_guests() -> None:
    body = event_body(timed(), {"description", "location", "guests"}, patch=True,
                      invited=frozenset())
    assert (body["description"], body["location"], body["attendees"]) == ("", "", [])


# --- guests without invite_guests: described, never attendees -------------------------------------

GUESTS = frozenset({"ada@example.org", "bob@example.net"})


def test_without_invite_guests_no_address_is_written_as_an_attendee() -> None:
    projection = timed(description="Agenda", guests=GUESTS, guest_names={"ada@example.org": "Ada"})
    body = event_body(projection, marker="m1")
    assert "attendees" not in body
    assert body["description"] == "Agenda\n\nGuests: Ada <ada@example.org>, bob@example.net"
    patch = event_body(projection, {"guests"}, marker="m1", patch=True)
    assert "attendees" not in patch and patch["description"].endswith("bob@example.net")


def test_described_guests_are_stripped_from_the_description_and_attendees_ignored() -> None:
    event = read({"start": {"date": "2026-12-07"}, "end": {"date": "2026-12-08"},
                  "description": "Agenda\n\nGuests: Ada <ada@example.org>, bob@example.net",
                  "attendees": [{"email": "added-in-google@example.com"}]},
                 describe_guests=True)
    assert event.projection.description == "Agenda"
    assert event.projection.guests == GUESTS
    assert event.projection.guest_names == {"ada@example.org": "Ada"}


def test_guests_who_stay_keep_their_answers_and_the_organizer_entry_stays() -> None:
    current = [
        {"email": "alice@example.com", "self": True, "organizer": True,
         "responseStatus": "accepted"},
        {"email": "Ada@Example.com", "responseStatus": "accepted", "id": "x"},
        {"email": "gone@example.com", "responseStatus": "declined"},
    ]
    projection = timed(guests=frozenset({"ada@example.com", "new@example.com"}),
                       guest_names={"new@example.com": "New Person"})
    assert attendees_for(projection, current) == [
        {"email": "alice@example.com", "responseStatus": "accepted"},
        {"email": "Ada@Example.com", "responseStatus": "accepted"},
        {"email": "new@example.com", "displayName": "New Person"},
    ]


# --- inbound --------------------------------------------------------------------------------------


def test_html_description_is_reduced_to_text() -> None:
    event = read({"summary": "<b>Demo</b>", "description":
                  "<div>Agenda<br>1. <a href='https://x.test'>pricing</a></div>"
                  "<script>alert(1)</script>",
                  "start": {"dateTime": "2026-12-03T10:00:00Z"},
                  "end": {"dateTime": "2026-12-03T11:00:00Z"}})
    assert event.projection.description == "Agenda\n1. pricing"
    assert "<" not in event.projection.description


def test_attendees_exclude_the_organizer_self_and_rooms() -> None:
    event = read({
        "start": {"date": "2026-12-07"}, "end": {"date": "2026-12-08"},
        "organizer": {"email": "boss@example.com"},
        "attendees": [
            {"email": "boss@example.com", "organizer": True},
            {"email": "ALICE@example.com", "self": True},
            {"email": "room1@resource.calendar.google.com", "resource": True},
            {"email": "Ada@Example.com", "displayName": "Ada <b>L</b>"},
        ]})
    assert event.projection.guests == frozenset({"ada@example.com"})
    assert event.projection.guest_names == {"ada@example.com": "Ada <b>L</b>"}


def test_the_same_instant_in_another_zone_is_the_same_projection() -> None:
    oslo = read({"start": {"dateTime": "2026-12-03T10:30:00+01:00", "timeZone": "Europe/Oslo"},
                 "end": {"dateTime": "2026-12-03T11:15:00+01:00", "timeZone": "Europe/Oslo"},
                 "summary": "Call Ada"})
    tokyo = read({"start": {"dateTime": "2026-12-03T18:30:00+09:00", "timeZone": "Asia/Tokyo"},
                  "end": {"dateTime": "2026-12-03T19:15:00+09:00"}, "summary": "Call Ada"})
    assert oslo.projection == tokyo.projection
    assert tokyo.projection.when == timed().when
    assert tokyo.projection.when.tz == "Asia/Tokyo"


def test_updated_etag_and_marker_are_read() -> None:
    event = read({"start": {"date": "2026-12-07"}, "end": {"date": "2026-12-08"},
                  "updated": "2026-12-01T09:00:00.123Z",
                  "extendedProperties": {"private": {MARKER_KEY: "m9", "other": "x"}}})
    assert event.marker == "m9" and event.etag == '"1"'
    assert event.updated == datetime(2026, 12, 1, 9, 0, 0, 123000, tzinfo=UTC)


def test_cancelled_events_are_deletions() -> None:
    event = read({"status": "cancelled"})
    assert event.deleted and event.projection is None


def test_series_and_their_instances_are_recurring() -> None:
    master = read({"recurrence": ["RRULE:FREQ=WEEKLY"], "start": {"date": "2026-12-07"},
                   "end": {"date": "2026-12-08"}})
    instance = read({"recurringEventId": "abc", "start": {"date": "2026-12-07"},
                     "end": {"date": "2026-12-08"}})
    assert master.recurring and instance.recurring
    assert master.projection is None and master.problem is None


def test_unmappable_events_are_quarantined_not_raised() -> None:
    cases = [
        {},
        {"start": {"date": "2026-12-07"}, "end": {"dateTime": "2026-12-07T10:00:00Z"}},
        {"start": {"dateTime": "yesterday"}, "end": {"dateTime": "2026-12-07T10:00:00Z"}},
        {"start": {"dateTime": "2026-12-07T10:00:00Z"},
         "end": {"dateTime": "2026-12-07T09:00:00Z"}},
        {"start": {"date": "2026-13-40"}, "end": {"date": "2026-12-08"}},
        {"start": {"date": "2026-12-07"}, "end": {"date": "2026-12-08"}, "attendees": "x"},
    ]
    for resource in cases:
        event = read(resource)
        assert event.problem and event.projection is None, resource


# --- both ways ------------------------------------------------------------------------------

texts = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=40)
emails = st.from_regex(r"[a-z]{1,8}@[a-z]{1,8}\.(com|org)", fullmatch=True)


@st.composite
def projections(draw: st.DrawFn) -> Projection:
    day = date(2026, 12, 1) + timedelta(days=draw(st.integers(0, 300)))
    if draw(st.booleans()):
        when = When(day, day + timedelta(days=draw(st.integers(1, 5))), "Europe/Oslo")
    else:
        tz = draw(st.sampled_from(["Europe/Oslo", "UTC", "America/New_York", "Asia/Kolkata"]))
        start = datetime(day.year, day.month, day.day, draw(st.integers(0, 22)),
                         draw(st.sampled_from([0, 15, 30, 45])), tzinfo=UTC)
        when = When(start, start + timedelta(minutes=draw(st.integers(0, 600))), tz)
    return Projection(title=draw(texts), when=when, busy=draw(st.booleans()),
                      description=draw(texts), location=draw(texts),
                      guests=frozenset(draw(st.lists(emails, max_size=3))))


@given(projections(), st.booleans())
def test_what_we_write_reads_back_as_the_same_projection(projection: Projection,
                                                         describe_guests: bool) -> None:
    body = event_body(projection, marker="m1",
                      invited=None if describe_guests else projection.guests)
    if describe_guests:
        assert "attendees" not in body
    event = read_event({"id": "e1", "organizer": {"email": OWNER}, **body}, owner=OWNER,
                       default_tz="Europe/Oslo", describe_guests=describe_guests)
    assert event.problem is None
    assert event.projection == projection
    assert event.marker == "m1"
