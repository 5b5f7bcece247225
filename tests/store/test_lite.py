"""The plain sqlite3 path of the short commands (syncd.store.lite, crm.builtin.quick_add
and quick_list): it opens only a database of ours at the newest revision, never makes or
migrates one, and every table and column its SQL names is one the SQLAlchemy metadata
declares."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from alembic.config import Config as AlembicConfig
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine

import syncd.crm.builtin.tables
import syncd.store.booking_tables
import syncd.store.budget_tables
import syncd.store.channel_tables
import syncd.store.state_tables  # noqa: F401
from syncd.crm.builtin.quick_add import QuickActivities
from syncd.crm.builtin.views import ActivityFilter
from syncd.errors import DatabaseUnavailable, StorageFull
from syncd.model import Guest
from syncd.store.base import Base
from syncd.store.db import Database
from syncd.store.lite import MIGRATIONS, LiteStatus, head_revision, open_lite, sqlite_path


def test_the_newest_revision_is_read_from_the_migrations_as_alembic_reads_it() -> None:
    config = AlembicConfig()
    config.set_main_option("script_location", str(MIGRATIONS))
    assert head_revision() == ScriptDirectory.from_config(config).get_current_head()


@pytest.mark.parametrize("url, path", [
    ("sqlite:///relative/syncd.db", "relative/syncd.db"),
    ("sqlite:////var/lib/syncd/syncd.db", "/var/lib/syncd/syncd.db"),
    ("sqlite+pysqlite:////data/syncd.db", "/data/syncd.db"),
    ("sqlite:///:memory:", None), ("sqlite://", None), ("sqlite:////x.db?mode=ro", None),
    ("sqlite:////my%20data/x.db", None), ("sqlite:///~/x.db", None),
    ("postgresql+psycopg://syncd@127.0.0.1/syncd", None), ("sqlite+aiosqlite:////x.db", None),
])
def test_only_a_plain_sqlite_file_url_is_taken(url: str, path: str | None) -> None:
    assert sqlite_path(url) == (Path(path) if path else None)


def test_a_missing_database_is_left_to_the_full_store_and_not_made(tmp_path: Path) -> None:
    missing = tmp_path / "data" / "syncd.db"
    assert open_lite(f"sqlite:///{missing}") is None
    assert not missing.exists() and not missing.parent.exists()


def test_a_file_without_our_schema_or_at_another_revision_is_left_to_the_full_store(
        tmp_path: Path) -> None:
    other = tmp_path / "other.db"
    with closing(sqlite3.connect(other)) as conn:
        conn.execute("CREATE TABLE t (x)")
    assert open_lite(f"sqlite:///{other}") is None
    ours = tmp_path / "syncd.db"
    Database(f"sqlite:///{ours}").close()
    lite = open_lite(f"sqlite:///{ours}")
    assert lite is not None
    lite.close()
    with closing(sqlite3.connect(ours)) as conn, conn:
        conn.execute("UPDATE alembic_version SET version_num = '0001_initial'")
    assert open_lite(f"sqlite:///{ours}") is None
    with closing(sqlite3.connect(ours)) as conn:  # nothing was migrated meanwhile
        assert conn.execute("SELECT version_num FROM alembic_version").fetchall() == [
            ("0001_initial",)]


def test_every_statement_names_only_tables_and_columns_of_the_metadata(tmp_path: Path) -> None:
    """The schema here comes from the SQLAlchemy metadata alone (not the migrations), so
    a column renamed there fails this test, not a user."""
    path = tmp_path / "metadata.db"
    engine = create_engine(f"sqlite:///{path}")
    Base.metadata.create_all(engine)
    engine.dispose()
    with closing(sqlite3.connect(path)) as conn, conn:
        conn.execute("CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL)")
        conn.execute("INSERT INTO alembic_version VALUES (?)", (head_revision(),))
        conn.execute("INSERT INTO users (id, email, name, time_zone, created_at) "
                     "VALUES (1, 'a@example.com', '', 'Europe/Oslo', '2026-12-07 09:00:00')")
        conn.execute("INSERT INTO activity_types (key, name, color, is_default, active) "
                     "VALUES ('call', 'Call', '#888888', 1, 1)")
        conn.execute("INSERT INTO persons (id, name, email, visible_to_owner_only, "
                     "update_time) VALUES (7, 'Pia', 'pia@client.test', 0, "
                     "'2026-12-07 09:00:00')")
    lite = open_lite(f"sqlite:///{path}")
    assert lite is not None
    said: list[str] = []
    lite.conn.set_trace_callback(said.append)
    reads = LiteStatus(lite)
    assert reads.accounts() == {} and reads.channels() == []
    assert reads.budget_days(datetime.now(UTC)) == []
    assert (reads.link_count("a"), reads.open_conflict_count("a"),
            reads.quarantine_count("a"), reads.quarantine_list("a", limit=10)) == (0, 0, 0, [])
    store = QuickActivities(lite)
    assert store.get_user_by_email("A@example.com") is not None
    assert [u.id for u in store.list_users()] == [1]
    added = store.add_activity(owner_id=1, subject="Call", type="call",
                               guests=["pia@client.test", 7, "x@elsewhere.test"], note="n",
                               done=True)
    assert added.guests == (Guest("pia@client.test", "Pia", 7),
                            Guest("x@elsewhere.test", None, None))
    assert store.list_activities(ActivityFilter()) == [added]
    assert store.list_activities(ActivityFilter(
        owner_id=1, type="call", done=True, deal_id=1, person_id=7, org_id=1,
        due_from=date(2026, 1, 1), due_to=date(2026, 12, 31), include_deleted=True,
        limit=5)) == []
    names = ("sync_accounts", "sync_links", "sync_conflicts", "sync_quarantine",
             "push_channels", "budget_days", "users", "activity_types", "persons",
             "activities", "activity_guests", "activity_notes", "activity_changes",
             "activity_links")
    assert all(any(name in statement for statement in said) for name in names)
    lite.close()


@pytest.mark.parametrize("code, error", [(sqlite3.SQLITE_FULL, StorageFull),
                                         (sqlite3.SQLITE_CORRUPT, DatabaseUnavailable),
                                         (sqlite3.SQLITE_READONLY, DatabaseUnavailable)])
def test_a_failure_an_admin_can_fix_is_the_full_stores_error(
        tmp_path: Path, code: int, error: type[Exception]) -> None:
    path = tmp_path / "syncd.db"
    Database(f"sqlite:///{path}").close()
    lite = open_lite(f"sqlite:///{path}")
    assert lite is not None
    failure = sqlite3.OperationalError("simulated")
    failure.sqlite_errorcode = code
    with pytest.raises(error) as raised, lite.write():
        raise failure
    assert str(path) in str(raised.value.fields)  # type: ignore[attr-defined]
    busy = sqlite3.OperationalError("database is locked")  # left as it is, as the store does
    with pytest.raises(sqlite3.OperationalError), lite.worded():
        raise busy
    lite.close()
