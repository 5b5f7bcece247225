"""The migrations build exactly the schema the table classes describe."""

from __future__ import annotations

from pathlib import Path

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


def test_a_database_made_by_an_earlier_release_is_upgraded_on_open(tmp_path: Path) -> None:
    from alembic import command
    from alembic.config import Config
    from sqlalchemy import text

    from syncd.engine.plan import Link
    from syncd.store.db import MIGRATIONS, Database, make_engine
    from syncd.store.state import StateStore

    url = f"sqlite:///{tmp_path / 'old.db'}"
    engine = make_engine(url)
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "0001")  # the first release's schema
    engine.dispose()
    old = Database(url, run_migrations=False)
    with old.engine.begin() as conn:  # the account row as the first release wrote it
        conn.execute(text("INSERT INTO sync_accounts (name, status, crm_cursor, initial_done, "
                          "failures, guest_window_count, lease_token) "
                          "VALUES ('alice', 'ok', 7, 1, 0, 0, 0)"))
    StateStore(old).save_link("alice", Link(1, "uid-1", "ev-1", '"e1"', None, None))
    old.close()

    db = Database(url)  # what `syncd run` does on start
    state = StateStore(db)
    assert state.links("alice")[1].event_id == "ev-1"
    assert state.account("alice").crm_cursor == 7  # columns added since are there too
    assert state.claim_meeting("alice", "m@example.org") == "alice"  # the new table is there
    db.close()
