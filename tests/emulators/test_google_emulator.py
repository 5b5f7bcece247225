"""The Google Calendar emulator, driven through the real google-api-python-client over HTTP.

One test per behaviour of providers.md section A / "Emulator must-haves" 1-12. If one of
these fails, either the emulator drifted from Google or the client library changed.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import httplib2
import pytest
from googleapiclient.errors import HttpError

from syncd_testkit.emulators import google_fixtures
from syncd_testkit.emulators.google import FaultRule, GoogleEmulator
from syncd_testkit.emulators.google_fixtures import build_service, new_batch
from syncd_testkit.loopback import HandlerServer, QuietHandler

google_emulator = google_fixtures.google_emulator
google_service = google_fixtures.google_service

OWNER = "alice@example.com"


@pytest.fixture
def emu(google_emulator: GoogleEmulator) -> GoogleEmulator:
    """The shared emulator with Alice's primary calendar."""
    google_emulator.add_calendar(OWNER, time_zone="Europe/Berlin")
    return google_emulator


@pytest.fixture
def svc(emu: GoogleEmulator, google_service: Any) -> Any:
    return google_service


def new_id() -> str:
    """A valid client id: a UUID's hex digits are base32hex."""
    return uuid.uuid4().hex


def timed(summary: str = "Call", start: str = "2026-03-02T10:00:00+01:00",
          end: str = "2026-03-02T11:00:00+01:00", **extra: Any) -> dict[str, Any]:
    return {"summary": summary, "start": {"dateTime": start}, "end": {"dateTime": end}, **extra}


def no_backoff(request: Any) -> list[float]:
    """Make ``execute(num_retries=...)`` retry without sleeping; returns the sleeps asked for.

    HttpRequest keeps its sleep function in a private attribute; replacing it is the only way
    to keep a retry test fast without patching ``time.sleep`` for every thread.
    """
    sleeps: list[float] = []
    request._sleep = sleeps.append
    return sleeps


def list_all(svc: Any, calendar_id: str = "primary",
             **params: Any) -> tuple[list[dict[str, Any]], str, int]:
    """Follow nextPageToken to the end; return (items, nextSyncToken, pages)."""
    items: list[dict[str, Any]] = []
    request = svc.events().list(calendarId=calendar_id, **params)
    pages, token = 0, ""
    while request is not None:
        response = request.execute()
        pages += 1
        items.extend(response["items"])
        token = response.get("nextSyncToken", "")
        request = svc.events().list_next(request, response)
    return items, token, pages


def error_reason(exc: HttpError) -> str:
    details = exc.error_details
    assert isinstance(details, list)
    return str(details[0]["reason"])


# ---- 1. CRUD -------------------------------------------------------------------------------


def test_insert_returns_the_full_event_with_server_fields(svc: Any) -> None:
    event_id = new_id()
    event = svc.events().insert(calendarId="primary", body=timed(id=event_id)).execute()
    assert event["kind"] == "calendar#event"
    assert event["id"] == event_id
    assert event["iCalUID"] == f"{event_id}@google.com"
    assert event["etag"].startswith('"') and event["etag"].endswith('"')
    assert event["status"] == "confirmed"
    assert event["creator"] == {"email": OWNER, "self": True}
    assert event["organizer"] == {"email": OWNER, "self": True}
    assert event["sequence"] == 0
    assert event["created"] == event["updated"]
    assert event["htmlLink"].startswith("https://www.google.com/calendar/event?eid=")


def test_url_encoded_calendar_id_and_alt_json_reach_the_same_calendar(
        emu: GoogleEmulator, svc: Any) -> None:
    svc.events().insert(calendarId=OWNER, body=timed()).execute()
    assert any(r.path == "/calendar/v3/calendars/alice%40example.com/events"
               and r.param("alt") == "json" for r in emu.requests)
    assert len(svc.events().list(calendarId="primary").execute()["items"]) == 1


def test_patch_merges_objects_replaces_arrays_and_null_deletes_a_property(svc: Any) -> None:
    body = timed(attendees=[{"email": "bob@example.com"}, {"email": "eve@example.com"}],
                 extendedProperties={"private": {"syncd": "1", "crm": "42"}})
    event = svc.events().insert(calendarId="primary", body=body).execute()
    patched = svc.events().patch(calendarId="primary", eventId=event["id"], body={
        "attendees": [{"email": "carol@example.com"}],
        "extendedProperties": {"private": {"crm": None, "new": "x"}},
    }).execute()
    assert [a["email"] for a in patched["attendees"]] == ["carol@example.com"]
    assert patched["extendedProperties"]["private"] == {"syncd": "1", "new": "x"}
    assert patched["summary"] == "Call"


def test_update_replaces_the_whole_event(svc: Any) -> None:
    event = svc.events().insert(calendarId="primary", body=timed(
        location="Room 1", extendedProperties={"private": {"syncd": "1"}})).execute()
    updated = svc.events().update(calendarId="primary", eventId=event["id"],
                                  body=timed("Renamed")).execute()
    assert updated["summary"] == "Renamed"
    assert "location" not in updated and "extendedProperties" not in updated


def test_update_without_start_is_rejected(svc: Any) -> None:
    event = svc.events().insert(calendarId="primary", body=timed()).execute()
    with pytest.raises(HttpError) as info:
        svc.events().update(calendarId="primary", eventId=event["id"],
                            body={"summary": "x"}).execute()
    assert info.value.status_code == 400 and error_reason(info.value) == "required"


def test_import_upserts_by_ical_uid_without_e_mail(emu: GoogleEmulator, svc: Any) -> None:
    body = timed(iCalUID="crm-7@example.org", attendees=[{"email": "bob@other.org"}])
    first = svc.events().import_(calendarId="primary", body=body).execute()
    second = svc.events().import_(calendarId="primary",
                                  body={**body, "summary": "Moved"}).execute()
    assert first["id"] == second["id"] and second["summary"] == "Moved"
    assert emu.emails_sent == 0


# ---- 2. client ids and duplicates ------------------------------------------------------------


def test_duplicate_client_id_is_409_duplicate(svc: Any) -> None:
    event_id = new_id()
    svc.events().insert(calendarId="primary", body=timed(id=event_id)).execute()
    with pytest.raises(HttpError) as info:
        svc.events().insert(calendarId="primary", body=timed(id=event_id)).execute()
    assert info.value.status_code == 409
    assert info.value.reason == "The requested identifier already exists."
    assert error_reason(info.value) == "duplicate"


def test_id_of_a_deleted_event_is_still_taken(svc: Any) -> None:
    event_id = new_id()
    svc.events().insert(calendarId="primary", body=timed(id=event_id)).execute()
    svc.events().delete(calendarId="primary", eventId=event_id).execute()
    with pytest.raises(HttpError) as info:
        svc.events().insert(calendarId="primary", body=timed(id=event_id)).execute()
    assert info.value.status_code == 409 and error_reason(info.value) == "duplicate"


def test_patching_a_deleted_event_to_confirmed_restores_it(svc: Any) -> None:
    event_id = new_id()
    svc.events().insert(calendarId="primary", body=timed(id=event_id)).execute()
    svc.events().delete(calendarId="primary", eventId=event_id).execute()
    restored = svc.events().patch(calendarId="primary", eventId=event_id,
                                  body={"status": "confirmed", "summary": "Back"}).execute()
    assert restored["status"] == "confirmed" and restored["summary"] == "Back"
    assert [e["id"] for e in svc.events().list(calendarId="primary").execute()["items"]] == [
        event_id]


@pytest.mark.parametrize("bad_id", ["abcd", "ABCDE12345", "abcdw12345", "abc-de-123", "x" * 5])
def test_client_ids_outside_base32hex_are_400_invalid(svc: Any, bad_id: str) -> None:
    with pytest.raises(HttpError) as info:
        svc.events().insert(calendarId="primary", body=timed(id=bad_id)).execute()
    assert info.value.status_code == 400 and error_reason(info.value) == "invalid"


# ---- 3. soft delete ----------------------------------------------------------------------------


def test_delete_is_soft_then_410_deleted_and_unknown_is_404(svc: Any) -> None:
    event = svc.events().insert(calendarId="primary", body=timed()).execute()
    assert svc.events().delete(calendarId="primary", eventId=event["id"]).execute() == ""
    assert svc.events().get(calendarId="primary",
                            eventId=event["id"]).execute()["status"] == "cancelled"
    with pytest.raises(HttpError) as gone:
        svc.events().delete(calendarId="primary", eventId=event["id"]).execute()
    assert gone.value.status_code == 410 and error_reason(gone.value) == "deleted"
    assert gone.value.reason == "Resource has been deleted"
    with pytest.raises(HttpError) as missing:
        svc.events().get(calendarId="primary", eventId="unknown12345").execute()
    assert missing.value.status_code == 404 and error_reason(missing.value) == "notFound"


# ---- 4. etags, If-Match, updated, sequence ---------------------------------------------------


def test_stale_if_match_is_412_and_current_one_succeeds(svc: Any) -> None:
    event = svc.events().insert(calendarId="primary", body=timed()).execute()
    changed = svc.events().patch(calendarId="primary", eventId=event["id"],
                                 body={"summary": "Edited"}).execute()
    assert changed["etag"] != event["etag"]
    for method in ("patch", "update", "delete"):
        kwargs: dict[str, Any] = {"calendarId": "primary", "eventId": event["id"]}
        if method != "delete":
            kwargs["body"] = timed("Mine")
        request = getattr(svc.events(), method)(**kwargs)
        request.headers["If-Match"] = event["etag"]
        with pytest.raises(HttpError) as info:
            request.execute()
        assert info.value.status_code == 412
        assert info.value.error_details[0]["location"] == "If-Match"
    request = svc.events().patch(calendarId="primary", eventId=event["id"], body={"summary": "Ok"})
    request.headers["If-Match"] = changed["etag"]
    assert request.execute()["summary"] == "Ok"


def test_if_none_match_with_current_etag_is_304(svc: Any) -> None:
    event = svc.events().insert(calendarId="primary", body=timed()).execute()
    request = svc.events().get(calendarId="primary", eventId=event["id"])
    request.headers["If-None-Match"] = event["etag"]
    with pytest.raises(HttpError) as info:
        request.execute()
    assert info.value.status_code == 304


def test_reminder_only_edit_changes_etag_but_not_updated(svc: Any) -> None:
    event = svc.events().insert(calendarId="primary", body=timed()).execute()
    reminded = svc.events().patch(calendarId="primary", eventId=event["id"], body={
        "reminders": {"useDefault": False, "overrides": [{"method": "popup", "minutes": 5}]},
    }).execute()
    assert reminded["etag"] != event["etag"] and reminded["updated"] == event["updated"]
    renamed = svc.events().patch(calendarId="primary", eventId=event["id"],
                                 body={"summary": "New"}).execute()
    assert renamed["updated"] > event["updated"]


def test_date_time_is_echoed_in_the_event_or_calendar_zone(svc: Any) -> None:
    event = svc.events().insert(calendarId="primary", body=timed(
        start="2026-03-02T10:00:00Z", end="2026-03-02T11:00:00Z")).execute()
    assert event["start"] == {"dateTime": "2026-03-02T11:00:00+01:00"}  # calendar is Berlin
    zoned = svc.events().insert(calendarId="primary", body={
        "start": {"dateTime": "2026-03-02T10:00:00Z", "timeZone": "America/New_York"},
        "end": {"dateTime": "2026-03-02T11:00:00Z", "timeZone": "America/New_York"}}).execute()
    assert zoned["start"] == {"dateTime": "2026-03-02T05:00:00-05:00",
                              "timeZone": "America/New_York"}
    same_instant = svc.events().patch(calendarId="primary", eventId=event["id"], body={
        "start": {"dateTime": "2026-03-02T10:00:00Z"}}).execute()
    assert same_instant["etag"] == event["etag"]


def test_no_op_patch_keeps_etag(svc: Any) -> None:
    event = svc.events().insert(calendarId="primary", body=timed()).execute()
    same = svc.events().patch(calendarId="primary", eventId=event["id"],
                              body={"summary": "Call"}).execute()
    assert same["etag"] == event["etag"]


def test_sequence_is_echoed_and_optionally_auto_incremented() -> None:
    with GoogleEmulator(sequence_autoincrement=True) as emu:
        svc = build_service(emu)
        event = svc.events().insert(calendarId="primary", body=timed(sequence=3)).execute()
        assert event["sequence"] == 3
        moved = svc.events().patch(calendarId="primary", eventId=event["id"], body={
            "start": {"dateTime": "2026-03-02T12:00:00+01:00"},
            "end": {"dateTime": "2026-03-02T13:00:00+01:00"}}).execute()
        assert moved["sequence"] == 4
        with pytest.raises(HttpError) as info:
            svc.events().patch(calendarId="primary", eventId=event["id"],
                               body={"sequence": 1}).execute()
        assert info.value.status_code == 400


# ---- 5/6. listing, paging, sync tokens -------------------------------------------------------


def test_max_results_defaults_to_250_and_caps_at_2500(emu: GoogleEmulator, svc: Any) -> None:
    for i in range(260):
        emu.put_event(OWNER, timed(f"e{i}"))
    first_page = svc.events().list(calendarId="primary").execute()
    assert len(first_page["items"]) == 250 and "nextPageToken" in first_page
    assert "nextSyncToken" not in first_page
    everything = svc.events().list(calendarId="primary", maxResults=5000).execute()
    assert len(everything["items"]) == 260 and "nextSyncToken" in everything


def test_short_and_empty_pages_still_carry_next_page_token(emu: GoogleEmulator,
                                                            svc: Any) -> None:
    ids = {emu.put_event(OWNER, timed(f"e{i}"))["id"] for i in range(7)}
    emu.short_pages = True
    first_page = svc.events().list(calendarId="primary", maxResults=4).execute()
    assert first_page["items"] == [] and "nextPageToken" in first_page
    items, token, pages = list_all(svc, maxResults=4)
    assert {e["id"] for e in items} == ids and token
    assert pages > 4  # 7 items at most 2 per non-empty page, with empty pages between


def test_sync_token_returns_only_changes_and_deletions_as_stubs(emu: GoogleEmulator,
                                                                svc: Any) -> None:
    kept = svc.events().insert(calendarId="primary", body=timed("kept")).execute()
    edited = svc.events().insert(calendarId="primary", body=timed("edited")).execute()
    gone = svc.events().insert(calendarId="primary", body=timed("gone")).execute()
    _, token, _ = list_all(svc)
    emu.put_event(OWNER, {**edited, "summary": "edited in the UI"})
    emu.delete_event_as_user(OWNER, gone["id"])
    changes = svc.events().list(calendarId="primary", syncToken=token).execute()
    by_id = {e["id"]: e for e in changes["items"]}
    assert set(by_id) == {edited["id"], gone["id"]} and kept["id"] not in by_id
    assert by_id[edited["id"]]["summary"] == "edited in the UI"
    assert by_id[gone["id"]]["status"] == "cancelled" and "summary" not in by_id[gone["id"]]
    assert changes["nextSyncToken"] != token


def test_unchanged_calendar_returns_empty_page_and_the_same_token(svc: Any) -> None:
    svc.events().insert(calendarId="primary", body=timed()).execute()
    _, token, _ = list_all(svc)
    again = svc.events().list(calendarId="primary", syncToken=token).execute()
    assert again["items"] == [] and again["nextSyncToken"] == token


def test_expired_sync_token_is_410_full_sync_required(emu: GoogleEmulator, svc: Any) -> None:
    _, token, _ = list_all(svc)
    emu.expire_sync_tokens(OWNER)
    with pytest.raises(HttpError) as info:
        svc.events().list(calendarId="primary", syncToken=token).execute()
    assert info.value.status_code == 410
    assert info.value.reason == "Sync token is no longer valid, a full sync is required."
    detail = info.value.error_details[0]
    assert (detail["reason"], detail["locationType"], detail["location"]) == (
        "fullSyncRequired", "parameter", "syncToken")
    _, fresh, _ = list_all(svc)
    assert svc.events().list(calendarId="primary", syncToken=fresh).execute()["items"] == []


@pytest.mark.parametrize("param", [
    {"timeMin": "2026-01-01T00:00:00Z"}, {"timeMax": "2026-01-01T00:00:00Z"}, {"q": "x"},
    {"orderBy": "updated"}, {"iCalUID": "x@google.com"},
    {"updatedMin": "2026-01-01T00:00:00Z"}, {"privateExtendedProperty": "a=b"},
    {"sharedExtendedProperty": "a=b"}, {"showDeleted": False},
])
def test_sync_token_with_request_restrictions_is_400(svc: Any, param: dict[str, Any]) -> None:
    _, token, _ = list_all(svc)
    with pytest.raises(HttpError) as info:
        svc.events().list(calendarId="primary", syncToken=token, **param).execute()
    assert info.value.status_code == 400


def test_change_made_while_paging_is_not_lost(emu: GoogleEmulator, svc: Any) -> None:
    events = [emu.put_event(OWNER, timed(f"e{i}")) for i in range(6)]
    request = svc.events().list(calendarId="primary", maxResults=2)
    first_page = request.execute()
    served = {e["id"] for e in first_page["items"]}
    # While the client pages: a new event, an edit to a served one, a delete of an unserved one.
    added = emu.put_event(OWNER, timed("added late"))
    edited = emu.put_event(OWNER, {**events[0], "summary": "edited while paging"})
    emu.delete_event_as_user(OWNER, events[5]["id"])
    response = first_page
    while "nextPageToken" in response:
        request = svc.events().list_next(request, response)
        response = request.execute()
        served |= {e["id"] for e in response["items"]}
    changes = svc.events().list(calendarId="primary",
                                syncToken=response["nextSyncToken"]).execute()
    changed = {e["id"]: e for e in changes["items"]}
    assert {added["id"], edited["id"], events[5]["id"]} <= set(changed)
    assert changed[events[5]["id"]]["status"] == "cancelled"
    assert {e["id"] for e in events[:5]} <= served


def test_updated_min_too_long_ago_is_410(emu: GoogleEmulator, svc: Any) -> None:
    emu.updated_min_horizon = timedelta(days=1)
    with pytest.raises(HttpError) as info:
        svc.events().list(calendarId="primary", updatedMin="2000-01-01T00:00:00Z").execute()
    assert info.value.status_code == 410 and error_reason(info.value) == "updatedMinTooLongAgo"


def test_updated_min_returns_recent_changes_including_deletions(emu: GoogleEmulator,
                                                                svc: Any) -> None:
    event = svc.events().insert(calendarId="primary", body=timed()).execute()
    svc.events().delete(calendarId="primary", eventId=event["id"]).execute()
    items = svc.events().list(calendarId="primary",
                              updatedMin=event["created"]).execute()["items"]
    assert [(e["id"], e["status"]) for e in items] == [(event["id"], "cancelled")]


# ---- 7. filters ------------------------------------------------------------------------------


def test_time_min_bounds_end_and_time_max_bounds_start_exclusively(svc: Any) -> None:
    svc.events().insert(calendarId="primary", body=timed(
        "ends at 10", start="2026-03-02T09:00:00Z", end="2026-03-02T10:00:00Z")).execute()
    svc.events().insert(calendarId="primary", body=timed(
        "starts at 12", start="2026-03-02T12:00:00Z", end="2026-03-02T13:00:00Z")).execute()
    svc.events().insert(calendarId="primary", body=timed(
        "overlaps", start="2026-03-02T09:30:00Z", end="2026-03-02T10:30:00Z")).execute()
    items = svc.events().list(calendarId="primary", timeMin="2026-03-02T10:00:00Z",
                              timeMax="2026-03-02T12:00:00Z").execute()["items"]
    assert [e["summary"] for e in items] == ["overlaps"]


def test_empty_time_range_and_missing_offset_are_400(svc: Any) -> None:
    with pytest.raises(HttpError) as empty:
        svc.events().list(calendarId="primary", timeMin="2026-03-02T10:00:00Z",
                          timeMax="2026-03-02T10:00:00Z").execute()
    assert error_reason(empty.value) == "timeRangeEmpty"
    with pytest.raises(HttpError) as naive:
        svc.events().list(calendarId="primary", timeMin="2026-03-02T10:00:00").execute()
    assert naive.value.status_code == 400


def test_show_deleted_includes_cancelled_events_in_a_full_list(svc: Any) -> None:
    event = svc.events().insert(calendarId="primary", body=timed()).execute()
    svc.events().delete(calendarId="primary", eventId=event["id"]).execute()
    assert svc.events().list(calendarId="primary").execute()["items"] == []
    shown = svc.events().list(calendarId="primary", showDeleted=True).execute()["items"]
    assert [(e["id"], e["status"]) for e in shown] == [(event["id"], "cancelled")]


def test_extended_property_and_ical_uid_filters(svc: Any) -> None:
    mine = svc.events().insert(calendarId="primary", body=timed(
        extendedProperties={"private": {"syncd": "a1"}, "shared": {"crm": "x"}})).execute()
    svc.events().insert(calendarId="primary", body=timed(
        extendedProperties={"private": {"syncd": "b2"}})).execute()

    def ids(**params: Any) -> list[str]:
        return [e["id"] for e in svc.events().list(calendarId="primary", **params)
                .execute()["items"]]

    assert ids(privateExtendedProperty="syncd=a1") == [mine["id"]]
    assert ids(sharedExtendedProperty="crm=x") == [mine["id"]]
    assert ids(privateExtendedProperty=["syncd=a1", "syncd=b2"]) == []  # constraints are ANDed
    assert ids(iCalUID=mine["iCalUID"]) == [mine["id"]]


def test_single_events_expands_recurrence_in_the_event_time_zone(svc: Any) -> None:
    series = svc.events().insert(calendarId="primary", body={
        "summary": "Weekly", "recurrence": ["RRULE:FREQ=WEEKLY;COUNT=3"],
        "start": {"dateTime": "2026-03-23T10:00:00", "timeZone": "Europe/Berlin"},
        "end": {"dateTime": "2026-03-23T11:00:00", "timeZone": "Europe/Berlin"}}).execute()
    masters = svc.events().list(calendarId="primary").execute()["items"]
    assert [e["id"] for e in masters] == [series["id"]]
    instances = svc.events().list(calendarId="primary", singleEvents=True,
                                  orderBy="startTime").execute()["items"]
    # DST starts on 29 March: 10:00 Berlin is 09:00Z before and 08:00Z after.
    assert [e["id"] for e in instances] == [f"{series['id']}_20260323T090000Z",
                                            f"{series['id']}_20260330T080000Z",
                                            f"{series['id']}_20260406T080000Z"]
    assert all(e["recurringEventId"] == series["id"] for e in instances)


def test_order_by_start_time_needs_single_events(svc: Any) -> None:
    with pytest.raises(HttpError) as info:
        svc.events().list(calendarId="primary", orderBy="startTime").execute()
    assert info.value.status_code == 400


# ---- 8. event model validation ---------------------------------------------------------------


@pytest.mark.parametrize(("body", "reason"), [
    ({"start": {"dateTime": "2026-03-02T10:00:00"}, "end": {"dateTime": "2026-03-02T11:00:00"}},
     "required"),
    (timed(start="2026-03-02T11:00:00Z", end="2026-03-02T10:00:00Z"), "timeRangeEmpty"),
    ({"start": {"date": "2026-03-02"}, "end": {"date": "2026-03-02"}}, "timeRangeEmpty"),
    ({"start": {"date": "2026-03-02"}, "end": {"dateTime": "2026-03-03T00:00:00Z"}}, "invalid"),
    ({"start": {}, "end": {"date": "2026-03-03"}}, "required"),
    (timed(transparency="busy"), "invalid"),
    (timed(visibility="secret"), "invalid"),
    (timed(status="done"), "invalid"),
    (timed(reminders={"useDefault": False, "overrides": [
        {"method": "popup", "minutes": i} for i in range(6)]}), "invalid"),
    (timed(reminders={"useDefault": False, "overrides": [
        {"method": "popup", "minutes": 40321}]}), "invalid"),
    (timed(source={"title": "CRM", "url": "ftp://crm.example.com/1"}), "invalid"),
    (timed(colour="1"), "invalid"),
])
def test_invalid_events_are_400(svc: Any, body: dict[str, Any], reason: str) -> None:
    with pytest.raises(HttpError) as info:
        svc.events().insert(calendarId="primary", body=body).execute()
    assert info.value.status_code == 400 and error_reason(info.value) == reason


def test_all_day_event_uses_exclusive_end_and_html_description_is_verbatim(svc: Any) -> None:
    description = '<b>Agenda</b><br><a href="https://crm.example.com/1">deal</a> &amp; more'
    event = svc.events().insert(calendarId="primary", body={
        "start": {"date": "2026-01-05"}, "end": {"date": "2026-01-06"},
        "description": description, "source": {"title": "CRM", "url": "https://crm.example.com"},
    }).execute()
    assert svc.events().get(calendarId="primary", eventId=event["id"]).execute()[
        "description"] == description


def test_extended_property_limits_drop_long_keys_and_truncate_long_values(svc: Any) -> None:
    event = svc.events().insert(calendarId="primary", body=timed(extendedProperties={
        "private": {"k" * 44: "kept", "k" * 45: "dropped", "long": "v" * 2000}})).execute()
    private = event["extendedProperties"]["private"]
    assert set(private) == {"k" * 44, "long"} and len(private["long"]) == 1024
    with pytest.raises(HttpError) as too_many:
        svc.events().insert(calendarId="primary", body=timed(extendedProperties={
            "private": {f"p{i}": "x" for i in range(301)}})).execute()
    assert too_many.value.status_code == 400
    with pytest.raises(HttpError) as too_big:
        svc.events().insert(calendarId="primary", body=timed(extendedProperties={
            "private": {f"p{i}": "x" * 1000 for i in range(40)}})).execute()
    assert too_big.value.status_code == 400


# ---- 9. faults, retries, quotas --------------------------------------------------------------


def test_client_retries_503_and_rate_limit_403_but_not_quota_exceeded(emu: GoogleEmulator,
                                                                      svc: Any) -> None:
    emu.inject(FaultRule.backend_error(503, method="GET", count=2))
    request = svc.events().list(calendarId="primary")
    assert len(no_backoff(request)) == 0
    request.execute(num_retries=2)

    emu.inject(FaultRule.rate_limit_exceeded(method="GET", count=1))
    request = svc.events().list(calendarId="primary")
    sleeps = no_backoff(request)
    request.execute(num_retries=2)
    assert len(sleeps) == 1

    emu.inject(FaultRule.quota_exceeded(method="GET", count=1))
    request = svc.events().list(calendarId="primary")
    sleeps = no_backoff(request)
    with pytest.raises(HttpError) as info:
        request.execute(num_retries=2)
    assert sleeps == [] and info.value.reason == "Calendar usage limits exceeded."
    assert error_reason(info.value) == "quotaExceeded"
    statuses = [r.status for r in emu.requests if r.method == "GET"]
    assert statuses == [503, 503, 200, 403, 200, 403]


@pytest.mark.parametrize(("rule", "status", "reason"), [
    (FaultRule.user_rate_limit_exceeded(), 403, "userRateLimitExceeded"),
    (FaultRule.too_many_requests(retry_after=7), 429, "rateLimitExceeded"),
    (FaultRule.backend_error(500), 500, "backendError"),
    (FaultRule.auth_error(), 401, "authError"),
])
def test_injected_errors_have_googles_shape(emu: GoogleEmulator, svc: Any, rule: FaultRule,
                                            status: int, reason: str) -> None:
    emu.inject(rule)
    with pytest.raises(HttpError) as info:
        svc.events().list(calendarId="primary").execute()
    assert info.value.status_code == status and error_reason(info.value) == reason
    body = json.loads(info.value.content)
    assert body["error"]["code"] == status and body["error"]["message"] == info.value.reason
    if rule.retry_after is not None:
        assert info.value.resp["retry-after"] == "7"
    if status == 401:
        assert info.value.error_details[0]["location"] == "Authorization"


def test_apply_then_503_performs_the_write(emu: GoogleEmulator, svc: Any) -> None:
    emu.inject(FaultRule(method="POST", path=r"/events$", apply_then_fail="503"))
    event_id = new_id()
    with pytest.raises(HttpError) as info:
        svc.events().insert(calendarId="primary", body=timed(id=event_id)).execute()
    assert info.value.status_code == 503
    assert [e["id"] for e in emu.events(OWNER)] == [event_id]


def test_dropped_response_after_insert_makes_the_silent_retry_hit_409(
        emu: GoogleEmulator, svc: Any) -> None:
    # httplib2 resends a request once when the connection closes without an answer, so a
    # client-chosen id is what keeps a dropped insert from becoming a duplicate.
    emu.inject(FaultRule(method="POST", path=r"/events$", apply_then_fail="drop"))
    event_id = new_id()
    with pytest.raises(HttpError) as info:
        svc.events().insert(calendarId="primary", body=timed(id=event_id)).execute()
    assert info.value.status_code == 409
    assert len(emu.events(OWNER)) == 1


def test_write_completes_although_the_client_timed_out(emu: GoogleEmulator) -> None:
    svc = build_service(emu, http=httplib2.Http(timeout=0.3))
    emu.inject(FaultRule(method="POST", apply_then_fail="timeout", delay_seconds=1.0))
    with pytest.raises(TimeoutError):
        svc.events().insert(calendarId="primary", body=timed(summary="slow")).execute()
    assert [e["summary"] for e in emu.events(OWNER)] == ["slow"]


def test_delay_fault_slows_the_answer_but_keeps_it(emu: GoogleEmulator, svc: Any) -> None:
    emu.inject(FaultRule(method="GET", delay_seconds=0.2))
    started = time.monotonic()
    assert svc.events().list(calendarId="primary").execute()["items"] == []
    assert time.monotonic() - started >= 0.2


def test_dropped_batch_is_resent_by_httplib2_and_parts_run_twice(emu: GoogleEmulator,
                                                                  svc: Any) -> None:
    emu.inject(FaultRule(inner=True, method="POST", apply_then_fail="drop"))
    event_id = new_id()
    results: list[HttpError | None] = []
    batch = new_batch(emu, lambda _id, _r, exc: results.append(exc))
    batch.add(svc.events().insert(calendarId="primary", body=timed(id=event_id)))
    batch.execute()
    assert len(results) == 1 and results[0] is not None and results[0].status_code == 409
    assert len([r for r in emu.requests if r.path == "/batch/calendar/v3"]) == 2
    assert len(emu.events(OWNER)) == 1


def test_per_user_and_per_project_minute_quotas() -> None:
    with GoogleEmulator(per_user_quota_per_minute=2, per_project_quota_per_minute=3) as emu:
        svc = build_service(emu)
        svc.events().list(calendarId="primary", quotaUser="u1").execute()
        svc.events().list(calendarId="primary", quotaUser="u1").execute()
        with pytest.raises(HttpError) as user_limit:
            svc.events().list(calendarId="primary", quotaUser="u1").execute()
        assert (user_limit.value.status_code, error_reason(user_limit.value)) == (
            403, "userRateLimitExceeded")
        assert user_limit.value.error_details[0]["domain"] == "usageLimits"
        svc.events().list(calendarId="primary", quotaUser="u2").execute()
        with pytest.raises(HttpError) as project_limit:
            svc.events().list(calendarId="primary", quotaUser="u3").execute()
        assert error_reason(project_limit.value) == "rateLimitExceeded"


def test_batch_parts_count_against_the_quota_individually() -> None:
    with GoogleEmulator(per_user_quota_per_minute=3) as emu:
        svc = build_service(emu)
        results: list[int] = []
        batch = new_batch(emu, lambda _id, _r, exc: results.append(
            exc.status_code if exc else 200))
        for _ in range(4):
            batch.add(svc.events().list(calendarId="primary"))
        batch.execute()
        assert results == [200, 200, 200, 403]


# ---- 10. batch -------------------------------------------------------------------------------


def test_batch_parts_get_their_own_status_in_a_200_envelope(emu: GoogleEmulator,
                                                            svc: Any) -> None:
    existing = svc.events().insert(calendarId="primary", body=timed(id=new_id())).execute()
    throttled = svc.events().insert(calendarId="primary", body=timed(id=new_id())).execute()
    emu.inject(FaultRule.too_many_requests(inner=True, path=throttled["id"]))
    results: dict[str, tuple[Any, HttpError | None]] = {}
    batch = new_batch(emu, lambda rid, resp, exc: results.__setitem__(rid, (resp, exc)))
    batch.add(svc.events().get(calendarId="primary", eventId=existing["id"]), request_id="get")
    batch.add(svc.events().insert(calendarId="primary", body=timed(id=existing["id"])),
              request_id="duplicate")
    stale = svc.events().patch(calendarId="primary", eventId=existing["id"],
                               body={"summary": "x"})
    stale.headers["If-Match"] = '"stale"'
    batch.add(stale, request_id="stale")
    batch.add(svc.events().patch(calendarId="primary", eventId=throttled["id"],
                                 body={"summary": "y"}), request_id="throttled")
    batch.add(svc.events().insert(calendarId="primary", body=timed("new")), request_id="new")
    batch.add(svc.events().delete(calendarId="primary", eventId="unknown12345"),
              request_id="missing")
    batch.add(svc.events().delete(calendarId="primary", eventId=throttled["id"]),
              request_id="deleted")
    batch.execute()

    def status(rid: str) -> int:
        exc = results[rid][1]
        return exc.status_code if exc else 200

    assert {rid: status(rid) for rid in results} == {
        "get": 200, "duplicate": 409, "stale": 412, "throttled": 429, "new": 200, "missing": 404,
        "deleted": 200}
    assert results["get"][0]["id"] == existing["id"]
    duplicate = results["duplicate"][1]
    assert duplicate is not None and error_reason(duplicate) == "duplicate"
    envelope = [r for r in emu.requests if r.path == "/batch/calendar/v3"]
    assert len(envelope) == 1 and envelope[0].status == 200
    assert [r.status for r in emu.requests if r.inner] == [200, 409, 412, 429, 200, 404, 204]


def test_two_writes_to_one_event_in_a_batch_conflict(emu: GoogleEmulator, svc: Any) -> None:
    event = svc.events().insert(calendarId="primary", body=timed()).execute()
    results: list[int] = []
    batch = new_batch(emu, lambda _id, _r, exc: results.append(exc.status_code if exc else 200))
    batch.add(svc.events().patch(calendarId="primary", eventId=event["id"], body={"summary": "a"}))
    batch.add(svc.events().patch(calendarId="primary", eventId=event["id"], body={"summary": "b"}))
    batch.execute()
    assert results == [200, 409]


def test_batch_response_parts_echo_content_id_as_response_id(emu: GoogleEmulator) -> None:
    body = ("--b\r\nContent-Type: application/http\r\nContent-ID: <abc + 7>\r\n\r\n"
            "GET /calendar/v3/calendars/primary/events HTTP/1.1\r\n\r\n\r\n--b--\r\n")
    response, content = httplib2.Http().request(
        emu.batch_uri, "POST", body=body,
        headers={"Content-Type": 'multipart/mixed; boundary="b"'})
    assert response.status == 200 and response["content-type"].startswith("multipart/mixed")
    text = content.decode()
    assert "Content-ID: <response-abc + 7>" in text and "HTTP/1.1 200 OK" in text


def test_batch_of_more_than_1000_parts_is_400(emu: GoogleEmulator) -> None:
    part = ("--b\r\nContent-Type: application/http\r\nContent-ID: <x + {n}>\r\n\r\n"
            "GET /calendar/v3/calendars/primary/events HTTP/1.1\r\n\r\n\r\n")
    body = "".join(part.format(n=n) for n in range(1001)) + "--b--\r\n"
    response, content = httplib2.Http().request(
        emu.batch_uri, "POST", body=body,
        headers={"Content-Type": 'multipart/mixed; boundary="b"'})
    assert response.status == 400
    assert json.loads(content)["error"]["errors"][0]["reason"] == "invalid"


# ---- 11. calendarList and freeBusy -----------------------------------------------------------


def test_calendar_list_pages_syncs_and_expires(emu: GoogleEmulator, svc: Any) -> None:
    for n in range(3):
        emu.add_calendar(f"team{n}@group.calendar.google.com")
    first_page = svc.calendarList().list(maxResults=2).execute()
    assert len(first_page["items"]) == 2
    rest = svc.calendarList().list(maxResults=2, pageToken=first_page["nextPageToken"]).execute()
    assert len(rest["items"]) == 2 and "nextSyncToken" in rest
    primary = [c for c in first_page["items"] + rest["items"] if c.get("primary")]
    assert [c["id"] for c in primary] == [OWNER]
    emu.remove_calendar("team0@group.calendar.google.com")
    changes = svc.calendarList().list(syncToken=rest["nextSyncToken"]).execute()
    assert changes["items"] == [{"kind": "calendar#calendarListEntry", "etag": changes[
        "items"][0]["etag"], "id": "team0@group.calendar.google.com", "deleted": True}]
    emu.expire_sync_tokens()
    with pytest.raises(HttpError) as info:
        svc.calendarList().list(syncToken=changes["nextSyncToken"]).execute()
    assert info.value.status_code == 410


def test_free_busy_counts_opaque_live_events_only(svc: Any) -> None:
    svc.events().insert(calendarId="primary", body=timed(
        start="2026-03-02T09:00:00Z", end="2026-03-02T10:00:00Z")).execute()
    svc.events().insert(calendarId="primary", body=timed(   # overlaps: merged into one block
        start="2026-03-02T09:30:00Z", end="2026-03-02T10:30:00Z")).execute()
    svc.events().insert(calendarId="primary", body=timed(
        start="2026-03-02T12:00:00Z", end="2026-03-02T13:00:00Z",
        transparency="transparent")).execute()
    cancelled = svc.events().insert(calendarId="primary", body=timed(
        start="2026-03-02T14:00:00Z", end="2026-03-02T15:00:00Z")).execute()
    svc.events().delete(calendarId="primary", eventId=cancelled["id"]).execute()
    result = svc.freebusy().query(body={
        "timeMin": "2026-03-02T00:00:00Z", "timeMax": "2026-03-03T00:00:00Z",
        "items": [{"id": OWNER}, {"id": "nobody@example.com"}]}).execute()
    assert result["kind"] == "calendar#freeBusy"
    assert result["calendars"][OWNER]["busy"] == [
        {"start": "2026-03-02T09:00:00Z", "end": "2026-03-02T10:30:00Z"}]
    assert result["calendars"]["nobody@example.com"]["errors"][0]["reason"] == "notFound"


# ---- e-mail counter --------------------------------------------------------------------------


def test_email_counter_follows_send_updates_and_ignores_no_op_edits(emu: GoogleEmulator,
                                                                    svc: Any) -> None:
    guests = [{"email": OWNER}, {"email": "bob@example.com"}, {"email": "carol@other.org"}]
    event = svc.events().insert(calendarId="primary", sendUpdates="all",
                                body=timed(attendees=guests)).execute()
    assert emu.emails_by_recipient == {"bob@example.com": 1, "carol@other.org": 1}
    svc.events().patch(calendarId="primary", eventId=event["id"], sendUpdates="all",
                       body={"summary": "Call"}).execute()  # unchanged
    svc.events().patch(calendarId="primary", eventId=event["id"], sendUpdates="all", body={
        "reminders": {"useDefault": False, "overrides": []}}).execute()  # not guest-visible
    svc.events().patch(calendarId="primary", eventId=event["id"],
                       body={"summary": "Quiet"}).execute()  # no sendUpdates
    assert emu.emails_sent == 2
    svc.events().patch(calendarId="primary", eventId=event["id"], sendUpdates="externalOnly",
                       body={"summary": "Loud"}).execute()
    assert emu.emails_by_recipient["carol@other.org"] == 2
    assert emu.emails_by_recipient["bob@example.com"] == 1
    svc.events().delete(calendarId="primary", eventId=event["id"], sendUpdates="all").execute()
    assert emu.emails_sent == 5


# ---- 12. push channels -----------------------------------------------------------------------


@pytest.fixture
def receiver() -> Iterator[tuple[str, list[dict[str, str]]]]:
    """A local webhook that records the headers of every notification."""
    received: list[dict[str, str]] = []

    class Hook(QuietHandler):
        def do_POST(self) -> None:
            received.append({k.lower(): v for k, v in self.headers.items()})
            self.reply(200)

    with HandlerServer(Hook) as server:
        yield f"{server.origin}/hook", received


def test_watch_sends_sync_then_exists_until_stopped(
        emu: GoogleEmulator, svc: Any, receiver: tuple[str, list[dict[str, str]]]) -> None:
    address, received = receiver
    channel = svc.events().watch(calendarId="primary", body={
        "id": "chan-1", "type": "web_hook", "address": address, "token": "t0k"}).execute()
    svc.events().insert(calendarId="primary", body=timed()).execute()
    emu.push.wait_idle()
    assert [(h["x-goog-resource-state"], h["x-goog-message-number"]) for h in received] == [
        ("sync", "1"), ("exists", "2")]
    assert received[0]["x-goog-channel-token"] == "t0k"
    assert received[0]["x-goog-resource-id"] == channel["resourceId"]
    svc.channels().stop(body={"id": "chan-1", "resourceId": channel["resourceId"]}).execute()
    svc.events().insert(calendarId="primary", body=timed()).execute()
    emu.push.wait_idle()
    assert len(received) == 2


# ---- misc client-facing details --------------------------------------------------------------


def test_fields_selector_trims_the_response(svc: Any) -> None:
    svc.events().insert(calendarId="primary", body=timed()).execute()
    page = svc.events().list(calendarId="primary",
                             fields="items(id,etag),nextSyncToken").execute()
    assert set(page) == {"items", "nextSyncToken"} and set(page["items"][0]) == {"id", "etag"}


def test_long_get_sent_as_post_with_method_override_is_served(emu: GoogleEmulator,
                                                               svc: Any) -> None:
    # The client turns a GET whose URL exceeds 2048 characters into a POST with
    # X-HTTP-Method-Override: GET and the query in a form body.
    svc.events().insert(calendarId="primary", body=timed("needle in a haystack")).execute()
    long_query = "needle " + "haystack " * 250
    items = svc.events().list(calendarId="primary", q=long_query).execute()["items"]
    assert [e["summary"] for e in items] == ["needle in a haystack"]
    last = emu.requests[-1]
    assert last.headers["x-http-method-override"] == "GET" and last.method == "GET"
    assert last.param("q") == long_query


def test_primary_follows_the_x_goog_user_header(emu: GoogleEmulator, svc: Any) -> None:
    emu.add_calendar("bob@example.com")
    request = svc.events().insert(calendarId="primary", body=timed("bob's"))
    request.headers["X-Goog-User"] = "bob@example.com"
    request.execute()
    assert [e["summary"] for e in emu.events("bob@example.com")] == ["bob's"]
    assert emu.events(OWNER) == []


def test_emulator_starts_on_a_free_loopback_port_and_stops_cleanly() -> None:
    emulator = GoogleEmulator()
    assert emulator.start() is emulator
    assert emulator.base_url.startswith("http://127.0.0.1:")
    assert emulator.api_endpoint == emulator.base_url + "/calendar/v3/"
    assert emulator.batch_uri == emulator.base_url + "/batch/calendar/v3"
    emulator.stop()
    emulator.stop()
    with pytest.raises(RuntimeError):
        _ = emulator.base_url


def test_unknown_calendar_is_404_when_auto_creation_is_off(emu: GoogleEmulator,
                                                           svc: Any) -> None:
    emu.auto_create_calendars = False
    with pytest.raises(HttpError) as info:
        svc.events().list(calendarId="someone@example.com").execute()
    assert info.value.status_code == 404
