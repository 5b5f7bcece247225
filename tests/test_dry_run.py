"""``syncd sync --dry-run`` sends only reads, on every provider.

Each provider sits behind a recording proxy (real Radicale, the Google emulator, the Graph
emulator) and syncd is driven through its command line, as an admin would. A dry run
after real changes on the CRM side (a new, an edited and a deleted activity) must plan
them and send nothing but reads: no PUT, DELETE, MKCALENDAR, PROPPATCH, POST or PATCH.
Graph's ``$batch`` is a POST that carries reads; it passes only if every request inside
is a GET.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import date, time
from pathlib import Path
from typing import Any

import pytest

import connectors
from syncd.cli import main
from syncd.config import AccountConfig
from syncd.crm.builtin.activities import ActivityStore
from syncd.store.db import Database
from syncd_testkit.emulators.google import GoogleEmulator
from syncd_testkit.emulators.graph import GraphEmulator
from syncd_testkit.emulators.graph_fixtures import (  # noqa: F401 - pytest fixtures
    graph_emulator_with_identity,
    identity_emulator,
)
from syncd_testkit.emulators.identity import IdentityEmulator, RoutingSession
from syncd_testkit.servers import DavServer, Recorded, RecordingProxy

WRITES = ("PUT", "DELETE", "MKCALENDAR", "PROPPATCH", "POST", "PATCH", "MKCOL")
TENANT, CLIENT_ID, SECRET = "tenant1", "syncd-dry-run-test", "dry-run-secret-7c2e"
_identity: dict[str, IdentityEmulator] = {}


def writes(requests: list[Recorded]) -> list[str]:
    """Every request that is not a read (a Graph ``$batch`` of GETs counts as a read)."""
    found = []
    for r in requests:
        if r.method not in WRITES:
            continue
        if r.method == "POST" and r.path.endswith("/$batch"):
            inner = [item.get("method") for item in json.loads(r.body)["requests"]]
            if all(method == "GET" for method in inner):
                continue
            found.append(f"POST {r.path} carrying {inner}")
            continue
        found.append(f"{r.method} {r.path}")
    return found


class Crm:
    """The CRM side, changed between syncs as users would (through the store)."""

    def __init__(self, tmp_path: Path, owner: str) -> None:
        self.db = Database(f"sqlite:///{tmp_path / 'syncd.db'}")
        self.store = ActivityStore(self.db)
        self.owner_id = self.store.add_user(owner, "Owner", "Europe/Oslo")

    def add(self, subject: str, day: int) -> int:
        return int(self.store.add_activity(
            owner_id=self.owner_id, subject=subject, due_date=date(2026, 12, day),
            due_time=time(10), duration_minutes=30).id)


def write_config(tmp_path: Path, account: str, auth: str) -> list[str]:
    path = tmp_path / "syncd.toml"
    path.write_text(f'[syncd]\ndata_dir = "{tmp_path}"\n'
                    f'database = "sqlite:///{tmp_path / "syncd.db"}"\n'
                    f'[[account]]\n{account}\n[account.auth]\n{auth}\n', encoding="utf-8")
    return ["--config", str(path)]


def sync_then_change_then_dry_run(tmp_path: Path, owner: str, proxy: RecordingProxy,
                                  base: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    """Sync three activities for real, change the CRM, then dry-run; the dry run's output."""
    crm = Crm(tmp_path, owner)
    kept, edited, deleted = crm.add("Kept", 2), crm.add("Edited", 3), crm.add("Deleted", 4)
    assert main([*base, "sync"]) == 0, capsys.readouterr()
    assert "events_created 3" in capsys.readouterr().out
    assert writes(proxy.requests), "the real sync wrote through the proxy"
    crm.store.edit_activity(edited, subject="Edited again")
    crm.store.delete_activity(deleted)
    crm.add("New", 5)
    proxy.requests.clear()
    assert main([*base, "sync", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert proxy.requests, "the dry run reached the provider through the proxy"
    assert writes(proxy.requests) == []
    assert kept and "dry-run" in out
    for planned in ("events_created 1", "events_updated 1", "events_deleted 1"):
        assert planned in out, out
    return out


# --- CalDAV (Radicale) ----------------------------------------------------------------------


@pytest.fixture
def dav_proxy(radicale: DavServer) -> Iterator[RecordingProxy]:
    proxy = RecordingProxy(radicale.port).start()
    yield proxy
    proxy.stop()


def test_a_caldav_dry_run_sends_only_reads(tmp_path: Path, dav_proxy: RecordingProxy,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    owner = f"dry-{uuid.uuid4().hex[:8]}@example.com"
    base = write_config(tmp_path, f'name = "dav"\nprovider = "caldav"\nowner = "{owner}"\n'
                        'calendar = "crm"',
                        f'url = "{dav_proxy.url}"\nusername = "{owner}"\ncreate_calendar = true')
    sync_then_change_then_dry_run(tmp_path, owner, dav_proxy, base, capsys)


def test_a_dry_run_never_makes_the_calendar_it_may_create(
        tmp_path: Path, dav_proxy: RecordingProxy, radicale: DavServer,
        capsys: pytest.CaptureFixture[str]) -> None:
    owner = f"dry-{uuid.uuid4().hex[:8]}@example.com"
    base = write_config(tmp_path, f'name = "dav"\nprovider = "caldav"\nowner = "{owner}"\n'
                        'calendar = "crm"',
                        f'url = "{dav_proxy.url}"\nusername = "{owner}"\ncreate_calendar = true')
    Crm(tmp_path, owner).add("First", 2)
    assert main([*base, "sync", "--dry-run"]) == 0
    assert "events_created 1" in capsys.readouterr().out  # planned against an empty calendar
    assert writes(dav_proxy.requests) == []
    made = radicale.folder / "collections" / "collection-root" / owner / "crm"
    assert not made.exists()
    assert main([*base, "sync"]) == 0  # the real sync makes it, as it was told it may
    assert "MKCALENDAR" in [r.method for r in dav_proxy.requests] and made.is_dir()


def test_an_unknown_calendar_is_an_error_that_names_it_and_creates_nothing(
        tmp_path: Path, dav_proxy: RecordingProxy, capsys: pytest.CaptureFixture[str]) -> None:
    owner = f"dry-{uuid.uuid4().hex[:8]}@example.com"
    account = f'name = "dav"\nprovider = "caldav"\nowner = "{owner}"\ncalendar = "crn"'
    base = write_config(tmp_path, account, f'url = "{dav_proxy.url}"\nusername = "{owner}"')
    Crm(tmp_path, owner).add("First", 2)
    for dry_run in (["--dry-run"], []):
        dav_proxy.requests.clear()
        assert main([*base, "sync", *dry_run]) == 1
        out = capsys.readouterr().out
        assert "dav: failed" in out and "The calendar 'crn' does not exist" in out, out
        assert "create_calendar" in out and "Traceback" not in out
        assert writes(dav_proxy.requests) == []


def test_a_calendar_url_that_is_not_a_calendar_is_named_too(
        tmp_path: Path, dav_proxy: RecordingProxy, capsys: pytest.CaptureFixture[str]) -> None:
    owner = f"dry-{uuid.uuid4().hex[:8]}@example.com"
    missing = f"{dav_proxy.url}{owner}/nowhere/"
    base = write_config(tmp_path, f'name = "dav"\nprovider = "caldav"\nowner = "{owner}"\n'
                        f'calendar = "{missing}"',
                        f'url = "{dav_proxy.url}"\nusername = "{owner}"')
    Crm(tmp_path, owner).add("First", 2)
    assert main([*base, "sync"]) == 1
    assert f"The calendar '{missing}' does not exist" in capsys.readouterr().out
    assert writes(dav_proxy.requests) == []


# --- Google (emulator) ----------------------------------------------------------------------


def test_a_google_dry_run_sends_only_reads(tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    owner = "alice@example.com"
    with GoogleEmulator() as emulator:
        host_port = emulator.base_url.rsplit(":", 1)[1]
        proxy = RecordingProxy(int(host_port)).start()
        try:
            base = write_config(
                tmp_path, f'name = "g"\nprovider = "google"\nowner = "{owner}"',
                f'api_endpoint = "{proxy.url}calendar/v3/"')
            sync_then_change_then_dry_run(tmp_path, owner, proxy, base, capsys)
        finally:
            proxy.stop()


# --- Outlook (Graph emulator) ---------------------------------------------------------------


def open_outlook(account: AccountConfig, context: Any) -> Any:
    """Registry factory: the connector with a session that reaches the identity emulator."""
    from connectors.outlook import OutlookCalendar

    return OutlookCalendar(account, context, session=RoutingSession(_identity["idp"]))


def test_an_outlook_dry_run_sends_only_reads(
        tmp_path: Path, identity_emulator: IdentityEmulator,  # noqa: F811
        graph_emulator_with_identity: GraphEmulator,  # noqa: F811
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    owner = "alice@contoso.test"
    identity_emulator.register_app(CLIENT_ID, SECRET)
    graph_emulator_with_identity.add_mailbox(owner)
    monkeypatch.setenv("SYNCD_TEST_DRY_RUN_SECRET", SECRET)
    monkeypatch.setitem(_identity, "idp", identity_emulator)
    monkeypatch.setitem(connectors.REGISTRY, "outlook", "tests.test_dry_run:open_outlook")
    port = int(graph_emulator_with_identity.base_url.split(":")[2].split("/")[0])
    proxy = RecordingProxy(port).start()
    try:
        base = write_config(
            tmp_path, f'name = "o"\nprovider = "outlook"\nowner = "{owner}"',
            f'tenant = "{TENANT}"\nclient_id = "{CLIENT_ID}"\n'
            'client_secret = "env:SYNCD_TEST_DRY_RUN_SECRET"\n'
            f'authority = "{identity_emulator.authority(TENANT)}"\n'
            f'graph_url = "{proxy.url}v1.0"\nallow_insecure_http = true')
        sync_then_change_then_dry_run(tmp_path, owner, proxy, base, capsys)
    finally:
        proxy.stop()
