"""The migrations build exactly the schema the table classes describe."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Engine

from syncd.crm.builtin import tables  # noqa: F401  (registers the CRM tables)
from syncd.crm.builtin.activities import ActivityStore
from syncd.store import (  # noqa: F401  (sync state, budgets, push channels, booking)
    booking_tables,
    budget_tables,
    channel_tables,
    state_tables,
)
from syncd.store.base import Base

Migration = Callable[[Any, str], None]  # alembic's command.upgrade or downgrade


def test_a_migrated_database_matches_the_table_classes(store: ActivityStore) -> None:
    assert {"activities", "sync_links", "sync_meetings"} <= Base.metadata.tables.keys()
    with store.db.engine.connect() as conn:
        differences = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert differences == [], "a table class changed without a migration (alembic revision)"


def test_a_database_made_by_an_earlier_release_is_upgraded_on_open(tmp_path: Path) -> None:
    from alembic import command
    from alembic.config import Config

    from syncd.pairs import SyncPair
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
    with engine.begin() as conn:  # written as the first release did, in its own schema
        conn.exec_driver_sql(
            "INSERT INTO sync_accounts (name, status, crm_cursor, initial_done, failures, "
            "guest_window_count, lease_token) VALUES ('alice', 'ok', 7, 1, 0, 0, 0)")
        conn.exec_driver_sql(
            "INSERT INTO sync_links (account, activity_id, sync_uid, event_id, etag, "
            "generation, pending, updated_at) VALUES ('alice', 1, 'uid-1', 'ev-1', '\"e1\"', "
            "0, 0, '2026-12-01 00:00:00')")
    engine.dispose()

    db = Database(url)  # what `syncd run` does on start
    state = StateStore(db)
    assert state.links("alice")[1].event_id == "ev-1"
    assert state.account("alice").crm_cursor == "7"  # the old cursor, as text since 0006
    assert state.claim_meeting("alice", "m@example.org") == "alice"  # the new table is there
    assert state.links("alice")[1].invited is None  # not recorded before 0005: unknown
    state.save_link("alice", SyncPair(1, "uid-1", "ev-1", '"e2"', None, None,
                                  invited=frozenset({"ada@example.org"})))
    assert state.links("alice")[1].invited == {"ada@example.org"}
    db.close()


def test_a_downgrade_keeps_builtin_cursors_and_starts_other_cursors_afresh(
        tmp_path: Path) -> None:
    from alembic import command
    from alembic.config import Config

    from syncd.store.db import MIGRATIONS, Database, make_engine

    url = f"sqlite:///{tmp_path / 'down.db'}"
    Database(url).close()
    engine = make_engine(url)
    with engine.begin() as conn:
        conn.exec_driver_sql(
            "INSERT INTO sync_accounts (name, status, crm_cursor, initial_done, failures, "
            "guest_window_count, lease_token) VALUES ('a', 'ok', '42', 1, 0, 0, 0), "
            "('b', 'ok', 'opaque:cursor', 1, 0, 0, 0), ('c', 'ok', NULL, 0, 0, 0, 0)")
        conn.exec_driver_sql(
            "INSERT INTO sync_links (account, activity_id, sync_uid, event_id, etag, "
            "generation, pending, updated_at) VALUES ('a', 1, 'uid-1', 'ev-1', NULL, "
            "0, 0, '2026-12-01 00:00:00')")
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "0005")
    with engine.begin() as conn:
        cursors = dict(conn.exec_driver_sql(
            "SELECT name, crm_cursor FROM sync_accounts").fetchall())
        links = conn.exec_driver_sql("SELECT count(*) FROM sync_links").scalar()
    engine.dispose()
    assert cursors == {"a": 42, "b": 0, "c": 0} and links == 1  # no pair lost either way


def _migrator(tmp_path: Path) -> tuple[Engine, Callable[[Migration, str], None]]:
    """A SQLite database and a function that runs an alembic command on it to a revision."""
    from alembic.config import Config

    from syncd.store.db import MIGRATIONS, make_engine

    engine = make_engine(f"sqlite:///{tmp_path / 'old.db'}")
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))

    def migrate(step: Migration, revision: str) -> None:
        with engine.begin() as conn:
            cfg.attributes["connection"] = conn
            step(cfg, revision)

    return engine, migrate


def test_the_previous_owner_a_pipedrive_marker_held_is_kept_across_0017_both_ways(
        tmp_path: Path) -> None:
    engine, migrate = _migrator(tmp_path)

    migrate(command.upgrade, "0016")
    with engine.begin() as conn:  # one activity handed over, one never
        conn.exec_driver_sql(
            "INSERT INTO pipedrive_markers (company, sync_uid, activity_id, owner_id, "
            "moved_from, gone) VALUES ('acme', 'u1', 1, 8, 7, 0), ('acme', 'u2', 2, 7, NULL, 0)")
    migrate(command.upgrade, "0017")
    with engine.begin() as conn:
        assert conn.exec_driver_sql("SELECT company, owner_id, activity_id "
                                    "FROM pipedrive_moves").all() == [("acme", 7, 1)]
    migrate(command.downgrade, "0016")
    with engine.begin() as conn:
        assert conn.exec_driver_sql("SELECT activity_id, moved_from FROM pipedrive_markers "
                                    "ORDER BY activity_id").all() == [(1, 7), (2, None)]
    engine.dispose()


def test_a_links_sent_update_becomes_a_list_of_one_across_0021_and_back(
        tmp_path: Path) -> None:
    engine, migrate = _migrator(tmp_path)

    def sent() -> list[object]:
        with engine.begin() as conn:
            return [json.loads(value) if value else None for (value,) in conn.exec_driver_sql(
                "SELECT sent FROM sync_links ORDER BY activity_id")]

    migrate(command.upgrade, "0020")
    with engine.begin() as conn:  # one update sent unrecorded (0016's form), one link idle
        conn.exec_driver_sql("INSERT INTO sync_accounts (name, status, initial_done, failures, "
                             "guest_window_count, lease_token) VALUES ('a', 'ok', 1, 0, 0, 0)")
        conn.exec_driver_sql(
            "INSERT INTO sync_links (account, activity_id, sync_uid, generation, pending, "
            "sent, updated_at) VALUES ('a', 1, 'u1', 0, 0, '{\"busy\": false}', "
            "'2026-12-07 17:00:00'), ('a', 2, 'u2', 0, 0, NULL, '2026-12-07 17:00:00')")
    migrate(command.upgrade, "0021")
    assert sent() == [[{"busy": False}], None]
    with engine.begin() as conn:
        conn.exec_driver_sql("UPDATE sync_links SET sent = "
                             "'[{\"busy\": false}, {\"busy\": true, \"title\": \"x\"}]' "
                             "WHERE activity_id = 1")
    migrate(command.downgrade, "0020")
    assert sent() == [{"busy": True, "title": "x"}, None]  # the later update over the earlier
    engine.dispose()
