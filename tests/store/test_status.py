"""The account status machine: every transition as a table row, then through the store."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from syncd.errors import AccountCooldown, AuthFailed, QuotaCooldown, SyncRefused, Transient
from syncd.store.db import Database
from syncd.store.state import StateStore
from syncd.store.status import (
    AccountStatus,
    CycleEnd,
    Note,
    Outcome,
    after_cycle,
    backoff,
    quota_rest,
    unavailable,
)

NOW = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)
LATER = NOW + timedelta(minutes=5)


@dataclass(frozen=True)
class Row:
    status: str = "ok"
    status_reason: str | None = None
    cooldown_until: datetime | None = None
    failures: int = 0
    quota_cooldowns: int = 0


def refused(guard: str) -> SyncRefused:
    return SyncRefused(guard=guard, account="a", count=9, limit=5)


# (the account before, how the cycle ended) -> the status columns written
AFTER_CYCLE: list[tuple[str, Row, CycleEnd, dict[str, Any]]] = [
    ("ok clears everything", Row("failing", "x", LATER, 3, 2), CycleEnd(Outcome.OK),
     {"status": "ok", "status_reason": None, "failures": 0, "cooldown_until": None,
      "quota_cooldowns": 0}),
    ("partial with items to retry resets the failures", Row("ok", None, None, 2, 2),
     CycleEnd(Outcome.PARTIAL, note=Note.RETRY_NEXT), {"failures": 0, "quota_cooldowns": 0}),
    ("partial after a lost lease changes no status", Row("ok", None, None, 2),
     CycleEnd(Outcome.PARTIAL, note=Note.LEASE_LOST), {}),
    ("partial at the deadline changes no status", Row(),
     CycleEnd(Outcome.PARTIAL, note=Note.DEADLINE), {}),
    ("the guest breaker pauses", Row(),
     CycleEnd(Outcome.REFUSED, error=refused("guest-updates"),
              reason="guest-updates: 9 planned"),
     {"status": "paused", "status_reason": "guest-updates: 9 planned"}),
    ("a deletion guard flags", Row(),
     CycleEnd(Outcome.REFUSED, error=refused("mass-deletion"),
              reason="mass-deletion: 9 planned"),
     {"status": "flagged", "status_reason": "mass-deletion: 9 planned"}),
    ("refused credentials need re-authorisation", Row(failures=1),
     CycleEnd(Outcome.FAILED, error=AuthFailed(reason="HTTP 401")),
     {"status": "needs_reauth", "status_reason": "HTTP 401"}),
    ("a usage limit that names its end rests that long, however many came before",
     Row(quota_cooldowns=3),
     CycleEnd(Outcome.FAILED, error=AccountCooldown(seconds=600, reason="quota")),
     {"status": "cooldown", "cooldown_until": NOW + timedelta(seconds=600)}),
    ("a first quota limit rests its first rest", Row(),
     CycleEnd(Outcome.FAILED, error=QuotaCooldown(seconds=3600, reason="quotaExceeded")),
     {"status": "cooldown", "cooldown_until": NOW + timedelta(hours=1),
      "quota_cooldowns": 1}),
    ("a third quota limit in a row rests four times as long", Row("cooldown", None, NOW, 0, 2),
     CycleEnd(Outcome.FAILED, error=QuotaCooldown(seconds=3600, reason="quotaExceeded")),
     {"status": "cooldown", "cooldown_until": NOW + timedelta(hours=4),
      "quota_cooldowns": 3}),
    ("another failure between quota limits keeps the streak", Row("cooldown", None, NOW, 0, 2),
     CycleEnd(Outcome.FAILED, error=Transient(reason="503")),
     {"status": "failing", "failures": 1, "cooldown_until": NOW + timedelta(minutes=1)}),
    ("any other failure backs off, longer each time", Row(failures=2),
     CycleEnd(Outcome.FAILED, error=Transient(reason="503")),
     {"status": "failing", "failures": 3, "cooldown_until": NOW + timedelta(minutes=4)}),
    ("a refused sign-in before the cycle needs re-authorisation, no back-off", Row(),
     CycleEnd(Outcome.FAILED, error=AuthFailed(reason="bad"), started=False),
     {"status": "needs_reauth", "status_reason": "bad", "failures": 1, "last_counts": {}}),
    ("another failure before the cycle is failing, no back-off", Row("ok", "r", None, 4),
     CycleEnd(Outcome.FAILED, error=OSError("gone"), started=False),
     {"status": "failing", "status_reason": None, "failures": 5, "last_counts": {}}),
]


@pytest.mark.parametrize(("case", "row", "end", "moved"), AFTER_CYCLE,
                         ids=[c[0] for c in AFTER_CYCLE])
def test_each_cycle_end_moves_the_status_as_the_table_says(
        case: str, row: Row, end: CycleEnd, moved: dict[str, Any]) -> None:
    values = after_cycle(row, end, NOW)
    last = {k: values.pop(k) for k in ("last_run_at", "last_outcome", "last_message")}
    assert last == {"last_run_at": NOW, "last_outcome": str(end.outcome),
                    "last_message": end.message}
    counts = values.pop("last_counts")
    assert counts == moved.pop("last_counts", dict(end.counts))
    assert values == moved


@pytest.mark.parametrize("outcome", [Outcome.DRY_RUN, Outcome.SKIPPED, Outcome.BUSY])
def test_a_dry_run_a_skip_and_a_busy_account_record_nothing(outcome: Outcome) -> None:
    assert after_cycle(Row("failing", "x", LATER, 3), CycleEnd(outcome), NOW) == {}


def test_the_back_off_doubles_from_a_minute_up_to_an_hour() -> None:
    assert [backoff(n) for n in (1, 2, 3, 7, 8, 30)] == [
        timedelta(minutes=m) for m in (1, 2, 4, 60, 60, 60)]


def test_quota_rests_double_from_an_hour_up_to_a_day() -> None:
    assert [quota_rest(3600, n) for n in (0, 1, 2, 3, 4, 5, 6, 40, 10**9)] == [
        timedelta(hours=h) for h in (1, 2, 4, 8, 16, 24, 24, 24, 24)]
    assert quota_rest(5 * 86400, 0) == timedelta(hours=24)  # never past a day
    assert quota_rest(0, 10**9) == timedelta(0)


# (the account's row, --force-delete) -> the status that keeps it from starting, or None
MAY_START: list[tuple[Row, bool, str | None]] = [
    (Row("ok"), False, None),
    (Row("needs_reauth", "401"), True, "needs_reauth"),
    (Row("paused"), True, "paused"),
    (Row("flagged"), False, "flagged"),
    (Row("flagged"), True, None),
    (Row("cooldown", None, LATER), False, "cooldown"),
    (Row("cooldown", None, NOW), False, None),  # rested long enough
    (Row("failing", None, LATER, 2), True, "failing"),
    (Row("failing", None, NOW - timedelta(seconds=1), 2), False, None),
]


@pytest.mark.parametrize(("row", "force", "held"), MAY_START)
def test_an_account_starts_a_cycle_unless_it_rests_or_waits_for_someone(
        row: Row, force: bool, held: str | None) -> None:
    why = unavailable("a", row, NOW, force=force)
    assert (why.status if why is not None else None) == held
    if why is not None:
        assert why.account == "a" and why.reason == row.status_reason
        # Only a resting account says until when.
        assert why.until == (row.cooldown_until if held in ("cooldown", "failing") else None)


@pytest.fixture
def state(tmp_path: Path) -> StateStore:
    return StateStore(Database(f"sqlite:///{tmp_path / 'state.db'}"))


def test_a_cycle_begun_and_finished_records_its_end_and_frees_the_lease(
        state: StateStore) -> None:
    start = state.begin_cycle("a", "host:1", timedelta(minutes=10), NOW)
    assert start.token is not None and start.unavailable is None
    assert state.begin_cycle("a", "host:2", timedelta(minutes=10), NOW).token is None  # busy
    state.finish_cycle("a", start.token, CycleEnd(Outcome.FAILED, {"events_created": 2},
                                                  error=Transient(reason="503"),
                                                  message="worded"), NOW, start.state)
    after = state.account("a")
    assert (after.status, after.failures, after.last_outcome, after.last_message,
            after.last_counts) == ("failing", 1, "failed", "worded", {"events_created": 2})
    assert after.lease_owner is None
    resting = state.begin_cycle("a", "host:2", timedelta(minutes=10), NOW)
    assert resting.token is None and resting.unavailable is not None
    assert resting.unavailable.status == "failing"


def test_the_quota_streak_outlives_a_restart_and_a_successful_cycle_ends_it(
        tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'state.db'}"
    ttl, limit = timedelta(minutes=10), QuotaCooldown(seconds=3600, reason="quotaExceeded")

    def cycle(state: StateStore, now: datetime, end: CycleEnd) -> timedelta | None:
        start = state.begin_cycle("a", "host:1", ttl, now)
        assert start.token is not None, start.unavailable
        state.finish_cycle("a", start.token, end, now, start.state)
        until = state.account("a").cooldown_until
        return None if until is None else until - now

    now = NOW
    rests = []
    for _ in range(3):  # each cycle in a new process: a restart between them
        state = StateStore(Database(url))
        rests.append(cycle(state, now, CycleEnd(Outcome.FAILED, error=limit)))
        state.db.close()
        now += rests[-1] or timedelta(0)
    assert rests == [timedelta(hours=1), timedelta(hours=2), timedelta(hours=4)]
    state = StateStore(Database(url))
    assert cycle(state, now, CycleEnd(Outcome.OK)) is None
    assert cycle(state, now, CycleEnd(Outcome.FAILED, error=limit)) == timedelta(hours=1)


def test_a_flagged_account_starts_only_with_force_delete(state: StateStore) -> None:
    start = state.begin_cycle("a", "h:1", timedelta(minutes=10), NOW)
    state.finish_cycle("a", start.token, CycleEnd(Outcome.REFUSED, error=refused("empty")),
                       NOW, start.state)
    assert state.begin_cycle("a", "h:1", timedelta(minutes=10), NOW).unavailable is not None
    assert state.begin_cycle("a", "h:1", timedelta(minutes=10), NOW, force=True).token


def test_signing_in_releases_a_refused_or_failing_account_but_not_a_paused_one(
        state: StateStore) -> None:
    for name, status in (("reauth", "needs_reauth"), ("failing", "failing"),
                         ("paused", "paused")):
        state.account(name)
        state.update_account(name, status=status, status_reason="why", failures=3)
        state.signed_in(name)
    assert [state.account(n).status for n in ("reauth", "failing", "paused")] == [
        AccountStatus.OK, AccountStatus.OK, AccountStatus.PAUSED]
    assert state.account("reauth").failures == 0


def test_resume_releases_any_status_and_says_which_it_was(state: StateStore) -> None:
    state.account("a")
    state.update_account("a", status="paused", status_reason="guest-updates: 9",
                         cooldown_until=LATER, failures=2, guest_window_count=9,
                         quota_cooldowns=3)
    assert state.resume("a") == AccountStatus.PAUSED
    after = state.account("a")
    assert (after.status, after.status_reason, after.cooldown_until, after.failures,
            after.guest_window_count, after.quota_cooldowns) == ("ok", None, None, 0, 0, 0)


def test_changed_credentials_release_only_an_account_waiting_for_them(
        state: StateStore) -> None:
    for name, status in (("reauth", "needs_reauth"), ("flagged", "flagged")):
        state.account(name)
        state.update_account(name, status=status, auth_fingerprint="old")
        state.credentials_changed(name)
    assert (state.account("reauth").status, state.account("reauth").auth_fingerprint) == (
        "ok", None)
    assert state.account("flagged").status == "flagged"
    state.update_account("reauth", status="needs_reauth")
    state.credentials_refused("reauth", "new")
    state.credentials_refused("flagged", "new")
    assert state.account("reauth").auth_fingerprint == "new"
    assert state.account("flagged").auth_fingerprint == "old"
