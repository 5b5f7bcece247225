"""Every table of a test session's PostgreSQL database (``pg_url``) at once: emptied to
what the migrations leave, filled from an earlier copy, read whole.

For tests that run syncd's commands against PostgreSQL as against a SQLite file they
copy: ``load`` is the copy, ``rows`` the comparison. Sequences follow the rows, so two
runs from the same copy hand out the same ids.
"""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg.types.json import Json

from syncd.store.quick_pg import connect_args

#: Table -> (column names, rows).
Tables = dict[str, tuple[list[str], list[tuple[Any, ...]]]]


class PgTables:
    """The tables of the database at ``url`` (a ``postgresql+psycopg://`` URL)."""

    def __init__(self, url: str) -> None:
        args = connect_args(url)
        assert args is not None, url
        self.args = args

    def _connect(self) -> psycopg.Connection[Any]:
        return psycopg.connect(**self.args, autocommit=True)

    @staticmethod
    def _names(conn: psycopg.Connection[Any]) -> list[str]:
        return [r[0] for r in conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public' "
            "AND tablename <> 'alembic_version' ORDER BY tablename")]

    def rows(self) -> Tables:
        """Every row of every table (but the revision), in no particular order."""
        with self._connect() as conn:
            tables: Tables = {}
            for name in self._names(conn):
                cursor = conn.execute(f'SELECT * FROM "{name}"')
                tables[name] = ([d.name for d in cursor.description or ()], cursor.fetchall())
            return tables

    def load(self, tables: Tables | None = None) -> None:
        """Empty every table but the default activity types (the migrations' rows), then
        insert ``tables``' rows; every sequence then continues after the largest value
        its column holds."""
        with self._connect() as conn, conn.transaction():
            conn.execute("SET LOCAL session_replication_role = replica")  # no FK checks
            names = self._names(conn)
            for name in names:
                keep = " WHERE NOT is_default" if name == "activity_types" else ""
                conn.execute(f'DELETE FROM "{name}"{keep}')
            for name, (columns, rows) in (tables or {}).items():
                if name == "activity_types":
                    rows = [r for r in rows if not r[columns.index("is_default")]]
                if rows:
                    marks = ", ".join(["%s"] * len(columns))
                    listed = ", ".join(f'"{c}"' for c in columns)
                    with conn.cursor() as cursor:
                        cursor.executemany(
                            f'INSERT INTO "{name}" ({listed}) VALUES ({marks})',
                            [[Json(v) if isinstance(v, dict | list) else v for v in row]
                             for row in rows])
            for table, column, sequence in conn.execute(
                    "SELECT table_name, column_name, "
                    "pg_get_serial_sequence(quote_ident(table_name), column_name) "
                    "FROM information_schema.columns WHERE table_schema = 'public' "
                    "AND pg_get_serial_sequence(quote_ident(table_name), column_name) "
                    "IS NOT NULL").fetchall():
                conn.execute(f'SELECT setval(%s, coalesce((SELECT max("{column}") FROM '
                             f'"{table}"), 0) + 1, false)', (sequence,))
