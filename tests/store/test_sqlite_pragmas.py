"""How the SQLite state database is opened (failure mode 29, and what T4 relies on).

WAL with ``synchronous=NORMAL`` may lose a committed transaction at a power cut, so the
state database runs with ``synchronous=FULL``; ``busy_timeout`` makes a second writer wait
instead of failing with "database is locked". Both paths that open the file, the full
store (SQLAlchemy) and the quick one (sqlite3, for ``status`` and ``activity add``), are
asked what the connection they hand out actually runs with.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, text

from syncd.store.db import Database
from syncd.store.lite import open_lite

# PRAGMA synchronous: 0 OFF, 1 NORMAL, 2 FULL, 3 EXTRA. (FULL is also most builds' default:
# what this catches is a change to NORMAL or OFF for speed.)
FULL = 2


def settings(ask: Callable[[str], Any]) -> dict[str, Any]:
    """What ``ask`` (a pragma's name -> its value on one connection) says of each setting."""
    return {name: ask(name) for name in
            ("journal_mode", "synchronous", "busy_timeout", "foreign_keys")}


def check(found: dict[str, Any]) -> None:
    assert found["journal_mode"] == "wal"
    assert found["synchronous"] == FULL
    assert int(found["busy_timeout"]) >= 5000
    assert found["foreign_keys"] == 1


def test_the_state_database_is_opened_with_wal_full_sync_and_a_busy_timeout(
        tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'state.db'}")
    try:
        for _ in range(2):  # a pooled connection handed out again keeps them
            with db.engine.connect() as conn:

                def ask(name: str, conn: Connection = conn) -> Any:
                    return conn.execute(text(f"PRAGMA {name}")).scalar()

                check(settings(ask))
    finally:
        db.close()


def test_the_quick_path_opens_sqlite_the_same_way(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'state.db'}"
    Database(url).close()  # made and migrated by the full store, as in real use
    lite = open_lite(url)
    assert lite is not None
    try:
        conn: sqlite3.Connection = lite.conn
        check(settings(lambda name: conn.execute(f"PRAGMA {name}").fetchone()[0]))
    finally:
        lite.close()
