"""``syncd availability`` and ``syncd agenda`` on a Google calendar (the emulator, through
the real client library): busy time from freeBusy, the agenda from events.list, and
nothing written while answering."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from syncd.cli import main
from syncd_testkit.emulators.google import GoogleEmulator
from tests.google.helpers import OWNER, TZ, write_requests


def writes(emu: GoogleEmulator) -> int:
    """Requests that change something (freeBusy is a POST that only reads)."""
    return len([r for r in write_requests(emu) if not r.path.endswith("/freeBusy")])

DAY = "2027-01-11"  # a Monday; Oslo is UTC+1 then


def utc(hour: int, minute: int = 0) -> str:
    return datetime(2027, 1, 11, hour - 1, minute, tzinfo=UTC).isoformat().replace("+00:00", "Z")


@pytest.fixture
def base(tmp_path: Path, google_emulator: GoogleEmulator) -> list[str]:
    emu = google_emulator
    emu.add_calendar(OWNER, time_zone=TZ)
    config = tmp_path / "syncd.toml"
    config.write_text(
        f'[syncd]\ndata_dir = "{tmp_path}"\n'
        f'[[account]]\nname = "g"\nprovider = "google"\nowner = "{OWNER}"\n'
        f'[account.auth]\napi_endpoint = "{emu.api_endpoint}"\n'
        f'[[working_hours]]\nusers = "*"\nbuffer_after_minutes = 15\n')
    config.chmod(0o600)
    base = ["--config", str(config)]
    assert main([*base, "user", "add", OWNER, "--time-zone", TZ]) == 0
    assert main([*base, "activity", "add", "Demo", "--owner", OWNER, "--due", DAY,
                 "--time", "10:00", "--duration", "60", "--busy"]) == 0
    assert main([*base, "activity", "add", "Call back", "--owner", OWNER, "--due", DAY,
                 "--time", "13:00", "--duration", "60"]) == 0
    assert main([*base, "sync"]) == 0
    for n, (title, start, end, extra) in enumerate((
            ("Dentist", utc(15), utc(16), {}),
            ("Reading", utc(11), utc(12), {"transparency": "transparent"}))):
        emu.put_event(OWNER, {"id": f"other{n:04d}", "summary": title,
                              "start": {"dateTime": start}, "end": {"dateTime": end}, **extra})
    return base


def test_availability_reads_free_busy_and_writes_nothing(
        base: list[str], google_emulator: GoogleEmulator,
        capsys: pytest.CaptureFixture[str]) -> None:
    emu = google_emulator
    before = writes(emu)
    capsys.readouterr()
    assert main([*base, "--json", "availability", OWNER, "--from", DAY, "--to", DAY,
                 "--duration", "45m", "--step", "60"]) == 0
    slots = json.loads(capsys.readouterr().out)["slots"]
    # 10:00 the busy activity and 15:00 the dentist; 09:00-09:45 keeps its 15 minutes
    # after it (buffer_after); the free call and the transparent reading block nothing
    assert [s["start"][11:16] for s in slots] == ["09:00", "11:00", "12:00", "13:00",
                                                  "14:00", "16:00"]
    assert slots[0] == {"start": f"{DAY}T09:00:00+01:00", "end": f"{DAY}T09:45:00+01:00"}
    assert len([r for r in emu.requests if r.path.endswith("/freeBusy")]) == 1
    assert writes(emu) == before == 2  # the sync's two creates, nothing since


def test_the_agenda_lists_google_events_once(
        base: list[str], google_emulator: GoogleEmulator,
        capsys: pytest.CaptureFixture[str]) -> None:
    before = writes(google_emulator)
    capsys.readouterr()
    assert main([*base, "--json", "agenda", OWNER, "--date", DAY]) == 0
    items = json.loads(capsys.readouterr().out)["items"]
    assert sorted((i["title"], i["source"]) for i in items) == [
        ("Call back", "synced"), ("Demo", "synced"), ("Dentist", "calendar"),
        ("Reading", "calendar")]
    assert not any(i["double_booked"] for i in items)
    assert writes(google_emulator) == before
