"""The daemon's metrics, in Prometheus' text format (served on ``/metrics``).

Counted as things happen: cycles (:meth:`Metrics.cycle_done`, by account and outcome, with
their duration, writes, conflicts and guest e-mails), provider requests
(every transport reports to :mod:`syncd.telemetry`) and push lag (:meth:`Metrics.pushed`).
Read at each scrape: the last successful sync of each account, the items quarantined,
the last scheduled audit of each account (:mod:`syncd.verify_schedule`), the shared
provider budgets and the lease takeovers (from the database) and the counts of every
mounted hook.

Labels are bounded: accounts are the configured ones only (an account removed from the
config disappears from the gauges), providers, statuses, outcomes and kinds come from
fixed sets; nothing carries an event, an activity or a user. The registry is syncd's own,
not the library's global one, so two daemons in one process (tests) count apart.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Protocol

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from syncd.config import AccountConfig
from syncd.engine.audit import KINDS
from syncd.engine.outcome import CycleReport, Outcome
from syncd.store.budgets import BudgetLedger
from syncd.store.db import Database
from syncd.store.invariants import INVARIANTS
from syncd.store.queue import WorkQueue
from syncd.store.state import StateStore
from syncd.telemetry import listen

log = logging.getLogger("syncd.metrics")

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
#: The cycle counts that are writes (``syncd.engine.outcome.write_name``), by kind.
WRITE_KINDS = ("activities_updated", "activities_imported", "activities_deleted",
               "events_created", "events_updated", "events_deleted")
PROVIDERS = ("caldav", "google", "outlook", "pipedrive")
# An idle cycle takes tens of milliseconds; a first sync of a large calendar minutes.
CYCLE_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 900)
# A push waits PUSH_DELAY (2 s) for its burst to end and at most PUSH_MAX_WAIT (30 s).
LAG_BUCKETS = (0.5, 1, 2, 3, 5, 10, 20, 30, 60, 120, 300, 900)


class CountsOwner(Protocol):
    """A hook (or the hint queue): what happened to its requests, by result."""

    @property
    def counts(self) -> Mapping[str, int]: ...


def status_label(status: int) -> str:
    """A request's status as a label: the HTTP code, or "none" when no answer came (or
    the number is no HTTP status: the label set stays bounded)."""
    return str(status) if 100 <= status <= 599 else "none"


def error_kind(status: int) -> str | None:
    """What kind of failure a status is (None: not a failure)."""
    if not 100 <= status <= 599:
        return "network"
    if status == 429:
        return "throttled"
    if status >= 500:
        return "server"
    if status >= 400:
        return "client"
    return None


def wrote(report: CycleReport) -> bool:
    """Whether a cycle wrote anything (one of the WRITE_KINDS counts)."""
    return any(report.counts.get(kind) for kind in WRITE_KINDS)


class Metrics:
    """The metrics of one daemon.

    ``accounts`` gives the configured accounts (the label set); ``db`` is read at each
    scrape for what lives there (budgets, quarantine); ``clock`` is epoch seconds.
    """

    def __init__(self, accounts: Callable[[], Sequence[AccountConfig]],
                 db: Database | None = None, *,
                 clock: Callable[[], float] = time.time) -> None:
        self._accounts, self.db, self._clock = accounts, db, clock
        self.registry = CollectorRegistry()
        r = self.registry
        self.cycles = Counter("syncd_cycles", "Cycles by account and outcome",
                              ["account", "outcome"], registry=r)
        self.cycle_seconds = Histogram("syncd_cycle_duration_seconds",
                                       "How long cycles took, by provider", ["provider"],
                                       buckets=CYCLE_BUCKETS, registry=r)
        self.requests = Counter("syncd_provider_requests",
                                "Requests to providers by provider and HTTP status "
                                "(none: no answer)", ["provider", "status"], registry=r)
        self.request_errors = Counter("syncd_provider_request_errors",
                                      "Failed requests by provider and kind (client, "
                                      "throttled, server, network)", ["provider", "kind"],
                                      registry=r)
        self.writes = Counter("syncd_writes", "Writes done, by kind", ["kind"], registry=r)
        self.conflicts = Counter("syncd_conflicts", "Conflicts resolved by policy",
                                 registry=r)
        self.quarantined = Counter("syncd_quarantined", "Items set aside by cycles",
                                   registry=r)
        self.guest_emails = Counter("syncd_guest_emails",
                                    "E-mails to guests that syncd's writes caused",
                                    registry=r)
        self.invariant_violations = Counter(
            "syncd_invariant_violations", "State invariants found broken at start or after "
            "a cycle, by invariant (syncd.store.invariants)", ["invariant"], registry=r)
        self.push_lag = Histogram("syncd_push_lag_seconds",
                                  "From a push notification to the cycle that reads it",
                                  buckets=LAG_BUCKETS, registry=r)
        self._last_success: dict[str, float] = {}
        self._hooks: list[Callable[[], Mapping[str, CountsOwner]]] = []
        self._lock = threading.Lock()
        self._stop_listening: Callable[[], None] | None = None
        r.register(_ReadAtScrape(self))
        for provider in PROVIDERS:  # present from the start, so a rate() has a zero
            self.requests.labels(provider, "200")
        for kind in WRITE_KINDS:
            self.writes.labels(kind)
        for invariant in INVARIANTS:
            self.invariant_violations.labels(invariant)

    def start(self) -> None:
        """Count provider requests from now on (:mod:`syncd.telemetry`)."""
        if self._stop_listening is None:
            self._stop_listening = listen(self.request_answered)

    def stop(self) -> None:
        if self._stop_listening is not None:
            self._stop_listening()
            self._stop_listening = None

    def seed(self, state: StateStore) -> None:
        """The last successful sync of each account as stored, so a restart does not
        look like a stall (only an ``ok`` last run is known to be a success)."""
        for st in state.accounts():
            if st.last_outcome == Outcome.OK and st.last_run_at is not None:
                self._last_success.setdefault(st.name, st.last_run_at.timestamp())

    def request_answered(self, provider: str, status: int) -> None:
        self.requests.labels(provider, status_label(status)).inc()
        kind = error_kind(status)
        if kind is not None:
            self.request_errors.labels(provider, kind).inc()

    def cycle_done(self, account: AccountConfig, report: CycleReport, seconds: float) -> None:
        """One cycle ended after ``seconds``."""
        self.cycles.labels(account.name, str(report.outcome)).inc()
        self.cycle_seconds.labels(account.provider).observe(max(0.0, seconds))
        counts = report.counts
        for kind in WRITE_KINDS:
            if counts.get(kind):
                self.writes.labels(kind).inc(counts[kind])
        for metric, key in ((self.conflicts, "conflicts"), (self.quarantined, "quarantined"),
                            (self.guest_emails, "guest_emails")):
            if counts.get(key):
                metric.inc(counts[key])
        if report.outcome == Outcome.OK:
            with self._lock:
                self._last_success[account.name] = self._clock()

    def invariant_broken(self, invariant: str, count: int) -> None:
        """A check found ``count`` breaches of ``invariant`` (one of INVARIANTS)."""
        if invariant in INVARIANTS:  # (the label set stays the fixed one)
            self.invariant_violations.labels(invariant).inc(count)

    def pushed(self, flagged_at: datetime) -> None:
        """A cycle starts that reads a push flagged at ``flagged_at``."""
        lag = self._clock() - flagged_at.astimezone(UTC).timestamp()
        self.push_lag.observe(max(0.0, lag))

    def watch_hooks(self, hooks: Callable[[], Mapping[str, CountsOwner]]) -> None:
        """Export the ``counts`` of each hook ``hooks`` gives (by name) at every scrape:
        asked each time, so a hook mounted later is exported too."""
        with self._lock:
            self._hooks.append(hooks)

    def render(self) -> bytes:
        """The text exposition of everything."""
        return generate_latest(self.registry)

    # read at scrape time -------------------------------------------------------------

    def _gauges(self) -> Iterator[Metric]:
        names = [a.name for a in self._accounts()]
        with self._lock:
            last = dict(self._last_success)
            sources = list(self._hooks)
        hooks = {name: owner for source in sources for name, owner in source().items()}
        success = GaugeMetricFamily("syncd_last_success_timestamp_seconds",
                                    "When each account last synced successfully (epoch s)",
                                    labels=["account"])
        for name in names:
            if name in last:
                success.add_metric([name], last[name])
        yield success
        yield from _hook_counts(hooks)
        if self.db is not None:
            yield from self._stored(names)

    def _stored(self, names: Iterable[str]) -> Iterator[Metric]:
        """What the database holds; nothing of it when the database does not answer
        (``/readyz`` says so)."""
        try:
            state = StateStore(self.db) if self.db else None
            held = state.quarantine_counts() if state else {}
            audits = state.verify_results() if state else {}
            days = BudgetLedger(self.db).current(datetime.fromtimestamp(self._clock(), UTC)) \
                if self.db else []
            takeovers = WorkQueue(self.db, owner="").takeovers() if self.db else 0
        except Exception:
            log.debug("metrics: the database did not answer", exc_info=True)
            return
        quarantined = GaugeMetricFamily("syncd_quarantined_items",
                                        "Items set aside now, by account", labels=["account"])
        for name in names:
            quarantined.add_metric([name], held.get(name, 0))
        yield quarantined
        yield from _audits(names, audits)
        left = GaugeMetricFamily("syncd_budget_left",
                                 "A shared provider budget's allowance left today",
                                 labels=["provider", "scope"])
        allowance = GaugeMetricFamily("syncd_budget_allowance",
                                      "A shared provider budget's allowance for today",
                                      labels=["provider", "scope"])
        for day in days:
            provider = day.scope.partition(":")[0]
            left.add_metric([provider, day.scope], day.left)
            allowance.add_metric([provider, day.scope], day.allowance)
        yield left
        yield allowance
        yield CounterMetricFamily("syncd_lease_takeovers",
                                  "Leases taken from a holder that never released them (a "
                                  "killed or paused replica), by every replica together",
                                  value=takeovers)


def _audits(names: Iterable[str], audits: Mapping[str, tuple[datetime, Mapping[str, int]]]
            ) -> Iterator[Metric]:
    """The daemon's scheduled audits (:mod:`syncd.verify_schedule`): each configured
    account's last one, when it was read and its findings by kind (every kind, zeros
    included, so an alert on a kind has a series before its first finding)."""
    findings = GaugeMetricFamily("syncd_verify_findings",
                                 "Findings of the last scheduled audit, by account and kind",
                                 labels=["account", "kind"])
    last = GaugeMetricFamily("syncd_verify_last_run_timestamp_seconds",
                             "When the last scheduled audit read each account (epoch s)",
                             labels=["account"])
    for name in names:
        if name not in audits:
            continue
        at, counts = audits[name]
        last.add_metric([name], at.timestamp())
        for kind in KINDS:  # the audit's fixed set: a stored key outside it is not exported
            findings.add_metric([name, kind], counts.get(kind, 0))
    yield findings
    yield last


#: Endpoints with counts that are not push hooks, each exported as its own family (by
#: result only): the booking page's views and bookings are not notifications.
OWN_FAMILIES = {"book": ("syncd_booking_requests",
                         "Booking page requests and bookings, by result")}


def _hook_counts(hooks: Mapping[str, CountsOwner]) -> Iterator[Metric]:
    family = CounterMetricFamily("syncd_push_notifications",
                                 "Push notifications and hints by hook and result",
                                 labels=["hook", "result"])
    for hook, owner in sorted(hooks.items()):
        if hook in OWN_FAMILIES:
            continue
        for result, value in _counts(owner):
            family.add_metric([hook, result], value)
    yield family
    for hook, (name, documentation) in OWN_FAMILIES.items():
        own = CounterMetricFamily(name, documentation, labels=["result"])
        if hook in hooks:
            for result, value in _counts(hooks[hook]):
                own.add_metric([result], value)
        yield own


def _counts(owner: CountsOwner) -> list[tuple[str, int]]:
    # a copy taken at once (dict of a dict holds the interpreter lock throughout):
    # requests add to the counts meanwhile
    counts: Mapping[str, Any] = dict(owner.counts)
    return [(str(result), value) for result, value in sorted(counts.items())
            if isinstance(value, int)]


class _ReadAtScrape(Collector):
    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics

    def collect(self) -> Iterable[Metric]:
        return list(self.metrics._gauges())

    def describe(self) -> Iterable[Metric]:
        return []  # nothing to check at registration: these names are unique here
