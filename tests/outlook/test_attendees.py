"""Attendees that are not guests (rooms), and attendee types, survive a guests change.

Graph books a room as an attendee of ``type: "resource"``: it is never a guest, and a
guests change must not drop it. An optional attendee added in Outlook stays optional.
Graph mails every attendee whenever the list changes, so the list is written only when a
guest really comes or goes.
"""

from __future__ import annotations

from typing import Any

from connectors.base import RemoteEvent, UpdateOp
from connectors.outlook_map import merge_attendees, read_event, update_payload
from syncd.errors import EventGone, ItemRejected
from syncd_testkit.emulators.graph import FaultRule
from tests.contract import create, timed
from tests.outlook.conftest import ALICE, Env

ROOM = "room1@contoso.test"


def _attendee(address: str, kind: str = "required", name: str | None = None
              ) -> dict[str, Any]:
    return {"type": kind, "status": {"response": "none", "time": "0001-01-01T00:00:00Z"},
            "emailAddress": {"address": address, "name": name or address}}


def _event(*attendees: dict[str, Any]) -> dict[str, Any]:
    return {"id": "x", "type": "singleInstance", "subject": "s",
            "start": {"dateTime": "2026-12-10T09:00:00", "timeZone": "UTC"},
            "end": {"dateTime": "2026-12-10T10:00:00", "timeZone": "UTC"},
            "organizer": {"emailAddress": {"address": ALICE}},
            "attendees": list(attendees)}


def _read(data: dict[str, Any]) -> RemoteEvent:
    return read_event(data, fallback_tz="UTC", mailbox=ALICE, describe_guests=False)


# --- mapping --------------------------------------------------------------------------------


def test_a_room_is_never_read_as_a_guest() -> None:
    event = _read(_event(_attendee(ROOM, "resource"), _attendee("opt@x.test", "optional")))
    assert event.projection is not None
    assert event.projection.guests == frozenset({"opt@x.test"})


def test_a_guests_patch_keeps_rooms_and_attendee_types() -> None:
    data = _event(_attendee(ROOM, "resource", "Room 1"), _attendee("opt@x.test", "optional"),
                  _attendee("ada@x.test"))
    event = _read(data)
    assert event.projection is not None
    wanted = event.projection.guests | {"new@x.test"}
    projection = timed(guests=wanted)
    body = update_payload(projection, {"guests"}, "m", invited=wanted, current=data,
                          mailbox=ALICE)
    assert body["attendees"] == [
        {"emailAddress": {"address": ROOM, "name": "Room 1"}, "type": "resource"},
        {"emailAddress": {"address": "opt@x.test", "name": "opt@x.test"}, "type": "optional"},
        {"emailAddress": {"address": "ada@x.test", "name": "ada@x.test"}, "type": "required"},
        {"emailAddress": {"address": "new@x.test", "name": "new@x.test"}, "type": "required"},
    ]


def test_a_guests_patch_removes_only_the_guest_who_left() -> None:
    data = _event(_attendee(ROOM, "resource"), _attendee("Opt@X.test", "optional"),
                  _attendee("ada@x.test"), _attendee(ALICE))
    merged = merge_attendees(timed(guests=frozenset({"opt@x.test"})), data, ALICE)
    assert merged is not None
    assert [(a["emailAddress"]["address"], a["type"]) for a in merged] == [
        (ROOM, "resource"), ("Opt@X.test", "optional"), (ALICE, "required")]


def test_a_guests_patch_leaves_attendees_alone_when_the_guests_are_the_same() -> None:
    data = _event(_attendee(ROOM, "resource"), _attendee("OPT@x.test", "optional"))
    body = update_payload(timed(guests=frozenset({"opt@x.test"})), {"guests", "busy"}, "m",
                          invited=frozenset({"opt@x.test"}), current=data, mailbox=ALICE)
    assert "attendees" not in body
    assert "showAs" in body


def test_a_room_is_never_invited_as_a_guest_even_if_the_projection_names_it() -> None:
    data = _event(_attendee(ROOM, "resource"))
    assert merge_attendees(timed(guests=frozenset({ROOM})), data, ALICE) is None


# --- through the emulator -------------------------------------------------------------------


def _meeting_with_room(env: Env) -> tuple[Any, RemoteEvent]:
    connector = env.connector(env.account(invite_guests=True))
    created = create(connector, timed("Review", guests=frozenset({"ada@example.com"})))
    # In Outlook, the organiser books a room and adds an optional attendee (Ada, an
    # attendee now, is no longer described in the body).
    env.graph.put_event(ALICE, created.event_id, {"attendees": [
        _attendee("ada@example.com"), _attendee(ROOM, "resource"),
        _attendee("opt@example.com", "optional")], "body": {"contentType": "text",
                                                           "content": ""}})
    event = connector.get(created.event_id)
    assert event is not None and event.projection is not None
    assert event.projection.guests == frozenset({"ada@example.com", "opt@example.com"})
    return connector, event


def _attendees(env: Env, event_id: str) -> list[tuple[str, str]]:
    [event] = [e for e in env.graph.events(ALICE) if e["id"] == event_id]
    return [(a["emailAddress"]["address"], a["type"]) for a in event["attendees"]]


def test_adding_a_guest_keeps_the_room_and_the_optional_attendee(env: Env) -> None:
    connector, event = _meeting_with_room(env)
    assert event.projection is not None
    guests = event.projection.guests | {"new@example.com"}
    [result] = connector.write([UpdateOp("k", event.event_id, event.etag,
                                         timed("Review", guests=guests),
                                         frozenset({"guests"}), "m0000001", invited=guests)])
    assert result.error is None, result.error
    assert _attendees(env, event.event_id) == [
        ("ada@example.com", "required"), (ROOM, "resource"),
        ("opt@example.com", "optional"), ("new@example.com", "required")]
    assert result.event is not None and result.event.projection is not None
    assert result.event.projection.guests == guests


def test_an_unchanged_guest_list_sends_no_meeting_mail(env: Env) -> None:
    connector, event = _meeting_with_room(env)
    assert event.projection is not None
    before = len(env.graph.mail_log)
    projection = timed("Review", busy=False, guests=event.projection.guests)
    [result] = connector.write([UpdateOp("k", event.event_id, event.etag, projection,
                                         frozenset({"guests", "busy"}), "m0000001",
                                         invited=projection.guests)])
    assert result.error is None, result.error
    assert len(env.graph.mail_log) == before
    assert (ROOM, "resource") in _attendees(env, event.event_id)


def test_a_guests_change_on_an_event_that_is_gone_reports_gone(env: Env) -> None:
    connector, event = _meeting_with_room(env)
    env.graph.delete_event_as_user(ALICE, event.event_id)
    [result] = connector.write([UpdateOp("k", event.event_id, event.etag,
                                         timed("Review"), frozenset({"guests"}), "m0000001")])
    assert isinstance(result.error, EventGone)


def test_a_guests_change_whose_attendees_cannot_be_read_is_rejected_alone(env: Env) -> None:
    connector, event = _meeting_with_room(env)
    other = create(connector, timed("Other", hour=12), marker="m0000002")
    env.graph.inject(FaultRule(method="GET", path=r"/events/", in_batch=True, status=400,
                               code="ErrorInvalidIdMalformed", count=1))
    first, second = connector.write([
        UpdateOp("k1", event.event_id, event.etag, timed("Review"), frozenset({"guests"}),
                 "m0000001"),
        UpdateOp("k2", other.event_id, other.etag, timed("Renamed", hour=12),
                 frozenset({"title"}), "m0000002")])
    assert isinstance(first.error, ItemRejected)
    assert second.error is None
    assert (ROOM, "resource") in _attendees(env, event.event_id)  # never written
