"""Guards: checks on a whole plan before anything is written.

A guard never trims a plan; it refuses the cycle, leaves the cursors where they are
(so the signals are read again next time) and flags the account for a person to look
at. Each guard answers a real failure (failure modes 4, 5 and 6).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import cache

from syncd.engine.actions import CreateEvent, DeleteActivity, DeleteEvent, PairPlan, UpdateEvent
from syncd.errors import SyncRefused

MIN_DELETE_ALLOWANCE = 5
MAX_DELETE_FRACTION = 0.10


def deletion_allowance(link_count: int) -> int:
    """How many deletions one cycle may make: max(5, 10 % of the account's links)."""
    return max(MIN_DELETE_ALLOWANCE, int(link_count * MAX_DELETE_FRACTION))


def count_deletions(plans: Sequence[PairPlan]) -> int:
    return sum(
        isinstance(p.cal_write, DeleteEvent) + isinstance(p.crm_write, DeleteActivity)
        for p in plans
    )


def count_guest_emails(plans: Sequence[PairPlan]) -> int:
    """E-mails the plans send: one per recipient of every notifying write (an event with
    10,000 attendees counts 10,000)."""
    return sum(
        p.cal_write.recipients for p in plans
        if isinstance(p.cal_write, CreateEvent | UpdateEvent | DeleteEvent) and p.cal_write.notify
    )


def check_plan(
    plans: Sequence[PairPlan],
    *,
    account: str,
    link_count: int | Callable[[], int],
    full_listing_empty: bool,
    force_delete: bool = False,
    guest_cap: int | None = None,
    scope_changed: bool = False,
) -> SyncRefused | None:
    """The refusal of the first guard the plan trips (for ``account``), or None when it
    may run.

    ``force_delete`` is the operator's override after looking into a refusal; it passes
    the deletion and scope guards, never the invitation breaker. ``guest_cap`` is the
    account's hourly cap on guest e-mails: a cycle that plans more than a whole hour's
    worth is a storm and pauses the account (within the cap, the runner makes a pair
    that would pass what is left of the hour wait instead).

    ``link_count``: the account's settled links, or how to count them, asked only when a
    guard needs the figure (an idle cycle's plan never does, so it costs no query).
    """
    links = cache(link_count) if callable(link_count) else (lambda: link_count)
    if scope_changed and not force_delete and links() > 0:
        # Another calendar or another identity behind the same account name: its
        # events are not the ones linked, and syncing blindly would duplicate or delete
        # (failure mode 5).
        return SyncRefused(guard="scope-changed", account=account)
    if full_listing_empty and not force_delete and links() > 0:
        return SyncRefused(guard="empty-calendar", account=account, count=links())
    deletions = count_deletions(plans)
    # (no more deletions than the smallest allowance: the count cannot matter)
    allowance = deletion_allowance(links() if deletions > MIN_DELETE_ALLOWANCE else 0)
    if deletions > allowance and not force_delete:
        return SyncRefused(guard="mass-deletion", account=account, count=deletions,
                           limit=allowance)
    if guest_cap is not None:
        emails = count_guest_emails(plans)
        if emails > guest_cap:
            return SyncRefused(guard="guest-updates", account=account, count=emails,
                               limit=guest_cap)
    return None
