"""``syncd agenda`` and ``syncd availability`` end to end: the built-in CRM, a real
Radicale, and an event another client put in the owner's calendar."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import requests

from syncd.cli import main
from syncd_testkit.servers import DavServer
from tests.conftest import fresh_calendar

DAY = "2027-01-11"  # a Monday


def put_event(url: str, user: str, name: str, start: str, end: str, *extra: str) -> None:
    """An event written by another client (no syncd marker): calendar-only."""
    lines = ["BEGIN:VCALENDAR", "VERSION:2.0", "PRODID:-//other client//EN", "BEGIN:VEVENT",
             f"UID:{name}", "DTSTAMP:20261201T000000Z", f"DTSTART;TZID=Europe/Oslo:{start}",
             f"DTEND;TZID=Europe/Oslo:{end}", f"SUMMARY:{name}", *extra, "END:VEVENT",
             "END:VCALENDAR", ""]
    reply = requests.put(f"{url}{name}.ics", data="\r\n".join(lines).encode(),
                         auth=(user, "x"), timeout=10, headers={"Content-Type": "text/calendar"})
    assert reply.status_code in (201, 204), reply.text


@pytest.fixture
def owner(tmp_path: Path, radicale: DavServer) -> tuple[list[str], str, str]:
    """A synced CalDAV account whose owner has a busy and a free activity, and an
    event of their own in the calendar; returns (CLI base, owner, calendar URL)."""
    user, calendar = fresh_calendar(radicale)
    config = tmp_path / "syncd.toml"
    config.write_text(
        f'[syncd]\ndata_dir = "{tmp_path}"\n'
        f'[[account]]\nname = "work"\nprovider = "caldav"\nowner = "{user}"\n'
        f'calendar = "{calendar}"\n[account.auth]\nurl = "{radicale.url}"\n'
        f'username = "{user}"\n'
        f'[[working_hours]]\nusers = ["{user}"]\nstart = "09:00"\nend = "17:00"\n')
    config.chmod(0o600)
    base = ["--config", str(config)]
    assert main([*base, "user", "add", user, "--time-zone", "Europe/Oslo"]) == 0
    assert main([*base, "activity", "add", "Demo", "--owner", user, "--due", DAY,
                 "--time", "10:00", "--duration", "60", "--busy"]) == 0
    assert main([*base, "activity", "add", "Call back", "--owner", user, "--due", DAY,
                 "--time", "13:00", "--duration", "60"]) == 0  # free (A4's default)
    assert main([*base, "sync"]) == 0
    put_event(calendar, user, "Dentist", "20270111T150000", "20270111T160000")
    put_event(calendar, user, "Focus time", "20270111T110000", "20270111T120000",
              "TRANSP:TRANSPARENT")
    return base, user, calendar


def test_the_agenda_shows_a_synced_pair_once_and_calendar_only_events_as_such(
        owner: tuple[list[str], str, str], capsys: pytest.CaptureFixture[str]) -> None:
    base, user, _ = owner
    # A busy activity made after the sync: in the CRM only, over the dentist.
    assert main([*base, "activity", "add", "Late demo", "--owner", user, "--due", DAY,
                 "--time", "15:30", "--duration", "60", "--busy"]) == 0
    capsys.readouterr()
    assert main([*base, "--json", "agenda", user, "--date", DAY]) == 0
    out = json.loads(capsys.readouterr().out)
    rows = {(i["title"], i["source"], i["busy"]) for i in out["items"]}
    assert rows == {("Demo", "synced", True), ("Call back", "synced", False),
                    ("Dentist", "calendar", True), ("Focus time", "calendar", False),
                    ("Late demo", "crm", True)}
    assert len(out["items"]) == 5  # the synced pairs are not shown a second time
    demo = next(i for i in out["items"] if i["title"] == "Demo")
    assert demo["start"] == f"{DAY}T10:00:00+01:00" and demo["calendars"] == ["work"]
    clashes = {i["title"] for i in out["items"] if i["double_booked"]}
    assert clashes == {"Dentist", "Late demo"}
    assert out["unreadable"] == {}

    assert main([*base, "agenda", user, "--date", DAY]) == 0
    text = capsys.readouterr().out
    assert "Monday 2027-01-11 (Europe/Oslo)" in text
    assert "15:30-16:30             busy  Late demo  [CRM only]  DOUBLE BOOKED with 'Dentist'" \
        in text


def test_availability_excludes_busy_activity_and_event_time_but_not_free_activities(
        owner: tuple[list[str], str, str], capsys: pytest.CaptureFixture[str]) -> None:
    base, user, _ = owner
    capsys.readouterr()
    assert main([*base, "--json", "availability", user, "--from", DAY, "--to", DAY,
                 "--duration", "1h", "--step", "60"]) == 0
    out = json.loads(capsys.readouterr().out)
    starts = [s["start"] for s in out["slots"]]
    # 10:00 the busy activity, 15:00 the dentist; the free "Call back" at 13:00 and the
    # transparent "Focus time" at 11:00 block nothing
    assert starts == [f"{DAY}T{h:02d}:00:00+01:00" for h in (9, 11, 12, 13, 14, 16)]
    assert out["slots"][0]["end"] == f"{DAY}T10:00:00+01:00"
    assert out["time_zone"] == "Europe/Oslo"


def test_an_unknown_owner_is_a_sentence_not_a_traceback(
        owner: tuple[list[str], str, str], capsys: pytest.CaptureFixture[str]) -> None:
    base, _, _ = owner
    capsys.readouterr()
    assert main([*base, "availability", "nobody@example.com", "--duration", "30"]) == 1
    err = capsys.readouterr().err
    assert "No CRM user 'nobody@example.com'" in err and "Traceback" not in err


BAD = [
    (["--duration", "0"], "--duration '0' is not a length"),
    (["--duration", "30", "--from", "tomorrow"], "--from 'tomorrow' is not a date"),
    (["--duration", "30", "--from", "2027-01-12", "--to", "2027-01-10"], "--to must be after"),
    (["--duration", "30", "--from", "2027-01-01", "--to", "2027-12-31"], "at most 92 days"),
    (["--duration", "30", "--from", "9999-12-31"], "is not between 1900-01-01 and 2199-12-31"),
    (["--duration", "30", "--to", "0001-01-01T00:00"], "is not between"),
    (["--duration", "30", "--from", "2027-01-11T10:00" + "0" * 5000], "is not a date"),
    (["--duration", "99999999d"], "is not a length"),
    (["--duration", "30", "--step", "-5"], "--step '-5' is not a length"),
    (["--duration", "30", "--from", "2027-02-30"], "is not a date"),
]


def test_bad_availability_questions_are_usage_errors(
        owner: tuple[list[str], str, str], capsys: pytest.CaptureFixture[str]) -> None:
    base, user, _ = owner
    for args, problem in BAD:
        capsys.readouterr()
        assert main([*base, "availability", user, *args]) == 2, args
        err = capsys.readouterr().err
        assert problem in err and "Traceback" not in err, err
    for args, problem in ((["--days", "40"], "--days is 1 to 31"),
                          (["--date", "9999-12-31"], "is not between"),
                          (["--date", "yesterday"], "is not a date")):
        assert main([*base, "agenda", user, *args]) == 2, args
        err = capsys.readouterr().err
        assert problem in err and "Traceback" not in err, err


def test_slots_keep_the_wall_clock_across_the_clock_change(
        owner: tuple[list[str], str, str], capsys: pytest.CaptureFixture[str]) -> None:
    base, user, _ = owner
    capsys.readouterr()
    # Oslo moves from +01:00 to +02:00 in the night to Sunday 2027-03-28
    assert main([*base, "--json", "availability", user, "--from", "2027-03-26", "--to",
                 "2027-03-29", "--duration", "8h", "--step", "60"]) == 0
    slots = json.loads(capsys.readouterr().out)["slots"]
    assert slots == [
        {"start": "2027-03-26T09:00:00+01:00", "end": "2027-03-26T17:00:00+01:00"},
        {"start": "2027-03-29T09:00:00+02:00", "end": "2027-03-29T17:00:00+02:00"}]
