"""Database failures an admin can fix, turned into syncd errors where they happen.

Registered as the engine's ``handle_error`` hook, so every statement and every new
connection gets the same treatment: a full disk, a database file that cannot be opened
or a server that does not answer become :class:`StorageFull` or
:class:`DatabaseUnavailable` with the database named (password hidden). Everything
else (constraint violations, serialisation failures) passes through untouched, because
callers handle those themselves.
"""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path
from typing import TYPE_CHECKING, Any

from syncd.config_checks import secret_parameters
from syncd.errors import DatabaseUnavailable, StorageFull, SyncdError

if TYPE_CHECKING:
    from sqlalchemy.engine import URL

#: Below this much free space, SQLite's "disk I/O error" is a full disk (it says so only
#: when the database file itself cannot grow, not when its WAL or journal cannot).
_NEARLY_FULL = 256 * 1024


def translate_error(context: Any) -> SyncdError | None:
    """``handle_error`` hook: the syncd error for ``context``, or None to leave it be."""
    if getattr(context, "is_pre_ping", False):
        return None  # the pool reconnects by itself
    url: URL = context.engine.url
    original = context.original_exception
    if isinstance(original, sqlite3.Error):
        return _sqlite_error(url, original)
    unreachable = context.connection is None or context.is_disconnect
    if unreachable and type(original).__name__ in ("OperationalError", "InterfaceError"):
        return server_unavailable(_shown(url), original)
    return None


def server_unavailable(shown: str, error: BaseException) -> DatabaseUnavailable:
    """The error for a database server that cannot be reached or refuses the connection
    (``shown``: its URL as an error may show it). Also raised by the psycopg quick path
    (:mod:`syncd.store.quick_pg`), so both say the same."""
    return DatabaseUnavailable(database=shown, reason=_server_reason(error))


def _sqlite_error(url: URL, error: sqlite3.Error) -> SyncdError | None:
    return sqlite_error(str(Path(url.database or "").expanduser()), _shown(url), error)


def sqlite_error(path: str, shown: str, error: sqlite3.Error) -> SyncdError | None:
    """The syncd error for a SQLite failure an admin can fix (``path``: the database
    file, ``shown``: its URL as an error may show it), or None to leave it be. Also used
    by the plain sqlite3 path (:mod:`syncd.store.lite`), which imports nothing else of
    this module."""
    code = getattr(error, "sqlite_errorcode", 0) & 0xFF
    if code == sqlite3.SQLITE_FULL or (code == sqlite3.SQLITE_IOERR and _nearly_full(path)):
        return StorageFull(path=path)
    reasons = {sqlite3.SQLITE_IOERR: "disk I/O error",
               sqlite3.SQLITE_CANTOPEN: "the file cannot be opened",
               sqlite3.SQLITE_READONLY: "the file is read-only",
               sqlite3.SQLITE_NOTADB: "the file is not an SQLite database",
               sqlite3.SQLITE_CORRUPT: "the file is damaged"}
    if code in reasons:
        return DatabaseUnavailable(database=shown, reason=reasons[code])
    return None


def _nearly_full(path: str) -> bool:
    folder = Path(path).parent
    try:
        return shutil.disk_usage(folder).free < _NEARLY_FULL
    except OSError:
        return False


def _server_reason(error: BaseException) -> str:
    """The server's complaint in a few words (psycopg's messages run to several lines)."""
    text = str(error)
    if "FATAL:" in text:  # the server's own words: no such database, a refused password
        return text.rsplit("FATAL:", 1)[1].strip().splitlines()[0][:200]
    lowered = text.lower()
    for known, reason in (("connection refused", "connection refused"),
                          ("timeout expired", "timed out"),
                          ("could not translate host name", "unknown host"),
                          ("name or service not known", "unknown host")):
        if known in lowered:
            return reason
    first = text.strip().splitlines()[0] if text.strip() else type(error).__name__
    return first[:200]


def _shown(url: URL) -> str:
    hidden = {key: "HIDDEN" for key in secret_parameters(url)}
    shown = url.update_query_dict(hidden).render_as_string(hide_password=True)
    return shown.replace("=HIDDEN", "=***") if hidden else shown
