"""A [[team]] block on a real Radicale: 200 users, one collection each, all synced from
one block; a user added to the CRM is served by the running daemon without a restart."""

from __future__ import annotations

import base64
import http.client
from datetime import date, time
from pathlib import Path
from urllib.parse import urlsplit

import caldav
import pytest

from connectors import provider_options
from syncd.config import parse_config
from syncd.daemon import Daemon
from syncd.service import Service
from syncd_testkit.servers import DavServer
from tests.test_e2e_run import wait_for

USERS = 200


def make_collection(server: DavServer, user: str) -> None:
    """MKCALENDAR /<user>/crm/ as that user (one request: the test's own setup)."""
    parts = urlsplit(server.url)
    conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=30)
    auth = base64.b64encode(f"{user}:x".encode()).decode()
    conn.request("MKCALENDAR", f"/{user}/crm/", headers={"Authorization": f"Basic {auth}"})
    status = conn.getresponse().status
    conn.close()
    assert status == 201, status


def events(server: DavServer, user: str) -> list[str]:
    client = caldav.DAVClient(url=server.url, username=user, password="x")
    calendar = client.calendar(url=f"{server.url}{user}/crm/")
    return [str(e.icalendar_component.get("summary")) for e in calendar.events()]


def team_config(tmp_path: Path, server: DavServer) -> str:
    return f'''
[syncd]
data_dir = "{tmp_path}"
interval_seconds = 3600
jitter_seconds = 0
[[team]]
name = "sales"
owners = ["@team.example"]
provider = "caldav"
calendar = "{server.url}{{user}}/crm/"
[team.auth]
url = "{server.url}"
username = "{{user}}"
password = "env:DAV_PASSWORD_{{USER}}"
allow_insecure_http = true
'''


@pytest.mark.slow  # the one representative of the scenario (tests/conftest.py)
def test_one_team_block_syncs_two_hundred_users_and_picks_up_a_new_one(
        tmp_path: Path, radicale: DavServer, monkeypatch: pytest.MonkeyPatch) -> None:
    import tomllib

    config = parse_config(tomllib.loads(team_config(tmp_path, radicale)), "syncd.toml",
                          provider_options())
    users = [f"u{i:03d}" for i in range(USERS)]
    service = Service(config)
    for user in users:
        make_collection(radicale, user)
        monkeypatch.setenv(f"DAV_PASSWORD_{user.upper()}", "x")
        owner = service.store.add_user(f"{user}@team.example", user, "Europe/Oslo")
        service.store.add_activity(owner_id=owner, subject=f"Call {user}",
                                   due_date=date(2026, 12, 10), due_time=time(9),
                                   duration_minutes=30)
    # Someone outside the team's domain is not served by it.
    service.store.add_user("outsider@elsewhere.example", "Outsider", "UTC")

    reports = service.sync_all()
    assert len(reports) == USERS
    assert {r.outcome for r in reports} == {"ok"}
    assert sum(r.counts.get("events_created", 0) for r in reports) == USERS
    assert events(radicale, "u000") == ["Call u000"]
    assert events(radicale, f"u{USERS - 1:03d}") == [f"Call u{USERS - 1:03d}"]
    service.close()

    daemon = Daemon(config)
    daemon.scheduler.start(paused=True)
    try:
        daemon.refresh_jobs()
        members = [j for j in daemon.scheduler.get_jobs() if j.id.startswith("account:")]
        assert len(members) == USERS
        # The members were synced a moment ago: their first runs would only delay the
        # newcomer's behind 200 cycles, so they wait; the newcomer's job is the scheduler's.
        for job in members:
            job.pause()
        make_collection(radicale, "newcomer")
        monkeypatch.setenv("DAV_PASSWORD_NEWCOMER", "x")
        store = daemon.service.store
        owner = store.add_user("newcomer@team.example", "New", "Europe/Oslo")
        store.add_activity(owner_id=owner, subject="First call", due_date=date(2026, 12, 11),
                           due_time=time(10), duration_minutes=30)
        daemon.refresh_jobs()  # what the daemon's refresh timer runs every interval
        assert daemon.scheduler.get_job("account:sales:newcomer@team.example") is not None
        daemon.scheduler.resume()
        wait_for(lambda: events(radicale, "newcomer") or None, what="the newcomer's event")
        assert events(radicale, "newcomer") == ["First call"]
    finally:
        assert daemon.stop_cycles(60)
        daemon.service.close()


def test_a_member_whose_secret_is_missing_fails_alone(
        tmp_path: Path, radicale: DavServer, monkeypatch: pytest.MonkeyPatch) -> None:
    import tomllib

    config = parse_config(tomllib.loads(team_config(tmp_path, radicale)), "syncd.toml",
                          provider_options())
    service = Service(config)
    for user in ("has", "lacks"):
        make_collection(radicale, f"{user}-secret")
        owner = service.store.add_user(f"{user}-secret@team.example", user, "UTC")
        service.store.add_activity(owner_id=owner, subject=f"Call {user}",
                                   due_date=date(2026, 12, 10), due_time=time(9),
                                   duration_minutes=30)
    monkeypatch.setenv("DAV_PASSWORD_HAS_SECRET", "x")
    monkeypatch.delenv("DAV_PASSWORD_LACKS_SECRET", raising=False)
    reports = {r.account: r for r in service.sync_all()}
    assert reports["sales:has-secret@team.example"].outcome == "ok"
    lacking = reports["sales:lacks-secret@team.example"]
    assert lacking.outcome == "failed"
    assert "DAV_PASSWORD_LACKS_SECRET" in (lacking.message or "")
    service.close()
