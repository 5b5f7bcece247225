"""syncd/http_env.py: a client's session reads the environment's proxies once per
host, and still goes where the environment says (proxy, ``no_proxy``)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import requests

from syncd.http_env import read_environment_once


class _Recorder(BaseHTTPRequestHandler):
    """Answers 200 and records the request line (a proxy sees the absolute URL)."""

    def do_GET(self) -> None:
        self.server.seen.append(self.path)  # type: ignore[attr-defined]
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def server() -> Iterator[Any]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    httpd.seen = []  # type: ignore[attr-defined]
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd
    httpd.shutdown()
    httpd.server_close()


def test_a_session_reads_the_environment_once_per_host(
        server: Any, environ_reads: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    base = f"http://127.0.0.1:{server.server_address[1]}"
    with read_environment_once(requests.Session()) as session:
        for path in ("/a", "/b?x=1", "/c"):
            assert session.get(base + path, timeout=5).status_code == 200
        assert session.get(f"http://localhost:{server.server_address[1]}/d",
                           timeout=5).status_code == 200
    assert len(environ_reads) == 2  # 127.0.0.1 once, localhost once
    assert server.seen == ["/a", "/b?x=1", "/c", "/d"]
    with requests.Session() as plain:  # (what requests does by itself)
        plain.get(base + "/e", timeout=5)
        plain.get(base + "/f", timeout=5)
    assert len(environ_reads) == 4


def test_the_environments_proxy_is_still_used(server: Any,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    proxy = f"http://127.0.0.1:{server.server_address[1]}"
    monkeypatch.setenv("HTTP_PROXY", proxy)
    monkeypatch.setenv("NO_PROXY", "")
    monkeypatch.delenv("no_proxy", raising=False)
    monkeypatch.delenv("http_proxy", raising=False)
    with read_environment_once(requests.Session()) as session:
        for _ in range(2):
            assert session.get("http://calendar.invalid/x", timeout=5).status_code == 200
    # the proxy got the absolute URL each time, so the session went through it
    assert server.seen == ["http://calendar.invalid/x"] * 2


def test_a_request_of_its_own_proxies_is_not_given_another_hosts(
        server: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    base = f"http://127.0.0.1:{server.server_address[1]}"
    with read_environment_once(requests.Session()) as session:
        session.get(base + "/plain", timeout=5)
        session.get("http://calendar.invalid/y", timeout=5,
                    proxies={"http": base})  # this request's own proxy
        session.get(base + "/plain-again", timeout=5)
    assert server.seen == ["/plain", "http://calendar.invalid/y", "/plain-again"]


def test_making_a_session_read_once_twice_wraps_it_once() -> None:
    session = read_environment_once(requests.Session())
    merge = session.merge_environment_settings
    assert read_environment_once(session).merge_environment_settings is merge
    stand_in = object()
    assert read_environment_once(stand_in) is stand_in  # type: ignore[arg-type]
