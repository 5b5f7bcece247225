"""Files private by default (failure mode: a world-readable database of private notes).

Every syncd process runs under umask 077 (:func:`private_by_default`), so the data
directory, the SQLite database and its journal files, the embedded server's calendars and
passwords, and the log file are made readable by their owner alone. What already exists
is checked at the start of ``syncd run`` and ``syncd sync`` (:func:`check_private`): any
group or other permission bit on one of them refuses the start, with the ``chmod`` that
fixes it. A data directory others cannot enter keeps everything inside it private, so the
check looks at the directory and the files syncd names, not at every calendar file; and
at the files it reads secrets from wherever they are (``file:`` references, the
listener's TLS key), which ``syncd config check`` judges too.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from syncd.config import Config
from syncd.config_types import AccountConfig, SecretRef
from syncd.errors import FilesNotPrivate
from syncd.team import has_placeholder

PRIVATE_UMASK = 0o077


def private_by_default() -> None:
    """New files and directories of this process (and its children) are the owner's alone."""
    os.umask(PRIVATE_UMASK)


def sqlite_file(database_url: str) -> Path | None:
    """The SQLite file of a (valid) database URL; None for another database or memory."""
    if database_url.split("://", 1)[0].split("+")[0] != "sqlite":
        return None  # SQLAlchemy's backend name, without importing it
    from syncd.store.lite import sqlite_path

    if (plain := sqlite_path(database_url)) is not None:
        return plain
    # Imported here: every command sets the umask, few of them need SQLAlchemy.
    from sqlalchemy.engine import make_url

    url = make_url(database_url)
    if url.get_backend_name() != "sqlite" or not url.database or url.database == ":memory:":
        return None
    return Path(url.database).expanduser()


def kept_paths(config: Config) -> list[Path]:
    """What syncd keeps on disk for this config, as far as it exists.

    Entries of the data directory are not listed one by one: while the directory itself
    is private nobody else can reach them. The database and the log file may live
    elsewhere; the embedded server's password files are listed for their own sake.
    """
    data = config.data_path
    embedded = data / "embedded"
    hooks = data / "webhooks"  # syncd.http.basic_auth
    paths = [data, data / "calendars", embedded, embedded / "users", embedded / "syncd.secret",
             hooks, hooks / "pipedrive.secret"]
    database = sqlite_file(config.database_url)
    if database is not None:
        paths.extend(database.with_name(database.name + suffix)
                     for suffix in ("", "-wal", "-shm", "-journal"))
    if config.logging.file:
        paths.append(Path(config.logging.file).expanduser())
    paths.extend(secret_files(config))
    return [p for p in dict.fromkeys(paths) if p.exists()]


def secret_files(config: Config) -> list[Path]:
    """The files the config reads secrets from: its ``file:`` references (a team's only
    when the same for every member) and the listener's TLS key."""
    refs: list[Any] = [*config.state_keys, config.database, *config.crm_options.values()]
    for account in (*config.accounts, *(team.template for team in config.teams)):
        refs.extend(account.auth.values())
    paths = _files(refs)
    if config.http.private_key:
        paths.append(Path(config.http.private_key).expanduser())
    return paths


def _files(refs: Iterable[Any]) -> list[Path]:
    """The paths of the ``file:`` references among ``refs`` with no placeholder left."""
    return [Path(ref.ref[len("file:"):]).expanduser() for ref in refs
            if isinstance(ref, SecretRef) and ref.ref.startswith("file:")
            and not has_placeholder(ref.ref)]


def exposed_secrets(account: AccountConfig) -> list[tuple[str, str]]:
    """(path, octal mode) of each ``file:`` secret of ``account`` (a team member's, filled
    in) that exists with a group or other permission bit."""
    return _exposed(p for p in _files(account.auth.values()) if p.exists())


def exposed(config: Config) -> list[tuple[str, str]]:
    """(path, octal mode) of each kept path with a group or other permission bit."""
    return _exposed(kept_paths(config))


def _exposed(paths: Iterable[Path]) -> list[tuple[str, str]]:
    found = []
    for path in paths:
        mode = stat.S_IMODE(path.stat().st_mode)
        if mode & 0o077:
            found.append((str(path), f"{mode:04o}"))
    return found


def check_private(config: Config) -> None:
    """Refuse to go on when others can read what syncd keeps.

    Raises:
        FilesNotPrivate: naming each such path and its mode.
    """
    found = exposed(config)
    if found:
        raise FilesNotPrivate(paths=found)
