"""A plain command loads only what it needs (issue 16 item 5).

Start-up time is nearly all imports, so the tests count what a command imported instead
of timing it (wall-clock figures: bench/results/cli.md). Each command runs in a fresh
interpreter, on a config with one account of every provider, and reports ``sys.modules``.
"""

from __future__ import annotations

import argparse
import importlib
import json
import subprocess
import sys
from pathlib import Path

import pytest

from syncd.cli import COMMANDS, main
from tests.pg_tables import PgTables
from tests.store.conftest import pg_url  # noqa: F401  (a fixture)

ROOT = Path(__file__).resolve().parent.parent

#: Client libraries and syncd modules that only a sync, the daemon or a sign-in needs.
SYNC_ONLY = ("googleapiclient", "google.auth", "google_auth_oauthlib", "httplib2", "msal",
             "caldav", "icalendar", "lxml", "requests", "apscheduler", "cheroot", "radicale",
             "cryptography", "bcrypt", "alembic", "mako",
             "syncd.engine.runner", "syncd.engine.execute", "syncd.engine.plan",
             "syncd.daemon", "connectors.caldav", "connectors.google", "connectors.outlook")
#: What the full store loads; ``status`` and ``activity add`` read and write a SQLite
#: database at the newest revision through plain sqlite3 instead (syncd.store.lite).
DATABASE = ("sqlalchemy", "syncd.store.db")
#: The built-in CRM's tables and store: ``status`` of configured accounts reads no CRM.
CRM = ("syncd.crm.builtin.tables", "syncd.crm.builtin.activities",
       "syncd.crm.builtin.change_feed", "syncd.crm.pipedrive")

_PROBE = """
import json, sys
from syncd.cli import main
code = main(sys.argv[1:])
print(json.dumps({"code": code, "modules": sorted(sys.modules)}), file=sys.stderr)
"""


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "syncd.toml"
    path.write_text(f"""
[syncd]
data_dir = "{tmp_path / 'data'}"
[[account]]
name = "dav"
provider = "caldav"
owner = "alice@example.com"
calendar = "https://dav.example.com/alice/crm/"
[account.auth]
url = "https://dav.example.com/"
username = "alice"
password = "env:NO_SUCH_PASSWORD"
[[account]]
name = "google"
provider = "google"
owner = "bob@example.com"
[account.auth]
mode = "service_account"
service_account_file = "file:/nonexistent/google.json"
[[account]]
name = "outlook"
provider = "outlook"
owner = "carol@example.com"
[account.auth]
tenant = "contoso.onmicrosoft.com"
client_id = "00000000-0000-0000-0000-000000000000"
client_secret = "env:NO_SUCH_SECRET"
""")
    path.chmod(0o600)
    return path


def imported(config: Path, *args: str, code: int | None = 0) -> set[str]:
    """The modules ``syncd --config CONFIG ARGS`` imported, in a fresh interpreter (which
    exits with ``code``, unless None)."""
    done = subprocess.run([sys.executable, "-c", _PROBE, "--config", str(config), *args],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    *said, last = done.stderr.strip().splitlines()
    report = json.loads(last)
    assert code is None or report["code"] == code, said
    return set(report["modules"])


def loaded(modules: set[str], names: tuple[str, ...]) -> list[str]:
    return [n for n in names if any(m == n or m.startswith(n + ".") for m in modules)]


def test_help_and_config_options_load_neither_the_database_nor_any_client(
        config: Path) -> None:
    for args in (("status", "--help"), ("sync", "--help"), ("config", "options")):
        modules = imported(config, *args)
        assert loaded(modules, SYNC_ONLY + DATABASE) == [], args


def test_a_command_loads_the_module_of_its_own_parser_only(config: Path) -> None:
    every = {where.partition(":")[0] for _, _, where in COMMANDS} - {"syncd.cli"}
    assert every & imported(config, "--help") == set()
    assert every & imported(config, "status", "--help") == {"syncd.cli_sync"}
    assert every & imported(config, "config", "check", code=2) == set()


def test_every_listed_command_is_built_by_the_function_named_and_no_other_is(
        capsys: pytest.CaptureFixture[str]) -> None:
    built: dict[str, str] = {}
    for where in dict.fromkeys(where for _, _, where in COMMANDS):
        module, _, function = where.partition(":")
        sub = argparse.ArgumentParser(prog="syncd").add_subparsers()
        getattr(importlib.import_module(module), function)(sub)
        built.update(dict.fromkeys(sub.choices or {}, where))  # type: ignore[arg-type]
    assert built == {name: where for name, _, where in COMMANDS}
    for name, _, _ in COMMANDS:  # each built when given, under its own name
        assert main([name, "--help"]) == 0
        assert capsys.readouterr().out.startswith(f"usage: syncd {name} ")


#: What a command that syncs nothing must not load on a config naming a SQLite file
#: (``database = "sqlite:///..."``): the ORM, a provider's client, the engine.
NEVER_PLAIN = ("sqlalchemy", "googleapiclient", "msal", "caldav", "syncd.engine.runner",
               "syncd.engine.execute", "syncd.engine.plan", "syncd.store.db")


def test_short_commands_on_a_named_sqlite_file_load_no_sqlalchemy_engine_or_client(
        config: Path, tmp_path: Path) -> None:
    text = config.read_text().replace(
        "[syncd]\n", f'[syncd]\ndatabase = "sqlite:///{tmp_path / "named.db"}"\n', 1)
    config.write_text(text)
    imported(config, "user", "add", "alice@example.com")  # makes the database (Alembic)
    imported(config, "status")  # and the accounts' rows
    for args in (("status",), ("activity", "add", "Call", "--owner", "alice@example.com",
                               "--due", "2026-12-10", "--guest", "bob@example.com"),
                 ("activity", "list"), ("activity", "list", "--owner", "alice@example.com",
                                        "--open", "--deal", "1"),
                 ("--json", "activity", "list")):
        assert loaded(imported(config, *args), NEVER_PLAIN + SYNC_ONLY) == [], args
    assert loaded(imported(config, "config", "check", code=2), NEVER_PLAIN) == []
    assert (tmp_path / "named.db").is_file() and not (tmp_path / "data" / "syncd.db").exists()


@pytest.mark.postgres
def test_short_commands_on_postgresql_load_psycopg_but_no_sqlalchemy_engine_or_client(
        config: Path, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    url = request.getfixturevalue("pg_url")
    tables = PgTables(url)
    tables.load()
    config.write_text(config.read_text().replace(
        "[syncd]\n", f'[syncd]\ndatabase = "{url}"\n', 1))
    # The user and the accounts' rows, made in this process (a new one's start-up each
    # is most of this test's time).
    assert main(["--config", str(config), "user", "add", "alice@example.com"]) == 0
    assert main(["--config", str(config), "status"]) == 0
    try:
        for args in (("status",), ("activity", "add", "Call", "--owner", "alice@example.com",
                                   "--due", "2026-12-10", "--guest", "bob@example.com"),
                     ("activity", "list", "--open")):
            modules = imported(config, *args)
            assert loaded(modules, NEVER_PLAIN + SYNC_ONLY) == [], args
            assert "syncd.store.quick_pg" in modules  # the probe sees the psycopg path
    finally:
        tables.load()
    assert not (tmp_path / "data" / "syncd.db").exists()


def test_status_reads_the_database_without_sqlalchemy_engine_or_clients(config: Path) -> None:
    imported(config, "status")  # the first command makes the database (Alembic, once)
    modules = imported(config, "status")
    assert loaded(modules, DATABASE) == []  # plain sqlite3 (syncd.store.lite)
    assert loaded(modules, SYNC_ONLY) == []
    assert loaded(modules, CRM) == []


def test_activity_commands_load_nothing_of_sync_and_add_and_list_no_sqlalchemy(
        config: Path) -> None:
    imported(config, "user", "add", "alice@example.com")
    add = imported(config, "activity", "add", "Call", "--owner", "alice@example.com",
                   "--due", "2026-12-10", "--guest", "bob@example.com", "--note", "n")
    assert loaded(add, SYNC_ONLY + DATABASE) == []
    assert loaded(imported(config, "activity", "list"), SYNC_ONLY + DATABASE) == []
    # The other activity commands still take the full store.
    show = imported(config, "activity", "show", "1")
    assert loaded(show, DATABASE) == list(DATABASE)
    assert loaded(show, SYNC_ONLY) == []


def test_the_full_path_still_serves_what_the_quick_one_does_not(config: Path) -> None:
    # The same probe where the quick path steps aside (a link to recompute, A10): the
    # lists above can fail.
    imported(config, "user", "add", "alice@example.com")
    imported(config, "person", "add", "Pia")
    modules = imported(config, "activity", "add", "Call", "--owner", "alice@example.com",
                       "--person", "1")
    assert loaded(modules, DATABASE) == list(DATABASE)
    assert loaded(modules, SYNC_ONLY) == []


def test_the_probe_sees_what_a_sync_loads(config: Path) -> None:
    # The same probe on a command that does sync: the lists above can fail.
    # (It fails, there being no server, after loading the CalDAV client.)
    modules = imported(config, "sync", "--account", "dav", "--dry-run", code=None)
    assert {"caldav", "lxml", "connectors.caldav"} <= set(loaded(modules, SYNC_ONLY))
