"""Helpers shared by the activity-store tests."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import func, select

from syncd.crm.builtin.activities import ActivityStore
from syncd.store.base import Base

#: A fixed "now" so that derived dates and done times are exact.
NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)

#: Every CRM table, children first (for counting and for emptying between tests).
CRM_TABLES = (
    "activity_changes", "activity_links", "activity_notes", "activity_guests", "activities",
    "leads", "deals", "persons", "organizations", "projects", "users", "activity_types",
)


def row_counts(store: ActivityStore) -> dict[str, int]:
    """How many rows each CRM table holds, plus the change feed's last number."""
    counts: dict[str, int] = {}
    with store.db.session() as session:
        for name in CRM_TABLES:
            table = Base.metadata.tables[name]
            counts[name] = int(session.scalar(select(func.count()).select_from(table)) or 0)
    counts["last_change_seq"] = store.last_change_seq()
    return counts


@dataclass(frozen=True)
class World:
    """A small CRM: two users in different zones, an org, a person in it, a deal on both."""

    ann: int  # Europe/Oslo
    bob: int  # America/New_York
    org: int
    person: int
    deal: int


def make_world(store: ActivityStore) -> World:
    """Fill an empty store with a :class:`World`."""
    ann = store.add_user("ann@example.com", "Ann", "Europe/Oslo")
    bob = store.add_user("bob@example.com", "Bob", "America/New_York")
    org = store.add_org("Acme", now=NOW)
    person = store.add_person("Pia Acme", "pia@acme.example", org, now=NOW)
    deal = store.add_deal("Acme renewal", person, org, now=NOW)
    return World(ann, bob, org, person, deal)
