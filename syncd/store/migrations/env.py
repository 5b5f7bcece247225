"""Alembic environment: runs on the connection handed over by ``syncd.store.db.migrate``."""

from alembic import context
from sqlalchemy import Connection, engine_from_config, pool

import syncd.store.budget_tables
import syncd.store.crm_tables
import syncd.store.state_tables  # noqa: F401  (registers the tables on Base.metadata)
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
