"""A CRM-only availability for booking tests and the screenshots: what
:meth:`syncd.availability_service.Availability.owner_free_slots` answers for an owner
with no calendar served, without a :class:`~syncd.service.Service` around it (default
working hours in the owner's CRM zone minus their busy activities, through the same pure
core)."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from syncd.availability_service import LOOK_BACK
from syncd.booking import FreeSlots
from syncd.crm.source import CrmSource
from syncd.engine.availability import Busy, Slot, WorkingHours, free_slots
from syncd.model import activity_when


def crm_free_slots(source: CrmSource) -> FreeSlots:
    """``free`` for :class:`syncd.booking.Bookings` from ``source`` alone."""

    def free(owner: str, start: datetime, end: datetime, duration: timedelta,
             now: datetime, step: timedelta) -> list[Slot]:
        user = source.user(owner)
        if user is None:
            return []
        tz = ZoneInfo(user.time_zone)
        busy = [Busy(when.start, when.end, blocks=activity.busy)
                for activity in source.due_between(
                    user.id, start.astimezone(tz).date() - LOOK_BACK,
                    end.astimezone(tz).date() + timedelta(days=1))
                if (when := activity_when(activity)) is not None]
        return free_slots(busy, WorkingHours(user.time_zone), start=start, end=end,
                          duration=duration, now=now, step=step)

    return free
