"""The benchmark's data: N activities over U owners, and which 1 % each phase touches.

syncd and the floor client see the same shape: owner ``o`` holds activities ``i`` with
``i % U == o``, and each phase touches the same positions of each owner's list. A phase's
share is a contiguous block of the owners' lists interleaved round robin, so it spreads
evenly over the owners and the blocks of different phases never overlap.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any, TypeVar

T = TypeVar("T")

#: The phases of a full run; "settle" is the next cycle, which reads back the echo of the
#: phase's own writes. The N sweep (memory, and cycle cost against N) runs the first five.
FULL = ("initial", "initial settle", "idle", "crm edits", "crm edits settle",
        "calendar edits", "calendar edits settle", "deletes", "deletes settle")
MEMORY = FULL[:5]
#: Which block of the interleaved lists each phase touches.
SLOT_CRM_EDIT, SLOT_CAL_EDIT, SLOT_CRM_DELETE, SLOT_CAL_DELETE = 1, 2, 3, 4
TYPES = ("call", "meeting", "task", "email", "lunch", "deadline")
HORIZON_DAYS = 300  # inside the default window of 365 days ahead


@dataclass(frozen=True)
class Workload:
    """``n`` activities over ``owners`` owners; each change phase touches ``percent`` % of n."""

    n: int
    owners: int
    percent: float = 1.0

    @property
    def per_phase(self) -> int:
        return max(1, round(self.n * self.percent / 100))

    def owner_emails(self, prefix: str = "u") -> list[str]:
        return [f"{prefix}{o:04d}@bench.example" for o in range(self.owners)]

    def owner_of(self, i: int) -> int:
        return i % self.owners

    def activity(self, i: int, first_day: date) -> dict[str, Any]:
        """Activity ``i``'s fields (without its owner): a plausible mix of kinds."""
        item: dict[str, Any] = {
            "subject": f"Activity {i}",
            "type": TYPES[i % len(TYPES)],
            "due_date": first_day + timedelta(days=(i * 37) % HORIZON_DAYS),
            "duration_minutes": (30, 45, 60)[i % 3],
            "busy": i % 2 == 0,
        }
        if i % 10:
            item["due_time"] = time(8 + i % 9, (i % 4) * 15)
        if i % 2:
            item["description"] = "Agenda: pricing, rollout plan and next steps"
        if i % 3 == 0:
            item["location"] = f"Room {i % 40}"
            item["guests"] = [f"guest{i % 500}@example.com"]
        if i % 4 == 0:
            item["note"] = f"private remark {i}"
        return item

    def pick(self, per_owner: Sequence[Sequence[T]], slot: int) -> list[T]:
        """The phase's share: block ``slot`` of the owners' lists interleaved round robin."""
        longest = max((len(items) for items in per_owner), default=0)
        order = [items[j] for j in range(longest) for items in per_owner if j < len(items)]
        k = self.per_phase
        return order[slot * k:(slot + 1) * k]


def first_day(now: datetime) -> date:
    """The first due day: tomorrow, so every activity is inside the sync window."""
    return (now + timedelta(days=1)).date()
