"""Kept ``http.client`` connections: what every keep-alive pool of syncd's does alike.

Two connectors send their plain requests on the standard library's ``http.client``
instead of their HTTP library's session, for the Python calls that saves: CalDAV on
connections of one connector (:mod:`connectors.caldav_wire`), Graph on connections of the
process (:mod:`connectors.http_pool`). Who may share a connection, when a request is plain,
and how an answer is read are theirs; this module holds what they do the same way.

Vocabulary:

origin
    ``(scheme, host, port)`` of a URL: the scheme and host lower-cased, the port the
    URL's or the scheme's own (80, 443). Only http and https have one here
    (:func:`origin_of`); a connection serves one origin.
shelf
    the idle connections a pool keeps, per origin (:class:`Shelf`): a connection goes
    back on it once its answer was read to the end, and comes off for the next request.
closed by the peer
    a kept connection with something to read while no request is out on it: the
    server's close, or bytes it should not have sent (:func:`closed_by_peer`).

Rules:

* a connection taken off the shelf is never one the peer had closed when it was taken:
  those are dropped (closed) as they are found, so a request is not sent on a connection
  the server let go after its idle timeout;
* a shelf keeps at most its ``most`` connections per origin; one given back beyond that
  is closed;
* the shelf is thread-safe (a lock around its lists only: no socket work under it);
* an answer's headers are read as requests reads them: a repeated header joined with
  commas, into the caller's mapping (:func:`joined_headers`);
* https is verified, the host name checked, against one CA file or the system's store;
  each context is made once per file (:func:`tls_context`): loading a bundle takes
  milliseconds.
"""

from __future__ import annotations

import http.client
import select
import ssl
import threading
from collections.abc import Callable, MutableMapping
from functools import lru_cache
from typing import TypeVar
from urllib.parse import quote, urlsplit

Origin = tuple[str, str, int]

#: Characters left as they are in a request's path and query: a valid URL's, and "%"
#: (escapes it has already); anything else (a space, a non-ASCII letter) is encoded.
_URL_SAFE = "!#$%&'()*+,/:;=?@[]~"
_DEFAULT_PORTS = {"http": 80, "https": 443}

Headers = TypeVar("Headers", bound=MutableMapping[str, str])


def origin_of(url: str) -> Origin | None:
    """The origin of ``url``; None for another scheme, no host or a port that is not a
    number."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS or not parts.hostname:
        return None
    try:
        return scheme, parts.hostname.lower(), parts.port or _DEFAULT_PORTS[scheme]
    except ValueError:  # a port that is not a number, or out of range
        return None


def request_target(url: str) -> str:
    """The path and query of ``url`` as a request line carries them, percent-encoded
    where they are not a valid URL's already."""
    parts = urlsplit(url)
    target = quote(parts.path or "/", safe=_URL_SAFE)
    return f"{target}?{quote(parts.query, safe=_URL_SAFE)}" if parts.query else target


class Shelf:
    """The idle connections of a pool, at most ``most`` per origin (see the module
    docstring's rules)."""

    def __init__(self, most: int) -> None:
        self.most = most
        self._idle: dict[Origin, list[http.client.HTTPConnection]] = {}
        self._lock = threading.Lock()

    def take(self, origin: Origin) -> http.client.HTTPConnection | None:
        """The last connection given back for ``origin`` that the peer has not closed,
        or None (then the caller connects)."""
        while True:
            with self._lock:
                idle = self._idle.get(origin)
                conn = idle.pop() if idle else None
            if conn is None or not closed_by_peer(conn):
                return conn
            conn.close()

    def give_back(self, origin: Origin, conn: http.client.HTTPConnection) -> None:
        """Keep ``conn`` (its answer read to the end) for the next request to
        ``origin``; close it when the shelf holds ``most`` already."""
        with self._lock:
            idle = self._idle.setdefault(origin, [])
            if len(idle) < self.most:
                idle.append(conn)
                return
        conn.close()

    def close(self) -> None:
        """Close every idle connection (one out on a request is its holder's)."""
        with self._lock:
            idle, self._idle = self._idle, {}
        for conns in idle.values():
            for conn in conns:
                conn.close()


def closed_by_peer(conn: http.client.HTTPConnection) -> bool:
    """Whether a kept connection has something to read while no request is out: the
    server's close (or bytes it should not have sent), so it is not used again."""
    if conn.sock is None:
        return True
    poller = select.poll()
    poller.register(conn.sock, select.POLLIN)
    return bool(poller.poll(0))


def joined_headers(response: http.client.HTTPResponse,
                   mapping: Callable[[], Headers]) -> Headers:
    """An answer's headers in a new ``mapping()`` (the caller's kind: its HTTP library's
    case-insensitive dict), a repeated one joined with commas (as requests does)."""
    headers = mapping()
    for name, value in response.getheaders():
        headers[name] = f"{headers[name]}, {value}" if name in headers else value
    return headers


@lru_cache(maxsize=16)
def tls_context(ca_file: str | None) -> ssl.SSLContext:
    """A verifying TLS context, the host name checked, trusting ``ca_file``; with None,
    the system's store (which ``SSL_CERT_FILE`` and ``SSL_CERT_DIR`` can point
    elsewhere). A caller that wants another default (requests': certifi's bundle)
    passes it."""
    return ssl.create_default_context(cafile=ca_file)
