"""The migrations build exactly the schema the table classes describe."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from syncd.store import crm_tables, state_tables  # noqa: F401  (they register the tables)
from syncd.store.activities import ActivityStore
from syncd.store.base import Base


def test_a_migrated_database_matches_the_table_classes(store: ActivityStore) -> None:
    assert {"activities", "sync_links", "sync_meetings"} <= Base.metadata.tables.keys()
    with store.db.engine.connect() as conn:
        differences = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert differences == [], "a table class changed without a migration (alembic revision)"
