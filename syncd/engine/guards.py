"""Guards: checks on a whole plan before anything is written.

A guard never trims a plan; it refuses the cycle, leaves the cursors where they are
(so the signals are read again next time) and flags the account for a person to look
at. Each guard answers a real failure (failure modes 4, 5 and 6).

The daily deletion budget (:func:`deletion_hold`) is the one check that holds part of a
plan instead: a source that loses a little less than the per-cycle allowance every cycle
would empty the other side within a day, one allowed cycle at a time. Once an account's
propagated deletions within :data:`DELETION_DAY` would pass its budget, every deletion
waits (its pair keeps its state, its cursor stays) until an admin lets them through with
``--force-delete``; creates and edits go on meanwhile.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache

from syncd.engine.actions import CreateEvent, DeleteActivity, DeleteEvent, PairPlan, UpdateEvent
from syncd.errors import SyncRefused

MIN_DELETE_ALLOWANCE = 5
MAX_DELETE_FRACTION = 0.10

#: The rolling window of the daily deletion budget.
DELETION_DAY = timedelta(hours=24)
#: Deletions a day any account may make, however few its pairs (the share of them is
#: the account's ``max_daily_deletion_percent``, 25 unless set).
MIN_DAILY_DELETIONS = 10


def deletion_allowance(link_count: int) -> int:
    """How many deletions one cycle may make: max(5, 10 % of the account's links)."""
    return max(MIN_DELETE_ALLOWANCE, int(link_count * MAX_DELETE_FRACTION))


def count_deletions(plans: Sequence[PairPlan]) -> int:
    return sum(
        isinstance(p.cal_write, DeleteEvent) + isinstance(p.crm_write, DeleteActivity)
        for p in plans
    )


def daily_deletion_allowance(pairs: int, percent: int) -> int:
    """How many propagated deletions a day may make: max(10, ``percent`` % of the
    ``pairs`` the day began with)."""
    return max(MIN_DAILY_DELETIONS, pairs * percent // 100)


@dataclass(frozen=True)
class DeletionHold:
    """The deletions of a cycle wait for an admin: ``waiting`` of them. ``count`` is what
    the day's deletions would have come to with them and ``limit`` the budget they would
    pass (both 0 when the account was already held, ``since`` then)."""

    account: str
    waiting: int
    count: int = 0
    limit: int = 0
    since: datetime | None = None


def deletion_hold(plans: Sequence[PairPlan], *, account: str, held_since: datetime | None,
                  recent: Callable[[], int], link_count: Callable[[], int], percent: int,
                  force_delete: bool = False) -> DeletionHold | None:
    """Whether this plan's deletions wait (a :class:`DeletionHold`) or may go (None).

    ``held_since``: the account's deletions already wait for an admin (since then).
    ``recent``: the propagated deletions recorded within :data:`DELETION_DAY` (since an
    admin last let them through, if later); ``link_count``: the account's settled pairs
    now. Both are asked only when the plan deletes something. The day began with about
    ``link_count() + recent()`` pairs; the budget is ``percent`` % of those, and the
    plan's deletions wait when the day's would pass it, so the other side never loses
    more than the budget in a day unseen. ``force_delete``, the admin's word, lets them
    through.
    """
    waiting = count_deletions(plans)
    if not waiting or force_delete:
        return None
    if held_since is not None:
        return DeletionHold(account, waiting, since=held_since)
    done = recent()
    limit = daily_deletion_allowance(link_count() + done, percent)
    if done + waiting > limit:
        return DeletionHold(account, waiting, done + waiting, limit)
    return None


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
    deletions_wait: bool = False,
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

    ``deletions_wait``: the account's deletions are held by the daily budget
    (:func:`deletion_hold`) whatever their number, so the per-cycle deletion count has
    nothing to stop: the deletions that pile up while they wait must not refuse the
    creates and edits beside them.
    """
    links = cache(link_count) if callable(link_count) else (lambda: link_count)
    if scope_changed and not force_delete and links() > 0:
        # Another calendar or another identity behind the same account name: its
        # events are not the ones linked, and syncing blindly would duplicate or delete
        # (failure mode 5).
        return SyncRefused(guard="scope-changed", account=account)
    if full_listing_empty and not force_delete and links() > 0:
        return SyncRefused(guard="empty-calendar", account=account, count=links())
    deletions = 0 if deletions_wait else count_deletions(plans)
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
