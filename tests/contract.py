"""One contract every calendar connector passes.

A connector's test module subclasses :class:`ConnectorContract` and provides three
fixtures:

* ``connector``: a connector on a fresh, empty calendar;
* ``calendar_user``: a :class:`CalendarUser` acting on the same calendar the way a person
  in a calendar app would (no syncd marker, the provider's own API);
* ``expired_cursor``: a callable taking a valid cursor and returning one the provider
  will refuse as expired.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime
from typing import Any, Protocol
from zoneinfo import ZoneInfo

import pytest

from connectors.base import CalendarConnector, CreateOp, DeleteOp, RemoteEvent, UpdateOp
from syncd.errors import CursorExpired, EtagMismatch, EventGone
from syncd.model import FIELDS, Projection, When

OSLO = ZoneInfo("Europe/Oslo")


class CalendarUser(Protocol):
    def create(self, projection: Projection) -> str: ...
    def edit(self, event_id: str, **values: Any) -> None: ...
    def delete(self, event_id: str) -> None: ...


def timed(title: str = "Call Ada", hour: int = 10, **extra: Any) -> Projection:
    start = datetime(2026, 12, 3, hour, 30, tzinfo=OSLO)
    end = datetime(2026, 12, 3, hour + 1, 15, tzinfo=OSLO)
    return Projection(title=title, when=When(start, end, "Europe/Oslo"), **extra)


def all_day(title: str = "Trade fair") -> Projection:
    return Projection(title=title, when=When(date(2026, 12, 7), date(2026, 12, 9), "Europe/Oslo"),
                      busy=True)


def rich() -> Projection:
    return timed(
        "Lunch with Åsa & Zoë 🍣", busy=True,
        description="Agenda:\n1. pricing\n2. rollout <b>not html</b>",
        location="Bryggen 5, Bergen",
        guests=frozenset({"ada@example.com", "bob@example.org"}),
        guest_names={"ada@example.com": "Ada Lovelace"},
    )


def create(connector: CalendarConnector, projection: Projection, marker: str = "m0000001",
           generation: int = 0, invited: frozenset[str] = frozenset()) -> RemoteEvent:
    """Create ``projection``; ``invited`` guests as real attendees (the others described)."""
    [result] = connector.write([CreateOp("k", marker, generation, projection,
                                         notify=bool(invited), invited=invited)])
    assert result.error is None, result.error
    assert result.event is not None
    return result.event


def live_ids(connector: CalendarConnector) -> set[str]:
    return {e.event_id for e in connector.changes(None).events if not e.deleted}


class ConnectorContract:
    """The behaviour the engine relies on, for every provider."""

    def test_create_round_trips_every_field(self, connector: CalendarConnector) -> None:
        event = create(connector, rich())
        assert event.marker == "m0000001"
        assert event.etag
        again = connector.get(event.event_id)
        assert again is not None and again.projection is not None
        assert again.projection == rich()
        assert again.projection.diff(rich()) == frozenset()

    def test_all_day_event_keeps_its_dates(self, connector: CalendarConnector) -> None:
        event = create(connector, all_day())
        stored = connector.get(event.event_id)
        assert stored is not None and stored.projection is not None
        assert stored.projection.when == all_day().when
        assert stored.projection.when.all_day

    def test_repeated_create_returns_the_same_event(self, connector: CalendarConnector) -> None:
        first = create(connector, timed())
        second = create(connector, timed())
        assert second.event_id == first.event_id
        assert live_ids(connector) == {first.event_id}

    def test_find_reports_a_create_that_reached_the_server(self, connector: CalendarConnector
                                                            ) -> None:
        assert connector.find("m0000001", 0) is None
        event = create(connector, timed())
        found = connector.find("m0000001", 0)
        assert found is not None and found.event_id == event.event_id

    def test_new_generation_is_a_new_event(self, connector: CalendarConnector) -> None:
        first = create(connector, timed())
        [deleted] = connector.write([DeleteOp("k", first.event_id, first.etag)])
        assert deleted.error is None
        second = create(connector, timed(), generation=1)
        assert second.event_id != first.event_id
        assert live_ids(connector) == {second.event_id}

    def test_update_writes_only_the_named_fields(self, connector: CalendarConnector) -> None:
        event = create(connector, rich())
        target = rich().replace({"title": "Lunch moved", "location": "Somewhere else"})
        [result] = connector.write([UpdateOp("k", event.event_id, event.etag, target,
                                             frozenset({"title"}), "m0000001")])
        assert result.error is None and result.event is not None
        assert result.event.etag != event.etag
        stored = connector.get(event.event_id)
        assert stored is not None and stored.projection is not None
        assert stored.projection.title == "Lunch moved"
        assert stored.projection.location == rich().location  # not named, not written

    def test_update_moves_the_time(self, connector: CalendarConnector) -> None:
        event = create(connector, timed())
        later = timed(hour=14)
        [result] = connector.write([UpdateOp("k", event.event_id, event.etag, later,
                                             frozenset({"when"}), "m0000001")])
        assert result.error is None
        stored = connector.get(event.event_id)
        assert stored is not None and stored.projection is not None
        assert stored.projection.when == later.when

    def test_update_with_a_stale_etag_is_refused(self, connector: CalendarConnector,
                                                 calendar_user: CalendarUser) -> None:
        event = create(connector, timed())
        calendar_user.edit(event.event_id, title="Edited in the app")
        [result] = connector.write([UpdateOp("k", event.event_id, event.etag,
                                             timed("Ours"), frozenset({"title"}), "m0000001")])
        assert isinstance(result.error, EtagMismatch)
        stored = connector.get(event.event_id)
        assert stored is not None and stored.projection is not None
        assert stored.projection.title == "Edited in the app"

    def test_a_batch_of_updates_is_judged_item_by_item(self, connector: CalendarConnector,
                                                      calendar_user: CalendarUser) -> None:
        fine, stale, gone = (create(connector, timed(f"Ours {i}"), marker=f"mb{i:06d}")
                             for i in range(3))
        calendar_user.edit(stale.event_id, title="Edited in the app")
        calendar_user.delete(gone.event_id)
        ops = [UpdateOp(f"k{i}", e.event_id, e.etag, timed("Renamed"), frozenset({"title"}),
                        f"mb{i:06d}") for i, e in enumerate((fine, stale, gone))]
        first, second, third = connector.write(ops)
        assert first.error is None and first.event is not None
        assert first.event.projection is not None and first.event.projection.title == "Renamed"
        assert isinstance(second.error, EtagMismatch)
        assert isinstance(third.error, EventGone | EtagMismatch)
        stored = connector.get(stale.event_id)
        assert stored is not None and stored.projection is not None
        assert stored.projection.title == "Edited in the app"

    def test_delete_with_a_stale_etag_is_refused(self, connector: CalendarConnector,
                                                 calendar_user: CalendarUser) -> None:
        event = create(connector, timed())
        calendar_user.edit(event.event_id, title="Edited in the app")
        [result] = connector.write([DeleteOp("k", event.event_id, event.etag)])
        assert isinstance(result.error, EtagMismatch)
        assert connector.get(event.event_id) is not None

    def test_delete_removes_and_a_second_delete_reports_gone(
        self, connector: CalendarConnector
    ) -> None:
        event = create(connector, timed())
        [ok] = connector.write([DeleteOp("k", event.event_id, event.etag)])
        assert ok.error is None
        assert connector.get(event.event_id) is None
        [again] = connector.write([DeleteOp("k", event.event_id, None)])
        assert isinstance(again.error, EventGone)

    def test_update_of_a_deleted_event_reports_gone(self, connector: CalendarConnector,
                                                    calendar_user: CalendarUser) -> None:
        event = create(connector, timed())
        calendar_user.delete(event.event_id)
        [result] = connector.write([UpdateOp("k", event.event_id, event.etag, timed("x"),
                                             frozenset({"title"}), "m0000001")])
        assert isinstance(result.error, EventGone | EtagMismatch)

    def test_empty_update_only_adopts_the_event(self, connector: CalendarConnector,
                                                calendar_user: CalendarUser) -> None:
        event_id = calendar_user.create(timed("Made in the app"))
        current = connector.get(event_id)
        assert current is not None and current.marker is None
        [result] = connector.write([UpdateOp("k", event_id, current.etag, timed("ignored"),
                                             frozenset(), "adopted1")])
        assert result.error is None
        stored = connector.get(event_id)
        assert stored is not None and stored.marker == "adopted1"
        assert stored.projection is not None and stored.projection.title == "Made in the app"

    def test_changes_lists_everything_then_only_what_changed(
        self, connector: CalendarConnector, calendar_user: CalendarUser
    ) -> None:
        a = create(connector, timed("A"), marker="ma000001")
        b = create(connector, timed("B"), marker="mb000001")
        full = connector.changes(None)
        assert full.full
        assert {e.event_id for e in full.events} >= {a.event_id, b.event_id}
        idle = connector.changes(full.cursor)
        assert not idle.full
        assert [e for e in idle.events if not e.deleted] == []
        calendar_user.edit(a.event_id, title="A edited")
        calendar_user.delete(b.event_id)
        later = connector.changes(idle.cursor)
        by_id = {e.event_id: e for e in later.events}
        assert by_id[a.event_id].projection is not None
        assert by_id[a.event_id].projection.title == "A edited"
        assert by_id[b.event_id].deleted

    def test_events_made_in_the_app_have_no_marker(self, connector: CalendarConnector,
                                                   calendar_user: CalendarUser) -> None:
        event_id = calendar_user.create(timed("Dentist"))
        listed = {e.event_id: e for e in connector.changes(None).events}
        assert listed[event_id].marker is None
        assert listed[event_id].projection is not None
        assert listed[event_id].projection.title == "Dentist"

    def test_events_carry_their_meetings_uid(self, connector: CalendarConnector,
                                             calendar_user: CalendarUser) -> None:
        ours = create(connector, timed("Ours"), marker="mu000001")
        theirs = calendar_user.create(timed("Theirs"))
        listed = {e.event_id: e for e in connector.changes(None).events}
        # The UID of what we create is known at once: attendees' copies will carry it.
        assert ours.ical_uid and listed[ours.event_id].ical_uid == ours.ical_uid
        assert listed[theirs].ical_uid and listed[theirs].ical_uid != ours.ical_uid

    def test_an_expired_cursor_is_reported(self, connector: CalendarConnector,
                                           expired_cursor: Callable[[str], str]) -> None:
        create(connector, timed())
        cursor = connector.changes(None).cursor
        assert cursor is not None
        with pytest.raises(CursorExpired):
            connector.changes(expired_cursor(cursor))

    def test_control_characters_cannot_inject_properties(self, connector: CalendarConnector
                                                         ) -> None:
        hostile = timed("Call\r\nATTENDEE:mailto:evil@example.com\rX-INJECTED:1\x00",
                        description="line1\r\nBEGIN:VALARM\r\nline3")
        event = create(connector, hostile)
        stored = connector.get(event.event_id)
        assert stored is not None and stored.projection is not None
        assert stored.projection.guests == frozenset()
        assert "\n" not in stored.projection.title
        assert stored.projection == hostile

    def test_projection_has_every_synced_field(self) -> None:
        # The contract covers each projection field; a new field needs a test here.
        assert set(FIELDS) == {"title", "when", "busy", "description", "location", "guests"}


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)  # type: ignore[misc]
