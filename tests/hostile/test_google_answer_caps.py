"""A Google endpoint that answers without end: syncd reads to its cap, then stops.

The account's calendar sits behind a :class:`~syncd_testkit.flood.FloodServer` in front of
the Google emulator; the real connector and client library (httplib2 under
google-auth-httplib2) read through it. Once a listing page or a batch answer is hostile,
that account's cycle fails with the cap's sentence, the server could send no more than the
cap (plus socket buffers), nothing already synced is lost, and an account on the healthy
emulator syncs as usual.
"""

from __future__ import annotations

import gzip
import json
import zlib
from collections.abc import Iterator
from pathlib import Path

import httplib2
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from google.auth.credentials import Credentials
from google_auth_httplib2 import Request

from connectors.answer_caps import MAX_ANSWER_BYTES, MAX_TOKEN_ANSWER_BYTES, CappedHttp
from connectors.google_auth import (
    REFRESH_TOKEN_KIND,
    StoredUserCredentials,
    service_account_credentials,
)
from syncd.config import AccountConfig
from syncd.errors import AnswerTooLarge
from syncd.store.credentials import CredentialStore
from syncd.store.db import Database
from syncd.store.status import Outcome
from syncd_testkit.emulators.google import GoogleEmulator
from syncd_testkit.emulators.google_fixtures import google_emulator  # noqa: F401 - pytest fixture
from syncd_testkit.flood import FloodServer
from syncd_testkit.loopback import HandlerServer, QuietHandler
from syncd_testkit.world import World
from tests.google.test_auth import (  # noqa: F401 - pytest fixtures
    client_secrets,
    creds_store,
    good_answer,
    insecure_local_token_uri,
    run_flow,
)
from tests.google.token_stub import TokenStub
from tests.google.world import GoogleWorld, make_world
from tests.hostile.answer_caps import (
    LYING,
    OVERSIZE,
    Side,
    check_stopped_at_the_cap,
    lying_length,
    oversize_batch,
    oversize_listing,
)


@pytest.fixture
def flood(google_emulator: GoogleEmulator) -> Iterator[FloodServer]:  # noqa: F811
    with FloodServer(google_emulator.origin, flood=lambda method, path: False) as server:
        yield server


@pytest.fixture
def worlds(tmp_path: Path, google_emulator: GoogleEmulator,  # noqa: F811
           flood: FloodServer) -> tuple[GoogleWorld, GoogleWorld]:
    """Alice behind the flood server, Bob straight on the emulator, one database."""
    db = Database(f"sqlite:///{tmp_path / 'syncd.db'}")
    endpoint = google_emulator.api_endpoint.replace(google_emulator.origin, flood.origin)
    alice = make_world(tmp_path, google_emulator, "alice", db=db, import_events=True,
                       auth={"api_endpoint": endpoint})
    bob = make_world(tmp_path, google_emulator, "bob", db=db, import_events=True)
    return alice, bob


def _titles(world: World) -> list[str]:
    assert isinstance(world, GoogleWorld)
    return sorted(str(e["summary"]) for e in world.live_events())


GOOGLE = Side(listing=lambda method, path: method == "GET" and "/events" in path,
              batch=lambda method, path: method == "POST" and "/batch/" in path,
              titles=_titles)


@pytest.mark.parametrize("kind", OVERSIZE)
def test_an_oversize_listing_page_fails_the_account_at_the_cap_and_loses_nothing(
        worlds: tuple[GoogleWorld, GoogleWorld], flood: FloodServer, kind: str) -> None:
    flood.kind = kind
    oversize_listing(*worlds, flood, GOOGLE, MAX_ANSWER_BYTES)


def test_an_oversize_batch_answer_fails_its_writes_which_go_out_once_next_cycle(
        worlds: tuple[GoogleWorld, GoogleWorld], flood: FloodServer) -> None:
    oversize_batch(*worlds, flood, GOOGLE, MAX_ANSWER_BYTES)


@pytest.mark.parametrize("kind", LYING)
def test_a_lying_content_length_fails_the_listing_without_reading_past_it(
        worlds: tuple[GoogleWorld, GoogleWorld], flood: FloodServer, kind: str) -> None:
    flood.kind = kind
    lying_length(*worlds, flood, GOOGLE)


def _service_account(tmp_path: Path, token_uri: str) -> Credentials:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption()).decode()
    return service_account_credentials(json.dumps({
        "type": "service_account", "client_email": "sync@project.iam.gserviceaccount.com",
        "private_key": pem, "private_key_id": "k1", "token_uri": token_uri}),
        subject="alice@example.com")


@pytest.mark.parametrize("grant", ["refresh_token", "service_account"])
@pytest.mark.parametrize("handed", ["api_http", "batch_http"])
def test_a_token_endpoint_answering_without_end_is_read_to_the_token_cap(
        tmp_path: Path, flood: FloodServer, grant: str, handed: str) -> None:
    # Whatever transport refresh() is handed: google-auth-httplib2 hands the API's Http
    # (capped at 64 MiB), the API client's batch a new uncapped httplib2.Http().
    flood.kind = "endless"
    flood.flood = lambda method, path: True
    token_uri = f"{flood.origin}/token"
    credentials = _service_account(tmp_path, token_uri) if grant == "service_account" \
        else StoredUserCredentials(token=None, refresh_token="refresh", client_id="id",
                                   client_secret="secret", token_uri=token_uri)
    http = httplib2.Http(timeout=10)
    with pytest.raises(AnswerTooLarge) as caught:
        credentials.refresh(Request(CappedHttp(http) if handed == "api_http" else http))
    assert (caught.value.url, caught.value.limit) == (token_uri, MAX_TOKEN_ANSWER_BYTES)
    check_stopped_at_the_cap(flood, MAX_TOKEN_ANSWER_BYTES)


def test_a_token_endpoint_answering_2_mib_fails_that_account_naming_it_and_others_go_on(
        tmp_path: Path, google_emulator: GoogleEmulator,  # noqa: F811
        creds_store: CredentialStore) -> None:  # noqa: F811
    stub = TokenStub().start()
    try:
        creds_store.put("alice", REFRESH_TOKEN_KIND, "rt-good")
        alice = make_world(tmp_path, google_emulator, auth={
            "mode": "oauth", "client_secrets_file": client_secrets(tmp_path, stub.url)})
        alice.calendar._credential_store = creds_store
        bob = make_world(tmp_path / "bob", google_emulator, name="bob")
        alice.add("Alice's call")
        bob.add("Bob's call")
        stub.pad_bytes = 2 << 20  # a well-formed token answer of 2 MiB
        report = alice.sync()
        assert report.outcome == Outcome.FAILED, report.line()
        assert isinstance(report.error, AnswerTooLarge), report.error
        assert (report.error.url, report.error.limit) == (stub.url, MAX_TOKEN_ANSWER_BYTES)
        assert report.message is not None
        assert f"The answer from {stub.url} was over syncd's 1 MiB cap" in report.message
        assert alice.state.account("alice").status != "needs_reauth"  # not a refusal
        assert google_emulator.events("alice@example.com") == []  # nothing was sent
        assert bob.sync().outcome == Outcome.OK
        assert _titles(bob) == ["Bob's call"]

        stub.pad_bytes = 0  # the endpoint answers as it should: the account goes on
        alice.advance(minutes=10)
        again = alice.sync()
        assert again.outcome == Outcome.OK, again.message
        assert _titles(alice) == ["Alice's call"]
    finally:
        stub.stop()


@pytest.mark.usefixtures("insecure_local_token_uri")
def test_a_sign_in_whose_token_answer_runs_on_is_read_to_the_token_cap(
        tmp_path: Path, flood: FloodServer, creds_store: CredentialStore) -> None:  # noqa: F811
    flood.kind = "endless"
    flood.flood = lambda method, path: path == "/token"
    account = AccountConfig(name="alice", provider="google", owner="alice@example.com", auth={
        "mode": "oauth", "client_secrets_file": client_secrets(tmp_path, f"{flood.origin}/token")})
    with pytest.raises(AnswerTooLarge) as caught:
        run_flow(account, creds_store, good_answer)
    assert caught.value.limit == MAX_TOKEN_ANSWER_BYTES
    check_stopped_at_the_cap(flood, MAX_TOKEN_ANSWER_BYTES)
    assert creds_store.get("alice", REFRESH_TOKEN_KIND) is None


@pytest.mark.parametrize("encoding", ["gzip", "deflate"])
def test_a_compressed_answer_under_the_cap_is_read_whole_and_plain(encoding: str) -> None:
    plain = json.dumps({"items": [{"id": f"e{i}", "summary": "x" * 500}
                                  for i in range(2000)]}).encode()
    packed = gzip.compress(plain) if encoding == "gzip" else zlib.compress(plain)

    class Handler(QuietHandler):
        def do_GET(self) -> None:
            self.reply(200, packed, {"Content-Encoding": encoding}, "application/json")

    with HandlerServer(Handler) as server:
        response, content = CappedHttp(httplib2.Http(timeout=10)).request(server.origin)
    assert response.status == 200 and content == plain
