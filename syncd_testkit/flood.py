"""A loopback server that answers chosen requests with a body too large to hold.

It stands in front of an emulator: requests that :attr:`FloodServer.flood` picks get a
hostile answer (:data:`KINDS`), every other one goes to ``upstream`` unchanged (with the
upstream's origin in the answer rewritten to the flood server's, so Graph's nextLinks stay
on it). It counts the body bytes it managed to send, so a test can tell that the client
stopped reading at its cap rather than at the end of the body.

The hostile answers (a 200 with a JSON content type):

* ``endless``: chunked, chunk after chunk until the client hangs up;
* ``unannounced``: neither a length nor chunks, bytes until the client hangs up;
* ``announced``: a ``Content-Length`` of :data:`ANNOUNCED` bytes, sent until the client
  hangs up;
* ``short_length``: a ``Content-Length`` of 1,000 bytes, followed by endless bytes;
* ``long_length``: a ``Content-Length`` of 100,000 bytes, then 100 bytes and a hang-up;
* ``gzip_bomb``: ``Content-Encoding: gzip``, a body of about 260 KB that inflates to
  :data:`BOMB_INFLATED` bytes.
"""

from __future__ import annotations

import http.client
import struct
import threading
import zlib
from collections.abc import Callable
from functools import cache
from urllib.parse import urlsplit

from syncd_testkit.loopback import QuietHandler, ThreadedHTTPServer

KINDS = ("endless", "unannounced", "announced", "short_length", "long_length", "gzip_bomb")
#: What ``announced`` says its body holds (1 GiB).
ANNOUNCED = 1 << 30
#: What ``gzip_bomb`` inflates to (256 MiB).
BOMB_INFLATED = 256 << 20
#: The most the server sends in all, in case a client never hangs up: the test then fails
#: on the count instead of hanging, and a client without a cap holds no more than this.
CEILING = 256 << 20
_PIECE = b'{"id": "flood", "summary": "' + b"x" * 65_000 + b'"},'


@cache
def gzip_bomb() -> bytes:
    """A gzip stream of :data:`BOMB_INFLATED` zero bytes, made without compressing them all:
    after a full flush a deflate stream starts afresh, so one compressed MiB of zeros can
    be repeated (RFC 1951 blocks, RFC 1952 header and trailer)."""
    zeros = bytes(1 << 20)
    packer = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    block = packer.compress(zeros) + packer.flush(zlib.Z_FULL_FLUSH)
    crc = 0
    for _ in range(BOMB_INFLATED >> 20):
        crc = zlib.crc32(zeros, crc)
    return (b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff" + block * (BOMB_INFLATED >> 20)
            + packer.flush() + struct.pack("<II", crc, BOMB_INFLATED & 0xFFFFFFFF))


class FloodServer(ThreadedHTTPServer):
    """Answers the requests ``flood`` picks with a ``kind`` of hostile body (see above)."""

    name = "flood"
    #: A client hanging up in the middle of a body is the point of the exercise.
    quiet_errors = (Exception,)

    def __init__(self, upstream: str | None, kind: str = "endless",
                 flood: Callable[[str, str], bool] = lambda method, path: True) -> None:
        assert kind in KINDS, kind
        self.upstream = upstream
        self.kind = kind
        self.flood = flood
        #: Body bytes sent in hostile answers, and how many such answers were begun.
        self.sent = 0
        self.flooded = 0
        self._lock = threading.Lock()
        self._stopped = threading.Event()

    def on_stop(self) -> None:
        self._stopped.set()

    def _count(self, size: int) -> None:
        with self._lock:
            self.sent += size

    def handler(self) -> type[QuietHandler]:
        server = self

        class Handler(QuietHandler):
            def _any(self) -> None:
                body = self.read_body()
                if server.flood(self.command, self.path):
                    with server._lock:
                        server.flooded += 1
                    self.close_connection = True
                    self._hostile()
                else:
                    self._forward(body)

            do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = _any

            def _forward(self, body: bytes) -> None:
                assert server.upstream is not None, "nothing to forward to"
                origin = urlsplit(server.upstream)
                conn = http.client.HTTPConnection(origin.netloc, timeout=30)
                try:
                    headers = {k: v for k, v in self.headers.items()
                               if k.lower() not in ("host", "connection", "accept-encoding")}
                    conn.request(self.command, self.path, body=body or None, headers=headers)
                    answer = conn.getresponse()
                    data = answer.read().replace(server.upstream.encode(),
                                                 server.origin.encode())
                    kept = {k: v for k, v in answer.getheaders() if k.lower() not in (
                        "content-length", "transfer-encoding", "connection")}
                    self.reply(answer.status, data, kept)
                finally:
                    conn.close()

            def _head(self, *headers: tuple[str, str]) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "application/json; charset=UTF-8")
                for key, value in headers:
                    self.send_header(key, value)
                self.end_headers()

            def _pour(self, chunked: bool) -> None:
                """Send pieces until the client hangs up (or the ceiling)."""
                self._write(b'{"items": [', chunked)
                while server.sent < CEILING and not server._stopped.is_set():
                    self._write(_PIECE, chunked)

            def _write(self, data: bytes, chunked: bool = False) -> None:
                frame = b"%x\r\n%s\r\n" % (len(data), data) if chunked else data
                self.wfile.write(frame)
                server._count(len(data))

            def _hostile(self) -> None:
                kind = server.kind
                if kind == "endless":
                    self._head(("Transfer-Encoding", "chunked"))
                    self._pour(chunked=True)
                elif kind == "unannounced":
                    self._head(("Connection", "close"))
                    self._pour(chunked=False)
                elif kind == "announced":
                    self._head(("Content-Length", str(ANNOUNCED)))
                    self._pour(chunked=False)
                elif kind == "short_length":
                    self._head(("Content-Length", "1000"))
                    self._pour(chunked=False)
                elif kind == "long_length":
                    self._head(("Content-Length", "100000"))
                    self._write(_PIECE[:100])
                else:
                    bomb = gzip_bomb()
                    self._head(("Content-Encoding", "gzip"), ("Content-Length", str(len(bomb))))
                    self._write(bomb)

        return Handler
