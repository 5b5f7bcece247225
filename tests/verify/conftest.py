"""Fixtures for the repair tests: the replica tests' databases (PostgreSQL on
127.0.0.1:5432 for the session, skipped with a message when it cannot be reached; an
SQLite file per test)."""

from __future__ import annotations

from tests.replicas.conftest import any_db, pg, pg_url

__all__ = ["any_db", "pg", "pg_url"]
