"""``syncd status``, ``activity add`` and ``activity list`` without SQLAlchemy (sqlite3,
or psycopg on PostgreSQL) answer, write and fail exactly as through the full store
(issue 16 item 5).

Each case runs once on the quick path and once with it turned off (``open_quick``
answering None, as it does for a database to migrate), on SQLite and on PostgreSQL, and
compares the printed output, the exit code and, for ``add``, every row of every table.
"""

from __future__ import annotations

import json
import re
import socket
import sqlite3
import uuid
from collections.abc import Iterator
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
from tests.pg_tables import PgTables, Tables
from tests.store.conftest import (
    PG_ADMIN_DB,
    PG_HOST,
    PG_PORT,
    PG_USER,
    pg_url,  # noqa: F401  (a fixture)
)

NAMES = ("alice", "bob", "carol", "dave", "erin")
ACCOUNTS = "".join(
    f'[[account]]\nname = "{name}"\nprovider = "caldav"\nowner = "{name}@example.com"\n'
    f'calendar = "https://dav.example.com/{name}/work/"\n[account.auth]\n'
    f'url = "https://dav.example.com/"\nusername = "{name}"\npassword = "env:NOPE"\n'
    for name in NAMES)
STAMP = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{6}$")
UID = re.compile(r"^[0-9a-f]{32}$")


class Backend:
    """Where a test's database lives: a SQLite file in its data folder (``url`` None),
    or the session's PostgreSQL database, emptied first (``url`` its URL)."""

    def __init__(self, url: str | None) -> None:
        self.url = url
        self.pg = PgTables(url) if url else None
        if self.pg is not None:
            self.pg.load()

    def database(self, folder: Path) -> str:
        return self.url or f"sqlite:///{folder / 'syncd.db'}"

    def config(self, folder: Path, extra: str = "", accounts: str = ACCOUNTS) -> Path:
        folder.mkdir(mode=0o700, exist_ok=True)
        config = folder / "syncd.toml"
        database = f'database = "{self.url}"\n' if self.url else ""
        config.write_text(f'[syncd]\ndata_dir = "{folder}"\n{database}{extra}{accounts}')
        config.chmod(0o600)
        return config


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def backend(request: pytest.FixtureRequest) -> Iterator[Backend]:
    if request.param == "sqlite":
        yield Backend(None)
        return
    where = Backend(request.getfixturevalue("pg_url"))
    yield where
    assert where.pg is not None
    where.pg.load()  # leave the session's database as the migrations made it


def _run(capsys: pytest.CaptureFixture[str], config: Path, *args: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main(["--config", str(config), *args])
    out, err = capsys.readouterr()
    return code, out, err


def _no_full_store(*args: Any, **kwargs: Any) -> None:
    raise AssertionError("the quick path opened the full store")


def _fast(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, config: Path,
          *args: str) -> tuple[int, str, str]:
    """``args`` on the quick path, which must not open the full store."""
    with monkeypatch.context() as patched:
        patched.setattr(syncd.store.db.Database, "__init__", _no_full_store)
        return _run(capsys, config, *args)


def _slow(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, config: Path,
          *args: str) -> tuple[int, str, str]:
    """``args`` on the full path."""
    with monkeypatch.context() as patched:
        patched.setattr(syncd.store.lite, "open_quick", lambda url: None)
        return _run(capsys, config, *args)


def _both(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
          config: Path, *args: str) -> tuple[tuple[int, str, str], ...]:
    """``args`` run on the quick path, then on the full path, against ``config``."""
    return (_fast(capsys, monkeypatch, config, *args),
            _slow(capsys, monkeypatch, config, *args))


# --- syncd status -------------------------------------------------------------------------


def _accounts_in_every_state(url: str) -> None:
    """alice ok after a run with counts, bob failing and resting, carol needing sign-in,
    dave with links, conflicts and failed items, erin paused; channels in each state and
    a Pipedrive company's day over 75 % and halted."""
    db = Database(url)
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
        backend: Backend, http: str) -> None:
    config = backend.config(tmp_path, http)
    _accounts_in_every_state(backend.database(tmp_path))
    for args in (("status",), ("--json", "status")):
        fast, slow = _both(capsys, monkeypatch, config, *args)
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
        tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
        backend: Backend) -> None:
    config = backend.config(tmp_path)
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
        tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
        backend: Backend) -> None:
    config = backend.config(tmp_path, accounts="")
    for email in ("alice@example.com", "bob@example.com"):
        assert _run(capsys, config, "user", "add", email)[0] == 0
    assert _run(capsys, config, "status")[0] == 0  # the accounts' rows are made
    StateStore(Database(backend.database(tmp_path))).update_account(
        "embedded:bob@example.com", status="failing", last_outcome="failed",
        last_message="The embedded server did not answer.")
    for args in (("status",), ("--json", "status")):
        fast, slow = _both(capsys, monkeypatch, config, *args)
        assert fast == slow
    assert fast[1].count("embedded:") == 2


def test_a_teams_status_takes_the_full_path(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
        backend: Backend) -> None:
    config = backend.config(tmp_path)
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


class Crm:
    """Databases of the CRM tests, made once per module and backend (a migration per test
    would be most of its time) by the users they hold, and copied for each test."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.sqlite: dict[tuple[str, ...], Path] = {}
        self.pg: dict[tuple[str, ...], Tables] = {}

    def make(self, backend: Backend, folder: Path, *users: str) -> Path:
        """A data folder (its config returned) with ``users`` and three persons (1 and 3
        with an e-mail) in its database."""
        config = backend.config(folder)
        if backend.pg is not None:
            if users not in self.pg:
                backend.pg.load()
                self._fill(config, users)
                self.pg[users] = backend.pg.rows()
            backend.pg.load(self.pg[users])
            return config
        if users not in self.sqlite:
            made = self.folder / f"users-{len(self.sqlite)}"
            self._fill(backend.config(made), users)
            self.sqlite[users] = made / "syncd.db"
        with closing(sqlite3.connect(self.sqlite[users])) as source, \
                closing(sqlite3.connect(folder / "syncd.db")) as copy:
            source.backup(copy)  # with what is still in the WAL file
        return config

    @staticmethod
    def _fill(config: Path, users: tuple[str, ...]) -> None:
        commands = [("user", "add", email) for email in users] + [
            ("person", "add", "Pia", "--email", "pia@client.test"), ("person", "add", "Ola"),
            ("person", "add", "Kari", "--email", "kari@client.test")]
        for command in commands:
            assert main(["--config", str(config), *command]) == 0


@pytest.fixture(scope="module")
def crm(tmp_path_factory: pytest.TempPathFactory) -> Crm:
    return Crm(tmp_path_factory.mktemp("templates"))


def _shaped(column: str, value: Any) -> Any:
    """A stamp or a random uid replaced by its shape (two runs differ in them by nature),
    after checking it has that shape."""
    stamped = column == "at" or column.endswith(("_at", "_time"))
    if stamped and (isinstance(value, datetime) or (isinstance(value, str)
                    and STAMP.match(value))):
        return "<stamp>"
    if column == "sync_uid" and value is not None:
        assert UID.match(value)
        return "<uid>"
    return value


def _tables(backend: Backend, folder: Path) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table of the test's database, shaped (:func:`_shaped`)."""
    if backend.pg is not None:
        found = backend.pg.rows()
    else:
        found = {}
        with closing(sqlite3.connect(folder / "syncd.db")) as conn:
            for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table' "
                                        "AND name NOT IN ('alembic_version', 'sqlite_sequence')"):
                cursor = conn.execute(f'SELECT * FROM "{name}"')
                found[name] = ([d[0] for d in cursor.description], cursor.fetchall())
    return {name: sorted((tuple((c, _shaped(c, v)) for c, v in zip(columns, row, strict=True))
                          for row in rows), key=repr)
            for name, (columns, rows) in found.items()}


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
        backend: Backend, crm: Crm, args: tuple[str, ...], json_flag: tuple[str, ...]) -> None:
    users = ("a@example.com", "b@example.com")
    if "--owner" not in args:
        args = (*args, "--owner", "a@example.com")
    quick, full = tmp_path / "quick", tmp_path / "full"
    config = crm.make(backend, quick, *users)
    fast_code, fast_out, fast_err = _fast(capsys, monkeypatch, config, *json_flag, "activity",
                                          "add", *args)
    written = _tables(backend, quick)
    config = crm.make(backend, full, *users)
    slow_code, slow_out, slow_err = _slow(capsys, monkeypatch, config, *json_flag, "activity",
                                          "add", *args)
    assert (fast_code, fast_err) == (slow_code, slow_err), (fast_err, slow_err)
    if json_flag and fast_code == 0:
        assert _shaped_json(fast_out) == _shaped_json(slow_out)
    else:
        assert fast_out == slow_out
    assert written == _tables(backend, full)


def test_the_quick_add_writes_the_activity_its_guests_note_and_one_change(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
        backend: Backend, crm: Crm) -> None:
    config = crm.make(backend, tmp_path, "a@example.com", "b@example.com")
    code, _, _ = _fast(capsys, monkeypatch, config, "activity", "add", *ADDS[1], "--owner",
                       "b@example.com")
    assert code == 0
    tables = _tables(backend, tmp_path)
    [activity] = tables["activities"]
    assert dict(activity)["owner_id"] == 2
    assert str(dict(activity)["due_time"]).startswith("14:30:00")
    assert sorted((dict(g)["position"], dict(g)["email"], dict(g)["person_id"], dict(g)["name"])
                  for g in tables["activity_guests"]) == [
        (0, "pia@client.test", 1, "Pia"), (1, "kari@client.test", 3, "Kari"),
        (2, "x@elsewhere.test", None, None)]
    assert [dict(n)["text"] for n in tables["activity_notes"]] == ["ask about the budget"]
    assert [(dict(c)["kind"], dict(c)["activity_id"]) for c in tables["activity_changes"]] == [
        ("insert", dict(activity)["id"])]


@pytest.mark.parametrize("owner", [(), ("--owner", "a@example.com")])
@pytest.mark.parametrize("users", [(), ("a@example.com", "b@example.com")])
def test_the_owner_sentences_are_the_same_on_both_paths(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
        backend: Backend, crm: Crm, owner: tuple[str, ...], users: tuple[str, ...]) -> None:
    quick, full = tmp_path / "quick", tmp_path / "full"
    config = crm.make(backend, quick, *users)
    fast = _fast(capsys, monkeypatch, config, "activity", "add", "Call", *owner)
    written = _tables(backend, quick)
    config = crm.make(backend, full, *users)
    assert fast == _slow(capsys, monkeypatch, config, "activity", "add", "Call", *owner)
    assert written == _tables(backend, full)


def test_an_activity_with_a_link_is_added_by_the_store(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
        backend: Backend, crm: Crm) -> None:
    config = crm.make(backend, tmp_path, "a@example.com")
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
        backend: Backend, crm: Crm, json_flag: tuple[str, ...]) -> None:
    # Dated, timed, whole-day, undated, done, deleted, with guests, and linked to a deal
    # (and so to its person) or to an organization.
    config = crm.make(backend, tmp_path, "a@example.com", "b@example.com")
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
        fast, slow = _both(capsys, monkeypatch, config, *json_flag, "activity", "list",
                           *args)
        assert fast == slow, args
        assert fast[0] == (2 if "nobody@example.com" in args else 0)


# --- a database that cannot be used -------------------------------------------------------

SECRET = "s3cr%40t"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.postgres
@pytest.mark.usefixtures("pg_url")  # skipped, saying so, where there is no server
@pytest.mark.parametrize("case", ["server down", "no such database", "no such role"])
@pytest.mark.parametrize("command", [("status",), ("activity", "list"),
                                     ("activity", "add", "Call", "--owner", "a@example.com")])
def test_a_server_that_refuses_is_one_sentence_on_both_paths_without_the_password(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
        case: str, command: tuple[str, ...]) -> None:
    server = f"{PG_HOST}:{PG_PORT}"
    monkeypatch.setenv("SYNCD_TEST_DATABASE", {
        "server down": f"postgresql+psycopg://{PG_USER}:{SECRET}@127.0.0.1:{_free_port()}/x",
        "no such database": f"postgresql+psycopg://{PG_USER}:{SECRET}@{server}/missing_"
                            f"{uuid.uuid4().hex[:8]}?sslpassword={SECRET}",
        "no such role": f"postgresql+psycopg://nobody_{uuid.uuid4().hex[:8]}:{SECRET}@{server}"
                        f"/{PG_ADMIN_DB}"}[case])
    config = Backend(None).config(tmp_path, 'database = "env:SYNCD_TEST_DATABASE"\n')
    fast, slow = _both(capsys, monkeypatch, config, *command)
    assert fast == slow
    code, out, err = fast
    assert code == 1 and out == "" and err.startswith("syncd: The database postgresql+psycopg")
    assert len(err.splitlines()) == 1 and ":***@" in err and "s3cr" not in err
