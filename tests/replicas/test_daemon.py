"""syncd run as a replica: one tick job claims accounts from the work queue, up to its
workers, and gives each back due an interval later; a push makes one due at once."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from connectors.memory import MemoryCalendar
from syncd.config import AccountConfig, Config
from syncd.daemon import Daemon


def _settle(daemon: Daemon) -> None:
    assert daemon.dispatcher is not None
    deadline = time.monotonic() + 60
    while daemon.dispatcher.in_flight and time.monotonic() < deadline:
        time.sleep(0.01)
    assert daemon.dispatcher.in_flight == 0


def test_a_replica_daemon_claims_accounts_on_its_tick_and_gives_them_back_due_later(
        tmp_path: Path) -> None:
    accounts = tuple(AccountConfig(name=f"a{i}", provider="memory", owner="ann@example.com")
                     for i in range(3))
    daemon = Daemon(Config(data_dir=str(tmp_path), accounts=accounts, replica=True,
                           workers=2, interval_seconds=600, jitter_seconds=0))
    assert daemon.dispatcher is not None
    daemon.service.store.add_user("ann@example.com", "Ann", "UTC")
    calendars: dict[str, MemoryCalendar] = {}
    daemon.service._connector = (  # type: ignore[method-assign]
        lambda account, _now: calendars.setdefault(account.name, MemoryCalendar()))
    try:
        daemon.refresh_jobs()
        assert daemon.scheduler.get_jobs() == []  # no job per account
        assert daemon.dispatcher.tick() == 2  # its cap
        _settle(daemon)
        assert daemon.dispatcher.tick() == 1
        _settle(daemon)
        assert daemon.dispatcher.tick() == 0  # every account due in 600 s
        later = datetime.now(UTC) + timedelta(seconds=500)
        for state in daemon.service.state.accounts():
            assert (state.last_outcome, state.lease_owner) == ("ok", None)
            assert state.due_at is not None and state.due_at > later
        daemon._run_soon("a1", time.time())  # a push
        assert daemon.dispatcher.tick() == 1
        _settle(daemon)
        assert daemon.service.state.account("a1").last_outcome == "ok"
    finally:
        daemon.dispatcher.stop()
        daemon.service.close()


def test_the_configured_lease_is_what_a_replica_claims_and_a_cycle_renews(
        tmp_path: Path) -> None:
    """``[syncd] lease_seconds`` is the queue's claim and the cycle's renewal: the lease a
    writing cycle holds ends that long after its last renewal, not LEASE_TTL after."""
    account = AccountConfig(name="a0", provider="memory", owner="ann@example.com")
    daemon = Daemon(Config(data_dir=str(tmp_path), accounts=(account,), replica=True,
                           workers=1, interval_seconds=600, jitter_seconds=0,
                           lease_seconds=90))
    assert daemon.dispatcher is not None
    assert daemon.dispatcher.ttl == timedelta(seconds=90)
    owner_id = daemon.service.store.add_user("ann@example.com", "Ann", "UTC")
    seen: list[tuple[datetime, datetime]] = []

    class Watching(MemoryCalendar):
        def write(self, ops):  # type: ignore[no-untyped-def]
            held = daemon.service.state.account("a0").lease_until
            assert held is not None
            seen.append((datetime.now(UTC), held))
            return super().write(ops)

    calendar = Watching()
    daemon.service._connector = (  # type: ignore[method-assign]
        lambda _account, _now: calendar)
    try:
        daemon.service.store.add_activity(owner_id=owner_id, subject="Call",
                                          due_date=datetime.now(UTC).date())
        assert daemon.dispatcher.tick() == 1
        _settle(daemon)
        assert seen, "the cycle wrote nothing: the renewal before a batch was not seen"
        for at, until in seen:  # renewed for 90 s before the batch (not 600)
            assert timedelta(seconds=60) < until - at <= timedelta(seconds=90)
    finally:
        daemon.dispatcher.stop()
        daemon.service.close()


def test_a_replicas_connectors_count_provider_limits_in_the_database(tmp_path: Path) -> None:
    """With ``replica = true`` every connector gets the shared limits; a single process
    keeps counting in memory."""
    from syncd.service import Service
    from syncd.store.limits import LimitStore

    account = AccountConfig(name="g", provider="google", owner="ann@example.com",
                            auth={"api_endpoint": "https://calendar.test/calendar/v3/"})
    seen: list[object] = []
    for replica in (True, False):
        service = Service(Config(data_dir=str(tmp_path / str(replica)), accounts=(account,),
                                 replica=replica))
        service.store.add_user("ann@example.com", "Ann", "UTC")
        try:
            connector = service.open_connector(account, read_only=True)
            seen.append(type(connector.transport.budget).__name__)  # type: ignore[attr-defined]
            seen.append(service._limits())
            connector.close()
        finally:
            service.close()
    assert seen[0] == "SharedRequestBudget" and isinstance(seen[1], LimitStore)
    assert seen[2:] == ["BothBudgets", None]  # the user's and the project's, in memory
