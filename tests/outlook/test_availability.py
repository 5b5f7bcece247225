"""Availability on an Outlook mailbox (the Graph emulator over real HTTP, getSchedule):
tentative and out-of-office time blocks slots, "working elsewhere" and free time do not,
and an all-day "working from home" marker leaves the day open."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from syncd.availability_service import Availability, slots_as_json
from tests.outlook.conftest import ALICE, Env
from tests.test_availability_service import Service, User

MONDAY = datetime(2027, 1, 11, tzinfo=UTC)  # Oslo is UTC+1


def put(env: Env, title: str, start: datetime, end: datetime, **extra: Any) -> None:
    env.graph.create_event_as_user(ALICE, {
        "subject": title,
        "start": {"dateTime": start.replace(tzinfo=None).isoformat(), "timeZone": "UTC"},
        "end": {"dateTime": end.replace(tzinfo=None).isoformat(), "timeZone": "UTC"},
        **extra})


def oslo(hour: int) -> datetime:
    return MONDAY + timedelta(hours=hour - 1)


class Mailbox(Service):
    """The fake service of the unit tests, its one account a real Outlook connector."""

    def __init__(self, env: Env) -> None:
        super().__init__({})
        self.env = env
        self.account = env.account()
        self.source.user = lambda email: User(1) if email == ALICE else None  # type: ignore[method-assign]

    def accounts(self) -> list[Any]:
        return [self.account]

    def open_connector(self, account: Any, *, read_only: bool, now: datetime) -> Any:
        return self.env.connector(account)


def test_graph_kinds_decide_what_blocks(env: Env) -> None:
    put(env, "Maybe", oslo(9), oslo(10), showAs="tentative")
    put(env, "Away", oslo(11), oslo(12), showAs="oof")
    put(env, "Home office", oslo(13), oslo(14), showAs="workingElsewhere")
    put(env, "Reading", oslo(14), oslo(15), showAs="free")
    put(env, "Call", oslo(16), oslo(17))
    env.graph.create_event_as_user(ALICE, {
        "subject": "WFH", "isAllDay": True, "showAs": "workingElsewhere",
        "start": {"dateTime": "2027-01-11T00:00:00", "timeZone": "W. Europe Standard Time"},
        "end": {"dateTime": "2027-01-12T00:00:00", "timeZone": "W. Europe Standard Time"}})
    reads = Availability(Mailbox(env), clock=lambda: MONDAY - timedelta(days=7))  # type: ignore[arg-type]
    slots = reads.owner_free_slots(ALICE, MONDAY - timedelta(hours=1), MONDAY + timedelta(hours=23),
                                   timedelta(hours=1), step=timedelta(hours=1))
    starts = [s["start"][11:16] for s in slots_as_json(slots, "Europe/Oslo")]
    assert starts == ["10:00", "12:00", "13:00", "14:00", "15:00"]
    asked = [(r.method, r.path.rsplit("/", 1)[-1]) for r in env.graph.requests]
    assert asked == [("POST", "getSchedule")]  # one read, nothing written
