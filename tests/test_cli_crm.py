"""The CRM commands of ``syncd``, run in-process against a temporary data directory."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from syncd.cli import main


class Cli:
    """Runs ``syncd --data-dir TMP ...`` and captures the exit code and both streams."""

    def __init__(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        self.data_dir = tmp_path / "data"
        self.capsys = capsys

    def __call__(self, *args: str) -> tuple[int, str, str]:
        self.capsys.readouterr()
        code = main(["--data-dir", str(self.data_dir), *args])
        out, err = self.capsys.readouterr()
        return code, out, err

    def ok(self, *args: str) -> str:
        code, out, err = self(*args)
        assert code == 0, err
        return out

    def json(self, *args: str) -> Any:
        return json.loads(self.ok("--json", *args))


@pytest.fixture
def cli(tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> Cli:
    monkeypatch.delenv("SYNCD_CONFIG", raising=False)
    monkeypatch.delenv("SYNCD_DATA_DIR", raising=False)
    return Cli(tmp_path, capsys)


@pytest.fixture
def crm(cli: Cli) -> Cli:
    """A data directory with one user, an organization, a person and a deal (all id 1)."""
    cli.ok("user", "add", "ann@example.com", "--name", "Ann", "--time-zone", "Europe/Oslo")
    cli.ok("org", "add", "Acme")
    cli.ok("person", "add", "Pia", "--email", "pia@acme.example", "--org", "1")
    cli.ok("deal", "add", "Renewal", "--person", "1", "--org", "1")
    return cli


def test_add_list_show_edit_done_undone_delete(crm: Cli) -> None:
    out = crm.ok("activity", "add", "Call Pia", "--type", "call", "--due", "2026-03-02",
                 "--time", "14:30", "--duration", "1h30m", "--deal", "1",
                 "--guest", "pia@acme.example", "--guest", "x@example.org",
                 "--note", "budget is 40k", "--busy")
    assert out.startswith("Added activity 1: 2026-03-02 14:30 (1h30m) Call Pia")
    listing = crm.ok("activity", "list")
    assert "Call Pia" in listing and "deal 1, person 1, org 1" in listing  # B1
    assert "budget" not in listing  # the note shows only in 'show'
    shown = crm.ok("activity", "show", "1")
    assert "Note (private): budget is 40k" in shown and "Busy:           yes" in shown

    crm.ok("activity", "edit", "1", "--subject", "Call Pia back", "--time", "none")
    activity = crm.json("activity", "show", "1")
    assert (activity["subject"], activity["due_time"], activity["note"]) == (
        "Call Pia back", None, "budget is 40k")

    assert crm.ok("activity", "done", "1") == "Activity 1 is done.\n"
    assert crm.json("activity", "show", "1")["marked_done_at"] is not None
    crm.ok("activity", "undone", "1")
    assert crm.json("activity", "show", "1")["marked_done_at"] is None

    assert crm.ok("activity", "delete", "1") == "Deleted 1 activity.\n"
    assert crm.ok("activity", "list") == "No activities match.\n"
    assert [a["id"] for a in crm.json("activity", "list", "--deleted")] == [1]


def test_json_output_of_every_list_parses(crm: Cli) -> None:
    crm.ok("activity", "add", "Lunch", "--type", "lunch", "--due", "2026-03-03")
    assert crm.json("user", "list")[0]["time_zone"] == "Europe/Oslo"
    assert [t["key"] for t in crm.json("type", "list")][:6] == [
        "call", "meeting", "task", "deadline", "email", "lunch"]
    assert crm.json("person", "list")[0]["dates"]["next_activity_date"] is None
    assert crm.json("org", "list")[0]["name"] == "Acme"
    assert crm.json("deal", "list")[0]["person_id"] == 1
    activity = crm.json("activity", "list")[0]
    assert activity["busy"] is False and "note" not in activity  # free by default (A4)
    added = crm.json("activity", "add", "Demo", "--due", "2026-03-04", "--time", "09:00")
    assert added["due_time"] == "09:00:00" and added["owner_tz"] == "Europe/Oslo"
    crm.ok("type", "add", "demo", "Product demo", "--color", "#123456")
    assert crm.json("type", "list")[-1] == {
        "key": "demo", "name": "Product demo", "color": "#123456", "is_default": False,
        "active": True}


def test_owner_defaults_to_the_only_user_else_must_be_named(crm: Cli) -> None:
    crm.ok("user", "add", "bob@example.com", "--time-zone", "America/New_York")
    code, _, err = crm("activity", "add", "Whose?")
    assert code == 2 and "--owner EMAIL" in err
    added = crm.json("activity", "add", "Bob's", "--owner", "BOB@example.com")
    assert added["owner_tz"] == "America/New_York"
    code, _, err = crm("activity", "add", "Nobody's", "--owner", "carl@example.com")
    assert code == 2 and "no user has this address" in err
    moved = crm.json("activity", "edit", str(added["id"]), "--owner", "ann@example.com")
    assert moved["owner_id"] == 1


def test_bulk_delete_by_ids_all_or_nothing_and_by_filter_with_yes(crm: Cli) -> None:
    for n, kind in enumerate(["call", "call", "task", "call"]):
        crm.ok("activity", "add", f"#{n}", "--type", kind, "--due", f"2026-03-0{n + 1}")
    code, _, err = crm("activity", "delete", "1", "99")
    assert code == 1 and "No activity 99 exists" in err
    assert len(crm.json("activity", "list")) == 4  # nothing was deleted

    code, _, err = crm("activity", "delete", "--type", "call")
    assert code == 2 and "would delete 3 activities; add --yes" in err
    assert crm.json("activity", "delete", "--type", "call", "--before", "2026-03-04",
                    "--yes") == {"deleted": 2}
    assert [a["subject"] for a in crm.json("activity", "list")] == ["#2", "#3"]
    assert crm.ok("activity", "delete", "3", "4") == "Deleted 2 activities.\n"
    code, _, err = crm("activity", "delete")
    assert code == 2 and "name activity ids" in err


def test_import_json_and_csv(crm: Cli, tmp_path: Path) -> None:
    rows = [
        {"subject": "Call Pia", "type": "call", "due": "2026-03-02", "time": "14:30",
         "duration": 30, "guests": ["pia@acme.example", 1], "deal": 1, "note": "n"},
        {"subject": "Fair", "owner": "ann@example.com", "due": "2026-04-10",
         "duration": "3d", "busy": True},
    ]
    path = tmp_path / "acts.json"
    path.write_text(json.dumps(rows), encoding="utf-8")
    assert crm.json("import", str(path)) == {"imported": 2, "ids": [1, 2]}
    first = crm.json("activity", "show", "1")
    assert (first["person_id"], first["note"], len(first["guests"])) == (1, "n", 1)

    csv_path = tmp_path / "acts.csv"
    csv_path.write_text(
        "subject,owner,type,due,time,duration,busy,guests,note\n"
        "Lunch,ann@example.com,lunch,2026-03-05,12:00,1h,yes,a@example.com;b@example.com,\n"
        "Todo,,,,,,,,\n", encoding="utf-8")
    assert crm.ok("import", str(csv_path)) == f"Imported 2 activities from {csv_path}.\n"
    lunch = crm.json("activity", "show", "3")
    assert (lunch["busy"], lunch["duration_minutes"], lunch["note"]) == (True, 60, "")
    assert [g["email"] for g in lunch["guests"]] == ["a@example.com", "b@example.com"]


def test_import_lists_every_problem_with_row_numbers_and_imports_nothing(
    crm: Cli, tmp_path: Path,
) -> None:
    path = tmp_path / "bad.csv"
    path.write_text(
        "subject,owner,type,due,time,duration,guests\n"
        "Fine,,call,2026-03-02,10:00,30,\n"
        "Bad date,,call,2026-02-30,10:00,30,\n"
        "Bad type,,webinar,2026-03-02,,,\n"
        "Bad owner,zed@example.com,call,,,,\n"
        "Bad guest,,call,2026-03-02,,,not-an-address\n"
        "Time only,,call,,10:00,,\n", encoding="utf-8")
    code, out, err = crm("import", str(path))
    assert code == 2 and out == "" and "Traceback" not in err
    for expected in ("row 2 (line 3), due: '2026-02-30' is not a date",
                     "row 3 (line 4), type: 'webinar' is not a type",
                     "row 4 (line 5), owner: no user has this address",
                     "row 5 (line 6), guests: 'not-an-address' is not an e-mail address",
                     "row 6 (line 7), time:",
                     "Nothing was saved"):
        assert expected in err
    assert crm.json("activity", "list") == []

    code, _, err = crm("import", str(tmp_path / "missing.json"))
    assert code == 2 and "cannot read" in err
    (tmp_path / "notalist.json").write_text('{"subject": "x"}', encoding="utf-8")
    code, _, err = crm("import", str(tmp_path / "notalist.json"))
    assert code == 2 and "JSON list" in err


@pytest.mark.parametrize(("args", "message"), [
    (["--time", "10:00"], "Invalid --time '10:00:00': a time needs a due date"),
    (["--guest", "not-an-address"], "Invalid --guest 'not-an-address': is not an e-mail"),
    (["--type", "webinar"], "Invalid --type 'webinar': is not a type"),
    (["--duration", "-15"], "argument --duration: '-15' is not a duration"),
    (["--deal", "42"], "Invalid --deal 42: no such deal"),
    (["--due", "2026-13-01"], "argument --due: '2026-13-01' is not a date"),
])
def test_bad_input_exits_2_with_a_clear_message_and_saves_nothing(
    crm: Cli, args: list[str], message: str,
) -> None:
    code, out, err = crm("activity", "add", "Call", *args)
    assert code == 2
    assert message in err
    assert "Traceback" not in err and out == ""
    assert crm.json("activity", "list") == []


def test_help_texts_explain_the_commands(cli: Cli) -> None:
    for command in (["activity", "add"], ["activity", "delete"], ["import"], ["user", "add"]):
        assert main([*command, "--help"]) == 0
    out = cli.capsys.readouterr().out
    assert "private note: stays in the CRM" in out
    assert "needs --yes" in out
    assert "every problem is listed with its row number" in out


def test_a_due_date_outside_the_range_is_refused_by_add_edit_and_import(
        crm: Cli, tmp_path: Path) -> None:
    code, out, err = crm("activity", "add", "Far", "--due", "9999-12-31")
    assert code == 2 and out == "" and "Traceback" not in err
    assert "--due" in err and "9999-12-31" in err and "1900-01-01 and 2199-12-31" in err
    crm.ok("activity", "add", "Near", "--due", "2027-01-04")
    code, _, err = crm("activity", "edit", "1", "--due", "9999-12-31")
    assert code == 2 and "1900-01-01 and 2199-12-31" in err
    path = tmp_path / "far.csv"
    path.write_text("subject,type,due\nFine,call,2027-01-05\nFar,call,9999-12-31\n",
                    encoding="utf-8")
    code, out, err = crm("import", str(path))
    assert code == 2 and "row 2 (line 3), due:" in err and "2199-12-31" in err
    assert [a["subject"] for a in crm.json("activity", "list")] == ["Near"]
    assert crm.json("activity", "show", "1")["due_date"] == "2027-01-04"


def test_a_call_moved_into_the_repeated_hour_shows_which_0230_it_is(crm: Cli) -> None:
    crm.ok("user", "add", "utc@example.com", "--name", "Uma", "--time-zone", "UTC")
    crm.ok("activity", "add", "Night call", "--owner", "utc@example.com", "--due", "2027-10-31",
           "--time", "01:30", "--duration", "60")
    # 01:30 UTC is the second 02:30 in Oslo (after 03:00 CEST became 02:00 CET).
    out = crm.ok("activity", "edit", "1", "--owner", "ann@example.com")
    assert "2027-10-31 02:30 (second occurrence) (1h)" in out
