"""A client that trickles its request (one byte now and then, each within the socket
timeout) must not hold a listener thread for ever, and a TLS client that never finishes
its handshake must not stop the listener from accepting others (slowloris).

The listener gets :data:`READ` seconds to read a request whole (its TLS handshake, line,
headers and body); the handler's own time is not counted. The tests count connections
the server closed and requests answered, never times.
"""

from __future__ import annotations

import socket
import ssl
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from syncd.http import server as server_module
from syncd.http.router import Request, Response, Route, Router
from syncd.http.server import HttpServer
from syncd_testkit.tls import self_signed

READ = 1.0  # seconds to read a request whole, in these tests
TRICKLE = 0.3  # seconds between two bytes of a slow client: far inside the socket timeout
GIVE_UP = 40  # bytes a slow client sends before it stops trying (12 s)


def _ok(_request: Request) -> Response:
    return Response.text(200)


@pytest.fixture
def short_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(server_module, "READ_SECONDS", READ)
    monkeypatch.setattr(server_module, "SOCKET_TIMEOUT", 3)  # still 10x TRICKLE


def _serve(tmp_path: Path | None = None) -> HttpServer:
    router = Router(max_body=1024)
    router.add(Route("/healthz", _ok, methods=("GET",), max_body=0))
    cert, key = self_signed(tmp_path) if tmp_path is not None else (None, None)
    server = HttpServer("127.0.0.1", 0, router, certificate=str(cert) if cert else None,
                        private_key=str(key) if key else None)
    server.start()
    return server


@pytest.fixture
def plain(short_read: None) -> Iterator[HttpServer]:
    server = _serve()
    yield server
    server.stop()


@pytest.fixture
def tls(short_read: None, tmp_path: Path) -> Iterator[tuple[HttpServer, Path]]:
    server = _serve(tmp_path)
    yield server, tmp_path / "cert.pem"
    server.stop()


class Trickler(threading.Thread):
    """Sends ``head``, then one byte every :data:`TRICKLE` s until the server closes the
    connection (``closed``) or :data:`GIVE_UP` bytes went."""

    def __init__(self, port: int, head: bytes, byte: bytes) -> None:
        super().__init__(daemon=True)
        self.port, self.head, self.byte = port, head, byte
        self.closed = False
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=30)

    def run(self) -> None:
        try:
            self.sock.sendall(self.head)
            self.sock.settimeout(TRICKLE)
            for _ in range(GIVE_UP):
                try:
                    if self.sock.recv(4096) == b"":
                        self.closed = True
                        return
                except TimeoutError:
                    pass
                self.sock.sendall(self.byte)
        except OSError:  # reset or broken pipe: closed by the server
            self.closed = True
        finally:
            self.sock.close()


def _get(url: str, context: ssl.SSLContext | None = None) -> int:
    with urllib.request.urlopen(url, timeout=8, context=context) as answer:
        return int(answer.status)


def test_slow_clients_are_cut_off_and_the_listener_keeps_answering(
        plain: HttpServer) -> None:
    slow = [Trickler(plain.port, b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ", b"a")
            for _ in range(server_module.THREADS + 2)]  # more than there are threads
    for client in slow:
        client.start()
    time.sleep(READ / 2)  # every thread is taken by a slow client now
    assert _get(f"{plain.url}/healthz") == 200
    for client in slow:
        client.join()
    assert [c.closed for c in slow] == [True] * len(slow)


def test_a_slow_body_is_cut_off_too(plain: HttpServer) -> None:
    head = b"POST /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n"
    client = Trickler(plain.port, head, b"a")
    client.start()
    client.join()
    assert client.closed


def test_a_tls_handshake_that_never_ends_does_not_stop_the_listener(
        tls: tuple[HttpServer, Path]) -> None:
    server, ca = tls
    # A TLS record header announcing 16 KiB of handshake, then a byte now and then.
    stalled = Trickler(server.port, b"\x16\x03\x01\x40\x00", b"\x00")
    silent = socket.create_connection(("127.0.0.1", server.port), timeout=30)
    stalled.start()
    time.sleep(READ / 2)
    context = ssl.create_default_context(cafile=str(ca))
    try:
        assert _get(f"{server.url}/healthz", context) == 200
        stalled.join()
        assert stalled.closed
        silent.settimeout(15)
        assert silent.recv(1) == b""  # closed by the server, not left waiting
    finally:
        silent.close()


def test_connections_that_send_nothing_hold_no_thread() -> None:
    # Each would hold a thread until the socket timeout (10 s, the read deadline at its
    # default); 5 per thread would make a probe wait a minute. They wait in the selector
    # instead, and expire there.
    server = _serve()
    silent = [socket.create_connection(("127.0.0.1", server.port), timeout=30)
              for _ in range(5 * server_module.THREADS)]
    try:
        time.sleep(READ / 2)
        assert _get(f"{server.url}/healthz") == 200
    finally:
        for sock in silent:
            sock.close()
        server.stop()


def test_one_client_cannot_take_every_thread(monkeypatch: pytest.MonkeyPatch) -> None:
    # Cut off after READ_SECONDS, slow connections opened again and again by one client
    # would still hold every thread; one address gets PER_CLIENT of them at most. (The
    # loopback addresses a reverse proxy forwards from are exempt: tests take it away.)
    monkeypatch.setattr(server_module, "exempt", lambda _address: False)
    server = _serve()
    slow = [Trickler(server.port, b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ", b"a")
            for _ in range(server_module.THREADS + 2)]
    try:
        for client in slow:
            client.start()
        time.sleep(READ / 2)
        # another client (another loopback address) finds a thread at once
        with socket.create_connection(("127.0.0.1", server.port), timeout=8,
                                      source_address=("127.0.0.2", 0)) as other:
            other.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            assert other.recv(64).startswith(b"HTTP/1.1 200")
        assert server.deadlines.refused == len(slow) - server_module.PER_CLIENT
    finally:
        server.stop()
        for client in slow:
            client.join()
