"""Fixtures for the replica tests: a PostgreSQL database of their own (created on
127.0.0.1:5432 for the session, dropped at the end; skipped with a message when the server
cannot be reached), emptied before each test, and an SQLite one per test."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from sqlalchemy import text

from syncd.store.db import Database

PG_HOST = os.environ.get("SYNCD_TEST_PG_HOST", "127.0.0.1")
PG_PORT = int(os.environ.get("SYNCD_TEST_PG_PORT", "5432"))
PG_USER = os.environ.get("SYNCD_TEST_PG_USER", "postgres")
PG_ADMIN_DB = os.environ.get("SYNCD_TEST_PG_DB", "test")


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    """A fresh, migrated PostgreSQL database for this session."""
    admin = f"host={PG_HOST} port={PG_PORT} user={PG_USER} dbname={PG_ADMIN_DB}"
    name = f"syncd_replicas_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    try:
        conn = psycopg.connect(admin, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as exc:
        pytest.skip(f"PostgreSQL at {PG_HOST}:{PG_PORT} cannot be reached ({exc}); "
                    "the replica tests did not run")
    with conn:
        conn.execute(f'CREATE DATABASE "{name}"')
        conn.execute(f'ALTER DATABASE "{name}" SET synchronous_commit = off')
    url = f"postgresql+psycopg://{PG_USER}@{PG_HOST}:{PG_PORT}/{name}"
    Database(url).close()
    yield url
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def pg(pg_url: str) -> Iterator[Database]:
    """The session's PostgreSQL database with no accounts (nor their links)."""
    db = Database(pg_url, run_migrations=False)
    with db.session() as s:
        s.execute(text("TRUNCATE sync_accounts CASCADE"))
    yield db
    db.close()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def any_db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    """An empty database on each backend."""
    if request.param == "sqlite":
        db = Database(f"sqlite:///{tmp_path / 'state.db'}")
        yield db
        db.close()
    else:
        yield request.getfixturevalue("pg")
