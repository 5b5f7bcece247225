"""``[syncd] request_timeout_seconds``: how long syncd's clients wait for a silent server.

The fault proxy's ``timeout`` holds an answer the server already gave; a soak sets the
request timeout below the hold so each such fault costs seconds, not the default 30.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from connectors import provider_options
from connectors.outlook import OutlookCalendar
from syncd.cli import main
from syncd.config import AccountConfig, SecretRef, load_config
from syncd.crm import open_source
from syncd.errors import Transient
from syncd.service import Service
from syncd.store.db import Database
from syncd_testkit.emulators.graph import GraphEmulator
from syncd_testkit.emulators.graph_fixtures import graph_emulator_with_identity, identity_emulator
from syncd_testkit.emulators.identity import IdentityEmulator, RoutingSession
from syncd_testkit.faults import FaultProxy, FaultRates
from syncd_testkit.servers import RadicaleServer
from tests.conftest import fresh_calendar
from tests.outlook.conftest import ALICE, CLIENT_ID, SECRET, SECRET_ENV, TENANT, WINDOW, Context
from tests.soak.fault_support import dav_config, run

__all__ = ["graph_emulator_with_identity", "identity_emulator"]

NOW = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)


def test_a_request_timeout_that_is_not_above_zero_is_refused_by_name(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "syncd.toml"
    config.write_text(f'[syncd]\ndata_dir = "{tmp_path}"\nrequest_timeout_seconds = 0\n')
    assert main(["--config", str(config), "config", "check"]) != 0
    said = capsys.readouterr()
    text = said.out + said.err
    assert "request_timeout_seconds" in text and "greater than zero" in text
    assert "Traceback" not in text


def test_every_client_waits_request_timeout_seconds_for_an_answer(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SYNCD_TEST_SECRET", "s3cret-for-a-test")
    config = tmp_path / "syncd.toml"
    config.write_text(
        f'[syncd]\ndata_dir = "{tmp_path}"\nrequest_timeout_seconds = 3\n'
        '[[account]]\nname = "dav"\nprovider = "caldav"\nowner = "a@example.com"\n'
        '[account.auth]\nurl = "http://127.0.0.1:9/"\nusername = "a@example.com"\n'
        '[[account]]\nname = "g"\nprovider = "google"\nowner = "b@example.com"\n'
        '[account.auth]\napi_endpoint = "http://127.0.0.1:9/calendar/v3/"\n'
        'allow_insecure_http = true\n'
        '[[account]]\nname = "o"\nprovider = "outlook"\nowner = "c@example.com"\n'
        '[account.auth]\ntenant = "t"\nclient_id = "c"\n'
        'client_secret = "env:SYNCD_TEST_SECRET"\ngraph_url = "http://127.0.0.1:9/v1.0"\n'
        'allow_insecure_http = true\n')
    loaded = load_config(config, provider_options())
    service = Service(loaded)
    try:
        dav, google, outlook = (service.open_connector(a, read_only=True, now=NOW)
                                for a in loaded.accounts)
        assert dav.client.timeout == 3  # type: ignore[attr-defined]
        assert google._base_http.timeout == 3  # type: ignore[attr-defined]
        assert outlook.http.timeout == (3, 3)  # type: ignore[attr-defined]
    finally:
        service.close()
    options = {"company_domain": "acme", "api_token": "env:SYNCD_TEST_SECRET",
               "api_url": "http://127.0.0.1:9"}
    pipedrive = open_source("pipedrive", Database(f"sqlite:///{tmp_path / 'p.db'}"), options,
                            timeout=3)
    assert pipedrive.http.timeout == 3  # type: ignore[attr-defined]


def test_a_silent_calendar_server_is_given_up_after_the_request_timeout(
        tmp_path: Path, radicale: RadicaleServer) -> None:
    user, calendar_url = fresh_calendar(radicale)
    # The answer is held far longer than the timeout: syncd gives up with "timed out",
    # not when the proxy finally closes the connection ("connection reset").
    rates = FaultRates(timeout=1.0, hang_seconds=20)
    with FaultProxy(radicale.origin, rates, seed=1, provider="caldav") as proxy:
        config = dav_config(tmp_path, radicale, proxy, user, calendar_url, request_timeout=1)
        assert run(config, "user", "add", user)[0] == 0
        status, (report,) = run(config, "sync")
    assert status != 0
    assert report["outcome"] == "failed" and "timed out" in report["message"], report
    assert proxy.counts()["timeout"] >= 1


class ThroughProxy(RoutingSession):
    """msal's session to the identity emulator, sent through ``proxy`` instead."""

    def __init__(self, identity: IdentityEmulator, proxy: FaultProxy) -> None:
        super().__init__(identity)
        self.identity, self.proxy = identity, proxy

    def rewrite(self, url: str) -> str:
        return super().rewrite(url).replace(self.identity.base_url, self.proxy.url)


def test_a_silent_identity_platform_is_given_up_after_the_request_timeout(
        identity_emulator: IdentityEmulator, graph_emulator_with_identity: GraphEmulator,
        monkeypatch: pytest.MonkeyPatch) -> None:
    # msal sets no timeout on a session it is handed: the connector's must reach it.
    identity_emulator.register_app(CLIENT_ID, SECRET)
    monkeypatch.setenv(SECRET_ENV, SECRET)
    graph_emulator_with_identity.add_mailbox(ALICE)
    account = AccountConfig(name="o", provider="outlook", owner=ALICE, auth={
        "tenant": TENANT, "client_id": CLIENT_ID, "client_secret": SecretRef(f"env:{SECRET_ENV}"),
        "authority": identity_emulator.authority(TENANT),
        "graph_url": graph_emulator_with_identity.base_url})
    rates = FaultRates(timeout=1.0, hang_seconds=20)
    with FaultProxy(identity_emulator.origin, rates, seed=1, provider="graph") as proxy:
        session = ThroughProxy(identity_emulator, proxy)
        connector = OutlookCalendar(account, Context("UTC", WINDOW), session=session,
                                    timeout=(1.0, 1.0))
        with pytest.raises(Transient) as caught:
            connector.changes(None)
        connector.close()
    assert "timed out" in str(caught.value.reason)
    assert proxy.counts()["timeout"] >= 1 and graph_emulator_with_identity.requests == []
