"""What the HTTP libraries raise is told apart by its innermost cause."""

from __future__ import annotations

import socket
import ssl
import threading

import pytest
import requests

from syncd.network import network_reason
from syncd_testkit.loopback import free_port


def _failure(url: str, **options: object) -> BaseException:
    with pytest.raises(requests.RequestException) as caught:
        requests.get(url, **options)  # type: ignore[arg-type]
    return caught.value


def test_a_closed_port_is_a_refused_connection() -> None:
    assert network_reason(_failure(f"http://127.0.0.1:{free_port()}/", timeout=5)) == \
        "connection refused"


def test_a_server_that_never_answers_timed_out() -> None:
    with socket.socket() as silent:  # accepts the connection, never says a word
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        url = f"http://127.0.0.1:{silent.getsockname()[1]}/"
        assert network_reason(_failure(url, timeout=0.3)) == "timed out"


def test_tls_to_a_plain_http_server_is_a_tls_failure() -> None:
    with socket.socket() as plain:
        plain.bind(("127.0.0.1", 0))
        plain.listen()
        port = plain.getsockname()[1]

        def answer_in_plain_text() -> None:
            conn, _ = plain.accept()
            conn.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
            conn.close()

        threading.Thread(target=answer_in_plain_text, daemon=True).start()
        reason = network_reason(_failure(f"https://127.0.0.1:{port}/", timeout=5))
    assert reason.startswith("TLS failed"), reason


def test_an_unknown_cause_is_named_by_its_class() -> None:
    assert network_reason(ssl.SSLError()) == "TLS failed: SSLError"
    assert network_reason(ValueError("odd")) == "ValueError"
