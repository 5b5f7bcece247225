"""The database through the standard library's sqlite3, for the short commands.

``syncd status`` and ``syncd activity add`` run a few statements; importing SQLAlchemy
(and Alembic) took most of their time (issue 16 item 5). They use this module when it
can serve them: a SQLite database that exists and is at the newest revision. Anything
else (PostgreSQL, whose driver imports about as slowly as SQLAlchemy; a database to
create or migrate) is the full store's (:mod:`syncd.store.db`), and this module never
creates or changes a schema. Statements are plain SQL with bound parameters, on the
tables the SQLAlchemy metadata declares (``tests/store/test_lite.py`` checks every
table and column named here against it), with values stored as SQLAlchemy stores them
on SQLite (timestamps as UTC text, flags as 0/1, JSON as text).
"""

from __future__ import annotations

import json
import re
import sqlite3
from collections.abc import Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import quote

from syncd.store.db_errors import sqlite_error
from syncd.store.records import ChannelRow, DayCount

MIGRATIONS = Path(__file__).parent / "migrations"

#: Set on every SQLite connection, by either path. WAL lets the CLI read while the daemon
#: writes; synchronous=FULL because WAL with NORMAL can lose a committed transaction on
#: power loss (failure mode 29), and a lost "create intent" commit is exactly what the
#: idempotent protocol relies on.
SQLITE_PRAGMAS = ("PRAGMA journal_mode=WAL", "PRAGMA synchronous=FULL",
                  "PRAGMA foreign_keys=ON", "PRAGMA busy_timeout=10000")

_REVISION = re.compile(r"^(down_revision|revision)\b[^=]*=\s*['\"]?([\w-]*)", re.MULTILINE)
_SQLITE_URL = re.compile(r"^sqlite(\+pysqlite)?:///(?P<path>[^?%~]+)$")


@cache
def head_revision() -> str | None:
    """The newest revision of the migration scripts (None when there is not exactly one),
    read from their ``revision``/``down_revision`` lines, without Alembic."""
    revisions, parents = set(), set()
    for script in (MIGRATIONS / "versions").glob("*.py"):
        found = dict((key, value) for key, value in _REVISION.findall(script.read_text()))
        if found.get("revision"):
            revisions.add(found["revision"])
        if found.get("down_revision"):
            parents.add(found["down_revision"])
    heads = revisions - parents
    return heads.pop() if len(heads) == 1 else None


def sqlite_path(url: str) -> Path | None:
    """The file of a plain SQLite URL (``sqlite:///relative`` or ``sqlite:////absolute``);
    None for any other URL, and for one this module leaves to SQLAlchemy (options, escapes,
    ``~``, an in-memory database)."""
    found = _SQLITE_URL.match(url)
    if found is None or found["path"] == ":memory:":
        return None
    return Path(found["path"])


# --- values as SQLAlchemy stores them on SQLite ---------------------------------------------


def stamp(value: datetime) -> str:
    """An aware datetime as a ``UTCDateTime`` column holds it."""
    if value.tzinfo is None:
        raise ValueError("naive datetime given where a UTC instant is stored")
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")


def instant(value: str) -> datetime:
    """A ``UTCDateTime`` column's text as an aware UTC datetime."""
    parsed = datetime.fromisoformat(value)
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def maybe_instant(value: str | None) -> datetime | None:
    return None if value is None else instant(value)


def day(value: date | None) -> str | None:
    """A ``Date`` column's text."""
    return None if value is None else value.strftime("%Y-%m-%d")


def clock(value: time | None) -> str | None:
    """A ``Time`` column's text (the fold is a column of its own)."""
    return None if value is None else value.strftime("%H:%M:%S.%f")


def from_json(value: str | None) -> Any:
    return None if value is None else json.loads(value)


class LiteDatabase:
    """One sqlite3 connection in autocommit mode; :meth:`write` is a transaction."""

    def __init__(self, conn: sqlite3.Connection, path: Path) -> None:
        self.conn = conn
        self.path = path

    @contextmanager
    def worded(self) -> Iterator[None]:
        """A full disk or a damaged, unreadable or read-only file raises the syncd error
        the full store raises for it (:func:`syncd.store.db_errors.sqlite_error`)."""
        try:
            yield
        except sqlite3.Error as exc:
            found = sqlite_error(str(self.path), f"sqlite:///{self.path}", exc)
            if found is None:
                raise
            raise found from exc

    @contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        """A write transaction holding the database's write lock from the start (as the
        full store's writers do): committed on success, rolled back on error."""
        with self.worded():
            self.conn.execute("BEGIN IMMEDIATE")
            try:
                yield self.conn
            except BaseException:
                self.conn.rollback()
                raise
            self.conn.commit()

    def close(self) -> None:
        self.conn.close()


def open_lite(url: str) -> LiteDatabase | None:
    """The database at ``url`` through sqlite3, or None when the full store must serve it:
    not a plain SQLite file, no such file (the full store makes it private), or not at the
    newest revision (the full store migrates it)."""
    path = sqlite_path(url)
    head = head_revision()
    if path is None or head is None or not path.is_file():
        return None
    try:
        # mode=rw: never creates the file, even if it vanished since the check above.
        conn = sqlite3.connect(f"file:{quote(str(path.resolve()))}?mode=rw", uri=True,
                               timeout=10, isolation_level=None)
    except sqlite3.Error:
        return None
    try:
        for pragma in SQLITE_PRAGMAS:
            conn.execute(pragma)
        versions = [row[0] for row in conn.execute("SELECT version_num FROM alembic_version")]
    except sqlite3.Error:  # no version table: not a database of ours yet
        conn.close()
        return None
    if versions != [head]:
        conn.close()
        return None
    return LiteDatabase(conn, path)


# --- what `syncd status` reads (syncd.status_view builds its rows) --------------------------


@dataclass(frozen=True)
class AccountLine:
    """The columns of an account's row that ``syncd status`` shows."""

    name: str
    status: str
    status_reason: str | None
    last_run_at: datetime | None
    last_outcome: str | None
    last_counts: dict[str, Any] | None
    last_message: str | None


class LiteStatus:
    """The reads of ``syncd status``, each the statement the full stores run."""

    def __init__(self, db: LiteDatabase) -> None:
        self.conn = db.conn

    def _count(self, sql: str, *params: Any) -> int:
        with closing(self.conn.execute(sql, params)) as cursor:
            return int(cursor.fetchone()[0] or 0)

    def accounts(self) -> dict[str, AccountLine]:
        rows = self.conn.execute(
            "SELECT name, status, status_reason, last_run_at, last_outcome, last_counts, "
            "last_message FROM sync_accounts ORDER BY name")
        return {r[0]: AccountLine(r[0], r[1], r[2], maybe_instant(r[3]), r[4],
                                  from_json(r[5]), r[6]) for r in rows}

    def link_count(self, account: str) -> int:
        return self._count("SELECT count(*) FROM sync_links WHERE account = ?", account)

    def open_conflict_count(self, account: str) -> int:
        return self._count("SELECT count(*) FROM sync_conflicts WHERE account = ? "
                           "AND resolved = 0", account)

    def quarantine_count(self, account: str) -> int:
        return self._count("SELECT count(*) FROM sync_quarantine WHERE account = ? "
                           "AND state = 'quarantined'", account)

    def quarantine_list(self, account: str, *, limit: int) -> list[dict[str, Any]]:
        rows = self.conn.execute(
            "SELECT id, account, item_key, reason, version, attempts, state, first_at, "
            "last_at FROM sync_quarantine WHERE account = ? ORDER BY id LIMIT ?",
            (account, limit))
        return [{"id": r[0], "account": r[1], "item": r[2], "reason": r[3], "version": r[4],
                 "attempts": r[5], "state": r[6], "first_at": instant(r[7]),
                 "last_at": instant(r[8])} for r in rows]

    def channels(self) -> list[ChannelRow]:
        rows = self.conn.execute(
            "SELECT account, kind, state, reason, channel_id, resource_id, details, "
            "created_at, expires_at, owner, last_message_at, last_message_number, expect_by "
            "FROM push_channels ORDER BY account")
        return [ChannelRow(account=r[0], kind=r[1], state=r[2], reason=r[3], channel_id=r[4],
                           resource_id=r[5], details=dict(from_json(r[6]) or {}),
                           created_at=maybe_instant(r[7]), expires_at=maybe_instant(r[8]),
                           owner=r[9],
                           last_message_at=maybe_instant(r[10]), last_message_number=r[11],
                           expect_by=maybe_instant(r[12])) for r in rows]

    def budget_days(self, now: datetime) -> list[DayCount]:
        """Every scope's day that has not reset yet at ``now``."""
        rows = self.conn.execute(
            "SELECT scope, day, used, allowance, resets_at, throttled, halted_until, "
            "halt_reason FROM budget_days WHERE resets_at > ? ORDER BY scope, day",
            (stamp(now),))
        return [DayCount(r[0], r[1], r[2], r[3], instant(r[4]), r[5], maybe_instant(r[6]),
                         r[7]) for r in rows]
