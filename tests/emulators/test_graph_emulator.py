"""The Graph emulator over real HTTP with a plain ``requests.Session`` (must-haves 13-21)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import msal
import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from syncd_testkit.emulators.graph import FaultRule, GraphEmulator
from syncd_testkit.emulators.graph_fixtures import (  # noqa: F401 - pytest fixtures
    graph_emulator,
    graph_emulator_with_identity,
    identity_emulator,
)
from syncd_testkit.emulators.graph_tz import WINDOWS_TO_IANA
from syncd_testkit.emulators.identity import IdentityEmulator, RoutingSession

ALICE = "alice@contoso.test"
BOB = "bob@contoso.test"
CRM_PROP = "String {66f5a359-4659-4830-9070-00047ec6ac6e} Name crmActivityId"
JANUARY = {"startDateTime": "2026-01-01T00:00:00Z", "endDateTime": "2026-02-01T00:00:00Z"}


def _session(token: str = "any-token") -> requests.Session:
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {token}"
    return session


def _event(
    subject: str = "Kickoff",
    start: str = "2026-01-05T09:00:00",
    end: str = "2026-01-05T10:00:00",
    zone: str = "UTC",
    **extra: Any,
) -> dict[str, Any]:
    return {
        "subject": subject,
        "start": {"dateTime": start, "timeZone": zone},
        "end": {"dateTime": end, "timeZone": zone},
        **extra,
    }


@pytest.fixture
def graph(graph_emulator: GraphEmulator) -> Iterator[GraphEmulator]:  # noqa: F811
    """The emulator with Alice's mailbox."""
    graph_emulator.add_mailbox(ALICE)
    yield graph_emulator


@pytest.fixture
def http() -> Iterator[requests.Session]:
    """A session with a bearer token (any token works without an identity emulator)."""
    with _session() as session:
        yield session


def _events_url(graph: GraphEmulator, user: str = ALICE) -> str:
    return f"{graph.base_url}/users/{user}/events"


def _create(http: requests.Session, graph: GraphEmulator, **kwargs: Any) -> dict[str, Any]:
    resp = http.post(_events_url(graph), json=_event(**kwargs))
    assert resp.status_code == 201, resp.text
    body: dict[str, Any] = resp.json()
    return body


def _error(resp: requests.Response) -> dict[str, Any]:
    err: dict[str, Any] = resp.json()["error"]
    assert set(err["innerError"]) >= {"date", "request-id", "client-request-id"}
    return err


def _delta_round(
    http: requests.Session, url: str, params: dict[str, str] | None = None, **headers: str
) -> tuple[list[list[dict[str, Any]]], str]:
    """Follow nextLinks until a deltaLink; returns the pages and the deltaLink."""
    pages: list[list[dict[str, Any]]] = []
    resp = http.get(url, params=params, headers=headers)
    while True:
        assert resp.status_code == 200, resp.text
        body = resp.json()
        pages.append(body["value"])
        if "@odata.deltaLink" in body:
            return pages, body["@odata.deltaLink"]
        resp = http.get(body["@odata.nextLink"], headers=headers)


# -- 13: CRUD, addressing, auth ---------------------------------------------------------------


def test_create_returns_201_with_the_full_event_and_delete_returns_204(
    graph: GraphEmulator, http: requests.Session
) -> None:
    created = _create(http, graph)
    for key in ("id", "@odata.etag", "changeKey", "iCalUId", "webLink", "createdDateTime"):
        assert created[key]
    assert created["type"] == "singleInstance"
    assert created["showAs"] == "busy" and created["isOrganizer"] is True
    assert created["organizer"]["emailAddress"]["address"] == ALICE
    url = f"{_events_url(graph)}/{created['id']}"
    assert http.get(url).json()["subject"] == "Kickoff"
    assert http.delete(url).status_code == 204
    gone = http.get(url)
    assert gone.status_code == 404
    assert _error(gone)["code"] == "ErrorItemNotFound"


def test_every_documented_path_reaches_the_default_calendar(
    graph: GraphEmulator, http: requests.Session
) -> None:
    cal = graph.default_calendar_id(ALICE)
    base = graph.base_url
    collections = [
        f"{base}/me/events",
        f"{base}/users/{ALICE}/events",
        f"{base}/users/alice%40contoso.test/calendar/events",
        f"{base}/me/calendars/{cal}/events",
        f"{base}/users/{ALICE}/calendars/{cal}/events",
    ]
    for url in collections:
        assert http.post(url, json=_event(subject=url)).status_code == 201
    for url in collections:
        assert len(http.get(url).json()["value"]) == len(collections)
    secondary = graph.add_calendar(ALICE, "CRM")
    assert http.get(f"{base}/me/calendars/{secondary}/events").json()["value"] == []


def test_unknown_user_event_and_segment_are_errors(
    graph: GraphEmulator, http: requests.Session
) -> None:
    base = graph.base_url
    assert _error(http.get(f"{base}/users/nobody@contoso.test/events"))["code"] == (
        "ErrorInvalidUser"
    )
    assert _error(http.patch(f"{base}/me/events/AAMkAGnope", json={}))["code"] == (
        "ErrorItemNotFound"
    )
    assert http.get(f"{base}/me/attachments").status_code == 400
    unknown_property = http.post(f"{base}/me/events", json=_event(colour="red"))
    assert _error(unknown_property)["code"] == "RequestBodyRead"


def test_missing_or_unknown_token_gives_401_invalid_authentication_token(
    graph_emulator_with_identity: GraphEmulator,  # noqa: F811
) -> None:
    graph = graph_emulator_with_identity
    graph.add_mailbox(ALICE)
    url = f"{graph.base_url}/users/{ALICE}/events"
    missing = requests.get(url, timeout=5)
    assert missing.status_code == 401
    assert _error(missing)["code"] == "InvalidAuthenticationToken"
    assert "WWW-Authenticate" in missing.headers
    with _session("made-up") as http:
        assert _error(http.get(url))["code"] == "InvalidAuthenticationToken"


def test_me_is_rejected_for_app_only_tokens_and_means_the_signed_in_user_otherwise(
    graph_emulator_with_identity: GraphEmulator,  # noqa: F811
    identity_emulator: IdentityEmulator,  # noqa: F811
) -> None:
    graph = graph_emulator_with_identity
    graph.add_mailbox(ALICE)
    graph.add_mailbox(BOB)
    with _session(identity_emulator.issue_app_token()) as app:
        refused = app.get(f"{graph.base_url}/me/events")
        assert refused.status_code == 400
        assert "delegated" in _error(refused)["message"]
        assert app.post(f"{graph.base_url}/users/{BOB}/events", json=_event()).status_code == 201
    with _session(identity_emulator.issue_user_token(BOB)) as bob:
        assert len(bob.get(f"{graph.base_url}/me/events").json()["value"]) == 1
        assert bob.get(f"{graph.base_url}/users/{ALICE}/events").status_code == 403
    graph.reject_me_for_app_tokens = False
    with _session(identity_emulator.issue_app_token()) as app:
        assert app.get(f"{graph.base_url}/me/events").status_code == 200


def test_tokens_from_real_msal_are_classified_by_the_identity_emulator(
    graph_emulator_with_identity: GraphEmulator,  # noqa: F811
    identity_emulator: IdentityEmulator,  # noqa: F811
) -> None:
    graph = graph_emulator_with_identity
    graph.add_mailbox(ALICE)
    identity_emulator.register_app("daemon", "secret")
    app = msal.ConfidentialClientApplication(
        "daemon",
        client_credential="secret",
        authority=identity_emulator.authority(),
        instance_discovery=False,
        http_client=RoutingSession(identity_emulator),
    )
    token = app.acquire_token_for_client(["https://graph.microsoft.com/.default"])["access_token"]
    with _session(token) as http:
        assert http.get(f"{graph.base_url}/users/{ALICE}/calendar").json()["isDefaultCalendar"]
        assert http.get(f"{graph.base_url}/me/calendar").status_code == 400
    identity_emulator.expire_access_tokens()
    with _session(token) as http:
        assert http.get(f"{graph.base_url}/users/{ALICE}/calendar").status_code == 401


# -- 14: transactionId --------------------------------------------------------------------------


def test_repeated_post_with_the_same_transaction_id_returns_the_original_event(
    graph: GraphEmulator, http: requests.Session
) -> None:
    first = _create(http, graph, transactionId="intent-1")
    again = _create(http, graph, transactionId="intent-1")
    assert again["id"] == first["id"]
    assert again["transactionId"] == "intent-1"
    assert len(graph.events(ALICE)) == 1


def test_transaction_id_reused_for_a_different_event_is_rejected(
    graph: GraphEmulator, http: requests.Session
) -> None:
    _create(http, graph, transactionId="intent-2")
    resp = http.post(_events_url(graph), json=_event(subject="Other", transactionId="intent-2"))
    assert resp.status_code == 400
    assert _error(resp)["code"] == "ErrorDuplicateTransactionId"
    assert len(graph.events(ALICE)) == 1


# -- 15: etags ----------------------------------------------------------------------------------


def test_every_write_changes_the_change_key_and_etag_together(
    graph: GraphEmulator, http: requests.Session
) -> None:
    created = _create(http, graph)
    assert created["@odata.etag"] == f'W/"{created["changeKey"]}"'
    url = f"{_events_url(graph)}/{created['id']}"
    patched = http.patch(url, json={"categories": ["CRM"]}).json()
    assert patched["changeKey"] != created["changeKey"]
    assert patched["@odata.etag"] == f'W/"{patched["changeKey"]}"'
    user_edit = graph.put_event(ALICE, created["id"], {"subject": "Moved by Alice"})
    assert user_edit["changeKey"] not in (created["changeKey"], patched["changeKey"])
    assert user_edit["lastModifiedDateTime"] >= patched["lastModifiedDateTime"]


def test_stale_if_match_gives_412_error_irresolvable_conflict(
    graph: GraphEmulator, http: requests.Session
) -> None:
    created = _create(http, graph)
    url = f"{_events_url(graph)}/{created['id']}"
    graph.put_event(ALICE, created["id"], {"subject": "Edited in Outlook"})
    stale = {"If-Match": created["@odata.etag"]}
    for resp in (
        http.patch(url, json={"subject": "CRM"}, headers=stale),
        http.delete(url, headers=stale),
    ):
        assert resp.status_code == 412
        err = _error(resp)
        assert err["code"] == "ErrorIrresolvableConflict"
        assert "does not match the current change key" in err["message"]
    current = http.get(url).json()["@odata.etag"]
    ok = http.patch(url, json={"subject": "CRM"}, headers={"If-Match": current})
    assert ok.status_code == 200 and ok.json()["subject"] == "CRM"


# -- 16: time zones, all-day, body, locations, attendees ----------------------------------------


def test_windows_and_iana_zones_come_back_in_utc_with_seven_fraction_digits(
    graph: GraphEmulator, http: requests.Session
) -> None:
    cases = {
        "Pacific Standard Time": "2026-01-05T17:00:00.0000000",
        "America/Los_Angeles": "2026-01-05T17:00:00.0000000",
        "India Standard Time": "2026-01-05T03:30:00.0000000",
        "Newfoundland Standard Time": "2026-01-05T12:30:00.0000000",
        "Lord Howe Standard Time": "2026-01-04T22:00:00.0000000",  # +11 in January (DST)
        "Line Islands Standard Time": "2026-01-04T19:00:00.0000000",  # +14
    }
    for zone, utc_start in cases.items():
        created = _create(http, graph, zone=zone)
        assert created["start"] == {"dateTime": utc_start, "timeZone": "UTC"}, zone
        assert created["originalStartTimeZone"] == zone
        assert created["originalEndTimeZone"] == zone


def test_prefer_outlook_timezone_converts_the_response(
    graph: GraphEmulator, http: requests.Session
) -> None:
    created = _create(
        http,
        graph,
        start="2026-07-01T09:00:00",
        end="2026-07-01T10:00:00",
        zone="W. Europe Standard Time",
    )
    url = f"{_events_url(graph)}/{created['id']}"
    tokyo = http.get(url, headers={"Prefer": 'outlook.timezone="Tokyo Standard Time"'})
    assert tokyo.json()["start"] == {
        "dateTime": "2026-07-01T16:00:00.0000000",
        "timeZone": "Tokyo Standard Time",
    }
    assert "outlook.timezone" in tokyo.headers["Preference-Applied"]
    both = {"Prefer": 'outlook.timezone="America/New_York", outlook.body-content-type="text"'}
    iana = http.get(url, headers=both).json()
    assert iana["start"]["dateTime"] == "2026-07-01T03:00:00.0000000"
    assert iana["body"]["contentType"] == "text"
    bad = http.post(_events_url(graph), json=_event(zone="Mars Standard Time"))
    assert bad.status_code == 400
    assert _error(bad)["code"] == "TimeZoneNotSupportedException"


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    zone=st.sampled_from(sorted(WINDOWS_TO_IANA)),
    local=st.datetimes(min_value=datetime(2025, 1, 1), max_value=datetime(2027, 12, 31)),
)
def test_wall_time_round_trips_through_prefer_in_the_creation_zone(
    graph: GraphEmulator, http: requests.Session, zone: str, local: datetime
) -> None:
    local = local.replace(microsecond=0)
    tz = ZoneInfo(WINDOWS_TO_IANA[zone])
    aware = local.replace(tzinfo=tz)
    if aware.astimezone(ZoneInfo("UTC")).astimezone(tz).replace(tzinfo=None) != local:
        return  # a wall time skipped by a DST jump has no round trip
    end = local + timedelta(hours=1)
    created = http.post(
        _events_url(graph),
        json=_event(start=local.isoformat(), end=end.isoformat(), zone=zone),
        headers={"Prefer": f'outlook.timezone="{zone}"'},
    ).json()
    assert created["start"]["dateTime"] == local.strftime("%Y-%m-%dT%H:%M:%S.0000000")
    assert created["start"]["timeZone"] == zone


def test_all_day_needs_midnights_and_24_hours_and_stays_midnight_whatever_prefer_says(
    graph: GraphEmulator, http: requests.Session
) -> None:
    url = _events_url(graph)
    short = http.post(
        url, json=_event(start="2026-01-05T00:00:00", end="2026-01-05T12:00:00", isAllDay=True)
    )
    assert short.status_code == 400 and _error(short)["code"] == "ErrorInvalidRequest"
    not_midnight = http.post(
        url, json=_event(start="2026-01-05T09:00:00", end="2026-01-06T09:00:00", isAllDay=True)
    )
    assert not_midnight.status_code == 400
    day = http.post(
        url,
        json=_event(
            start="2026-01-05T00:00:00",
            end="2026-01-06T00:00:00",
            zone="AUS Eastern Standard Time",
            isAllDay=True,
        ),
    )
    assert day.status_code == 201, day.text
    for prefer in ({}, {"Prefer": 'outlook.timezone="Pacific Standard Time"'}):
        got = http.get(f"{url}/{day.json()['id']}", headers=prefer).json()
        assert got["start"]["dateTime"] == "2026-01-05T00:00:00.0000000"
        assert got["end"]["dateTime"] == "2026-01-06T00:00:00.0000000"


def test_text_body_comes_back_html_wrapped_unless_text_is_preferred(
    graph: GraphEmulator, http: requests.Session
) -> None:
    text = "Agenda:\nBudget & <Q1>"
    created = _create(http, graph, body={"contentType": "text", "content": text})
    assert created["body"] == {
        "contentType": "html",
        "content": '<html><head>\r\n<meta http-equiv="Content-Type" content="text/html; '
        'charset=utf-8">\r\n</head>\r\n<body>\r\nAgenda:<br>Budget &amp; &lt;Q1&gt;\r\n'
        "</body>\r\n</html>\r\n",
    }
    as_text = http.get(
        f"{_events_url(graph)}/{created['id']}",
        headers={"Prefer": 'outlook.body-content-type="text"'},
    ).json()
    assert as_text["body"] == {"contentType": "text", "content": text}


def test_location_replaces_locations_and_attendee_status_is_server_owned(
    graph: GraphEmulator, http: requests.Session
) -> None:
    created = _create(
        http,
        graph,
        locations=[{"displayName": "Room A"}, {"displayName": "Room B"}],
        attendees=[
            {
                "emailAddress": {"address": BOB},
                "type": "required",
                "status": {"response": "accepted", "time": "2026-01-01T00:00:00Z"},
            }
        ],
    )
    assert [x["displayName"] for x in created["locations"]] == ["Room A", "Room B"]
    assert created["attendees"][0]["status"] == {"response": "none", "time": "0001-01-01T00:00:00Z"}
    url = f"{_events_url(graph)}/{created['id']}"
    patched = http.patch(url, json={"location": {"displayName": "Room C"}}).json()
    assert [x["displayName"] for x in patched["locations"]] == ["Room C"]
    graph.set_attendee_response(ALICE, created["id"], BOB, "accepted")
    again = http.patch(url, json={"attendees": [{"emailAddress": {"address": BOB}}]}).json()
    assert again["attendees"][0]["status"]["response"] == "accepted"


# -- 17: calendarView and delta -----------------------------------------------------------------


def test_calendar_view_requires_a_time_window_and_returns_overlapping_events(
    graph: GraphEmulator, http: requests.Session
) -> None:
    _create(http, graph, subject="in")
    _create(http, graph, subject="out", start="2026-03-01T09:00:00", end="2026-03-01T10:00:00")
    url = f"{graph.base_url}/users/{ALICE}/calendarView"
    missing = http.get(url)
    assert missing.status_code == 400 and _error(missing)["code"] == "ErrorInvalidParameter"
    assert [e["subject"] for e in http.get(url, params=JANUARY).json()["value"]] == ["in"]


def test_delta_pages_honour_maxpagesize_and_may_be_empty(
    graph: GraphEmulator, http: requests.Session
) -> None:
    for i in range(5):
        _create(http, graph, subject=f"e{i}")
    graph.empty_pages = True
    url = f"{graph.base_url}/users/{ALICE}/calendarView/delta"
    pages, delta_link = _delta_round(http, url, JANUARY, Prefer="odata.maxpagesize=2")
    assert [] in pages
    assert max(len(p) for p in pages) == 2
    assert sorted(e["subject"] for p in pages for e in p) == [f"e{i}" for i in range(5)]
    assert delta_link.startswith(graph.base_url) and "$deltatoken=" in delta_link
    later, _ = _delta_round(http, delta_link)
    assert [e for p in later for e in p] == []


def test_delta_reports_deletions_and_window_exits_with_the_same_removed_shape(
    graph: GraphEmulator, http: requests.Session
) -> None:
    doomed = _create(http, graph, subject="doomed")
    leaving = _create(http, graph, subject="leaving")
    _, delta_link = _delta_round(http, f"{graph.base_url}/me/calendarView/delta", JANUARY)
    graph.delete_event_as_user(ALICE, doomed["id"])
    graph.put_event(
        ALICE, leaving["id"], _event(start="2026-05-01T09:00:00", end="2026-05-01T10:00:00")
    )
    _create(
        http, graph, subject="never inside", start="2025-06-01T09:00:00", end="2025-06-01T10:00:00"
    )
    pages, _ = _delta_round(http, delta_link)
    removed = [e for p in pages for e in p]
    assert all(e["@removed"] == {"reason": "deleted"} for e in removed)
    assert {doomed["id"], leaving["id"]} <= {e["id"] for e in removed}
    assert len(removed) == 3  # changes outside the window are reported as removals too


WEEKLY = {"pattern": {"type": "weekly", "interval": 1, "daysOfWeek": ["monday"]},
          "range": {"type": "numbered", "startDate": "2026-01-05", "numberOfOccurrences": 6}}


def _entries(pages: list[list[dict[str, Any]]]) -> list[dict[str, Any]]:
    return [e for p in pages for e in p]


def test_delta_sends_a_series_as_its_occurrences_in_the_window_like_calendar_view(
    graph: GraphEmulator, http: requests.Session
) -> None:
    # Six Mondays from 5 January: four of them in January.
    series = _create(http, graph, subject="Weekly", recurrence=WEEKLY)
    url = f"{graph.base_url}/me/calendarView/delta"
    pages, delta_link = _delta_round(http, url, JANUARY)
    first = _entries(pages)
    view = http.get(f"{graph.base_url}/me/calendarView", params=JANUARY).json()["value"]
    assert [e["id"] for e in first] == [e["id"] for e in view]
    assert [e["start"]["dateTime"][:10] for e in first] == [
        "2026-01-05", "2026-01-12", "2026-01-19", "2026-01-26"]
    assert {(e["type"], e["seriesMasterId"]) for e in first} == {("occurrence", series["id"])}
    # Each occurrence is read by its id, as Graph's GET /events/{id} does.
    got = http.get(f"{_events_url(graph)}/{first[1]['id']}")
    assert got.status_code == 200 and got.json()["type"] == "occurrence"
    assert got.json()["start"]["dateTime"].startswith("2026-01-12T09:00:00")

    # An edit sends the occurrences again; the master is named as outside the view.
    graph.put_event(ALICE, series["id"], {"subject": "Weekly sync"})
    pages, delta_link = _delta_round(http, delta_link)
    edited = _entries(pages)
    assert [e["subject"] for e in edited if "@removed" not in e] == ["Weekly sync"] * 4
    assert [e["id"] for e in edited if "@removed" in e] == [series["id"]]

    # An edit that ends the series sooner names the occurrences it took away.
    graph.put_event(ALICE, series["id"], {"recurrence": {
        **WEEKLY, "range": {**WEEKLY["range"], "numberOfOccurrences": 2}}})
    pages, delta_link = _delta_round(http, delta_link)
    removed = {e["id"] for e in _entries(pages) if "@removed" in e}
    assert removed == {series["id"], first[2]["id"], first[3]["id"]}

    # Deleting the series names its occurrences removed.
    graph.delete_event_as_user(ALICE, series["id"])
    pages, _ = _delta_round(http, delta_link)
    assert all("@removed" in e for e in _entries(pages))
    assert {e["id"] for e in _entries(pages)} == {series["id"], first[0]["id"],
                                                  first[1]["id"]}
    assert http.get(f"{_events_url(graph)}/{first[1]['id']}").status_code == 404


def test_changes_made_while_paging_are_delivered_in_the_same_chain(
    graph: GraphEmulator, http: requests.Session
) -> None:
    first = _create(http, graph, subject="first")
    for i in range(3):
        _create(http, graph, subject=f"filler{i}")
    url = f"{graph.base_url}/me/calendarView/delta"
    page = http.get(url, params=JANUARY, headers={"Prefer": "odata.maxpagesize=2"}).json()
    graph.put_event(ALICE, first["id"], {"subject": "first, edited mid-round"})
    pages, delta_link = _delta_round(http, page["@odata.nextLink"])
    seen = [e["subject"] for p in [page["value"], *pages] for e in p]
    assert "first, edited mid-round" in seen
    assert [e for p in _delta_round(http, delta_link)[0] for e in p] == []


def test_expired_delta_token_gives_410_with_a_location_for_a_fresh_sync(
    graph: GraphEmulator, http: requests.Session
) -> None:
    _create(http, graph)
    _, delta_link = _delta_round(http, f"{graph.base_url}/me/calendarView/delta", JANUARY)
    graph.expire_delta_tokens(ALICE)
    gone = http.get(delta_link)
    assert gone.status_code == 410
    location = gone.headers["Location"]
    assert location.startswith(graph.base_url) and location.endswith("$deltatoken=")
    pages, _ = _delta_round(http, location)
    assert [e["subject"] for p in pages for e in p] == ["Kickoff"]


def test_sync_state_not_found_is_an_error_with_that_code(
    graph: GraphEmulator, http: requests.Session
) -> None:
    _, delta_link = _delta_round(http, f"{graph.base_url}/me/calendarView/delta", JANUARY)
    graph.expire_delta_tokens(mode="syncStateNotFound", status=400)
    resp = http.get(delta_link)
    assert resp.status_code == 400
    assert _error(resp)["code"] == "SyncStateNotFound"
    assert "Location" not in resp.headers


def test_delta_rejects_select_filter_expand_and_orderby(
    graph: GraphEmulator, http: requests.Session
) -> None:
    url = f"{graph.base_url}/me/calendarView/delta"
    for option in ("$select", "$filter", "$expand", "$orderby"):
        resp = http.get(url, params={**JANUARY, option: "subject"})
        assert resp.status_code == 400, option


def test_delta_on_a_secondary_calendar_and_duplicate_replays(
    graph: GraphEmulator, http: requests.Session
) -> None:
    cal = graph.add_calendar(ALICE, "CRM")
    url = f"{graph.base_url}/users/{ALICE}/calendars/{cal}/calendarView/delta"
    http.post(f"{graph.base_url}/me/calendars/{cal}/events", json=_event(subject="crm"))
    _create(http, graph, subject="default calendar")
    pages, delta_link = _delta_round(http, url, JANUARY)
    assert [e["subject"] for p in pages for e in p] == ["crm"]
    graph.replay_duplicates = True
    replayed, _ = _delta_round(http, delta_link)
    assert [e["subject"] for p in replayed for e in p] == ["crm"]


# -- 18: extended properties --------------------------------------------------------------------


def test_extended_property_filter_finds_the_event_and_expand_returns_the_value(
    graph: GraphEmulator, http: requests.Session
) -> None:
    tagged = _create(http, graph, singleValueExtendedProperties=[{"id": CRM_PROP, "value": "A-17"}])
    _create(http, graph, subject="untagged")
    assert "singleValueExtendedProperties" not in tagged
    lowercase_guid = CRM_PROP.replace("66f5a359", "66F5A359")
    query = {
        "$filter": f"singleValueExtendedProperties/Any(ep: ep/id eq '{lowercase_guid}' "
        "and ep/value eq 'a-17')",
        "$expand": f"singleValueExtendedProperties($filter=id eq '{CRM_PROP}')",
    }
    found = http.get(_events_url(graph), params=query).json()["value"]
    assert [e["id"] for e in found] == [tagged["id"]]
    assert found[0]["singleValueExtendedProperties"] == [{"id": CRM_PROP, "value": "A-17"}]
    wrong_case_name = query["$filter"].replace("crmActivityId", "CRMACTIVITYID")
    assert http.get(_events_url(graph), params={"$filter": wrong_case_name}).json()["value"] == []
    url = f"{_events_url(graph)}/{tagged['id']}"
    http.patch(url, json={"singleValueExtendedProperties": [{"id": CRM_PROP, "value": "B-2"}]})
    got = http.get(url, params={"$expand": query["$expand"]}).json()
    assert got["singleValueExtendedProperties"][0]["value"] == "B-2"
    assert "singleValueExtendedProperties" not in http.get(url).json()


# -- 19: throttling and injected faults ---------------------------------------------------------


def test_five_concurrent_requests_to_one_mailbox_get_429_with_retry_after(
    graph: GraphEmulator,
) -> None:
    graph.latency_seconds = 0.3
    barrier = threading.Barrier(5)
    statuses: list[tuple[int, str | None, str]] = []

    def call() -> None:
        with _session() as http:
            barrier.wait()
            resp = http.get(_events_url(graph))
            statuses.append((resp.status_code, resp.headers.get("Retry-After"), resp.text))

    threads = [threading.Thread(target=call) for _ in range(5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    throttled = [s for s in statuses if s[0] == 429]
    assert len(throttled) == 1 and sum(s[0] == 200 for s in statuses) == 4
    assert throttled[0][1] is not None and int(throttled[0][1]) >= 1
    assert "MailboxConcurrency" in throttled[0][2]
    assert graph.max_in_flight_seen[ALICE] == 5


def test_ten_minute_budget_exhaustion_gives_429_until_the_window_moves(
    graph: GraphEmulator, http: requests.Session
) -> None:
    now = [1000.0]
    graph.clock = lambda: now[0]
    graph.requests_per_10_min_per_mailbox = 3
    assert [http.get(_events_url(graph)).status_code for _ in range(3)] == [200] * 3
    refused = http.get(_events_url(graph))
    assert refused.status_code == 429
    assert _error(refused)["code"] == "ApplicationThrottled"
    assert int(refused.headers["Retry-After"]) == 600
    now[0] += 600.5
    assert http.get(_events_url(graph)).status_code == 200


def test_injected_faults_fail_before_or_after_applying_the_write(
    graph: GraphEmulator, http: requests.Session
) -> None:
    graph.inject(FaultRule(method="POST", path=r"/events$", status=503, retry_after=7))
    refused = http.post(_events_url(graph), json=_event(subject="refused"))
    assert refused.status_code == 503 and refused.headers["Retry-After"] == "7"
    assert graph.events(ALICE) == []
    graph.inject(FaultRule(method="POST", status=504, code="GatewayTimeout", apply_then_fail=True))
    assert http.post(_events_url(graph), json=_event(subject="applied")).status_code == 504
    assert [e["subject"] for e in graph.events(ALICE)] == ["applied"]
    graph.inject(FaultRule(method="POST", drop_connection=True, apply_then_fail=True))
    with pytest.raises(requests.ConnectionError):
        http.post(_events_url(graph), json=_event(subject="dropped"))
    assert len(graph.events(ALICE)) == 2
    assert http.get(_events_url(graph)).status_code == 200  # rules fire once by default
    graph.inject(FaultRule(method="POST", status=None, delay_seconds=0.5))
    with pytest.raises(requests.Timeout):
        http.post(_events_url(graph), json=_event(subject="slow"), timeout=0.1)
    deadline = time.monotonic() + 5
    while len(graph.events(ALICE)) < 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert [e["subject"] for e in graph.events(ALICE)][-1] == "slow"


# -- 20: $batch ---------------------------------------------------------------------------------


def _batch(
    http: requests.Session, graph: GraphEmulator, items: list[dict[str, Any]]
) -> requests.Response:
    return http.post(f"{graph.base_url}/$batch", json={"requests": items})


def test_batch_validation_failures_reject_the_whole_batch(
    graph: GraphEmulator, http: requests.Session
) -> None:
    get = {"method": "GET", "url": "/me/events"}
    too_many = [{"id": str(i), **get} for i in range(21)]
    assert _batch(http, graph, too_many).status_code == 400
    assert _batch(http, graph, too_many[:20]).status_code == 200
    assert _batch(http, graph, [{"id": "1", **get}, {"id": "1", **get}]).status_code == 400
    no_type = [{"id": "1", "method": "POST", "url": "/me/events", "body": _event()}]
    assert "Content-Type" in _error(_batch(http, graph, no_type))["message"]
    absolute = [{"id": "1", "method": "GET", "url": f"{graph.base_url}/me/events"}]
    assert _batch(http, graph, absolute).status_code == 400
    assert graph.events(ALICE) == []


def test_batch_depends_on_gives_424_and_responses_are_not_in_request_order(
    graph: GraphEmulator, http: requests.Session
) -> None:
    json_header = {"Content-Type": "application/json"}
    items: list[dict[str, Any]] = [
        {
            "id": "create",
            "method": "POST",
            "url": "/me/events",
            "headers": json_header,
            "body": _event(),
        },
        {"id": "missing", "method": "GET", "url": "/me/events/AAMkAGnope", "dependsOn": ["create"]},
        {"id": "after", "method": "GET", "url": "/me/events", "dependsOn": ["missing"]},
    ]
    resp = _batch(http, graph, items)
    assert resp.status_code == 200
    responses = resp.json()["responses"]
    assert [r["id"] for r in responses] != [i["id"] for i in items]
    status = {r["id"]: r["status"] for r in responses}
    assert status == {"create": 201, "missing": 404, "after": 424}
    assert sum(r.in_batch for r in graph.requests) == 3


def test_batch_items_beyond_the_mailbox_concurrency_get_an_inner_429(
    graph: GraphEmulator, http: requests.Session
) -> None:
    items = [{"id": str(i), "method": "GET", "url": f"/users/{ALICE}/events"} for i in range(6)]
    responses = _batch(http, graph, items).json()["responses"]
    throttled = [r for r in responses if r["status"] == 429]
    assert len(throttled) == 2
    assert all(int(r["headers"]["Retry-After"]) >= 1 for r in throttled)
    chained = [
        {**item, "dependsOn": [str(int(item["id"]) - 1)]} if item["id"] != "0" else item
        for item in items
    ]
    assert {r["status"] for r in _batch(http, graph, chained).json()["responses"]} == {200}


# -- 21: immutable ids --------------------------------------------------------------------------


def test_immutable_ids_survive_a_move_but_regular_ids_change(
    graph: GraphEmulator, http: requests.Session
) -> None:
    immutable = {"Prefer": 'IdType="ImmutableId"'}
    regular = _create(http, graph)
    stable = http.get(f"{_events_url(graph)}/{regular['id']}", headers=immutable).json()
    assert stable["id"] != regular["id"]
    archive = graph.add_calendar(ALICE, "Archive")
    moved = graph.move_event(ALICE, regular["id"], archive)
    assert http.get(f"{_events_url(graph)}/{regular['id']}").status_code == 404
    assert http.get(f"{_events_url(graph)}/{moved['regularId']}").status_code == 200
    again = http.get(f"{_events_url(graph)}/{stable['id']}", headers=immutable)
    assert again.status_code == 200 and again.json()["id"] == stable["id"]
    flags = [r.immutable_id_requested for r in graph.requests]
    assert flags == [False, True, False, False, True]


# -- invitations --------------------------------------------------------------------------------


def test_invitations_are_counted_per_attendee_for_meeting_changes_only(
    graph: GraphEmulator, http: requests.Session
) -> None:
    carol = "carol@fabrikam.test"
    created = _create(http, graph, attendees=[{"emailAddress": {"address": BOB}}])
    assert graph.invitations_sent == 1
    url = f"{_events_url(graph)}/{created['id']}"
    http.patch(url, json={"categories": ["CRM"], "isReminderOn": False})
    assert graph.invitations_sent == 1  # not a meeting change
    http.patch(url, json={"attendees": [{"emailAddress": {"address": carol}}]})
    assert [(m.kind, m.recipient) for m in graph.mail_log[1:]] == [
        ("update", carol),
        ("cancel", BOB),
    ]
    http.delete(url)
    assert graph.invitations_by_recipient == {BOB: 2, carol: 2}
    _create(http, graph, subject="no attendees")
    assert graph.invitations_sent == 4
