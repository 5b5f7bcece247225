"""Opening the database: engine settings per backend, and migrations on start.

SQLite is the embedded default; PostgreSQL (``postgresql+psycopg://…``) serves teams and
several replicas. The schema is owned by Alembic (``syncd/store/migrations``); opening a
database brings it to the newest revision, so an upgrade needs no manual step. A database
already at the newest revision is recognised with one query, without loading Alembic
(about half of a short command's start-up otherwise).
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DisconnectionError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from syncd.store.db_errors import translate_error
from syncd.store.lite import MIGRATIONS, SQLITE_PRAGMAS, is_newest


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    for pragma in SQLITE_PRAGMAS:
        cur.execute(pragma)
    cur.close()


def _private_file(path: Path) -> None:
    """Make a new database file (and its folder) readable by its owner alone, whatever the
    umask: it holds the private notes. SQLite gives its -wal and -shm files the same mode,
    and takes an empty file for an empty database."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    with suppress(FileExistsError):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))


#: Connections beside the workers' (the scheduler's jobs, the HTTP receiver, the CRM watch).
SPARE_CONNECTIONS = 4


#: A pooled connection that sat unused longer than this is checked (``SELECT 1``) before
#: it is handed out, so one the server closed meanwhile (a restart, an idle timeout) is
#: replaced instead of failing a cycle. One in steady use is not: checking every
#: checkout (``pool_pre_ping``) was a third of an idle cycle's round trips.
PING_AFTER_IDLE_SECONDS = 5.0


def _ping_when_idle(engine: Engine) -> None:
    """Check a connection on checkout when it has been idle in the pool for a while; a
    dead one is replaced (the pool retries the checkout on ``DisconnectionError``)."""

    def checkin(_dbapi_conn: Any, record: Any) -> None:
        record.info["idle_since"] = time.monotonic()

    def checkout(dbapi_conn: Any, record: Any, _proxy: Any) -> None:
        since = record.info.pop("idle_since", None)
        if since is None or time.monotonic() - since < PING_AFTER_IDLE_SECONDS:
            return
        try:
            engine.dialect.do_ping(dbapi_conn)
        except engine.dialect.loaded_dbapi.Error as exc:
            raise DisconnectionError("the pooled connection no longer answers") from exc

    event.listen(engine.pool, "checkin", checkin)
    event.listen(engine.pool, "checkout", checkout)


def make_engine(url: str, workers: int | None = None) -> Engine:
    """An engine for ``url`` with the settings syncd relies on; ``workers``: threads that
    may each hold a connection at once (the pool keeps that many open, and a few more)."""
    parsed = make_url(url)
    # The pool's default (5, and 10 more opened and closed on demand) would make a
    # daemon with more workers wait for connections or churn them.
    pool = {"pool_size": workers + SPARE_CONNECTIONS} if workers else {}
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            _private_file(Path(parsed.database).expanduser())
        engine = create_engine(url, connect_args={"timeout": 10},
                               **pool if parsed.database not in (None, "", ":memory:") else {})
        event.listen(engine, "connect", _sqlite_pragmas)
    else:
        engine = create_engine(url, **pool)
        _ping_when_idle(engine)
    event.listen(engine, "handle_error", translate_error)
    return engine


def at_head(engine: Engine) -> bool:
    """Whether the database's recorded revision is the newest one (False when unsure)."""
    try:
        with engine.connect() as conn:
            rows = conn.execute(text("SELECT version_num FROM alembic_version")).all()
    except SQLAlchemyError:  # no version table yet: a new database
        return False
    return is_newest([row[0] for row in rows])


def migrate(engine: Engine) -> None:
    """Bring the schema to the newest revision (idempotent)."""
    if at_head(engine):
        return
    from alembic import command
    from alembic.config import Config as AlembicConfig

    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")


class Database:
    """An engine plus a session factory; the one handle the rest of syncd passes around."""

    def __init__(self, url: str, *, run_migrations: bool = True,
                 workers: int | None = None) -> None:
        self.url = url
        self.engine = make_engine(url, workers)
        if run_migrations:
            migrate(self.engine)
        self.sessions = sessionmaker(self.engine, expire_on_commit=False)
        self._autocommit = self.engine.execution_options(isolation_level="AUTOCOMMIT")

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session in a transaction: committed on success, rolled back on error."""
        with self.sessions.begin() as session:
            yield session

    @contextmanager
    def read(self) -> Iterator[Connection]:
        """A connection for reads that need no transaction (autocommit): each statement
        sees a consistent state by itself, and no BEGIN and COMMIT travel around it.
        For the hot reads of every cycle; reads that must agree with each other belong
        in :meth:`session`."""
        with self._autocommit.connect() as conn:
            yield conn

    @contextmanager
    def single(self) -> Iterator[Connection]:
        """A connection whose statements each commit as they run (autocommit), for a
        write that is one statement: atomic by itself, so the BEGIN and COMMIT round
        trips of a transaction around it would only cost CPU and latency. Every idle
        cycle gives its status and its account back this way."""
        with self._autocommit.connect() as conn:
            yield conn

    @contextmanager
    def transaction(self) -> Iterator[Connection]:
        """A Core connection in a transaction, committed on success: statements on the
        tables themselves, without the ORM session (a fraction of its CPU per statement,
        which an idle cycle is mostly made of)."""
        with self.engine.begin() as conn:
            yield conn

    def ping(self) -> None:
        """A ``SELECT 1``: raises when the database does not answer."""
        with self.engine.connect() as conn:
            conn.execute(text("SELECT 1"))

    def close(self) -> None:
        self.engine.dispose()
