"""``syncd run`` with ``[http] listen``: /metrics, /healthz and /readyz of a real daemon.

The daemon runs in a subprocess on PostgreSQL, reached through a loopback forwarder the
test can cut (the database becomes unreachable for this daemon alone), with one CalDAV
account on a real Radicale and a backstop poll an hour away, so the only cycles are the
first one and the one a webhook asks for. /metrics is read with prometheus_client's own
parser: every name the README documents is there, and the counts move after a cycle.
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
import time
from collections.abc import Iterator
from datetime import date
from datetime import time as clock_time
from pathlib import Path

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy.engine import make_url

from syncd.crm.builtin.activities import ActivityStore
from syncd.http.basic_auth import BasicAuthSecret
from syncd.store.db import Database
from syncd_testkit.forwarder import Forwarder
from syncd_testkit.loopback import free_port
from syncd_testkit.servers import DavServer
from tests.conftest import fresh_calendar
from tests.http.conftest import delivery
from tests.http.test_daemon_push import dav_config, first_cycle, spawn
from tests.store.conftest import PG_HOST, PG_PORT, pg_url  # noqa: F401 (the fixture)

pytestmark = pytest.mark.postgres

ROOT = Path(__file__).resolve().parents[2]
CYCLE = re.compile(r"\bdav: (ok|partial|failed|refused|skipped|busy)\b")


def documented_metrics() -> set[str]:
    """The metric names in the README's monitoring table."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("### Monitoring", 1)[1].split("\n### ", 1)[0]
    return set(re.findall(r"^\| `(syncd_[a-z_]+)`", section, flags=re.MULTILINE))


class Running:
    def __init__(self, process: subprocess.Popen[bytes], log: Path, port: int,
                 forwarder: Forwarder, data: Path, store: ActivityStore, owner_id: int,
                 hook_auth: tuple[str, str]) -> None:
        self.process, self.log, self.port = process, log, port
        self.forwarder, self.data, self.store = forwarder, data, store
        self.owner_id, self.hook_auth = owner_id, hook_auth

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def cycles(self) -> int:
        return len(CYCLE.findall(self.log.read_text()))

    def wait_cycles(self, count: int, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while self.cycles() < count:
            assert self.process.poll() is None, self.log.read_text()
            assert time.monotonic() < deadline, self.log.read_text()
            time.sleep(0.1)

    def scrape(self) -> str:
        found = BasicAuthSecret(self.data, "metrics", folder="http").read()
        assert found is not None
        answer = requests.get(self.url + "/metrics", auth=found, timeout=10)
        assert answer.status_code == 200, answer.text
        return answer.text

    def families(self) -> set[str]:
        """The names of the metrics served, with or without samples yet (a counter's
        with its ``_total``)."""
        return {f"{family.name}_total" if family.type == "counter" else family.name
                for family in text_string_to_metric_families(self.scrape())}

    def metrics(self) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        answer = self.scrape()
        return {(s.name, tuple(sorted(s.labels.items()))): s.value
                for family in text_string_to_metric_families(answer)
                for s in family.samples}

    def status(self, path: str) -> int:
        return requests.get(self.url + path, timeout=10).status_code

    def status_within(self, path: str, wanted: int, timeout: float = 20.0) -> int:
        """The status of ``path`` once it is ``wanted`` (or the last one at the timeout);
        the database's connection pool may take a try or two to notice a change."""
        deadline = time.monotonic() + timeout
        while (got := self.status(path)) != wanted and time.monotonic() < deadline:
            time.sleep(0.2)
        return got


def one(found: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str,
        **labels: str) -> float:
    return found.get((name, tuple(sorted(labels.items()))), 0.0)


@pytest.fixture
def daemon(tmp_path: Path, radicale: DavServer,
           pg_url: str) -> Iterator[Running]:  # noqa: F811 (the fixture imported above)
    forwarder = Forwarder((PG_HOST, PG_PORT))
    url = make_url(pg_url).set(host="127.0.0.1", port=forwarder.port).render_as_string(
        hide_password=False)
    user, calendar = fresh_calendar(radicale)
    data = tmp_path / "data"
    data.mkdir(mode=0o700)
    db = Database(url)
    store = ActivityStore(db)
    owner_id = store.add_user(user, "U")
    hook_auth = BasicAuthSecret(data, "pipedrive").create()
    port = free_port()
    config = tmp_path / "syncd.toml"
    config.write_text(dav_config(data, user, calendar, radicale.url,
                                 f'database = "{url}"\n[http]\nlisten = "127.0.0.1:{port}"\n'))
    log = tmp_path / "daemon.log"
    running = Running(spawn(config, log), log, port, forwarder, data, store, owner_id,
                      hook_auth)
    try:
        with first_cycle(running):
            yield running
    finally:
        db.close()
        forwarder.close()


def test_metrics_move_after_a_cycle_and_readyz_follows_the_database(daemon: Running) -> None:
    assert daemon.status("/metrics") == 401  # no password, no metrics
    documented = documented_metrics()
    assert len(documented) >= 15
    assert not documented - daemon.families(), "documented but not served"
    first = daemon.metrics()
    assert one(first, "syncd_cycles_total", account="dav", outcome="ok") == 1
    assert one(first, "syncd_last_success_timestamp_seconds", account="dav") > 0
    assert ("syncd_quarantined_items", (("account", "dav"),)) in first  # from the database
    requests_before = one(first, "syncd_provider_requests_total", provider="caldav",
                          status="207")
    assert requests_before >= 1

    # a new activity (the built-in CRM's change watch flags its account) and Pipedrive's
    # webhook for its owner: a cycle or two more, which write one event
    daemon.store.add_activity(owner_id=daemon.owner_id, subject="Metrics call",
                              due_date=date(2027, 1, 5), due_time=clock_time(10, 0),
                              duration_minutes=30)
    body = json.dumps(delivery(daemon.owner_id))
    assert requests.post(f"{daemon.url}/hooks/pipedrive", data=body, auth=daemon.hook_auth,
                         timeout=10).status_code == 200
    daemon.wait_cycles(2)
    deadline = time.monotonic() + 30  # a cycle's line is logged before it is counted
    while True:
        after = daemon.metrics()
        ok = one(after, "syncd_cycles_total", account="dav", outcome="ok")
        if ok == daemon.cycles() and one(after, "syncd_writes_total",
                                         kind="events_created") == 1:
            break
        assert time.monotonic() < deadline, daemon.log.read_text()
        time.sleep(0.2)
    assert ok >= 2
    assert one(after, "syncd_cycle_duration_seconds_count", provider="caldav") == ok
    assert one(after, "syncd_push_lag_seconds_count") >= 1  # every later cycle was pushed
    assert one(after, "syncd_push_notifications_total", hook="pipedrive",
               result="accepted") == 1
    assert one(after, "syncd_push_notifications_total", hook="hints", result="flagged") == 1
    assert one(after, "syncd_push_notifications_total", hook="crm_watch_hints",
               result="flagged") >= 1
    assert one(after, "syncd_provider_requests_total", provider="caldav",
               status="207") > requests_before
    assert one(after, "syncd_last_success_timestamp_seconds", account="dav") >= one(
        first, "syncd_last_success_timestamp_seconds", account="dav")

    assert daemon.status("/healthz") == 200
    assert daemon.status("/readyz") == 200
    daemon.forwarder.cut()  # the database is unreachable for this daemon
    assert daemon.status_within("/readyz", 503) == 503
    assert daemon.status("/healthz") == 200  # alive, only not ready
    cut = daemon.metrics()  # still served: what the database holds is left out
    assert one(cut, "syncd_cycles_total", account="dav", outcome="ok") == 2
    assert ("syncd_quarantined_items", (("account", "dav"),)) not in cut
    daemon.forwarder.restore()
    assert daemon.status_within("/readyz", 200) == 200

    daemon.process.send_signal(signal.SIGTERM)
    assert daemon.process.wait(timeout=30) == 0, daemon.log.read_text()
    assert f"{daemon.url}/metrics asks for user syncd" in daemon.log.read_text()
