"""Alembic environment: runs on the connection handed over by ``syncd.store.db.migrate``.

One database, one metadata, one migration history: the built-in CRM's tables
(``syncd.crm.builtin.tables``) and syncd's own state (``syncd.store.state_tables``,
``syncd.store.budget_tables``) all sit on :class:`syncd.store.base.Base`, so a revision
may touch either half and ``alembic upgrade`` brings both to the same head. A remote CRM
(Pipedrive) keeps what syncd must remember about it (markers, cursors, budgets) in
syncd's own tables, never in the built-in CRM's.
"""

from alembic import context
from sqlalchemy import Connection, engine_from_config, pool

# These imports register their tables on Base.metadata.
import syncd.crm.builtin.tables
import syncd.store.booking_tables
import syncd.store.budget_tables
import syncd.store.channel_tables
import syncd.store.state_tables  # noqa: F401
from syncd.store.base import Base

config = context.config
target_metadata = Base.metadata


def run() -> None:
    connection = config.attributes.get("connection")
    if connection is None:  # the alembic command line, for generating revisions
        engine = engine_from_config(
            config.get_section(config.config_ini_section) or {},
            prefix="sqlalchemy.",
            poolclass=pool.NullPool,
        )
        with engine.connect() as conn:
            _migrate(conn)
    else:
        _migrate(connection)


def _migrate(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=True,  # SQLite can only ALTER through table copies
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


run()
