"""Small builders for engine tests: activities, projections, links, events."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from connectors.base import RemoteEvent, Window
from syncd.engine.plan import PlanPolicy
from syncd.model import Activity, Guest, Projection, project_activity
from syncd.pairs import SyncPair

OWNER = 1
TZ = "Europe/Oslo"
NOW = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)
WINDOW = Window(NOW - timedelta(days=30), NOW + timedelta(days=365))


def activity(id: int = 1, **values: Any) -> Activity:
    base = Activity(
        id=id, sync_uid=f"uid{id:05d}", owner_id=OWNER, owner_tz=TZ, type="meeting",
        subject=f"Meeting {id}", due_date=date(2026, 12, 10), due_time=time(9, 0),
        duration_minutes=60, busy=False, description="", location="",
        guests=(), done=False, marked_done_at=None, deleted=False,
        updated_at=NOW,
    )
    if "guests" in values:
        values["guests"] = tuple(Guest(g) if isinstance(g, str) else g for g in values["guests"])
    return replace(base, **values)


def proj(a: Activity, done_style: str = "keep") -> Projection:
    p = project_activity(a, done_style)  # type: ignore[arg-type]
    assert p is not None
    return p


def link(a: Activity, *, event_id: str | None = None, etag: str = "e1",
         crm_base: Projection | None = None, cal_base: Projection | None = None,
         generation: int = 0, pending: bool = False) -> SyncPair:
    base = proj(a)
    return SyncPair(a.id, a.sync_uid, event_id or f"ev{a.id}", etag,
                crm_base if crm_base is not None else base,
                cal_base if cal_base is not None else base, generation, pending)


def event(a: Activity | None = None, *, event_id: str | None = None, etag: str = "e2",
          projection: Projection | None = None, marker: str | bool | None = True,
          **flags: Any) -> RemoteEvent:
    if projection is None and a is not None:
        projection = proj(a)
    if marker is True:
        marker = a.sync_uid if a is not None else None
    return RemoteEvent(event_id or (f"ev{a.id}" if a else "foreign1"), etag,
                       marker if isinstance(marker, str) else None, projection, **flags)


def policy(**values: Any) -> PlanPolicy:
    return replace(PlanPolicy(owner_id=OWNER, owner_tz=TZ, window=WINDOW), **values)
