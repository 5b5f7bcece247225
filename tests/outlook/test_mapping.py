"""Projection <-> Graph event, without a server."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from connectors.guests import split_guests
from connectors.outlook_map import (
    GENERATION_PROP,
    MARKER_PROP,
    create_payload,
    read_event,
    transaction_id,
    update_payload,
    when_payload,
)
from connectors.outlook_zones import WINDOWS_TO_IANA, UnknownZone, iana_zone
from syncd.model import FIELDS, When
from syncd_testkit.emulators.graph_model import wrap_text_as_html
from syncd_testkit.emulators.graph_tz import WINDOWS_TO_IANA as EMULATOR_TABLE
from tests.contract import all_day, rich, timed


def _event(**values: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "id": "AAkALgEV1", "@odata.etag": 'W/"ck1"', "type": "singleInstance",
        "subject": "Call", "isAllDay": False, "showAs": "busy",
        "start": {"dateTime": "2026-12-03T09:30:00.0000000", "timeZone": "UTC"},
        "end": {"dateTime": "2026-12-03T10:15:00.0000000", "timeZone": "UTC"},
        "body": {"contentType": "text", "content": ""},
        "location": {"displayName": ""}, "attendees": [],
        "organizer": {"emailAddress": {"address": "alice@contoso.test"}},
        "singleValueExtendedProperties": [{"id": MARKER_PROP, "value": "m1"}],
    }
    base.update(values)
    return base


def _read(data: dict[str, Any], describe: bool = True) -> Any:
    return read_event(data, fallback_tz="Europe/Oslo", mailbox="alice@contoso.test",
                      describe_guests=describe)


# --- zones ----------------------------------------------------------------------------------


def test_every_windows_zone_maps_to_a_zone_tzdata_knows() -> None:
    assert len(WINDOWS_TO_IANA) > 130
    for windows, iana in WINDOWS_TO_IANA.items():
        ZoneInfo(iana)
        assert iana_zone(windows) == iana
        assert iana_zone(windows.upper()) == iana  # Graph's names compare case-insensitively


def test_the_table_agrees_with_the_emulators_windows_names() -> None:
    for windows, iana in EMULATOR_TABLE.items():
        assert ZoneInfo(iana_zone(windows)).key == ZoneInfo(iana).key or (
            datetime(2026, 7, 1, tzinfo=ZoneInfo(iana_zone(windows))).utcoffset()
            == datetime(2026, 7, 1, tzinfo=ZoneInfo(iana)).utcoffset())


@pytest.mark.parametrize("name", ["Mars Standard Time", "EST", "tzone://Microsoft/Custom", ""])
def test_names_that_are_neither_windows_nor_iana_are_unknown(name: str) -> None:
    with pytest.raises(UnknownZone):
        iana_zone(name)


def test_an_unknown_windows_zone_quarantines_the_item_never_guessing() -> None:
    data = _event(start={"dateTime": "2026-12-03T09:30:00", "timeZone": "Mars Standard Time"})
    event = _read(data)
    assert event.projection is None and event.problem == "unknown time zone 'Mars Standard Time'"
    assert event.marker == "m1" and event.etag == 'W/"ck1"'


def test_windows_named_times_are_read_as_instants() -> None:
    data = _event(start={"dateTime": "2026-12-03T21:00:00", "timeZone": "Lord Howe Standard Time"},
                  end={"dateTime": "2026-12-03T22:00:00", "timeZone": "Lord Howe Standard Time"},
                  originalStartTimeZone="Lord Howe Standard Time")
    when = _read(data).projection.when
    assert when.start == datetime(2026, 12, 3, 10, 0, tzinfo=UTC)  # +11:00 in summer
    assert when.tz == "Australia/Lord_Howe"


def test_a_wall_time_in_a_dst_fold_is_written_in_utc_so_the_instant_survives() -> None:
    oslo = ZoneInfo("Europe/Oslo")
    second = datetime(2026, 10, 25, 2, 30, fold=1, tzinfo=oslo)  # the repeated half hour
    first = datetime(2026, 10, 25, 2, 30, fold=0, tzinfo=oslo)
    late = when_payload(When(second, second.astimezone(UTC).replace(hour=3), "Europe/Oslo"))
    assert late["start"] == {"dateTime": "2026-10-25T01:30:00", "timeZone": "UTC"}
    early = when_payload(When(first, second, "Europe/Oslo"))
    assert early["start"] == {"dateTime": "2026-10-25T02:30:00", "timeZone": "Europe/Oslo"}


def test_an_end_in_a_repeated_hour_is_read_as_the_only_consistent_instant() -> None:
    eastern = "Eastern Standard Time"
    data = _event(start={"dateTime": "2025-11-02T01:59:00", "timeZone": eastern},
                  end={"dateTime": "2025-11-02T01:00:00", "timeZone": eastern})
    when = _read(data).projection.when
    assert (when.start, when.end) == (datetime(2025, 11, 2, 5, 59, tzinfo=UTC),
                                      datetime(2025, 11, 2, 6, 0, tzinfo=UTC))
    broken = _event(start={"dateTime": "2025-11-03T10:00:00", "timeZone": eastern},
                    end={"dateTime": "2025-11-03T09:00:00", "timeZone": eastern})
    assert _read(broken).problem == "the event ends before it starts"


def test_all_day_dates_are_taken_as_written_whatever_zone_labels_them() -> None:
    tokyo = "Tokyo Standard Time"
    data = _event(isAllDay=True,
                  start={"dateTime": "2026-12-07T00:00:00.0000000", "timeZone": tokyo},
                  end={"dateTime": "2026-12-09T00:00:00.0000000", "timeZone": tokyo},
                  originalStartTimeZone="tzone://Microsoft/Custom")
    when = _read(data).projection.when
    assert (when.start, when.end, when.tz) == (date(2026, 12, 7), date(2026, 12, 9),
                                               "Europe/Oslo")
    payload = when_payload(all_day().when)
    assert payload["isAllDay"] is True
    assert payload["start"] == {"dateTime": "2026-12-07T00:00:00", "timeZone": "Europe/Oslo"}


# --- text, guests, fields -----------------------------------------------------------------


def test_an_html_body_reads_as_the_same_text_as_the_plain_one() -> None:
    text = "Agenda:\n1. pricing\n\n2. rollout <b>not html</b> & more"
    plain = _read(_event(body={"contentType": "text", "content": text}))
    wrapped = _read(_event(body={"contentType": "html", "content": wrap_text_as_html(text)}))
    assert plain.projection.description == text
    assert wrapped.projection.description == text


def test_active_html_from_outlook_is_reduced_to_text() -> None:
    body = "<html><body><p>Hi <script>alert(1)</script><a href='javascript:x'>there</a></p>"
    event = _read(_event(body={"contentType": "html", "content": body}))
    assert event.projection.description == "Hi there"


def test_the_guests_paragraph_is_stripped_and_read_back() -> None:
    text = "Agenda\n\nGuests: Ada Lovelace <ada@example.com>, bob@example.org"
    assert split_guests(text) == ("Agenda", frozenset({"ada@example.com", "bob@example.org"}),
                                  {"ada@example.com": "Ada Lovelace"})
    assert split_guests("Guests: a@example.com") == ("", frozenset({"a@example.com"}), {})


@pytest.mark.parametrize("text", ["Guests: see below", "Notes\n\nGuests: ada, bob",
                                  "Guests: a@example.com\nand more"])
def test_a_description_that_only_mentions_guests_is_left_alone(text: str) -> None:
    assert split_guests(text) == (text, frozenset(), {})


def test_attendees_exclude_the_mailbox_and_the_organizer() -> None:
    people = [{"emailAddress": {"address": a, "name": n}, "type": "required"}
              for a, n in (("Alice@contoso.test", "Alice"), ("ada@example.com", "Ada L"),
                           ("bob@example.org", "bob@example.org"))]
    event = _read(_event(attendees=people), describe=False)
    assert event.projection.guests == frozenset({"ada@example.com", "bob@example.org"})
    assert event.projection.guest_names == {"ada@example.com": "Ada L"}


def test_a_patch_carries_only_the_named_fields_and_the_marker() -> None:
    assert update_payload(rich(), frozenset({"title"}), "m1", invited=None) == {
        "subject": rich().title,
        "singleValueExtendedProperties": [{"id": MARKER_PROP, "value": "m1"}],
    }
    assert set(update_payload(rich(), frozenset(), "m1", invited=None)) == {
        "singleValueExtendedProperties"}
    described = update_payload(rich(), frozenset({"guests"}), "m1", invited=None)
    assert "attendees" not in described and "Guests: " in described["body"]["content"]
    invited = update_payload(rich(), frozenset({"guests"}), "m1", invited=rich().guests)
    assert "Guests: " not in invited["body"]["content"] and len(invited["attendees"]) == 2
    one = update_payload(rich(), frozenset({"guests"}), "m1",
                         invited=frozenset({"ada@example.com"}))
    assert [a["emailAddress"]["address"] for a in one["attendees"]] == ["ada@example.com"]
    assert one["body"]["content"].endswith("Guests: bob@example.org")


def test_a_create_is_deterministic_and_its_transaction_id_depends_on_the_generation() -> None:
    one = create_payload(rich(), "m1", 0, invited=None)
    assert one == create_payload(rich(), "m1", 0, invited=None)
    assert one["transactionId"] == transaction_id("m1", 0) != transaction_id("m1", 1)
    assert {p["id"] for p in one["singleValueExtendedProperties"]} == {MARKER_PROP,
                                                                       GENERATION_PROP}
    assert one["body"] == {"contentType": "text", "content": (
        "Agenda:\n1. pricing\n2. rollout <b>not html</b>\n\n"
        "Guests: Ada Lovelace <ada@example.com>, bob@example.org")}
    assert set(one) - {"transactionId", "singleValueExtendedProperties"} == {
        "subject", "isAllDay", "start", "end", "showAs", "location", "body"}


@pytest.mark.parametrize("kind", ["seriesMaster", "occurrence", "exception"])
def test_recurring_items_are_flagged_not_mapped(kind: str) -> None:
    event = _read(_event(type=kind))
    assert event.recurring and event.projection is None and event.marker == "m1"


@pytest.mark.parametrize(("show_as", "busy"), [("busy", True), ("oof", True),
                                               ("tentative", True), ("free", False),
                                               ("workingElsewhere", False)])
def test_show_as_maps_to_busy(show_as: str, busy: bool) -> None:
    assert _read(_event(showAs=show_as)).projection.busy is busy


def test_every_projection_field_is_written_on_create() -> None:
    payload = create_payload(timed("x", location="Here", description="d"), "m", 0,
                             invited=frozenset())
    assert set(FIELDS) == {"title", "when", "busy", "description", "location", "guests"}
    assert {"subject", "start", "end", "showAs", "body", "location", "attendees"} <= set(payload)
