"""/metrics, /healthz and /readyz on a receiver, and the metrics' rules: bounded labels,
counts from cycle reports, every transport's requests, every mounted hook's counts."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from syncd import telemetry
from syncd.config import AccountConfig, Config, HttpConfig
from syncd.crm.builtin.activities import ActivityStore
from syncd.engine.outcome import CycleReport, Outcome
from syncd.http.basic_auth import USER
from syncd.http.ops import DatabaseProbe, Ops, metrics_secret
from syncd.http.receiver import Receiver
from syncd.metrics import Metrics, error_kind, status_label
from syncd.push import AccountDirectory
from syncd.store.budgets import BudgetLedger
from syncd.store.db import Database
from syncd.store.dirty import DirtyFlags
from syncd.store.state import StateStore

ACCOUNTS = [AccountConfig("alice-cal", "caldav", "alice@example.com"),
            AccountConfig("bob-work", "google", "bob@example.com")]


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of an exposition, by (name, sorted labels), read with the library's
    own parser."""
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def value(text: str, name: str, **labels: str) -> float | None:
    return samples(text).get((name, tuple(sorted(labels.items()))))


def report(account: str, outcome: Outcome = Outcome.OK, **counts: int) -> CycleReport:
    done = CycleReport(account, counts=Counter(counts))
    done.end(outcome)
    return done


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    database = Database(f"sqlite:///{tmp_path / 'syncd.db'}")
    yield database
    database.close()


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


def test_a_cycle_counts_its_outcome_duration_writes_conflicts_and_mails() -> None:
    accounts = list(ACCOUNTS)
    clock = Clock()
    metrics = Metrics(lambda: accounts, clock=clock)
    metrics.cycle_done(ACCOUNTS[0], report("alice-cal", events_created=3, activities_updated=1,
                                           conflicts=2, guest_emails=4, quarantined=1,
                                           skipped_past=9), 0.3)
    metrics.cycle_done(ACCOUNTS[1], report("bob-work", Outcome.FAILED), 1.5)
    text = metrics.render().decode()
    assert value(text, "syncd_cycles_total", account="alice-cal", outcome="ok") == 1
    assert value(text, "syncd_cycles_total", account="bob-work", outcome="failed") == 1
    assert value(text, "syncd_cycle_duration_seconds_count", provider="caldav") == 1
    assert value(text, "syncd_cycle_duration_seconds_bucket", provider="google",
                 le="1.0") == 0
    assert value(text, "syncd_writes_total", kind="events_created") == 3
    assert value(text, "syncd_writes_total", kind="activities_updated") == 1
    assert value(text, "syncd_writes_total", kind="events_deleted") == 0  # there from start
    assert value(text, "syncd_conflicts_total") == 2
    assert value(text, "syncd_guest_emails_total") == 4
    assert value(text, "syncd_quarantined_total") == 1
    assert value(text, "syncd_last_success_timestamp_seconds", account="alice-cal") == clock.now
    assert value(text, "syncd_last_success_timestamp_seconds", account="bob-work") is None
    assert "skipped_past" not in text  # only the documented counts become metrics


def test_an_account_removed_from_the_config_leaves_the_gauges() -> None:
    accounts = list(ACCOUNTS)
    metrics = Metrics(lambda: accounts)
    metrics.cycle_done(ACCOUNTS[0], report("alice-cal"), 0.1)
    assert value(metrics.render().decode(), "syncd_last_success_timestamp_seconds",
                 account="alice-cal") is not None
    accounts.pop(0)
    assert value(metrics.render().decode(), "syncd_last_success_timestamp_seconds",
                 account="alice-cal") is None


def test_the_last_success_survives_a_restart_through_the_stored_state(db: Database) -> None:
    state = StateStore(db)
    at = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)
    for account in ACCOUNTS:
        state.account(account.name)  # the row, as a first cycle makes it
    state.update_account("alice-cal", last_outcome="ok", last_run_at=at)
    state.update_account("bob-work", last_outcome="failed", last_run_at=at)
    metrics = Metrics(lambda: ACCOUNTS, db)
    metrics.seed(state)
    text = metrics.render().decode()
    assert value(text, "syncd_last_success_timestamp_seconds",
                 account="alice-cal") == at.timestamp()
    assert value(text, "syncd_last_success_timestamp_seconds", account="bob-work") is None


def test_requests_are_counted_by_provider_and_status_with_bounded_labels() -> None:
    metrics = Metrics(lambda: ACCOUNTS)
    metrics.start()
    try:
        for status in (200, 200, 412, 429, 503, 0, 99999, -1):
            telemetry.request_answered("caldav", status)
    finally:
        metrics.stop()
    telemetry.request_answered("caldav", 200)  # no longer listening
    text = metrics.render().decode()
    assert value(text, "syncd_provider_requests_total", provider="caldav", status="200") == 2
    assert value(text, "syncd_provider_requests_total", provider="caldav", status="none") == 3
    assert value(text, "syncd_provider_request_errors_total", provider="caldav",
                 kind="network") == 3
    for kind in ("client", "throttled", "server"):
        assert value(text, "syncd_provider_request_errors_total", provider="caldav",
                     kind=kind) == 1
    assert {status_label(s) for s in range(-5, 2000)} <= {str(n) for n in range(100, 600)} | {
        "none"}
    assert error_kind(204) is None and error_kind(304) is None


def test_a_failing_listener_never_fails_the_request() -> None:
    def broken(_provider: str, _status: int) -> None:
        raise RuntimeError("boom")

    remove = telemetry.listen(broken)
    try:
        telemetry.request_answered("google", 200)
    finally:
        remove()


def test_push_lag_is_the_time_from_the_flag_to_the_cycle() -> None:
    clock = Clock()
    metrics = Metrics(lambda: ACCOUNTS, clock=clock)
    metrics.pushed(datetime.fromtimestamp(clock.now, UTC) - timedelta(seconds=4))
    metrics.pushed(datetime.fromtimestamp(clock.now + 5, UTC))  # a clock skew: never < 0
    text = metrics.render().decode()
    assert value(text, "syncd_push_lag_seconds_count") == 2
    assert value(text, "syncd_push_lag_seconds_sum") == 4
    assert value(text, "syncd_push_lag_seconds_bucket", le="3.0") == 1


def test_quarantine_budgets_and_takeovers_are_read_from_the_database(db: Database) -> None:
    state = StateStore(db)
    state.record_failure("alice-cal", "activity:1", "v1", "refused", immediate=True)
    state.record_failure("alice-cal", "activity:2", "v1", "refused", immediate=True)
    state.record_failure("alice-cal", "activity:3", "v1", "refused")  # still retrying
    state.record_failure("removed-account", "activity:4", "v1", "refused", immediate=True)
    clock = Clock()
    now = datetime.fromtimestamp(clock.now, UTC)
    BudgetLedger(db).reserve("pipedrive:acme", "2027-01-15", cost=20, allowance=1000,
                             resets_at=now + timedelta(hours=3), now=now, token_key="t",
                             spacing=0.1)
    lease = timedelta(minutes=1)
    assert state.acquire_lease("alice-cal", "host-a:1", lease, now - timedelta(minutes=5))
    assert state.acquire_lease("alice-cal", "host-b:2", lease, now)  # a takeover
    metrics = Metrics(lambda: ACCOUNTS, db, clock=clock)
    text = metrics.render().decode()
    assert value(text, "syncd_lease_takeovers_total") == 1
    assert value(text, "syncd_budget_left", provider="pipedrive", scope="pipedrive:acme") == 980
    assert value(text, "syncd_budget_allowance", provider="pipedrive",
                 scope="pipedrive:acme") == 1000
    assert value(text, "syncd_quarantined_items", account="alice-cal") == 2
    assert value(text, "syncd_quarantined_items", account="bob-work") == 0
    assert "removed-account" not in text


def test_the_database_away_leaves_out_only_what_it_holds(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'gone.db'}")
    metrics = Metrics(lambda: ACCOUNTS, db)
    metrics.cycle_done(ACCOUNTS[0], report("alice-cal"), 0.1)
    db.close()
    for name in ("gone.db", "gone.db-wal", "gone.db-shm"):
        (tmp_path / name).unlink(missing_ok=True)
    (tmp_path / "gone.db").mkdir()  # no database can be opened there now
    text = metrics.render().decode()
    assert value(text, "syncd_cycles_total", account="alice-cal", outcome="ok") == 1
    assert "syncd_quarantined_items" not in text and "syncd_budget_left" not in text


# -- the endpoints ------------------------------------------------------------------


class Probe:
    def __init__(self) -> None:
        self.ok = True

    def ping(self) -> None:
        if not self.ok:
            raise OSError("connection refused")


class Served:
    def __init__(self, receiver: Receiver, metrics: Metrics, auth: tuple[str, str],
                 probe: Probe, flags: dict[str, bool]) -> None:
        self.receiver, self.metrics, self.auth = receiver, metrics, auth
        self.probe, self.flags = probe, flags

    def get(self, path: str, **kw: object) -> requests.Response:
        return requests.get(self.receiver.url + path, timeout=10, **kw)  # type: ignore[arg-type]


@pytest.fixture
def served(tmp_path: Path, db: Database) -> Iterator[Served]:
    users = ActivityStore(db)
    users.add_user("alice@example.com", "Alice")
    config = Config(data_dir=str(tmp_path / "data"),
                    http=HttpConfig(listen="127.0.0.1:8765", max_body_bytes=4096),
                    accounts=tuple(ACCOUNTS))
    metrics = Metrics(lambda: config.accounts, db)
    secret = metrics_secret(config.data_path)
    probe = Probe()
    flags = {"alive": True, "stopping": False}
    ops = Ops(metrics, secret, alive=lambda: flags["alive"], stopping=lambda: flags["stopping"],
              probe=DatabaseProbe(probe.ping, timeout=0.5))
    receiver = Receiver(config, AccountDirectory(lambda: config.accounts, lambda _e: None),
                        DirtyFlags(db), lambda _n: None, port=0, ops=ops)
    receiver.start()
    found = secret.read()
    assert found is not None
    try:
        yield Served(receiver, metrics, found, probe, flags)
    finally:
        receiver.stop()


def test_metrics_ask_for_the_password_and_its_file_is_private(served: Served,
                                                              tmp_path: Path) -> None:
    assert served.get("/metrics").status_code == 401
    assert served.get("/metrics", auth=(USER, "guess")).status_code == 401
    assert served.get("/metrics", auth=("prometheus", served.auth[1])).status_code == 401
    answer = served.get("/metrics", auth=served.auth)
    assert answer.status_code == 200
    assert answer.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    assert value(answer.text, "syncd_writes_total", kind="events_created") == 0
    path = tmp_path / "data" / "http" / "metrics.secret"
    assert path.stat().st_mode & 0o777 == 0o600
    assert path.parent.stat().st_mode & 0o777 == 0o700


def test_an_admin_written_password_replaces_the_generated_one(served: Served,
                                                              tmp_path: Path) -> None:
    path = tmp_path / "data" / "http" / "metrics.secret"
    path.write_text("correct horse battery staple\n")
    assert served.get("/metrics", auth=served.auth).status_code == 401
    assert served.get("/metrics", auth=(USER, "correct horse battery staple")
                      ).status_code == 200


@pytest.mark.parametrize("header", [
    "Basic", "Basic !!!notbase64", "Bearer abc", "Basic " + "A" * 8000, "basic Og==",
    "Basic c3luY2Q=",  # "syncd" without a colon
])
def test_garbage_authorization_is_refused(served: Served, header: str) -> None:
    assert served.get("/metrics", headers={"Authorization": header}).status_code == 401


def test_the_endpoints_answer_only_get_without_a_body(served: Served) -> None:
    for path in ("/metrics", "/healthz", "/readyz"):
        assert requests.post(served.receiver.url + path, timeout=10).status_code == 405
        assert requests.get(served.receiver.url + path, data=b"x" * 10,
                            timeout=10).status_code == 413
    assert served.get("/metrics/").status_code == 404
    assert served.get("/healthz", headers={"X-Big": "x" * 20_000}).status_code >= 400


def test_health_and_readiness_follow_the_scheduler_the_database_and_shutdown(
        served: Served) -> None:
    assert served.get("/healthz").status_code == 200
    assert served.get("/readyz").status_code == 200
    assert served.get("/healthz").text.strip() == "OK"  # nothing else is revealed
    served.probe.ok = False
    assert served.get("/readyz").status_code == 503
    assert served.get("/healthz").status_code == 200  # alive, only not ready
    served.probe.ok = True
    assert served.get("/readyz").status_code == 200
    served.flags["stopping"] = True
    assert served.get("/readyz").status_code == 503
    served.flags["alive"] = False
    assert served.get("/healthz").status_code == 503


def test_a_hanging_database_makes_readyz_503_with_one_probe_in_flight() -> None:
    release = threading.Event()
    calls: list[int] = []

    def ping() -> None:
        calls.append(1)
        release.wait(10)

    probe = DatabaseProbe(ping, timeout=0.05)
    assert [probe.reachable() for _ in range(5)] == [False] * 5
    assert len(calls) == 1  # the later checks waited on the probe in flight
    release.set()
    for _ in range(100):
        if probe.reachable():
            break
    assert probe.reachable()


def test_every_mounted_hooks_counts_are_exported(served: Served) -> None:
    served.receiver.pipedrive.counts["refused"] += 2
    served.receiver.hints.counts["flagged"] += 1

    class LaterHook:  # mounted after /metrics, as the calendar hooks are
        def __init__(self) -> None:
            self.counts: Counter[str] = Counter(forged=3, accepted=5)

        def handle(self, _request: object) -> object:
            raise AssertionError

    from syncd.http.router import Route

    hook = LaterHook()
    served.receiver.server.router.add(Route("/hooks/example", hook.handle))  # type: ignore[arg-type]
    text = served.get("/metrics", auth=served.auth).text
    assert value(text, "syncd_push_notifications_total", hook="pipedrive",
                 result="refused") == 2
    assert value(text, "syncd_push_notifications_total", hook="hints", result="flagged") == 1
    assert value(text, "syncd_push_notifications_total", hook="example", result="forged") == 3
    assert value(text, "syncd_push_notifications_total", hook="example",
                 result="accepted") == 5

    class BookingPage:  # the booking page keeps counts too, but they are no notifications
        def __init__(self) -> None:
            self.counts: Counter[str] = Counter(views=4, booked=1)

        def handle(self, _request: object) -> object:
            raise AssertionError

    page = BookingPage()
    served.receiver.server.router.add(Route("/book", page.handle))  # type: ignore[arg-type]
    text = served.get("/metrics", auth=served.auth).text
    assert value(text, "syncd_booking_requests_total", result="views") == 4
    assert value(text, "syncd_booking_requests_total", result="booked") == 1
    assert 'hook="book"' not in text
