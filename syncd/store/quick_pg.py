"""The quick path on PostgreSQL: psycopg alone, without SQLAlchemy (issue 16 item 5).

The statements and the row handling are :mod:`syncd.store.lite`'s and the quick
modules', shared with SQLite; this module holds only what differs: reading the URL as
SQLAlchemy reads it, connecting, the marks, the write lock, and the errors.

Only a URL whose meaning is plain is read here: ``postgresql+psycopg://`` with at most
one user, password, host, port and database, each query option once and no ``host``
option (SQLAlchemy's several-hosts form). :func:`connect_args` gives psycopg the same
arguments SQLAlchemy's dialect gives it, and :func:`shown` writes the URL as the full
store's errors show it (password and password options hidden);
``tests/store/test_quick_pg.py`` compares both with SQLAlchemy's. Any other URL is the
full store's. The password is only ever handed to psycopg: never in a message, a log
line or an exception this module raises.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl, quote, quote_plus, unquote

import psycopg

from syncd.config_checks import is_password_option
from syncd.errors import SyncdError
from syncd.store.db_errors import server_unavailable
from syncd.store.lite import PG_SCHEME, WRITER_LOCK_KEY, QuickDatabase, at_newest

# A subset of SQLAlchemy's URL pattern that both read alike: "@" only between the login
# and the host, no IPv6 brackets, a numeric port, a database named, no control character.
_CONTROL = r"\x00-\x1f\x7f"
_URL = re.compile(
    re.escape(PG_SCHEME)
    + rf"(?:(?P<user>[^:/@?#\[\]{_CONTROL}]*)(?::(?P<password>[^/@?#{_CONTROL}]*))?@)?"
    + rf"(?P<host>[^:/@?#\[\]{_CONTROL}]+)(?::(?P<port>[0-9]{{1,5}}))?"
    + rf"/(?P<database>[^/@?#{_CONTROL}]+)(?:\?(?P<query>[^@#{_CONTROL}]*))?")


def _parts(url: str) -> dict[str, Any] | None:
    """The URL's parts as SQLAlchemy's ``make_url`` reads them (percent-escapes undone,
    blank query values dropped), or None for a URL left to the full store."""
    found = _URL.fullmatch(url)
    if found is None:
        return None
    parts: dict[str, Any] = {key: unquote(found[key]) if found[key] is not None else None
                             for key in ("user", "password", "database")}
    parts["host"], parts["port"] = found["host"], found["port"]
    pairs = parse_qsl(found["query"] or "")
    query = dict(pairs)
    if len(query) != len(pairs) or "host" in query:  # several values, several hosts
        return None
    parts["query"] = query
    return parts


def connect_args(url: str) -> dict[str, Any] | None:
    """The keyword arguments SQLAlchemy's psycopg dialect passes to ``psycopg.connect``
    for ``url`` (empty parts left out, the port a number, the query options as given),
    or None for a URL left to the full store."""
    parts = _parts(url)
    if parts is None:
        return None
    args = {key: parts[name] for key, name in (("host", "host"), ("dbname", "database"),
                                                ("user", "user"), ("password", "password"))
            if parts[name]}
    if parts["port"] and int(parts["port"]):
        args["port"] = int(parts["port"])
    return {**args, **parts["query"]}


def shown(url: str) -> str:
    """``url`` as the full store's errors show it (SQLAlchemy's rendering with the
    password and every password option hidden); only for a URL :func:`connect_args`
    reads."""
    parts = _parts(url)
    if parts is None:
        raise ValueError("not a URL the quick path reads")
    text = PG_SCHEME
    if parts["user"] is not None:
        text += quote(parts["user"], safe=" +")
        text += ":***@" if parts["password"] is not None else "@"
    text += parts["host"] + (f":{int(parts['port'])}" if parts["port"] else "")
    text += "/" + quote(parts["database"], safe=" +/")
    query = parts["query"]
    if query:
        text += "?" + "&".join(
            f"{quote_plus(key)}=" + ("***" if is_password_option(key)
                                     else quote_plus(query[key]))
            for key in sorted(query))
    return text


class PgDatabase(QuickDatabase):
    """A PostgreSQL database through psycopg, values as SQLAlchemy's types read them."""

    dialect = "postgresql"
    errors = psycopg.Error

    def __init__(self, conn: psycopg.Connection[Any], url: str) -> None:
        super().__init__(conn)
        self.shown = shown(url)

    def statement(self, sql: str) -> str:
        # The shared statements hold no "%" nor any "?" but their marks.
        assert "%" not in sql
        return sql.replace("?", "%s")

    def bind(self, value: Any) -> Any:
        if isinstance(value, datetime):  # as UTCDateTime binds it
            if value.tzinfo is None:
                raise ValueError("naive datetime given where a UTC instant is stored")
            return value.astimezone(UTC)
        return value

    def instant(self, value: Any) -> datetime:
        return value.astimezone(UTC)

    def failure(self, error: Exception) -> SyncdError | None:
        # As the full store's hook: a server gone (the connection broken) is named;
        # a statement's own failure passes as it is.
        if isinstance(error, psycopg.OperationalError | psycopg.InterfaceError) \
                and self.conn.broken:
            return server_unavailable(self.shown, error)
        return None

    @contextmanager
    def transaction(self) -> Iterator[None]:
        with self.conn.transaction():
            self.execute("SELECT pg_advisory_xact_lock(?)", (WRITER_LOCK_KEY,))
            yield


def open_pg(url: str) -> PgDatabase | None:
    """The PostgreSQL database at ``url`` through psycopg, or None when the full store
    must serve it (a URL not read here, a database without our schema or at another
    revision).

    Raises:
        DatabaseUnavailable: the server cannot be reached or refuses the connection (no
            such database, role or password), worded as the full store words it.
    """
    args = connect_args(url)
    if args is None:
        return None
    try:
        conn = psycopg.connect(**args, autocommit=True)
    except (psycopg.OperationalError, psycopg.InterfaceError) as exc:
        raise server_unavailable(shown(url), exc) from exc
    db = PgDatabase(conn, url)
    if not at_newest(db):
        db.close()
        return None
    return db
