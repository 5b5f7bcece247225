"""The accounts of one process share one HTTP session (connectors.http_pool): one pool per
host, a connection per request in flight rather than per account; each request carries its
own account's token, and nothing one answer sets travels on another request."""

from __future__ import annotations

import cProfile
import gzip
import pstats
import ssl
import threading
import time
from collections.abc import Iterator, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import pytest
import requests

from connectors.http_pool import SESSION_KEY, ApiSession, Reply, process_session
from connectors.outlook import OutlookCalendar
from syncd.config import SecretRef
from syncd.errors import AnswerTooLarge
from syncd.network import network_reason
from syncd.store.credentials import CredentialStore
from syncd.store.db import Database
from syncd_testkit.emulators.identity import IdentityEmulator, RoutingSession
from syncd_testkit.loopback import HandlerServer, bound
from syncd_testkit.tls import self_signed
from tests.outlook.conftest import ALICE, BOB, STATE_KEY_ENV, Env, SharedContext

MAILBOXES = [f"user{i}@contoso.test" for i in range(6)]
#: Python calls of one idle cycle's ``changes`` (one delta GET: the request, its answer
#: read and decoded, the gate and the mailbox's limits in memory). When this was written:
#: 2,489 on requests' own path (a session per account), about 2,000 through the process's
#: session on requests and urllib3-future, 748 on its plain http.client connections.
IDLE_CHANGES_CALLS = 1_200


class RoutedApiSession(ApiSession):
    """The process's session, sending the identity emulator's https host to its port (as
    :class:`RoutingSession` does for a plain session)."""

    def __init__(self, identity: IdentityEmulator) -> None:
        super().__init__()
        self._identity = identity
        #: what went out on the plain connections and what came back: (url, the
        #: Authorization header sent, status)
        self.sent: list[tuple[str, str | None, int]] = []
        send = self.wire.send

        def recorded(origin: Any, method: str, url: str, body: bytes | None,
                     headers: Mapping[str, str], *args: Any) -> Reply:
            reply = send(origin, method, url, body, headers, *args)
            self.sent.append((url, headers.get("Authorization"), reply.status))
            return reply

        self.wire.send = recorded  # type: ignore[method-assign]

    def request(self, method: Any, url: Any, *args: Any, **kwargs: Any) -> Any:
        return super().request(method, RoutingSession.rewrite(self, str(url)),  # type: ignore[arg-type]
                               *args, **kwargs)


@pytest.fixture
def shared(env: Env) -> Iterator[dict[str, Any]]:
    memo: dict[str, Any] = {}
    session = process_session(memo, lambda: RoutedApiSession(env.identity))
    yield memo
    session.close()


def test_the_accounts_of_a_process_share_one_connection_to_graph(
        env: Env, shared: dict[str, Any]) -> None:
    for mailbox in MAILBOXES:
        env.graph.add_mailbox(mailbox)
    opened = [OutlookCalendar(env.account(f"a{i}", user=mailbox), SharedContext(shared=shared))
              for i, mailbox in enumerate(MAILBOXES)]
    cursors = [c.changes(None).cursor for c in opened]
    for _ in range(2):
        cursors = [c.changes(cursor).cursor for c, cursor in zip(opened, cursors, strict=True)]
    assert len({id(c.session) for c in opened}) == 1
    assert len([r for r in env.graph.requests if r.mailbox]) >= 3 * len(MAILBOXES)
    # one after the other: one connection for all six accounts (each its own session: six)
    assert env.graph.connections == 1
    for connector in opened:
        connector.close()  # the process's session is not a connector's to close
    opened[0].changes(cursors[0])
    assert env.graph.connections == 1


def test_a_connector_without_a_shared_memo_has_a_session_of_its_own(env: Env) -> None:
    alone = OutlookCalendar(env.account(), SharedContext(shared=None), session=None)
    other = OutlookCalendar(env.account("b"), SharedContext(shared=None), session=None)
    assert isinstance(alone.session, ApiSession) and alone.session is not other.session
    alone.close()
    other.close()


@pytest.fixture
def credentials(tmp_path: Path) -> CredentialStore:
    return CredentialStore(Database(f"sqlite:///{tmp_path / 'syncd.db'}"),
                           SecretRef(f"env:{STATE_KEY_ENV}"))


def test_each_request_carries_its_own_accounts_token_even_after_a_refresh(
        env: Env, shared: dict[str, Any], credentials: CredentialStore) -> None:
    env.graph.add_mailbox(BOB)
    accounts = {ALICE: env.account("alice", ALICE, mode="delegated"),
                BOB: env.account("bob", BOB, mode="delegated")}
    for account in accounts.values():
        env.sign_in(account, credentials)
    opened = {m: OutlookCalendar(a, SharedContext(credentials=credentials, shared=shared))
              for m, a in accounts.items()}
    handed: dict[str, set[str]] = {ALICE: set(), BOB: set()}
    for mailbox, connector in opened.items():
        source = connector.http.tokens
        token = source.token

        def recorded(token: Any = token, mine: set[str] = handed[mailbox]) -> str:
            value: str = token()
            mine.add(value)
            return value

        source.token = recorded  # type: ignore[method-assign]
    cursors = {m: c.changes(None).cursor for m, c in opened.items()}
    env.identity.expire_access_tokens(ALICE)  # alice's next request meets a 401
    for _ in range(2):
        for mailbox, connector in opened.items():
            cursors[mailbox] = connector.changes(cursors[mailbox]).cursor
    assert len(handed[ALICE]) == 2 and len(handed[BOB]) == 1  # alice's was refreshed
    assert not handed[ALICE] & handed[BOB]
    session = shared[SESSION_KEY]
    sent = [(unquote(url), auth, status) for url, auth, status in session.sent
            if url.startswith(env.graph.base_url)]
    assert [status for *_, status in sent].count(401) == 1
    for url, auth, status in sent:
        mailbox = next(m for m in (ALICE, BOB) if f"/users/{m}/" in url)
        assert auth is not None and auth.removeprefix("Bearer ") in handed[mailbox], \
            (mailbox, status)
        assert status != 403  # Graph: a delegated token, its own mailbox
    assert len(sent) == 7  # six cycles, one request each, and the one refused


def idle_changes_calls(connector: OutlookCalendar) -> float:
    cursor = connector.changes(None).cursor
    for _ in range(2):  # warm: the token, the calendar, the connection
        cursor = connector.changes(cursor).cursor
    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(5):
        cursor = connector.changes(cursor).cursor
    profiler.disable()
    return float(pstats.Stats(profiler).total_calls) / 5  # type: ignore[attr-defined]


def test_an_idle_delta_request_stays_within_its_python_calls(
        env: Env, shared: dict[str, Any]) -> None:
    connector = OutlookCalendar(env.account(), SharedContext(shared=shared))
    calls = idle_changes_calls(connector)
    assert calls <= IDLE_CHANGES_CALLS, calls
    # the control: requests' own path, a session of the account's own, costs more
    plain = OutlookCalendar(env.account("plain"), SharedContext(shared=None),
                            session=RoutingSession(env.identity))
    assert idle_changes_calls(plain) > IDLE_CHANGES_CALLS
    plain.close()


# --- what the session keeps from answers: nothing --------------------------------------------


class _Answers(BaseHTTPRequestHandler):
    """Answers by path: /cookie (sets one), /big (a Content-Length past the cap), /chunked
    (a chunked body past it), /bomb (a small gzip body that inflates past it), /away and
    /here (redirects to another origin and to this one), /once (closes the connection
    after answering); records each request's method, path and headers."""

    protocol_version = "HTTP/1.1"
    seen: list[tuple[str, str, dict[str, str]]]

    def do_GET(self) -> None:
        self.seen.append(("GET", self.path, {k.lower(): v for k, v in self.headers.items()}))
        if self.path == "/cookie":
            # a hostile or confused server: a cookie for every path and domain, long-lived
            self._send(200, b"{}", [("Set-Cookie", "sid=one; Path=/; Max-Age=86400")])
        elif self.path == "/big":
            self._send(200, b"x" * 5000)
        elif self.path == "/chunked":
            self.send_response(200)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for _ in range(5):
                self.wfile.write(b"3e8\r\n" + b"y" * 1000 + b"\r\n")
            self.wfile.write(b"0\r\n\r\n")
        elif self.path == "/bomb":
            self._send(200, gzip.compress(b"\0" * 1_000_000), [("Content-Encoding", "gzip")])
        elif self.path == "/away":
            self._send(307, b"", [("Location", "http://127.0.0.2:9/steal")])
        elif self.path == "/here":
            self._send(302, b"", [("Location", "/done")])
        elif self.path == "/once":
            self._send(200, b'{"ok": true}')
            self.close_connection = True  # the server ends the kept connection
        else:
            self._send(200, b'{"ok": true}')

    def do_POST(self) -> None:
        self.seen.append(("POST", self.path, {k.lower(): v for k, v in self.headers.items()}))
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self._send(303, b"", [("Location", "/done")])

    def _send(self, status: int, body: bytes, headers: Any = ()) -> None:
        self.send_response(status)
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_args: Any) -> None:
        pass


Seen = list[tuple[str, str, dict[str, str]]]


@pytest.fixture
def answers() -> Iterator[tuple[HandlerServer, Seen]]:
    seen: Seen = []
    with HandlerServer(bound(_Answers, seen=seen)) as server:
        yield server, seen


def test_a_cookie_one_answer_sets_never_goes_out_again(
        answers: tuple[HandlerServer, Seen]) -> None:
    server, seen = answers
    with ApiSession() as session:
        for token in ("token-of-a", "token-of-b"):
            with session.request("GET", f"{server.origin}/cookie", headers={
                    "Authorization": f"Bearer {token}"}, timeout=(5, 5), stream=True) as r:
                assert r.status_code == 200
        exchange(session, f"{server.origin}/cookie")
        assert len(session.cookies) == 0
    assert [h.get("cookie") for *_, h in seen] == [None, None, None]
    assert [h["authorization"] for *_, h in seen] == [
        "Bearer token-of-a", "Bearer token-of-b", "Bearer t"]


def test_a_netrc_entry_never_replaces_a_requests_token(
        answers: tuple[HandlerServer, Seen], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    server, seen = answers
    netrc = tmp_path / "netrc"
    netrc.write_text("machine 127.0.0.1 login someone password from-netrc\n")
    netrc.chmod(0o600)
    monkeypatch.setenv("NETRC", str(netrc))
    with ApiSession() as session:
        session.request("GET", f"{server.origin}/a", headers={"Authorization": "Bearer mine"},
                        timeout=(5, 5)).close()
    # the control: requests' own path puts the netrc's Basic credentials in its place
    with requests.Session() as plain:
        plain.request("GET", f"{server.origin}/a", headers={"Authorization": "Bearer mine"},
                      timeout=(5, 5)).close()
    sent = [h["authorization"] for *_, h in seen]
    assert sent[0] == "Bearer mine" and sent[1].startswith("Basic ")


# --- the plain connections (Wire): caps, redirects, closed connections, proxies ---------------


def exchange(session: ApiSession, url: str, method: str = "GET", **options: Any) -> Reply:
    reply = session.exchange(method, url, headers={"Authorization": "Bearer t"},
                             timeout=(5, 5), limit=options.pop("limit", 4096), **options)
    assert reply is not None
    return reply


@pytest.mark.parametrize("path", ["/big", "/chunked", "/bomb"])
def test_an_answer_past_its_cap_is_refused_and_its_connection_dropped(
        answers: tuple[HandlerServer, Seen], path: str) -> None:
    server, _seen = answers
    with ApiSession() as session:
        with pytest.raises(AnswerTooLarge):
            exchange(session, server.origin + path)
        assert exchange(session, server.origin + "/ok").content == b'{"ok": true}'
    assert server.connections == 2  # the one the answer came on was not used again


def test_a_redirect_is_followed_only_within_its_origin(
        answers: tuple[HandlerServer, Seen]) -> None:
    server, seen = answers
    with ApiSession() as session:
        assert exchange(session, server.origin + "/away").status == 307  # not followed
        assert exchange(session, server.origin + "/here").status == 200
        # a 303 after a POST: the answer is fetched with a GET, the body not sent again
        assert exchange(session, server.origin + "/form", "POST", json={"a": 1}).status == 200
    assert [(method, path) for method, path, _ in seen] == [
        ("GET", "/away"), ("GET", "/here"), ("GET", "/done"), ("POST", "/form"),
        ("GET", "/done")]


def test_a_connection_the_server_closed_is_not_used_again(
        answers: tuple[HandlerServer, Seen]) -> None:
    server, _seen = answers
    with ApiSession() as session:
        assert exchange(session, server.origin + "/once").status == 200
        time.sleep(0.05)  # the server's close reaches this end
        assert exchange(session, server.origin + "/ok").status == 200
        assert exchange(session, server.origin + "/ok").status == 200
    assert server.connections == 2


def test_an_origin_behind_a_proxy_goes_through_requests(
        answers: tuple[HandlerServer, Seen],
        monkeypatch: pytest.MonkeyPatch) -> None:
    server, _seen = answers
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    with ApiSession() as session:
        assert session.exchange("GET", server.origin + "/ok", headers={},
                                timeout=(5, 5), limit=100) is None


@pytest.fixture
def tls_origin(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """An https origin with a self-signed certificate (its own authority)."""
    cert, key = self_signed(tmp_path / "tls")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server = ThreadingHTTPServer(("127.0.0.1", 0), bound(_Answers, seen=[]))
    server.daemon_threads = True
    server.socket = context.wrap_socket(server.socket, server_side=True)
    server.handle_error = lambda *_args: None  # type: ignore[method-assign]
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                              daemon=True)
    thread.start()
    try:
        yield f"https://127.0.0.1:{server.server_address[1]}", cert
    finally:
        server.shutdown()
        server.server_close()


def test_https_is_verified_against_the_bundle_requests_would_use(
        tls_origin: tuple[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    origin, cert = tls_origin
    for name in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "HTTPS_PROXY", "https_proxy"):
        monkeypatch.delenv(name, raising=False)
    # certifi's authorities: a self-signed server is refused before anything is sent
    with ApiSession() as session, pytest.raises(requests.ConnectionError) as refused:
        exchange(session, origin + "/ok")
    assert network_reason(refused.value).startswith("TLS failed")
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(cert))
    with ApiSession() as session:
        assert exchange(session, origin + "/ok").content == b'{"ok": true}'
