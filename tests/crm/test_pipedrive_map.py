"""Pipedrive's v2 activity fields <-> syncd's activity: the mapping, as a table of cases."""

from __future__ import annotations

from datetime import UTC, date, datetime, time
from typing import Any

import pytest

from syncd.crm.pipedrive_map import (
    MAX_NOTE_CHARS,
    Lookups,
    local_due,
    notes_of,
    public_part,
    to_activity,
    user_zone,
    utc_due,
    without_note,
    write_body,
)
from syncd.errors import InvalidInput
from syncd.model import Guest, activity_when
from syncd.safe_json import WrongType

WEB = "https://acme.pipedrive.com"
ZONES = {1: "Europe/Berlin", 2: "America/New_York"}
USERS = {1: "ada@acme.test", 2: "bob@acme.test"}
PERSONS = {50: "pia@client.example", 51: None}


def lookups() -> Lookups:
    return Lookups(WEB, lambda uid: ZONES.get(uid, "UTC"), PERSONS.get, USERS.get)


def item(**fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "id": 7, "subject": "Call", "type": "call", "owner_id": 1, "is_deleted": False,
        "add_time": "2026-03-02T09:00:00Z", "update_time": "2026-03-02T09:00:00Z",
        "due_date": "2026-12-03", "due_time": "09:00", "duration": "00:30", "busy": True,
        "done": False, "marked_as_done_time": None, "location": None, "participants": [],
        "attendees": [], "public_description": None, "deal_id": None, "person_id": None,
        "org_id": None, "lead_id": None, "project_id": None}
    base.update(fields)
    return base


# (owner zone, Pipedrive's UTC due_date and due_time) -> (wall date, wall time, fold)
DUE_CASES = [
    ("Europe/Berlin", "2026-12-03", "09:00", date(2026, 12, 3), time(10, 0), 0),
    # the night Berlin goes back: 02:30 happens at 00:30 and again at 01:30 UTC
    ("Europe/Berlin", "2026-10-25", "00:30", date(2026, 10, 25), time(2, 30), 0),
    ("Europe/Berlin", "2026-10-25", "01:30", date(2026, 10, 25), time(2, 30), 1),
    # the night Berlin goes forward: 01:30 UTC is 03:30 CEST
    ("Europe/Berlin", "2026-03-29", "01:30", date(2026, 3, 29), time(3, 30), 0),
    # New York goes back on 1 November: 01:30 at 05:30 and again at 06:30 UTC
    ("America/New_York", "2026-11-01", "05:30", date(2026, 11, 1), time(1, 30), 0),
    ("America/New_York", "2026-11-01", "06:30", date(2026, 11, 1), time(1, 30), 1),
    # an evening in New York is the next day in UTC
    ("America/New_York", "2026-12-04", "01:00", date(2026, 12, 3), time(20, 0), 0),
    # New York goes forward on 8 March: 07:30 UTC is 03:30 EDT
    ("America/New_York", "2026-03-08", "07:30", date(2026, 3, 8), time(3, 30), 0),
]


@pytest.mark.parametrize(("zone", "due_date", "due_time", "day", "clock", "fold"), DUE_CASES)
def test_a_utc_due_time_is_the_owners_wall_time_and_back(
        zone: str, due_date: str, due_time: str, day: date, clock: time, fold: int) -> None:
    got_day, got_clock = local_due(due_date, due_time, zone)
    assert (got_day, got_clock) == (day, clock) and got_clock is not None
    assert got_clock.fold == fold
    assert utc_due(got_day, got_clock, zone) == (due_date, due_time)


def test_a_skipped_wall_time_is_written_as_the_instant_after_the_gap() -> None:
    # 02:30 does not exist in Berlin on 29 March 2026; calendars read it as 03:30 CEST
    assert utc_due(date(2026, 3, 29), time(2, 30), "Europe/Berlin") == ("2026-03-29", "01:30")


def test_no_due_time_is_all_day_on_that_date_in_the_owners_zone() -> None:
    activity = to_activity(item(due_time=None, duration=None, busy=None, owner_id=2),
                           "u" * 32, lookups())
    assert activity.due_date == date(2026, 12, 3) and activity.due_time is None
    assert activity.owner_tz == "America/New_York" and not activity.busy  # v1's rule
    when = activity_when(activity)
    assert when is not None and when.all_day and when.start == date(2026, 12, 3)
    assert utc_due(date(2026, 12, 3), None, "America/New_York") == ("2026-12-03", None)


def test_a_timed_activity_spans_its_duration_from_the_utc_instant() -> None:
    activity = to_activity(item(due_date="2026-10-25", due_time="01:30", duration="01:15"),
                           "u" * 32, lookups())
    when = activity_when(activity)
    assert when is not None
    assert when.start == datetime(2026, 10, 25, 1, 30, tzinfo=UTC)
    assert when.end == datetime(2026, 10, 25, 2, 45, tzinfo=UTC)
    assert activity.duration_minutes == 75 and activity.busy


def test_public_description_location_and_links_back_but_no_note() -> None:
    raw = item(public_description="Agenda: pricing", location={"value": "Room 4",
                                                               "locality": "Berlin"},
               deal_id=5, person_id=50, org_id=9, note="canary-note-7f3a")
    activity = to_activity(without_note(raw), "u" * 32, lookups())
    assert "note" not in raw
    assert activity.location == "Room 4"
    assert activity.description == (
        "Agenda: pricing\n\nPipedrive deal: https://acme.pipedrive.com/deal/5\n"
        "Pipedrive person: https://acme.pipedrive.com/person/50\n"
        "Pipedrive organization: https://acme.pipedrive.com/organization/9")
    assert public_part(activity.description) == "Agenda: pricing"
    assert "canary" not in repr(activity)


def test_attendees_and_participants_become_guests_without_the_owner() -> None:
    raw = item(attendees=[
        {"email": "Zoe@Example.org", "name": "Zoe", "status": "accepted",
         "is_organizer": False, "person_id": None, "user_id": None},
        {"email": None, "name": "Pia", "status": "noreply", "is_organizer": False,
         "person_id": 50, "user_id": None},
        {"email": "ada@acme.test", "name": "Ada", "status": "accepted",
         "is_organizer": True, "person_id": None, "user_id": 1},
        {"email": None, "name": "Bob", "status": "noreply", "is_organizer": False,
         "person_id": None, "user_id": 2},
    ], participants=[{"person_id": 50, "primary": True}, {"person_id": 51, "primary": False}])
    activity = to_activity(raw, "u" * 32, lookups())
    assert activity.guests == (
        Guest("bob@acme.test", "Bob"),
        Guest("pia@client.example", "Pia", 50),
        Guest("zoe@example.org", "Zoe"),
    )


def test_a_field_of_the_wrong_type_is_refused_not_guessed() -> None:
    with pytest.raises(WrongType):
        to_activity(item(subject=["not", "text"]), "u" * 32, lookups())
    with pytest.raises(WrongType):
        to_activity(item(due_time="25:99"), "u" * 32, lookups())


def test_a_patch_carries_only_the_fields_given_and_never_a_note() -> None:
    body = write_body({"subject": "Moved", "due_date": date(2026, 12, 3),
                       "due_time": time(20, 0), "duration_minutes": 90},
                      "America/New_York")
    assert body == {"subject": "Moved", "due_date": "2026-12-04", "due_time": "01:00",
                    "duration": "01:30"}
    assert write_body({"description": "Hi\n\nPipedrive deal: https://acme.pipedrive.com/deal/5",
                       "location": "", "busy": False}, "UTC") == {
        "public_description": "Hi", "location": None, "busy": False}
    assert write_body({"guests": (Guest("a@example.org", "A", 50),)}, "UTC") == {
        "attendees": [{"email": "a@example.org", "name": "A", "person_id": 50}]}


def test_a_time_alone_is_written_with_the_activitys_own_date() -> None:
    # 08:00 in New York on 3 December, given only the new time: the UTC date is still
    # worked out from the wall date the activity has
    body = write_body({"due_time": time(22, 0)}, "America/New_York",
                      current_date=date(2026, 12, 3), current_time=time(8, 0))
    assert body == {"due_date": "2026-12-04", "due_time": "03:00"}


@pytest.mark.parametrize(("fields", "field"), [
    ({"duration_minutes": -5}, "duration_minutes"),
    ({"duration_minutes": 100 * 60}, "duration_minutes"),
    ({"subject": "  "}, "subject"),
    ({"due_date": date(1800, 1, 1)}, "due_date"),
    ({"note": "x"}, "note"),
    ({"guests": (Guest("not an address"),)}, "guests"),
])
def test_a_value_pipedrive_cannot_take_is_refused_before_sending(
        fields: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        write_body(fields, "UTC")
    assert caught.value.field == field


@pytest.mark.parametrize(("name", "expected"), [
    ("America/New_York", "America/New_York"),
    ("UTC", "UTC"),
    (None, "Europe/Oslo"),  # no zone set for the user
    ("", "Europe/Oslo"),
    ("Mars/Olympus_Mons", "Europe/Oslo"),  # not in the zone database
    ("../../etc/passwd", "Europe/Oslo"),  # not a zone key at all
    ("Europe/" + "x" * 200, "Europe/Oslo"),
    (7, "Europe/Oslo"),
])
def test_a_users_zone_is_theirs_when_known_else_the_configured_default(
        name: Any, expected: str) -> None:
    assert user_zone(name, "Europe/Oslo") == expected



@pytest.mark.parametrize(("data", "expected"), [
    ([{"id": 7, "note": "<p>Budget is <b>40k</b> &amp; final</p>"}],
     {7: " Budget is  40k  & final "}),
    ({"id": 8, "note": "plain text"}, {8: "plain text"}),  # a single item, not a list
    ([{"id": 9, "note": "   "}, {"id": 10, "note": None}, {"id": 11}], {}),  # empty or none
    ([{"id": True, "note": "a bool is not an id"}, {"id": "12", "note": "nor a string"}], {}),
    ([{"id": 13, "note": ["not", "text"]}, "not an item", None, 14], {}),
    ([{"id": 15, "note": "<unclosed tag and text"}], {15: "<unclosed tag and text"}),
])
def test_the_audit_reads_each_note_as_text_and_skips_what_is_not_one(
        data: Any, expected: dict[int, str]) -> None:
    assert notes_of(data) == expected


def test_a_huge_note_is_cut_for_the_audit_not_refused() -> None:
    (text,) = notes_of([{"id": 1, "note": "x" * (MAX_NOTE_CHARS * 3)}]).values()
    assert len(text) == MAX_NOTE_CHARS
