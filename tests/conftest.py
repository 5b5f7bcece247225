"""Shared fixtures: Hypothesis profiles, real CalDAV servers, fresh calendars.

The time budget (CI runs ``make test`` on a 2-core machine in under 20 minutes): a test
takes under 20 s, unless it is the one representative of its scenario, marked
``@pytest.mark.slow`` (the 200-user team, WebDAV-Push through a real daemon, replica
failover, the browser booking). Full-size runs belong in bench/ with their figures in
bench/README.md. Wait on a condition (a count, a row, a log line), never a fixed sleep; a
daemon's own timer is fired by the test (``job.modify(next_run_time=...)``) rather than
waited for. ``make test`` runs the suite on several workers (pytest-xdist): a test takes
its servers from fixtures on free ports and its PostgreSQL database from ``pg_url`` (one
per worker), never a fixed port, path or database name. Tests over the budget and not
marked slow are listed at the end of the run.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from hypothesis import HealthCheck, settings

from connectors import local_limits
from syncd_testkit.servers import DavServer, RadicaleServer, XandikosServer

# The shared suites are not test_ modules: have pytest explain their failed asserts too.
pytest.register_assert_rewrite("tests.contract", "tests.sync_contract", "tests.crm.contract")

settings.register_profile("dev", max_examples=60, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("ci", max_examples=200, deadline=None, print_blob=True,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("deterministic", max_examples=60, deadline=None, derandomize=True,
                          suppress_health_check=[HealthCheck.too_slow])
# A long fuzzing run of the readers (tests/hostile/jsonread_fuzz.py):
#   HYPOTHESIS_PROFILE=fuzz .venv/bin/pytest -q tests/hostile -k fuzz
settings.register_profile("fuzz", max_examples=int(os.environ.get("SYNCD_FUZZ_EXAMPLES", "2000")),
                          deadline=None, suppress_health_check=list(HealthCheck))
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "dev"))


@pytest.fixture(autouse=True)
def _no_ambient_config(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests never pick up a developer's own config or data directory."""
    monkeypatch.delenv("SYNCD_CONFIG", raising=False)
    monkeypatch.delenv("SYNCD_DATA_DIR", raising=False)
    monkeypatch.delenv("SYNCD_FAILPOINT", raising=False)


@pytest.fixture(autouse=True)
def _fresh_local_limits(monkeypatch: pytest.MonkeyPatch) -> None:
    """This process's send lines and slots (connectors.local_limits) are process-wide: a
    test's reservations and pauses must not outlive it (emulator ports recur)."""
    monkeypatch.setattr(local_limits, "_instances", {})


@pytest.fixture(scope="session")
def radicale(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RadicaleServer]:
    server = RadicaleServer(tmp_path_factory.mktemp("radicale"))
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def xandikos(tmp_path_factory: pytest.TempPathFactory) -> Iterator[XandikosServer]:
    server = XandikosServer(tmp_path_factory.mktemp("xandikos"))
    server.start()
    yield server
    server.stop()


@pytest.fixture(params=["radicale", "xandikos"])
def dav_server(request: pytest.FixtureRequest) -> DavServer:
    server: DavServer = request.getfixturevalue(request.param)
    return server


def fresh_calendar(server: DavServer, user: str | None = None) -> tuple[str, str]:
    """A new, empty calendar on ``server``; returns (user, calendar URL)."""
    import caldav

    user = user or f"u{uuid.uuid4().hex[:10]}@example.com"
    client = caldav.DAVClient(url=server.url, username=user, password="x")
    name = f"c{uuid.uuid4().hex[:10]}"
    cal = client.principal().make_calendar(name=name, cal_id=name)
    return user, str(cal.url)


@pytest.fixture
def tmp_data(tmp_path: Path) -> Path:
    return tmp_path


#: Seconds a test's call may take on CI's 2-core machine (see the module docstring).
BUDGET_SECONDS = 20.0


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """List the tests over the budget that are not marked slow (a report, not a failure:
    a loaded machine stretches every test)."""
    over = sorted(((r.duration, r.nodeid) for kind in ("passed", "failed")
                   for r in terminalreporter.stats.get(kind, [])
                   if getattr(r, "when", "") == "call" and r.duration > BUDGET_SECONDS
                   and "slow" not in r.keywords), reverse=True)
    if over:
        terminalreporter.section(f"over the {BUDGET_SECONDS:.0f} s budget, not marked slow")
        for duration, nodeid in over:
            terminalreporter.line(f"{duration:6.1f}s {nodeid}")


@pytest.fixture
def environ_reads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The URLs requests looked up the environment's proxies for."""
    reads: list[str] = []
    real = requests.sessions.get_environ_proxies

    def counted(url: str, no_proxy: Any = None) -> Any:
        reads.append(url)
        return real(url, no_proxy=no_proxy)

    monkeypatch.setattr(requests.sessions, "get_environ_proxies", counted)
    return reads
