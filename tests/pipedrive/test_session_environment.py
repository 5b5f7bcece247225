"""The Pipedrive source's session reads the environment's proxy settings once per host, as
the Outlook connector's does (requests alone reads them for every request: a daemon's
idle CRM reads would walk the whole environment each time)."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

from syncd.crm.pipedrive import open_pipedrive
from syncd.store.db import Database
from tests.pipedrive.conftest import EmulatorFactory


def test_idle_crm_reads_look_up_the_proxy_environment_once(
        make_emulator: EmulatorFactory, environ_reads: list[str], tmp_path: Path) -> None:
    emulator = make_emulator()
    ada = emulator.add_user("Ada", "ada@acme.test", is_admin=True)
    db = Database(f"sqlite:///{tmp_path / 'state.sqlite'}")
    try:
        source = open_pipedrive({"company_domain": "acme", "api_token": emulator.api_token(ada),
                                 "api_url": emulator.base_url}, db)
        assert source.user("ada@acme.test") is not None
        cursor = None
        for _ in range(4):
            cursor = source.changes(cursor, owner_id=ada.id).cursor
    finally:
        db.close()
    assert len(emulator.requests) >= 5  # a request per read at least
    assert len(environ_reads) == 1  # the company's one host, once


def test_the_oauth_sign_in_and_the_api_each_look_it_up_once(
        make_emulator: EmulatorFactory, environ_reads: list[str], tmp_path: Path) -> None:
    emulator = make_emulator()
    ada = emulator.add_user("Ada", "ada@acme.test", is_admin=True)
    emulator.oauth.register_app("app-id", "app-secret")
    refresh = emulator.oauth.refresh_token("app-id", ada.id, ("activities:full", "users:read"))
    # the token endpoint on a host of its own (the emulator under another name), as
    # Pipedrive's sign-in host is not the company's api_domain
    token_url = emulator.token_url.replace("127.0.0.1", "localhost", 1)
    db = Database(f"sqlite:///{tmp_path / 'state.sqlite'}")
    try:
        source = open_pipedrive({"company_domain": "acme", "oauth_client_id": "app-id",
                                 "oauth_client_secret": "app-secret",
                                 "oauth_refresh_token": refresh, "token_url": token_url}, db)
        cursor = None
        for _ in range(4):
            cursor = source.changes(cursor, owner_id=ada.id).cursor
        # a token renewed: the sign-in host again, its settings kept
        emulator.revoke(source.http.auth.headers()["Authorization"].removeprefix("Bearer "))
        source.changes(cursor, owner_id=ada.id)
    finally:
        db.close()
    signed_in = [r for r in emulator.requests if r.path == "/oauth/token"]
    assert len(signed_in) == 2 and len(emulator.requests) >= 7
    assert len(environ_reads) == 2  # the sign-in host once, the API's once
    assert {urlsplit(url).netloc for url in environ_reads} == {
        urlsplit(emulator.base_url).netloc, urlsplit(token_url).netloc}
