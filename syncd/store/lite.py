"""The database without SQLAlchemy, for the short commands: sqlite3 here, psycopg in
:mod:`syncd.store.quick_pg`.

``syncd status``, ``syncd activity add`` and ``activity list`` run a few statements;
importing SQLAlchemy (and Alembic) took most of their time (issue 16 item 5). They use
this path when it can serve them: a database of ours that exists and is at the newest
revision (:func:`open_quick`). Anything else (a database to create or migrate, a URL this
path does not read) is the full store's (:mod:`syncd.store.db`), and this path never
creates or changes a schema.

Both drivers run the same statements, written once here and in the quick modules with
``?`` marks: :class:`QuickDatabase` is the one place that knows how the two differ (the
marks, how a value is bound and read back, the write transaction, the errors), so the
SQLite and PostgreSQL paths cannot drift apart. Statements name the tables the SQLAlchemy
metadata declares (``tests/store/test_lite.py`` checks every table and column named here
against it, on both backends), and values go in and come out as SQLAlchemy's types store
and read them on each backend (on SQLite: timestamps as UTC text, flags as 0/1, JSON as
text).
"""

from __future__ import annotations

import json
import re
import sqlite3
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, closing, contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from functools import cache
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import quote

from syncd.errors import SyncdError
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
#: The scheme of the PostgreSQL URLs the quick path reads (:mod:`syncd.store.quick_pg`).
PG_SCHEME = "postgresql+psycopg://"
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


def day(value: date | None) -> str | None:
    """A ``Date`` column's text."""
    return None if value is None else value.strftime("%Y-%m-%d")


def clock(value: time | None) -> str | None:
    """A ``Time`` column's text (the fold is a column of its own)."""
    return None if value is None else value.strftime("%H:%M:%S.%f")


def from_json(value: str | None) -> Any:
    return None if value is None else json.loads(value)


#: The advisory lock every writer of the activity store takes first on PostgreSQL, so
#: the change feed's numbers are handed out in commit order
#: (:func:`syncd.crm.builtin.change_feed.lock_writers`): an arbitrary constant, "SYCD".
WRITER_LOCK_KEY = 0x5943_4443


class QuickDatabase(ABC):
    """One DB-API connection of the quick path, in autocommit mode (each read stands
    alone); :meth:`write` is a transaction holding the store's write lock.

    Statements are written with ``?`` marks and take Python values (datetimes, dates,
    times, flags); each backend's subclass binds them and reads columns back as
    SQLAlchemy's types do on it. Errors an admin can fix become the syncd errors the full
    store raises for them (:meth:`worded`).
    """

    #: SQLAlchemy's name of the backend ("sqlite", "postgresql").
    dialect: ClassVar[str]
    #: The driver's base exception.
    errors: ClassVar[type[Exception]]

    def __init__(self, conn: Any) -> None:
        self.conn = conn

    # --- statements -------------------------------------------------------------------------

    def statement(self, sql: str) -> str:
        """``sql`` in the driver's parameter style."""
        return sql

    def bind(self, value: Any) -> Any:
        """A Python value as the column of its type stores it."""
        return value

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Any:
        """Run one statement; returns the driver's cursor (iterable, ``fetchone``)."""
        return self.conn.execute(self.statement(sql), [self.bind(v) for v in params])

    def one(self, sql: str, params: Sequence[Any] = ()) -> Any:
        """The first row of a statement's answer, or None."""
        with closing(self.execute(sql, params)) as cursor:
            return cursor.fetchone()

    def insert(self, table: str, row: dict[str, Any], returning: str | None = None) -> Any:
        """Insert one row (column names from code, values bound); returns the new row's
        ``returning`` column when one is named."""
        columns = ", ".join(row)
        marks = ", ".join("?" for _ in row)
        sql = f"INSERT INTO {table} ({columns}) VALUES ({marks})"
        if returning is None:
            self.execute(sql, list(row.values())).close()
            return None
        return self.one(f"{sql} RETURNING {returning}", list(row.values()))[0]

    # --- columns read back as SQLAlchemy's types give them ------------------------------------

    @abstractmethod
    def instant(self, value: Any) -> datetime:
        """A ``UTCDateTime`` column: an aware UTC datetime."""

    def maybe_instant(self, value: Any) -> datetime | None:
        return None if value is None else self.instant(value)

    def day(self, value: Any) -> date | None:
        """A ``Date`` column."""
        return value

    def clock(self, value: Any) -> time | None:
        """A ``Time`` column (the fold is a column of its own)."""
        return value

    def flag(self, value: Any) -> bool:
        """A ``Boolean`` column."""
        return bool(value)

    def json(self, value: Any) -> Any:
        """A ``JSON`` column."""
        return value

    # --- transactions and errors --------------------------------------------------------------

    def failure(self, error: Exception) -> SyncdError | None:
        """The syncd error for a driver error an admin can fix, or None to leave it be."""
        return None

    @contextmanager
    def worded(self) -> Iterator[None]:
        """A failure an admin can fix (a full disk, a damaged file, a server gone) raises
        the syncd error the full store raises for it; anything else passes as it is."""
        try:
            yield
        except Exception as exc:
            found = self.failure(exc)
            if found is None:
                raise
            raise found from exc

    @abstractmethod
    def transaction(self) -> AbstractContextManager[None]:
        """A transaction holding the store's write lock from its start: committed when
        its block ends, rolled back when the block raises."""

    @contextmanager
    def write(self) -> Iterator[QuickDatabase]:
        """A write transaction holding the store's write lock from the start (as the full
        store's writers do): committed on success, rolled back on error."""
        with self.worded(), self.transaction():
            yield self

    def close(self) -> None:
        self.conn.close()


class LiteDatabase(QuickDatabase):
    """A SQLite file through sqlite3, values as SQLAlchemy stores them there."""

    dialect = "sqlite"
    errors = sqlite3.Error

    def __init__(self, conn: sqlite3.Connection, path: Path) -> None:
        super().__init__(conn)
        self.path = path

    def bind(self, value: Any) -> Any:
        if isinstance(value, bool):
            return int(value)
        if isinstance(value, datetime):
            return stamp(value)
        if isinstance(value, date):
            return day(value)
        if isinstance(value, time):
            return clock(value)
        return value

    def instant(self, value: Any) -> datetime:
        return instant(value)

    def day(self, value: Any) -> date | None:
        return None if value is None else date.fromisoformat(value)

    def clock(self, value: Any) -> time | None:
        return None if value is None else time.fromisoformat(value)

    def json(self, value: Any) -> Any:
        return from_json(value)

    def failure(self, error: Exception) -> SyncdError | None:
        if not isinstance(error, sqlite3.Error):
            return None
        return sqlite_error(str(self.path), f"sqlite:///{self.path}", error)

    @contextmanager
    def transaction(self) -> Iterator[None]:
        # BEGIN IMMEDIATE takes the database's write lock now, as lock_writers does.
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self.conn.rollback()
            raise
        self.conn.commit()


def open_quick(url: str) -> QuickDatabase | None:
    """The database at ``url`` without SQLAlchemy, or None when the full store must serve
    it: a URL neither path reads plainly, a database to make, or one not at the newest
    revision (the full store migrates it).

    Raises:
        DatabaseUnavailable: a PostgreSQL server that cannot be reached or refuses the
            connection, worded as the full store words it.
    """
    if sqlite_path(url) is not None:
        return open_lite(url)
    if url.startswith(PG_SCHEME):
        from syncd.store.quick_pg import open_pg

        return open_pg(url)
    return None


def is_newest(versions: list[str]) -> bool:
    """Whether ``alembic_version``'s rows name the newest revision, and it alone."""
    head = head_revision()
    return head is not None and versions == [head]


def at_newest(db: QuickDatabase) -> bool:
    """Whether ``db`` is one of ours at the newest revision (False when unsure)."""
    try:
        with closing(db.execute("SELECT version_num FROM alembic_version")) as cursor:
            versions = [row[0] for row in cursor]
    except db.errors:  # no version table: not a database of ours yet
        return False
    return is_newest(versions)


def open_lite(url: str) -> LiteDatabase | None:
    """The SQLite database at ``url`` through sqlite3, or None when the full store must
    serve it: not a plain SQLite file, no such file (the full store makes it private), or
    not at the newest revision."""
    path = sqlite_path(url)
    if path is None or head_revision() is None or not path.is_file():
        return None
    try:
        # mode=rw: never creates the file, even if it vanished since the check above.
        conn = sqlite3.connect(f"file:{quote(str(path.resolve()))}?mode=rw", uri=True,
                               timeout=10, isolation_level=None)
    except sqlite3.Error:
        return None
    db = LiteDatabase(conn, path)
    try:
        for pragma in SQLITE_PRAGMAS:
            conn.execute(pragma)
    except sqlite3.Error:  # not a database file: the full store words it
        db.close()
        return None
    if not at_newest(db):
        db.close()
        return None
    return db


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
    """The reads of ``syncd status``, each the statement the full stores run, on either
    backend."""

    def __init__(self, db: QuickDatabase) -> None:
        self.db = db

    def _count(self, sql: str, *params: Any) -> int:
        return int(self.db.one(sql, params)[0] or 0)

    def accounts(self) -> dict[str, AccountLine]:
        db = self.db
        rows = db.execute(
            "SELECT name, status, status_reason, last_run_at, last_outcome, last_counts, "
            "last_message FROM sync_accounts ORDER BY name")
        return {r[0]: AccountLine(r[0], r[1], r[2], db.maybe_instant(r[3]), r[4],
                                  db.json(r[5]), r[6]) for r in rows}

    def link_count(self, account: str) -> int:
        return self._count("SELECT count(*) FROM sync_links WHERE account = ?", account)

    def open_conflict_count(self, account: str) -> int:
        return self._count("SELECT count(*) FROM sync_conflicts WHERE account = ? "
                           "AND resolved = ?", account, False)

    def quarantine_count(self, account: str) -> int:
        return self._count("SELECT count(*) FROM sync_quarantine WHERE account = ? "
                           "AND state = 'quarantined'", account)

    def quarantine_list(self, account: str, *, limit: int) -> list[dict[str, Any]]:
        db = self.db
        rows = db.execute(
            "SELECT id, account, item_key, reason, version, attempts, state, first_at, "
            "last_at FROM sync_quarantine WHERE account = ? ORDER BY id LIMIT ?",
            (account, limit))
        return [{"id": r[0], "account": r[1], "item": r[2], "reason": r[3], "version": r[4],
                 "attempts": r[5], "state": r[6], "first_at": db.instant(r[7]),
                 "last_at": db.instant(r[8])} for r in rows]

    def channels(self) -> list[ChannelRow]:
        db = self.db
        rows = db.execute(
            "SELECT account, kind, state, reason, channel_id, resource_id, details, "
            "created_at, expires_at, owner, last_message_at, last_message_number, expect_by "
            "FROM push_channels ORDER BY account")
        return [ChannelRow(account=r[0], kind=r[1], state=r[2], reason=r[3], channel_id=r[4],
                           resource_id=r[5], details=dict(db.json(r[6]) or {}),
                           created_at=db.maybe_instant(r[7]),
                           expires_at=db.maybe_instant(r[8]), owner=r[9],
                           last_message_at=db.maybe_instant(r[10]),
                           last_message_number=r[11], expect_by=db.maybe_instant(r[12]))
                for r in rows]

    def budget_days(self, now: datetime) -> list[DayCount]:
        """Every scope's day that has not reset yet at ``now``."""
        db = self.db
        rows = db.execute(
            "SELECT scope, day, used, allowance, resets_at, throttled, halted_until, "
            "halt_reason FROM budget_days WHERE resets_at > ? ORDER BY scope, day", (now,))
        return [DayCount(r[0], r[1], r[2], r[3], db.instant(r[4]), r[5],
                         db.maybe_instant(r[6]), r[7]) for r in rows]
