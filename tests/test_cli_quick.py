"""``syncd status`` and ``syncd activity add`` through plain sqlite3 answer, write and
fail exactly as through the full store (issue 16 item 5).

Each case runs once on the quick path and once with it turned off (``open_lite``
answering None, as it does for PostgreSQL or a database to migrate), and compares the
printed output, the exit code and, for ``add``, every row of every table.
"""

from __future__ import annotations

import json
import re
import sqlite3
from contextlib import closing
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

import syncd.service
import syncd.store.db
import syncd.store.lite
from syncd.cli import main
from syncd.crm.pipedrive_budget import Limits, PipedriveBudget
from syncd.store.budgets import BudgetLedger
from syncd.store.channels import ChannelStore
from syncd.store.db import Database
from syncd.store.state import StateStore
from syncd.store.state_tables import SyncConflict, SyncLink, SyncQuarantine

NAMES = ("alice", "bob", "carol", "dave", "erin")
ACCOUNTS = "".join(
    f'[[account]]\nname = "{name}"\nprovider = "caldav"\nowner = "{name}@example.com"\n'
    f'calendar = "https://dav.example.com/{name}/work/"\n[account.auth]\n'
    f'url = "https://dav.example.com/"\nusername = "{name}"\npassword = "env:NOPE"\n'
    for name in NAMES)
STAMP = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{6}$")
UID = re.compile(r"^[0-9a-f]{32}$")


def _config(folder: Path, extra: str = "") -> Path:
    folder.mkdir(mode=0o700, exist_ok=True)
    config = folder / "syncd.toml"
    config.write_text(f'[syncd]\ndata_dir = "{folder}"\n{extra}{ACCOUNTS}')
    config.chmod(0o600)
    return config


def _run(capsys: pytest.CaptureFixture[str], config: Path, *args: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main(["--config", str(config), *args])
    out, err = capsys.readouterr()
    return code, out, err


def _no_full_store(*args: Any, **kwargs: Any) -> None:
    raise AssertionError("the quick path opened the full store")


def _both(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
          quick: Path, full: Path, *args: str) -> tuple[tuple[int, str, str], ...]:
    """``args`` run on the quick path against ``quick``'s config (which must not open the
    full store), then on the full path against ``full``'s."""
    with monkeypatch.context() as patched:
        patched.setattr(syncd.store.db.Database, "__init__", _no_full_store)
        fast = _run(capsys, quick, *args)
    with monkeypatch.context() as patched:
        patched.setattr(syncd.store.lite, "open_lite", lambda url: None)
        slow = _run(capsys, full, *args)
    return fast, slow


# --- syncd status -------------------------------------------------------------------------


def _accounts_in_every_state(folder: Path) -> None:
    """alice ok after a run with counts, bob failing and resting, carol needing sign-in,
    dave with links, conflicts and failed items, erin paused; channels in each state and
    a Pipedrive company's day over 75 % and halted."""
    db = Database(f"sqlite:///{folder / 'syncd.db'}")
    state = StateStore(db)
    at = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)
    for name in NAMES:
        state.account(name)
    state.update_account("alice", last_run_at=at, last_outcome="ok",
                         last_counts={"created": 2, "updated": 0, "read": 7})
    state.update_account("bob", status="failing", failures=3, last_run_at=at,
                         cooldown_until=at + timedelta(minutes=4), last_outcome="failed",
                         last_message="The server did not answer; syncd tries again.")
    state.update_account("carol", status="needs_reauth", status_reason="invalid_grant",
                         last_outcome="failed", last_message="Sign in again.")
    state.update_account("erin", status="paused", status_reason="guest-updates: 41 in 1 h",
                         last_outcome="refused", last_message="Paused.")
    with db.session() as s:
        for n in range(3):
            s.add(SyncLink(account="dave", activity_id=n + 1, sync_uid=f"{n:032x}",
                           event_id=f"e{n}", generation=1, pending=False))
        s.add(SyncConflict(account="dave", activity_id=1, field="when",
                           crm_value={"start": "2026-12-08"}, calendar_value=None,
                           winner="crm", policy="crm_wins", resolved=False))
        s.add(SyncConflict(account="dave", activity_id=2, field="subject", crm_value="a",
                           calendar_value="b", winner="calendar", policy="newest",
                           resolved=True))
        for n, item_state in enumerate(("quarantined", "retrying", "quarantined", "retry")):
            s.add(SyncQuarantine(account="dave", item_key=f"event:e{n}\u00e9", version="v1",
                                 reason=f"HTTP 400 rejected #{n}", attempts=n + 1,
                                 state=item_state, first_at=at, last_at=at))
    channels = ChannelStore(db)
    channels.save("alice", "webdav", channel_id="c1", token="t",
                  expires_at=at + timedelta(days=3), now=at)
    channels.heard("c1", now=at + timedelta(minutes=5))
    channels.save("bob", "webdav", channel_id="c2", token="t", expires_at=at + timedelta(days=3),
                  details={"key": "value"})
    channels.degrade("bob", "missed-notification")
    channels.refuse("carol", "webdav", "the server offers no WebDAV-Push")
    budget = PipedriveBudget(BudgetLedger(db), "acme", Limits(1000, 40), "k",
                             sleep=lambda s: None)
    for _ in range(80):
        budget.reserve(10)
    [today] = budget.ledger.current(datetime.now(UTC))
    budget.ledger.halt(today.scope, today.day, today.resets_at, "the block page was seen")
    BudgetLedger(db).reserve("pipedrive:old", "2020-01-01", cost=1, allowance=10,
                             resets_at=at - timedelta(days=400), now=at - timedelta(days=401),
                             token_key="k", spacing=0.1)
    db.close()


@pytest.mark.parametrize("http", ["", '[http]\npublic_url = "https://syncd.example.com"\n'])
def test_status_prints_the_same_on_both_paths_for_accounts_in_every_state(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
        http: str) -> None:
    config = _config(tmp_path, http)
    _accounts_in_every_state(tmp_path)
    for args in (("status",), ("--json", "status")):
        fast, slow = _both(capsys, monkeypatch, config, config, *args)
        assert fast == slow, args
    code, out, err = fast
    assert code == 0, err
    rows = {row["account"]: row for row in json.loads(out)}
    assert code == 0 and rows["dave"]["quarantined"] == 2 and rows["dave"]["links"] == 3
    assert rows["dave"]["open_conflicts"] == 1 and len(rows["dave"]["failed_items"]) == 4
    assert rows["bob"]["status"] == "failing" and rows["carol"]["push"]["state"] == "polled"
    [budget] = rows["alice"]["crm_budgets"]
    assert budget["warning"] and budget["halted_until"] is not None
    text = _run(capsys, config, "status")[1]
    assert "Pipedrive company acme: 800 of 1,000 tokens" in text
    assert "calls stopped until" in text and "carol: needs_reauth (invalid_grant)" in text


def test_status_takes_the_quick_path_only_when_every_account_has_a_row(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    config = _config(tmp_path)
    assert _run(capsys, config, "user", "add", "alice@example.com")[0] == 0  # a database
    served: list[str] = []
    full = syncd.service.Service.status

    def spy(self: Any) -> list[dict[str, Any]]:
        served.append("full")
        return full(self)

    monkeypatch.setattr(syncd.service.Service, "status", spy)
    first = _run(capsys, config, "status")
    assert served == ["full"]  # no account rows yet: the full path makes them
    assert _run(capsys, config, "status") == first and served == ["full"]


def test_the_embedded_defaults_status_is_the_same_on_both_paths(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    tmp_path.chmod(0o700)
    config = tmp_path / "syncd.toml"
    config.write_text(f'[syncd]\ndata_dir = "{tmp_path}"\n')
    for email in ("alice@example.com", "bob@example.com"):
        assert _run(capsys, config, "user", "add", email)[0] == 0
    assert _run(capsys, config, "status")[0] == 0  # the accounts' rows are made
    StateStore(Database(f"sqlite:///{tmp_path / 'syncd.db'}")).update_account(
        "embedded:bob@example.com", status="failing", last_outcome="failed",
        last_message="The embedded server did not answer.")
    for args in (("status",), ("--json", "status")):
        fast, slow = _both(capsys, monkeypatch, config, config, *args)
        assert fast == slow
    assert fast[1].count("embedded:") == 2


def test_a_teams_status_takes_the_full_path(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    config = _config(tmp_path, "")
    text = config.read_text() + ('[[team]]\nname = "sales"\nowners = "*"\nprovider = "caldav"\n'
                                 'calendar = "https://dav.example.com/{user}/crm/"\n'
                                 '[team.auth]\nurl = "https://dav.example.com/"\n'
                                 'username = "{user}"\npassword = "env:NOPE"\n')
    config.write_text(text)
    assert _run(capsys, config, "user", "add", "zoe@example.com")[0] == 0
    assert _run(capsys, config, "status")[0] == 0
    monkeypatch.setattr(syncd.store.lite.LiteStatus, "accounts", None)  # fails if asked
    code, out, err = _run(capsys, config, "status")
    assert code == 0, err
    assert "zoe" in out and out.count(": ok;") == len(NAMES) + 1


# --- syncd activity add ---------------------------------------------------------------------


Templates = dict[tuple[str, ...], Path]


@pytest.fixture(scope="module")
def templates(tmp_path_factory: pytest.TempPathFactory) -> Templates:
    """Databases made once per module (a migration per test would be most of its time),
    by the users they hold; the folder they are made in under ``("",)``."""
    return {("",): tmp_path_factory.mktemp("templates")}


def _crm(folder: Path, templates: Templates, *users: str) -> Path:
    """A data folder with ``users`` and three persons (1 and 3 with an e-mail), copied
    from a template made on first use."""
    if users not in templates:
        made = templates[("",)] / f"users-{len(templates)}"
        config = _config(made)
        commands = [("user", "add", email) for email in users] + [
            ("person", "add", "Pia", "--email", "pia@client.test"), ("person", "add", "Ola"),
            ("person", "add", "Kari", "--email", "kari@client.test")]
        for command in commands:
            assert main(["--config", str(config), *command]) == 0
        templates[users] = made / "syncd.db"
    config = _config(folder)
    with closing(sqlite3.connect(templates[users])) as source, \
            closing(sqlite3.connect(folder / "syncd.db")) as copy:
        source.backup(copy)  # with what is still in the WAL file
    return config


def _tables(path: Path) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table, stamps and random uids checked and replaced by their
    shape (the two runs differ in them by nature)."""
    conn = sqlite3.connect(path)
    names = [r[0] for r in conn.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")]
    tables = {}
    for name in names:
        cursor = conn.execute(f'SELECT * FROM "{name}" ORDER BY rowid')
        columns = [d[0] for d in cursor.description]
        rows = []
        for row in cursor:
            shaped = []
            for column, value in zip(columns, row, strict=True):
                stamped = column == "at" or column.endswith(("_at", "_time"))
                if stamped and isinstance(value, str) and STAMP.match(value):
                    value = "<stamp>"
                elif column == "sync_uid" and value is not None:
                    assert UID.match(value)
                    value = "<uid>"
                shaped.append((column, value))
            rows.append(tuple(shaped))
        tables[name] = rows
    conn.close()
    return tables


def _shaped_json(out: str) -> Any:
    data = json.loads(out)
    for key in ("sync_uid", "updated_at", "marked_done_at"):
        if data.get(key) is not None:
            data[key] = "<varies>"
    return data


ADDS = [
    ("Call",),
    ("Call Pia", "--type", "call", "--due", "2026-12-10", "--time", "14:30", "--duration",
     "1h30m", "--busy", "--description", "  agenda\n\tline two ", "--location", " Oslo ",
     "--note", "ask about the budget", "--guest", "PIA@client.test", "--guest", "3",
     "--guest", "x@elsewhere.test", "--guest", "pia@client.test"),
    ("Fair", "--due", "2026-12-10", "--duration", "3d", "--done", "--free"),
    ("Night", "--due", "2026-10-25", "--time", "02:30", "--owner", "b@example.com"),
]
ERRORS = [
    ("X", "--owner", "nobody@example.com"),
    ("X", "--due", "2026-13-40"),
    ("X", "--time", "10:00"),
    ("X", "--type", "nope"),
    ("X", "--guest", "99"),
    ("X", "--guest", "2"),  # Ola: a person without an address
    ("X", "--guest", "not an address"),
    ("", "--due", "2026-12-10"),
    ("X" * 256,),
    ("X", "--duration", "-5"),
]


@pytest.mark.parametrize("args", ADDS + ERRORS, ids=lambda a: " ".join(a)[:40] or "empty")
@pytest.mark.parametrize("json_flag", [(), ("--json",)], ids=["text", "json"])
def test_activity_add_prints_and_writes_the_same_on_both_paths(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
        templates: Templates, args: tuple[str, ...],
        json_flag: tuple[str, ...]) -> None:
    users = ("a@example.com", "b@example.com")
    quick, full = (_crm(tmp_path / side, templates, *users) for side in ("quick", "full"))
    if "--owner" not in args:
        args = (*args, "--owner", "a@example.com")
    (fast_code, fast_out, fast_err), (slow_code, slow_out, slow_err) = _both(
        capsys, monkeypatch, quick, full, *json_flag, "activity", "add", *args)
    assert (fast_code, fast_err) == (slow_code, slow_err), (fast_err, slow_err)
    if json_flag and fast_code == 0:
        assert _shaped_json(fast_out) == _shaped_json(slow_out)
    else:
        assert fast_out == slow_out
    assert _tables(tmp_path / "quick" / "syncd.db") == _tables(tmp_path / "full" / "syncd.db")


def test_the_quick_add_writes_the_activity_its_guests_note_and_one_change(
        tmp_path: Path, capsys: pytest.CaptureFixture[str],
        templates: Templates) -> None:
    config = _crm(tmp_path, templates, "a@example.com", "b@example.com")
    code, _, _ = _run(capsys, config, "activity", "add", *ADDS[1], "--owner", "b@example.com")
    assert code == 0
    tables = _tables(tmp_path / "syncd.db")
    [activity] = tables["activities"]
    assert dict(activity)["owner_id"] == 2 and dict(activity)["due_time"] == "14:30:00.000000"
    assert [(dict(g)["email"], dict(g)["person_id"], dict(g)["name"])
            for g in tables["activity_guests"]] == [
        ("pia@client.test", 1, "Pia"), ("kari@client.test", 3, "Kari"),
        ("x@elsewhere.test", None, None)]
    assert [dict(n)["text"] for n in tables["activity_notes"]] == ["ask about the budget"]
    assert [dict(c)["kind"] for c in tables["activity_changes"]] == ["insert"]


@pytest.mark.parametrize("owner", [(), ("--owner", "a@example.com")])
@pytest.mark.parametrize("users", [(), ("a@example.com", "b@example.com")])
def test_the_owner_sentences_are_the_same_on_both_paths(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
        templates: Templates, owner: tuple[str, ...],
        users: tuple[str, ...]) -> None:
    quick, full = (_crm(tmp_path / side, templates, *users) for side in ("quick", "full"))
    fast, slow = _both(capsys, monkeypatch, quick, full, "activity", "add", "Call", *owner)
    assert fast == slow
    assert _tables(tmp_path / "quick" / "syncd.db") == _tables(tmp_path / "full" / "syncd.db")


def test_an_activity_with_a_link_is_added_by_the_store(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
        templates: Templates) -> None:
    config = _crm(tmp_path, templates, "a@example.com")
    monkeypatch.setattr("syncd.crm.builtin.quick_add.QuickActivities.add_activity", None)
    code, out, _ = _run(capsys, config, "activity", "add", "Call", "--person", "1")
    assert code == 0 and out.startswith("Added activity 1")


# --- syncd activity list ------------------------------------------------------------------

LISTS = [(), ("--owner", "b@example.com"), ("--owner", "nobody@example.com"),
         ("--type", "call"), ("--open",), ("--done",), ("--deal", "1"), ("--person", "1"),
         ("--org", "1"), ("--from", "2026-12-10"), ("--to", "2026-12-10"), ("--deleted",),
         ("--limit", "2"), ("--limit", "0"), ("--owner", "a@example.com", "--open",
                                               "--from", "2026-01-01", "--deleted")]


@pytest.mark.parametrize("json_flag", [(), ("--json",)], ids=["text", "json"])
def test_activity_list_prints_the_same_on_both_paths(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
        templates: Templates, json_flag: tuple[str, ...]) -> None:
    # Dated, timed, whole-day, undated, done, deleted, with guests, and linked to a deal
    # (and so to its person) or to an organization.
    config = _crm(tmp_path, templates, "a@example.com", "b@example.com")
    adds = [*ADDS, ("Undated", "--type", "call"), ("Deal call", "--deal", "1", "--due",
                                                    "2026-12-10"),
            ("Org lunch", "--org", "1", "--done"), ("Gone", "--due", "2026-12-09")]
    for command in [("org", "add", "Acme"), ("deal", "add", "Big", "--person", "1"),
                    *(("activity", "add", *args, *(() if "--owner" in args else
                                                   ("--owner", "a@example.com")))
                      for args in adds),
                    ("activity", "delete", "8")]:
        assert _run(capsys, config, *command)[0] == 0, command
    for args in LISTS:
        fast, slow = _both(capsys, monkeypatch, config, config, *json_flag, "activity",
                           "list", *args)
        assert fast == slow, args
        assert fast[0] == (2 if "nobody@example.com" in args else 0)
