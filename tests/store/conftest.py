"""Fixtures for the activity-store tests: every test runs on SQLite and on PostgreSQL.

* SQLite: the schema is migrated once per session into a template file, which each test
  then copies (a migration per test would dominate the run time).
* PostgreSQL: a fresh, uniquely named database on 127.0.0.1:5432 per test session,
  migrated once and dropped at the end.

Each store starts from emptied tables with their id counters reset. When the
  server cannot be reached the PostgreSQL tests are skipped with a message saying so.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest
from sqlalchemy import text

from syncd.crm.builtin.activities import ActivityStore
from syncd.store.db import Database
from tests.store.helpers import CRM_TABLES

PG_HOST = os.environ.get("SYNCD_TEST_PG_HOST", "127.0.0.1")
PG_PORT = int(os.environ.get("SYNCD_TEST_PG_PORT", "5432"))
PG_USER = os.environ.get("SYNCD_TEST_PG_USER", "postgres")
PG_ADMIN_DB = os.environ.get("SYNCD_TEST_PG_DB", "test")

StoreFactory = Callable[[], ActivityStore]

BACKENDS = [
    pytest.param("sqlite", id="sqlite"),
    pytest.param("postgresql", id="postgresql", marks=pytest.mark.postgres),
]


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An SQLite file migrated to head, copied by each test."""
    path = tmp_path_factory.mktemp("sqlite-template") / "template.sqlite"
    Database(f"sqlite:///{path}").close()  # closing the last connection checkpoints the WAL
    return path


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    """A fresh PostgreSQL database for this test session, dropped at the end."""
    admin = f"host={PG_HOST} port={PG_PORT} user={PG_USER} dbname={PG_ADMIN_DB}"
    name = f"syncd_store_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    try:
        conn = psycopg.connect(admin, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as exc:
        pytest.skip(f"PostgreSQL at {PG_HOST}:{PG_PORT} cannot be reached ({exc}); "
                    "the postgresql-backed store tests did not run")
    with conn:
        conn.execute(f'CREATE DATABASE "{name}"')
        # Throw-away data: no need to wait for each commit's WAL flush (several ms each).
        conn.execute(f'ALTER DATABASE "{name}" SET synchronous_commit = off')
    url = f"postgresql+psycopg://{PG_USER}@{PG_HOST}:{PG_PORT}/{name}"
    Database(url).close()  # migrate once
    yield url
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _empty(db: Database) -> None:
    # DELETE plus a sequence reset is several times faster than TRUNCATE on tables this
    # small, which matters when Hypothesis asks for a fresh store per example.
    with db.session() as session:
        for table in CRM_TABLES:
            where = " WHERE NOT is_default" if table == "activity_types" else ""
            session.execute(text(f"DELETE FROM {table}{where}"))
        if db.dialect == "sqlite":
            session.execute(text("DELETE FROM sqlite_sequence"))  # AUTOINCREMENT counters
            return
        for table in CRM_TABLES:
            if table not in ("activity_notes", "leads", "activity_types"):
                key = "seq" if table == "activity_changes" else "id"
                session.execute(text(
                    f"SELECT setval(pg_get_serial_sequence('{table}', '{key}'), 1, false)"))


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    """The database backend a test runs on."""
    return str(request.param)


@pytest.fixture
def new_store(backend: str, request: pytest.FixtureRequest,
              tmp_path: Path) -> Iterator[StoreFactory]:
    """Make empty stores on this test's backend (one per call; Hypothesis needs several)."""
    opened: list[Database] = []

    def make() -> ActivityStore:
        # One database per test; a second store in the same test (Hypothesis asks for
        # one per example) reuses the handle and starts from emptied tables.
        if not opened:
            if backend == "sqlite":
                template: Path = request.getfixturevalue("sqlite_template")
                path = tmp_path / "store.sqlite"
                shutil.copyfile(template, path)
                opened.append(Database(f"sqlite:///{path}"))
            else:
                opened.append(Database(request.getfixturevalue("pg_url")))
        db = opened[0]
        _empty(db)
        return ActivityStore(db)

    yield make
    for db in opened:
        db.close()


@pytest.fixture
def store(new_store: StoreFactory) -> ActivityStore:
    """An empty store (the six default types only) on this test's backend."""
    return new_store()

