"""Fixtures for the replica tests: the PostgreSQL database of tests/store (made on
127.0.0.1:5432 for the session, dropped at the end; skipped with a message when the server
cannot be reached), emptied before each test, and an SQLite one per test."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text

from syncd.store.db import Database
from tests.store.conftest import pg_url

__all__ = ["pg_url"]


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
