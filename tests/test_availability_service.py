"""What the availability reads combine: the owner's activities, each of their calendars
(free/busy kinds, listings, failures), and nothing of anyone else's."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any

import pytest

from connectors.base import BusyInterval, ChangeSet, RemoteEvent
from syncd.availability_service import Availability, slots_as_json
from syncd.cli import main
from syncd.config import AccountConfig
from syncd.errors import NotFound, Unreachable
from syncd.hours import HoursRule
from syncd.model import Activity, Projection, When
from syncd.pairs import SyncPair
from tests.engine.factories import activity

OWNER, OTHER = "alice@example.com", "bob@example.com"
DAY = date(2026, 12, 8)  # a Tuesday
NOW = datetime(2026, 12, 1, tzinfo=UTC)


def at(hour: int, minute: int = 0) -> datetime:
    return datetime.combine(DAY, time(hour, minute), tzinfo=UTC) - timedelta(hours=1)  # Oslo


@dataclass
class User:
    id: int
    time_zone: str = "Europe/Oslo"


@dataclass
class Source:
    activities: list[Activity] = field(default_factory=list)

    def user(self, email: str) -> User | None:
        return {OWNER: User(1), OTHER: User(2)}.get(email)

    def due_between(self, owner_id: int, start: date, end: date) -> list[Activity]:
        return [a for a in self.activities if a.owner_id == owner_id
                and a.due_date is not None and start <= a.due_date <= end]


class FreeBusy:
    """A connector with free/busy and a window listing (as Google, Graph, CalDAV)."""

    def __init__(self, busy: list[BusyInterval], events: list[RemoteEvent] = (),  # type: ignore[assignment]
                 fail: bool = False) -> None:
        self.busy, self.events, self.fail, self.closed = busy, list(events), fail, False

    def busy_between(self, start: datetime, end: datetime) -> list[BusyInterval]:
        if self.fail:
            raise Unreachable(reason="refused", url="http://127.0.0.1:9/")
        return self.busy

    def events_between(self, start: datetime, end: datetime) -> list[RemoteEvent]:
        if self.fail:
            raise Unreachable(reason="refused", url="http://127.0.0.1:9/")
        return self.events

    def close(self) -> None:
        self.closed = True


class ListingOnly:
    """A connector with neither (the memory calendar): its full listing is filtered."""

    def __init__(self, events: list[RemoteEvent]) -> None:
        self.events, self.closed = events, False

    def changes(self, cursor: str | None) -> ChangeSet:
        return ChangeSet(self.events, None, True)

    def close(self) -> None:
        self.closed = True


@dataclass
class State:
    links_by_account: dict[str, dict[int, SyncPair]] = field(default_factory=dict)

    def links(self, name: str) -> dict[int, SyncPair]:
        return self.links_by_account.get(name, {})


@dataclass
class Config:
    working_hours: tuple[HoursRule, ...] = ()
    serves_accounts: bool = True


class Service:
    def __init__(self, calendars: dict[str, tuple[str, Any]], activities: list[Activity] = (),  # type: ignore[assignment]
                 rules: tuple[HoursRule, ...] = ()) -> None:
        self.calendars = calendars
        self.source = Source(list(activities))
        self.state = State()
        self.config = Config(rules)
        self.opened: list[str] = []

    def accounts(self) -> list[AccountConfig]:
        return [AccountConfig(name=n, provider="memory", owner=o)
                for n, (o, _) in self.calendars.items()]

    def open_connector(self, account: AccountConfig, *, read_only: bool, now: datetime) -> Any:
        assert read_only
        self.opened.append(account.name)
        return self.calendars[account.name][1]


def reads(service: Service) -> Availability:
    return Availability(service, clock=lambda: NOW)  # type: ignore[arg-type]


def starts(slots: list[Any]) -> list[str]:
    return [s["start"][11:16] for s in slots_as_json(slots, "Europe/Oslo")]


def ev(event_id: str, start: datetime, end: datetime, busy: bool = True) -> RemoteEvent:
    return RemoteEvent(event_id, None, None, Projection(event_id, When(start, end), busy=busy))


def test_busy_tentative_and_out_of_office_block_but_working_elsewhere_does_not() -> None:
    cal = FreeBusy([BusyInterval(at(9), at(10), "busy"), BusyInterval(at(11), at(12), "tentative"),
                    BusyInterval(at(13), at(14), "oof"),
                    BusyInterval(at(9) - timedelta(hours=9), at(9) + timedelta(hours=15),
                                 "elsewhere")])
    service = Service({"work": (OWNER, cal)})
    slots = reads(service).owner_free_slots(OWNER, at(0), at(23, 59), timedelta(hours=1), NOW,
                                            timedelta(hours=1))
    assert starts(slots) == ["10:00", "12:00", "14:00", "15:00", "16:00"]
    assert cal.closed


def test_every_calendar_of_the_owner_and_no_one_else_s_is_read() -> None:
    work = FreeBusy([BusyInterval(at(9), at(10))])
    home = ListingOnly([ev("gym", at(16), at(17)), ev("nap", at(14), at(15), busy=False)])
    theirs = FreeBusy([BusyInterval(at(11), at(12))])
    service = Service({"work": (OWNER, work), "home": (OWNER.upper(), home),
                       "bob": (OTHER, theirs)},
                      [activity(1, owner_id=1, due_date=DAY, due_time=time(12), busy=True),
                       activity(2, owner_id=1, due_date=DAY, due_time=time(15), busy=False),
                       activity(3, owner_id=2, due_date=DAY, due_time=time(13), busy=True)])
    slots = reads(service).owner_free_slots(OWNER, at(0), at(23, 59), timedelta(hours=1), NOW,
                                            timedelta(hours=1))
    assert starts(slots) == ["10:00", "11:00", "13:00", "14:00", "15:00"]
    assert sorted(service.opened) == ["home", "work"]
    assert work.closed and home.closed and not theirs.closed


def test_a_calendar_that_cannot_answer_fails_the_question_rather_than_offer_its_time() -> None:
    service = Service({"work": (OWNER, FreeBusy([], fail=True))})
    with pytest.raises(Unreachable):
        reads(service).owner_free_slots(OWNER, at(0), at(23), timedelta(hours=1), NOW)


def test_the_agenda_shows_what_could_be_read_and_names_what_could_not() -> None:
    a = activity(1, owner_id=1, due_date=DAY, due_time=time(9), busy=True)
    work = FreeBusy([], [ev("ev1", at(9), at(10)), ev("lunch", at(12), at(13))])
    service = Service({"work": (OWNER, work), "broken": (OWNER, FreeBusy([], fail=True))}, [a])
    service.state.links_by_account["work"] = {1: SyncPair(1, a.sync_uid, "ev1", None, None, None)}
    result = reads(service).owner_agenda(OWNER, DAY, 1)
    assert [(i.key, i.source) for i in result.items] == [("activity:1", "synced"),
                                                        ("event:work:lunch", "calendar")]
    assert list(result.unreadable) == ["broken"]
    assert "http://127.0.0.1:9/" in result.unreadable["broken"]  # a sentence naming it


def test_working_hours_and_notice_come_from_the_owner_s_block() -> None:
    rule = HoursRule((OWNER,), start=time(10), end=time(12), min_notice=timedelta(hours=1))
    service = Service({}, rules=(rule,))
    now = at(9, 30)
    slots = reads(service).owner_free_slots(OWNER, at(0), at(23), timedelta(minutes=30), now,
                                            timedelta(minutes=30))
    assert starts(slots) == ["10:30", "11:00", "11:30"]


def test_an_unknown_owner_is_not_found() -> None:
    with pytest.raises(NotFound):
        reads(Service({})).owner_free_slots("nobody@example.com", at(0), at(23),
                                            timedelta(hours=1), NOW)


def test_before_the_embedded_calendar_exists_only_the_crm_is_read(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """No accounts and no daemon run yet: no embedded calendar to read, and no error."""
    base = ["--data-dir", str(tmp_path)]
    assert main([*base, "user", "add", OWNER, "--time-zone", "Europe/Oslo"]) == 0
    assert main([*base, "activity", "add", "Demo", "--owner", OWNER, "--due", "2027-01-11",
                 "--time", "10:00", "--duration", "60", "--busy"]) == 0
    capsys.readouterr()
    assert main([*base, "--json", "availability", OWNER, "--from", "2027-01-11", "--to",
                 "2027-01-11", "--duration", "60", "--step", "60"]) == 0
    slots = json.loads(capsys.readouterr().out)["slots"]
    assert [s["start"][11:13] for s in slots] == ["09", "11", "12", "13", "14", "15", "16"]
    assert main([*base, "--json", "agenda", OWNER, "--date", "2027-01-11"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert [i["source"] for i in out["items"]] == ["crm"] and out["unreadable"] == {}
