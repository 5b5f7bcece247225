"""The sync-pair vocabulary: what syncd remembers about one (activity, event) pair.

Plain, frozen data shared by the engine (which plans with it) and the state store (which
keeps it); it sits below both so the store never imports the engine. "Pair" here always
means a sync pair; a deal/person/lead attached to an activity is an activity *link*
(:mod:`syncd.crm.builtin.item_links`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from syncd.model import Projection


@dataclass(frozen=True)
class SyncPair:
    """The stored state of one (activity, calendar) pair.

    ``crm_base``/``cal_base`` are each side's projection when the pair was last in step;
    None only for a pair being rebuilt. ``pending`` marks a create whose outcome is not
    known yet (the intent was committed before the request). ``invited`` are the guests
    holding an invitation to the event (None: not recorded, from before syncd tracked
    it); ``organizer`` is set when someone else organises the meeting. ``sent`` holds the
    event updates whose requests may have left since the bases were recorded, without
    their outcome recorded (each update's intent: its fields as JSON values), oldest first;
    any of them may have landed, so each is kept until the link is saved again.
    """

    activity_id: int
    sync_uid: str
    event_id: str | None
    etag: str | None
    crm_base: Projection | None
    cal_base: Projection | None
    generation: int = 0
    pending: bool = False
    invited: frozenset[str] | None = None
    organizer: str | None = None
    sent: tuple[Mapping[str, Any], ...] = field(default=(), hash=False)


@dataclass(frozen=True)
class Conflict:
    """A field changed on both sides to different values; ``winner`` is the side kept."""

    field: str
    crm_value: Any
    calendar_value: Any
    winner: Literal["crm", "calendar"]
    policy: str
