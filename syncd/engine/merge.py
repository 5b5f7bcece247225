"""Field-level three-way merge of one pair (pure).

Each side is compared with its own merge base: the projection of that side as it was
when the pair was last in step. Keeping one base per side (rather than one shared base)
means a provider's harmless normalisation of what we wrote (a re-wrapped description, a
time zone re-expressed) is recorded as that side's base and never reads as an edit.

A field is written to the other side only when it *changed* on one side. Fields that
changed on neither side are never written, even if the two sides express them slightly
differently; that is what keeps an idle cycle at zero writes.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from syncd.model import FIELDS, Projection, field_to_json
from syncd.pairs import Conflict


@dataclass(frozen=True)
class MergeResult:
    """Which fields flow where, the merged projection, and the conflicts decided."""

    merged: Projection
    to_calendar: frozenset[str]
    to_crm: frozenset[str]
    conflicts: tuple[Conflict, ...]


def changed_fields(now: Projection, base: Projection | None) -> frozenset[str] | None:
    """Fields that differ from the base; None when there is no base (unknown history)."""
    return None if base is None else now.diff(base)


def _winner(policy: str, crm_updated: datetime | None, cal_updated: datetime | None) -> str:
    if policy == "calendar_wins":
        return "calendar"
    if policy == "newest_wins" and crm_updated and cal_updated and cal_updated > crm_updated:
        return "calendar"
    return "crm"  # crm_wins, and newest_wins ties or unknown times


def merge(
    crm: Projection,
    cal: Projection,
    crm_base: Projection | None,
    cal_base: Projection | None,
    *,
    policy: str = "crm_wins",
    carried: frozenset[str] = frozenset(FIELDS),
    crm_updated: datetime | None = None,
    cal_updated: datetime | None = None,
) -> MergeResult:
    """Merge one pair.

    ``carried`` are the fields the calendar carries back; a difference in any other field
    on the calendar side is not an edit. Without a base (a link rebuilt from markers),
    every field that differs counts as changed on both sides and the policy decides,
    recording a conflict so that the losing value is kept.
    """
    crm_changed = changed_fields(crm, crm_base)
    cal_changed = changed_fields(cal, cal_base)
    if crm_changed is None or cal_changed is None:
        differing = crm.diff(cal)
        crm_changed = differing if crm_changed is None else crm_changed
        cal_changed = differing if cal_changed is None else cal_changed
    cal_changed = cal_changed & carried

    to_calendar: set[str] = set()
    to_crm: set[str] = set()
    conflicts: list[Conflict] = []
    values = {}
    for name in FIELDS:
        crm_value, cal_value = crm.get(name), cal.get(name)
        if name in crm_changed and name in cal_changed:
            if crm_value == cal_value:
                values[name] = crm_value
                continue
            winner = _winner(policy, crm_updated, cal_updated)
            conflicts.append(
                Conflict(name, field_to_json(name, crm_value), field_to_json(name, cal_value),
                         "crm" if winner == "crm" else "calendar", policy)
            )
            if winner == "crm":
                values[name] = crm_value
                to_calendar.add(name)
            else:
                values[name] = cal_value
                to_crm.add(name)
        elif name in crm_changed:
            values[name] = crm_value
            if crm_value != cal_value:
                to_calendar.add(name)
        elif name in cal_changed:
            values[name] = cal_value
            if cal_value != crm_value:
                to_crm.add(name)
        else:
            values[name] = crm_value
    merged = crm.replace(values)
    if "guests" in to_crm:
        # Names known on either side help the CRM match guests to persons.
        merged = merged.replace({"guest_names": {**crm.guest_names, **cal.guest_names}})
    return MergeResult(merged, frozenset(to_calendar), frozenset(to_crm), tuple(conflicts))
