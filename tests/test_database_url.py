"""A database URL is judged without SQLAlchemy when it is a plain one, and the judgement
is SQLAlchemy's (issue 16 item 5: importing it was over half of the instructions of
``activity add`` on a named SQLite file).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from syncd.config_checks import _PLAIN_DATABASE_URL, database_url_problem, secret_parameters
from syncd.private import sqlite_file

PLAIN = ["sqlite:///syncd.db", "sqlite:////var/lib/syncd/syncd.db", "sqlite://",
         "sqlite+pysqlite:////data/a@b/syncd.db", "postgresql+psycopg://syncd@db:5432/syncd",
         "postgresql://127.0.0.1/test", "postgresql+psycopg://@db/syncd", "mysql://h",
         "sqlite:///~/x.db"]
NOT_PLAIN = ["postgresql+psycopg://syncd:pw@db/syncd", "postgresql://db/x?password=pw",
             "postgresql://db/x?sslmode=require", "postgresql://[::1]:5432/x",
             "postgresql://db:port/x", "the big one", ""]


def _sqlalchemy_says(value: str) -> str | None:
    """What the check said before the plain path: SQLAlchemy's parse."""
    try:
        url = make_url(value)
    except (ArgumentError, ValueError):
        return "is not a database URL"
    if url.password or secret_parameters(url):
        return "holds a database password in the file"
    return None


@pytest.mark.parametrize("value", PLAIN + NOT_PLAIN)
def test_every_url_is_judged_as_sqlalchemy_judges_it(value: str) -> None:
    found = database_url_problem(value)
    assert (found.problem if found else None) == _sqlalchemy_says(value)
    assert bool(_PLAIN_DATABASE_URL.fullmatch(value)) == (value in PLAIN)


@given(st.text(alphabet="sqlitepgrs+:/@?[]%~.-_=0123456789 \n\u00e9", max_size=40)
       .map(lambda tail: "postgresql+psycopg://" + tail)
       | st.text(alphabet="sqlite+:/@?[]%.x9", max_size=30))
def test_what_the_plain_path_takes_sqlalchemy_takes_without_a_password(value: str) -> None:
    if _PLAIN_DATABASE_URL.fullmatch(value):
        assert _sqlalchemy_says(value) is None


@pytest.mark.parametrize("url", ["sqlite:///rel/syncd.db", "sqlite:////abs/syncd.db",
                                 "sqlite+pysqlite:////abs/x.db", "sqlite:///~/x.db",
                                 "sqlite:///:memory:", "sqlite://", "sqlite:////my%20x.db",
                                 "postgresql+psycopg://syncd@db/syncd"])
def test_the_kept_sqlite_file_is_the_one_sqlalchemy_names(url: str) -> None:
    parsed = make_url(url)
    expected = (Path(parsed.database).expanduser()
                if parsed.get_backend_name() == "sqlite" and parsed.database
                and parsed.database != ":memory:" else None)
    assert sqlite_file(url) == expected
