"""Pipedrive's OAuth token answer names the API base every later request (with its bearer
token) goes to (``api_domain``). Only an https:// origin is taken; plain http:// only on
loopback when the token endpoint is itself a loopback test server."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from syncd.crm.pipedrive_auth import OAuthTokens
from syncd.errors import AuthFailed


class TokenServer(ThreadingHTTPServer):
    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.api_domain = ""
        threading.Thread(target=self.serve_forever, daemon=True).start()


class Handler(BaseHTTPRequestHandler):
    server: TokenServer

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        body = json.dumps({"access_token": "s3cr3t-access", "expires_in": 3600,
                           "api_domain": self.server.api_domain}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_args: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[TokenServer]:
    found = TokenServer()
    yield found
    found.shutdown()
    found.server_close()


def _tokens(server: TokenServer, api_domain: str) -> OAuthTokens:
    server.api_domain = api_domain
    return OAuthTokens("id", "s3cr3t", "s3cr3t-refresh",
                       token_url=f"http://127.0.0.1:{server.server_address[1]}/token")


@pytest.mark.parametrize("api_domain", [
    "http://evil.example", "http://company.pipedrive.com", "ftp://company.pipedrive.com",
    "https://user:pw@company.pipedrive.com", "https://", "https://company.pipedrive.com:99999",
    "https://company.pipedrive.com/?x=1", "//evil.example", "javascript:alert(1)",
])
def test_an_api_domain_that_is_not_https_is_refused(server: TokenServer,
                                                    api_domain: str) -> None:
    tokens = _tokens(server, api_domain)
    with pytest.raises(AuthFailed):
        tokens.headers()
    assert tokens.api_domain is None


@pytest.mark.parametrize("api_domain", ["https://company.pipedrive.com",
                                        "https://company.pipedrive.com/"])
def test_an_https_api_domain_is_taken(server: TokenServer, api_domain: str) -> None:
    tokens = _tokens(server, api_domain)
    assert tokens.headers()["Authorization"] == "Bearer s3cr3t-access"
    assert tokens.api_domain == "https://company.pipedrive.com"


def test_plain_http_only_to_a_loopback_test_server_beside_a_loopback_token_endpoint(
        server: TokenServer) -> None:
    assert _tokens(server, "http://127.0.0.1:9").headers()
    real = OAuthTokens("id", "s3cr3t", "s3cr3t-refresh")  # Pipedrive's https endpoint
    assert not real._trusted_base("http://127.0.0.1:9")
    assert real._trusted_base("https://company.pipedrive.com")
