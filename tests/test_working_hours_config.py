"""``[[working_hours]]``: per-user hours from the config, every mistake named at once."""

from __future__ import annotations

from datetime import time, timedelta
from pathlib import Path

import pytest

from connectors import provider_options
from syncd.cli import main
from syncd.config import load_config, parse_config
from syncd.errors import ConfigError
from syncd.hours import hours_for, parse_clock, parse_days

PROVIDERS = provider_options()


def parse(text: str, tmp_path: Path) -> object:
    path = tmp_path / "syncd.toml"
    path.write_text(text)
    return load_config(path, PROVIDERS)


def problems(text: str, tmp_path: Path) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse(text, tmp_path)
    return [f"{p.key}: {p.problem}; {p.expected}" for p in info.value.problems]


@pytest.mark.parametrize(("text", "days"), [
    ("mon-fri", {0, 1, 2, 3, 4}),
    ("mon,wed,fri-sun", {0, 2, 4, 5, 6}),
    ("Sat - Sun", {5, 6}),
    ("fri-mon", {4, 5, 6, 0}),
    ("tue", {1}),
    ("mon-fri-sun", None),
    ("weekdays", None),
    ("", None),
])
def test_days_are_names_and_ranges(text: str, days: set[int] | None) -> None:
    assert parse_days(text) == (frozenset(days) if days is not None else None)


@pytest.mark.parametrize(("text", "clock"), [
    ("09:00", time(9)), ("23:59", time(23, 59)), ("24:00", time(0)), ("00:00", time(0)),
    ("9:00", None), ("24:01", None), ("12:60", None), ("noon", None), ("09:00:00", None),
])
def test_times_are_hh_mm(text: str, clock: time | None) -> None:
    assert parse_clock(text) == clock


def test_a_user_named_gets_their_block_everyone_else_the_star_block(tmp_path: Path) -> None:
    config = parse(
        '[[working_hours]]\nusers = ["Alice@Example.com"]\ndays = "mon-thu"\nstart = "08:00"\n'
        'end = "16:00"\ntime_zone = "America/New_York"\nbuffer_before_minutes = 10\n'
        'buffer_after_minutes = 5\nmin_notice_minutes = 120\n'
        '[[working_hours]]\nusers = "*"\nstart = "10:00"\nend = "24:00"\n', tmp_path)
    rules = config.working_hours  # type: ignore[attr-defined]
    alice = hours_for(rules, "alice@example.com", "Europe/Oslo")
    assert (alice.time_zone, alice.days, alice.start, alice.end) == (
        "America/New_York", frozenset({0, 1, 2, 3}), time(8), time(16))
    assert (alice.buffer_before, alice.buffer_after, alice.min_notice) == (
        timedelta(minutes=10), timedelta(minutes=5), timedelta(hours=2))
    bob = hours_for(rules, "bob@example.com", "Europe/Oslo")
    assert (bob.time_zone, bob.days, bob.start, bob.end) == (
        "Europe/Oslo", frozenset(range(5)), time(10), time(0))


def test_a_user_in_no_block_works_monday_to_friday_nine_to_five_in_their_zone() -> None:
    hours = hours_for(parse_config({}, "x.toml", PROVIDERS).working_hours, "a@example.com",
                      "Asia/Kolkata")
    assert (hours.time_zone, hours.days, hours.start, hours.end) == (
        "Asia/Kolkata", frozenset(range(5)), time(9), time(17))
    assert hours.buffer_before == hours.buffer_after == hours.min_notice == timedelta(0)


def test_every_mistake_is_named_at_once(tmp_path: Path) -> None:
    found = problems(
        '[[working_hours]]\nusers = ["alice@example.com", "not an address"]\n'
        'days = "weekdays"\nstart = "9am"\nend = "25:00"\ntime_zone = "Mars/Olympus"\n'
        'buffer_before_minutes = -5\nbuffer_after_minutes = "ten"\n'
        'min_notice_minutes = 999999999\nlunch = "12:00"\n'
        '[[working_hours]]\nusers = ["bob@example.com"]\nstart = "17:00"\nend = "09:00"\n'
        '[[working_hours]]\nusers = ["BOB@example.com", "*"]\n'
        '[[working_hours]]\nusers = "*"\n'
        '[[working_hours]]\nusers = ["bob@example.com"]\n', tmp_path)
    joined = "\n".join(found)
    for expected in (
            'working_hours[0].users: is not "*" or a list of e-mail addresses',
            "working_hours[0].days: is not a list of days; day names and ranges",
            "working_hours[0].start: is not a time of day (HH:MM)",
            "working_hours[0].end: is not a time of day (HH:MM)",
            "working_hours[0].time_zone: is not an IANA time zone name",
            "working_hours[0].buffer_before_minutes: is not between 0 and 1440",
            "working_hours[0].buffer_after_minutes: has the wrong type (str)",
            "working_hours[0].min_notice_minutes: is not between 0 and 129600",
            "working_hours[0].lunch: is not a known option",
            "working_hours[1].end: is not after the start (17:00)",
            "working_hours[3].users: names * again",
            "working_hours[4].users: names bob@example.com again"):
        assert expected in joined, (expected, found)
    assert len(found) == 12, found  # and nothing else


def test_a_bad_block_fails_config_check_with_file_key_and_fix(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "syncd.toml"
    path.write_text('[[working_hours]]\nusers = "*"\ndays = "mon-fry"\n')
    path.chmod(0o600)
    assert main(["--config", str(path), "config", "check"]) == 2
    err = capsys.readouterr().err
    assert f"{path}: working_hours[0].days is not a list of days; expected day names" in err
    assert "Traceback" not in err


def test_working_hours_must_be_a_list_of_tables(tmp_path: Path) -> None:
    assert problems('working_hours = "9-5"\n', tmp_path) == [
        "working_hours: is not a list of tables; [[working_hours]] entries"]


def test_the_example_config_sets_alice_hours() -> None:
    config = load_config(Path(__file__).resolve().parents[1] / "config" / "syncd.example.toml",
                         PROVIDERS)
    alice = hours_for(config.working_hours, "alice@example.com", "Europe/Oslo")
    assert (alice.days, alice.start, alice.end, alice.min_notice) == (
        frozenset(range(4)), time(8, 30), time(16), timedelta(hours=4))
