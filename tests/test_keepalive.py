"""connectors/keepalive.py: the shelf of kept connections drops what the peer closed and
keeps at most its limit; origins, request targets, joined headers and TLS contexts are
read as both wires (CalDAV's, Graph's) need them."""

from __future__ import annotations

import http.client
import io
import socket
import ssl
from collections.abc import Iterator

import certifi
import pytest
from requests.structures import CaseInsensitiveDict

from connectors.keepalive import (
    Shelf,
    closed_by_peer,
    joined_headers,
    origin_of,
    request_target,
    tls_context,
)

ORIGIN = ("http", "127.0.0.1", 0)


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    server = socket.create_server(("127.0.0.1", 0))
    yield server
    server.close()


def connected(listener: socket.socket) -> tuple[http.client.HTTPConnection, socket.socket]:
    """A kept connection and the server's end of it."""
    conn = http.client.HTTPConnection("127.0.0.1", listener.getsockname()[1], timeout=5)
    conn.connect()
    peer, _ = listener.accept()
    return conn, peer


@pytest.mark.parametrize(("url", "origin"), [
    ("HTTPS://CalDAV.Example:8443/dav/", ("https", "caldav.example", 8443)),
    ("https://graph.example/v1.0/me", ("https", "graph.example", 443)),
    ("http://127.0.0.1/x?y", ("http", "127.0.0.1", 80)),
    ("http://[::1]:8080/", ("http", "::1", 8080)),
])
def test_an_origin_is_the_scheme_lower_cased_host_and_port_or_its_default(
        url: str, origin: tuple[str, str, int]) -> None:
    assert origin_of(url) == origin


@pytest.mark.parametrize("url", [
    "ftp://files.example/", "file:///etc/passwd", "mailto:someone@example.com",
    "https://host:port/", "https://host:70000/", "https://host:-1/", "https:///no-host",
    "//host/no-scheme", "",
])
def test_another_scheme_no_host_or_a_bad_port_has_no_origin(url: str) -> None:
    assert origin_of(url) is None


@pytest.mark.parametrize(("url", "target"), [
    ("http://h", "/"),
    ("http://h/a b/ü", "/a%20b/%C3%BC"),
    ("http://h/%41/x?q=a b&r=%2F", "/%41/x?q=a%20b&r=%2F"),
    ("http://h/cal/?", "/cal/"),
    # urlsplit drops CR, LF and tab (as browsers do): no line can be added to the request
    ("http://h/p\r\nX-Injected: 1", "/pX-Injected:%201"),
])
def test_a_request_target_is_percent_encoded_where_it_is_not_a_urls_already(
        url: str, target: str) -> None:
    assert request_target(url) == target


def answer(raw: bytes) -> http.client.HTTPResponse:
    """``raw`` read by ``http.client`` as an answer from a socket."""

    class Received:
        def makefile(self, mode: str) -> io.BytesIO:
            return io.BytesIO(raw)

    response = http.client.HTTPResponse(Received())  # type: ignore[arg-type]
    response.begin()
    return response


def test_a_repeated_header_is_joined_with_commas_into_the_callers_mapping() -> None:
    response = answer(b"HTTP/1.1 200 OK\r\nLink: <a>\r\nETag: \"1\"\r\nlink: <b>\r\n"
                      b"Content-Length: 0\r\n\r\n")
    headers: CaseInsensitiveDict[str] = joined_headers(response, CaseInsensitiveDict)
    assert isinstance(headers, CaseInsensitiveDict)
    assert headers["LINK"] == "<a>, <b>"
    assert headers["etag"] == '"1"'
    plain: dict[str, str] = joined_headers(
        answer(b"HTTP/1.1 204 No Content\r\nA: 1\r\nA: 2\r\n\r\n"), dict)
    assert plain == {"A": "1, 2"}


def test_a_connection_the_peer_closed_is_dropped_and_never_taken(
        listener: socket.socket) -> None:
    shelf = Shelf(most=4)
    kept, kept_peer = connected(listener)
    closed, closed_peer = connected(listener)
    shelf.give_back(ORIGIN, kept)
    shelf.give_back(ORIGIN, closed)  # the last given back, the first taken
    closed_peer.close()
    try:
        assert shelf.take(ORIGIN) is kept
        assert closed.sock is None  # closed on our side too
        assert shelf.take(ORIGIN) is None
    finally:
        kept.close()
        kept_peer.close()


def test_bytes_the_peer_sent_while_no_request_was_out_count_as_its_close(
        listener: socket.socket) -> None:
    conn, peer = connected(listener)
    try:
        assert not closed_by_peer(conn)
        peer.sendall(b"HTTP/1.1 200 OK\r\n\r\n")
        conn.sock.settimeout(5)
        assert closed_by_peer(conn)
    finally:
        conn.close()
        peer.close()
    assert closed_by_peer(conn)  # no socket at all


def test_the_shelf_keeps_at_most_its_limit_per_origin_and_closes_the_rest(
        listener: socket.socket) -> None:
    shelf = Shelf(most=2)
    pairs = [connected(listener) for _ in range(4)]
    other = ("http", "127.0.0.2", 0)
    try:
        for conn, _ in pairs[:3]:
            shelf.give_back(ORIGIN, conn)
        shelf.give_back(other, pairs[3][0])  # another origin has its own room
        assert [conn.sock is None for conn, _ in pairs] == [False, False, True, False]
        assert shelf.take(other) is pairs[3][0]
        shelf.give_back(other, pairs[3][0])
        shelf.close()
        assert all(conn.sock is None for conn, _ in pairs)
        assert shelf.take(ORIGIN) is None and shelf.take(other) is None
    finally:
        for conn, peer in pairs:
            conn.close()
            peer.close()


def test_a_tls_context_verifies_and_is_made_once_per_authority_file() -> None:
    system, bundle = tls_context(None), tls_context(certifi.where())
    for context in (system, bundle):
        assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
    assert tls_context(None) is system and tls_context(certifi.where()) is bundle
    assert system is not bundle
