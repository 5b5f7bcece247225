"""The psycopg quick path (syncd.store.quick_pg): it reads a database URL exactly as
SQLAlchemy does or leaves it to the full store, shows it as the full store's errors do
(no password), opens only a database of ours at the newest revision, and fails with the
full store's sentence."""

from __future__ import annotations

import socket
import threading
import time
import uuid
from collections.abc import Iterator

import psycopg
import pytest
from sqlalchemy.dialects.postgresql.psycopg import PGDialect_psycopg
from sqlalchemy.engine import make_url

from syncd.crm.builtin.quick_add import QuickActivities
from syncd.errors import DatabaseUnavailable
from syncd.report import describe
from syncd.store.db import Database
from syncd.store.db_errors import _shown
from syncd.store.lite import WRITER_LOCK_KEY, LiteStatus, open_quick
from syncd.store.quick_pg import PgDatabase, connect_args, open_pg, shown
from tests.pg_tables import PgTables
from tests.store.conftest import PG_ADMIN_DB, PG_HOST, PG_PORT, PG_USER

SECRET = "s3cr%40t"  # escaped "@": the password is "s3cr@t"

READ = [
    "postgresql+psycopg://syncd@db.internal/syncd",
    "postgresql+psycopg://syncd@127.0.0.1:5432/syncd",
    f"postgresql+psycopg://syncd:{SECRET}@db.internal:6432/syncd",
    "postgresql+psycopg://db.internal/syncd",
    "postgresql+psycopg://:@db.internal/syncd",  # empty login parts: left out
    "postgresql+psycopg://sy%20ncd:p%2Fw%3Fd@db.internal/my%20db",
    "postgresql+psycopg://syncd@db.internal/syncd?sslmode=verify-full"
    "&sslrootcert=/etc/ssl/ca%20bundle.pem&application_name=syncd%20cli",
    f"postgresql+psycopg://syncd@db.internal/syncd?password={SECRET}&sslpassword=x%26y",
    "postgresql+psycopg://syncd@db.internal/syncd?connect_timeout=3&sslmode=",  # blank: dropped
    "postgresql+psycopg://syncd@db.internal:0/syncd",  # port 0: left out, as SQLAlchemy does
]
LEFT = [
    "postgresql://syncd@db.internal/syncd",  # SQLAlchemy's default driver is psycopg2
    "postgresql+psycopg2://syncd@db.internal/syncd",
    "postgresql+psycopg://syncd:p@ss@db.internal/syncd",  # an unescaped "@"
    "postgresql+psycopg://syncd:p/ss@db.internal/syncd",  # a "/" in the password
    "postgresql+psycopg://syncd@[::1]:5432/syncd",
    "postgresql+psycopg://syncd@db.internal/syncd?host=a&host=b",  # several hosts
    "postgresql+psycopg://syncd@db.internal/syncd?sslmode=require&sslmode=disable",
    "postgresql+psycopg://syncd@db.internal/syncd?host=/run/postgresql",
    "postgresql+psycopg://syncd@db.internal:port/syncd",
    "postgresql+psycopg://syncd@db.internal",  # no database named
    "postgresql+psycopg://syncd@db.internal/",
    "postgresql+psycopg://syncd@db.internal/a/b",
    "postgresql+psycopg:///syncd?host=/run/postgresql",
    "postgresql+psycopg://syncd@db.internal/syncd#frag",
    "postgresql+psycopg://syncd@db.internal/syncd\n",
    "sqlite:////tmp/x.db",
    "",
]


@pytest.mark.parametrize("url", READ)
def test_a_plain_url_gives_psycopg_what_sqlalchemy_gives_it(url: str) -> None:
    expected = PGDialect_psycopg().create_connect_args(make_url(url))[1]
    expected.pop("client_encoding", None)
    assert connect_args(url) == expected


@pytest.mark.parametrize("url", READ)
def test_a_plain_url_is_shown_as_the_full_stores_errors_show_it(url: str) -> None:
    assert shown(url) == _shown(make_url(url))
    assert "s3cr" not in shown(url) and "x%26y" not in shown(url)


@pytest.mark.parametrize("url", LEFT)
def test_any_other_url_is_left_to_the_full_store(url: str) -> None:
    assert connect_args(url) is None
    with pytest.raises(ValueError):
        shown(url)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _full_store_error(url: str) -> str:
    with pytest.raises(DatabaseUnavailable) as raised:
        Database(url)
    return describe(raised.value)


@pytest.mark.postgres
@pytest.mark.parametrize("case", ["server down", "no such database", "no such role"])
def test_a_server_that_refuses_is_the_full_stores_sentence_without_the_password(
        pg_url: str, case: str) -> None:
    base = f"{PG_HOST}:{PG_PORT}"
    url = {"server down": f"postgresql+psycopg://{PG_USER}:{SECRET}@127.0.0.1:{_free_port()}/x",
           "no such database": f"postgresql+psycopg://{PG_USER}:{SECRET}@{base}/"
                               f"missing_{uuid.uuid4().hex[:8]}?sslpassword={SECRET}",
           "no such role": f"postgresql+psycopg://nobody_{uuid.uuid4().hex[:8]}:{SECRET}@{base}"
                           f"/{PG_ADMIN_DB}"}[case]
    with pytest.raises(DatabaseUnavailable) as raised:
        open_quick(url)
    said = describe(raised.value)
    assert said == _full_store_error(url)
    assert "s3cr" not in said and ":***@" in said
    assert "s3cr" not in repr(raised.value.__dict__)


@pytest.fixture
def empty_pg() -> Iterator[str]:
    """A new database without any table, dropped after the test."""
    name = f"syncd_quick_{uuid.uuid4().hex[:8]}"
    admin = f"host={PG_HOST} port={PG_PORT} user={PG_USER} dbname={PG_ADMIN_DB}"
    try:
        with psycopg.connect(admin, autocommit=True, connect_timeout=5) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
    except psycopg.OperationalError as exc:
        pytest.skip(f"PostgreSQL at {PG_HOST}:{PG_PORT} cannot be reached ({exc})")
    yield f"postgresql+psycopg://{PG_USER}@{PG_HOST}:{PG_PORT}/{name}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _tables(url: str) -> list[str]:
    with psycopg.connect(**connect_args(url) or {}) as conn:
        return [r[0] for r in conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY 1")]


@pytest.mark.postgres
def test_a_database_without_our_schema_or_at_another_revision_is_left_to_the_full_store(
        empty_pg: str) -> None:
    assert open_pg(empty_pg) is None
    assert _tables(empty_pg) == []  # nothing was made
    with psycopg.connect(**connect_args(empty_pg) or {}, autocommit=True) as conn:
        conn.execute("CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL)")
        conn.execute("INSERT INTO alembic_version VALUES ('0001_initial')")
    assert open_pg(empty_pg) is None
    assert _tables(empty_pg) == ["alembic_version"]  # nor migrated


@pytest.mark.postgres
def test_a_database_at_the_newest_revision_is_read_through_psycopg(pg_url: str) -> None:
    db = open_quick(pg_url)
    assert isinstance(db, PgDatabase)
    assert LiteStatus(db).link_count("nobody") == 0
    db.close()


@pytest.mark.postgres
def test_a_lost_connection_is_the_full_stores_sentence(pg_url: str) -> None:
    db = open_pg(pg_url)
    assert db is not None
    with psycopg.connect(**connect_args(pg_url) or {}, autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", (db.conn.info.backend_pid,))
    with pytest.raises(DatabaseUnavailable) as raised, db.worded():
        LiteStatus(db).accounts()
    assert raised.value.database == _shown(make_url(pg_url))
    db.close()


@pytest.mark.postgres
def test_a_statements_own_failure_passes_as_it_is(pg_url: str) -> None:
    db = open_pg(pg_url)
    assert db is not None
    with pytest.raises(psycopg.errors.UndefinedTable), db.worded():
        db.execute("SELECT * FROM no_such_table")
    db.close()


@pytest.mark.postgres
def test_a_quick_add_waits_for_the_store_writers_lock_as_every_store_writer_does(
        pg_url: str) -> None:
    """The change feed's numbers follow commit order only if every writer holds the
    advisory lock first (syncd.crm.builtin.change_feed.lock_writers)."""
    tables = PgTables(pg_url)
    tables.load()
    args = connect_args(pg_url) or {}
    with psycopg.connect(**args, autocommit=True) as conn:
        conn.execute("INSERT INTO users (email, name, time_zone, created_at) "
                     "VALUES ('a@example.com', '', 'UTC', now())")
    db = open_pg(pg_url)
    assert db is not None
    done: list[int] = []
    try:
        with psycopg.connect(**args) as holder:
            holder.execute("SELECT pg_advisory_xact_lock(%s)", (WRITER_LOCK_KEY,))
            adder = threading.Thread(target=lambda: done.append(QuickActivities(db).add_activity(
                owner_id=1, subject="Call").id))
            adder.start()
            with psycopg.connect(**args, autocommit=True) as watcher:
                for _ in range(200):  # until the add waits on the lock (at most ~10 s)
                    if watcher.execute("SELECT count(*) FROM pg_locks WHERE locktype = "
                                       "'advisory' AND NOT granted").fetchone() == (1,):
                        break
                    time.sleep(0.05)
                else:
                    pytest.fail("the quick add did not wait for the writers' lock")
                assert watcher.execute("SELECT count(*) FROM activities").fetchone() == (0,)
            holder.commit()
        adder.join(timeout=10)
        assert len(done) == 1
    finally:
        db.close()
        tables.load()
