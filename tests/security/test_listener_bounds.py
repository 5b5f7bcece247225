"""The listener bounds what one request may make it hold before any handler runs: the
request line and headers together (16 KiB), and a body over a route's cap is refused
before it is read (tests/http covers the bodies). Hostile shapes here: one huge header,
many small ones, a huge request line, a header line with no end."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from contextlib import suppress

import pytest

from syncd.http.router import Request, Response, Route, Router
from syncd.http.server import MAX_HEADER_BYTES, HttpServer


def _ok(_request: Request) -> Response:
    return Response.text(200)


@pytest.fixture
def server() -> Iterator[HttpServer]:
    router = Router(max_body=1024)
    router.add(Route("/healthz", _ok, methods=("GET",), max_body=0))
    listener = HttpServer("127.0.0.1", 0, router)
    listener.start()
    yield listener
    listener.stop()


def _send(server: HttpServer, raw: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", server.port), timeout=20) as sock:
        # The server may stop reading (and close) before the whole request is sent.
        with suppress(OSError):
            sock.sendall(raw)
        answer = b""
        with suppress(OSError):
            while chunk := sock.recv(65536):
                answer += chunk
        return answer


OVER = MAX_HEADER_BYTES + 1024
HOSTILE = {
    "one huge header": b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * OVER
                       + b"\r\n\r\n",
    "many small headers": b"GET /healthz HTTP/1.1\r\nHost: x\r\n"
                          + b"".join(b"X-%d: a\r\n" % i for i in range(OVER // 8)) + b"\r\n",
    "a huge request line": b"GET /healthz?" + b"a" * OVER + b" HTTP/1.1\r\nHost: x\r\n\r\n",
    "a header line with no end": b"GET /healthz HTTP/1.1\r\nHost: x\r\nX: " + b"a" * OVER,
}


@pytest.mark.parametrize("shape", sorted(HOSTILE))
def test_a_request_head_over_the_cap_is_refused_before_any_handler(
        server: HttpServer, shape: str) -> None:
    status = _send(server, HOSTILE[shape]).split(b"\r\n", 1)[0]
    assert status == (b"HTTP/1.1 414 Request-URI Too Long" if "line" in shape and "header"
                      not in shape else b"HTTP/1.1 413 Request Entity Too Large")
    # and the listener answers the next caller as usual
    assert _send(server, b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
                 ).startswith(b"HTTP/1.1 200")
