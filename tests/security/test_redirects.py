"""A provider's answer cannot move a request elsewhere: a redirect to another origin (host,
port or scheme, plain http:// included) is not followed, so neither the Authorization
header nor a body (a token grant's refresh token, an event) reaches it. Same-origin
redirects are followed, a few at most.

Two loopback servers: ``origin`` answers redirects, ``elsewhere`` counts what reaches it.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httplib2
import pytest
import requests

from connectors.answer_caps import CappedHttp
from syncd.errors import SyncdError
from syncd.network import MAX_REDIRECTS, same_origin_redirects


class Recorder(ThreadingHTTPServer):
    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.seen: list[tuple[str, str, str | None, bytes]] = []  # method, path, auth, body
        self.redirect_to = ""
        threading.Thread(target=self.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class Handler(BaseHTTPRequestHandler):
    server: Recorder

    def _any(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        self.server.seen.append((self.command, self.path, self.headers.get("Authorization"),
                                 body))
        if self.path.startswith("/go/"):  # /go/<status>/<where>: a redirect
            _, _, status, where = self.path.split("/", 3)
            self.send_response(int(status))
            target = self.server.redirect_to if where == "away" else f"/{where}"
            self.send_header("Location", target)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    do_GET = do_POST = do_PATCH = _any

    def log_message(self, *_args: object) -> None:
        pass


@pytest.fixture
def servers() -> Iterator[tuple[Recorder, Recorder]]:
    origin, elsewhere = Recorder(), Recorder()
    origin.redirect_to = f"{elsewhere.url}/stolen"
    yield origin, elsewhere
    for server in (origin, elsewhere):
        server.shutdown()
        server.server_close()


SECRET = "Bearer s3cr3t-access-token"
GRANT = b"grant_type=refresh_token&refresh_token=s3cr3t-refresh&client_secret=s3cr3t"


@pytest.mark.parametrize(("method", "status"), [
    ("GET", 302), ("GET", 301), ("POST", 307), ("POST", 308), ("PATCH", 307)])
def test_a_redirect_to_another_origin_is_not_followed(
        servers: tuple[Recorder, Recorder], method: str, status: int) -> None:
    origin, elsewhere = servers
    session = same_origin_redirects(requests.Session())
    answer = session.request(method, f"{origin.url}/go/{status}/away", data=GRANT,
                             headers={"Authorization": SECRET}, timeout=10)
    assert answer.status_code == status  # the redirect is the answer, a failure to callers
    assert elsewhere.seen == []


def test_without_it_requests_would_carry_the_body_away(
        servers: tuple[Recorder, Recorder]) -> None:
    # The control: what the policy prevents happens with a plain session.
    origin, elsewhere = servers
    requests.Session().post(f"{origin.url}/go/308/away", data=GRANT, timeout=10)
    assert [(m, body) for m, _p, _a, body in elsewhere.seen] == [("POST", GRANT)]


def test_a_redirect_within_the_origin_is_followed_a_few_times_at_most(
        servers: tuple[Recorder, Recorder]) -> None:
    origin, _ = servers
    session = same_origin_redirects(requests.Session())
    assert session.get(f"{origin.url}/go/302/done", timeout=10).status_code == 200
    assert [p for _m, p, _a, _b in origin.seen] == ["/go/302/done", "/done"]
    loop = "/go/302/go/302/go/302/go/302/go/302/go/302/go/302/done"
    with pytest.raises(requests.TooManyRedirects):
        session.get(f"{origin.url}{loop}", timeout=10)
    assert MAX_REDIRECTS == 5


@pytest.mark.parametrize(("method", "status"), [("GET", 302), ("POST", 308)])
def test_google_follows_no_redirect_at_all(servers: tuple[Recorder, Recorder], method: str,
                                           status: int) -> None:
    # Google's API and token endpoints never redirect; httplib2 re-posts a 308's body (a
    # refresh token, a service account's signed grant) to any Location, http:// too.
    origin, elsewhere = servers
    capped = CappedHttp(httplib2.Http(timeout=10))
    response, _ = capped.request(f"{origin.url}/go/{status}/away", method, body=GRANT,
                                 headers={"authorization": SECRET})
    assert response.status == status
    assert elsewhere.seen == []


class _Tokens:
    def token(self) -> str:
        return "s3cr3t-access-token"

    def invalidate(self) -> None:
        pass


def test_the_graph_connector_and_pipedrive_refuse_foreign_redirects(
        servers: tuple[Recorder, Recorder]) -> None:
    from connectors import ConnectorContext
    from connectors.outlook import OutlookCalendar
    from syncd.config_types import AccountConfig
    from syncd.crm.pipedrive_auth import ApiToken, OAuthTokens
    from syncd.crm.pipedrive_http import PipedriveHttp
    from syncd.service import account_policy

    origin, elsewhere = servers
    origin.redirect_to = f"{elsewhere.url}/stolen"
    account = AccountConfig(name="a", provider="outlook", owner="a@x.com",
                            auth={"mode": "app", "user": "a@x.com",
                                  "graph_url": f"{origin.url}/go/307/away"})
    window = account_policy(account).window(datetime(2027, 1, 1, tzinfo=UTC))
    graph = OutlookCalendar(account, ConnectorContext("UTC", window), tokens=_Tokens(),
                            sleep=lambda _: None)
    with pytest.raises(SyncdError):
        graph.changes(None)
    pipedrive = PipedriveHttp(f"{origin.url}/go/307/away", ApiToken("s3cr3t"),
                              sleep=lambda _: None)
    with pytest.raises(SyncdError):
        pipedrive.get("/v1/users")
    tokens = OAuthTokens("id", "s3cr3t", "s3cr3t-refresh",
                         token_url=f"{origin.url}/go/308/away")
    with pytest.raises(SyncdError):
        tokens.headers()
    assert elsewhere.seen == []
    assert origin.seen  # each of the three asked, and stopped at the redirect
