"""A CalDAV account's own keep-alive connections, on the standard library's ``http.client``.

After discovery every request of a CalDAV connector is syncd's own
(:class:`connectors.caldav_http.DavTransport`), and an idle cycle is one of them: the
sync-collection REPORT. Through the library's session (niquests on urllib3-future) that
request cost some 2,200 Python calls and about 1 ms of CPU; the same exchange on
``http.client`` costs some 400. :class:`Wire` sends a request that way when nothing but a
plain exchange is needed:

* the account's credentials are Basic or Bearer, already chosen (the header is built from
  the library's own auth object, the very one its session would send); anything else
  (Digest, no credentials, where niquests would read ``.netrc``) goes through the session;
* the environment names no proxy for the server (``*_proxy``, ``no_proxy``, read once per
  origin): through a proxy the session's handling is kept as it was;
* http or https; https verified against the account's ``ca_bundle``, else the bundle the
  environment names for requests (``REQUESTS_CA_BUNDLE``, ``CURL_CA_BUNDLE``), else the
  system's (which ``SSL_CERT_FILE`` and ``SSL_CERT_DIR`` can point elsewhere), with the
  host name checked. A client certificate goes through the session.

What stays as it was: one connector's connections are its own (credentials never travel on
another account's connection), redirects are never followed, every connect and read has
the account's timeout, and the caller reads the body under its cap and deadline. A kept
connection the server closed meanwhile is noticed before it is used again and dropped.
No ``Accept-Encoding`` is offered: replies come plain, so a server spends no CPU
compressing an idle cycle's few hundred bytes, and no decompression can inflate past a cap.

The shelf of idle connections, origins, request targets, the header join and the TLS
contexts are those of every kept ``http.client`` pool (:mod:`connectors.keepalive`).
"""

from __future__ import annotations

import http.client
import os
from collections.abc import Iterator, Mapping
from typing import Any
from urllib.request import getproxies, proxy_bypass

from caldav.lib.http_sync import CaseInsensitiveDict, HTTPBasicAuth
from caldav.lib.http_sync import requests as http_library
from caldav.requests import HTTPBearerAuth

from connectors import keepalive
from connectors.keepalive import Origin, Shelf

#: Idle connections one connector keeps per origin (a cycle sends one request at a time;
#: a push renewal may overlap it).
MAX_IDLE = 2
#: Origins whose proxy setting one connector remembers.
MAX_ORIGINS = 16
_CA_VARIABLES = ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE")


class Answer:
    """An answer whose body is read in pieces (:meth:`chunks`); :meth:`close` gives the
    connection back when the body was read to its end, else closes it."""

    def __init__(self, shelf: Shelf, origin: Origin, conn: http.client.HTTPConnection,
                 response: http.client.HTTPResponse) -> None:
        self._shelf, self._origin, self._conn, self._response = shelf, origin, conn, response
        self.status = response.status
        self.headers: CaseInsensitiveDict = keepalive.joined_headers(response, CaseInsensitiveDict)
        self._done = False

    def chunks(self, size: int) -> Iterator[bytes]:
        while chunk := self._response.read(size):
            yield chunk
        self._done = True

    def close(self) -> None:
        if self._done and not self._response.will_close:
            self._shelf.give_back(self._origin, self._conn)
        else:
            self._conn.close()


class Wire:
    """The keep-alive connections of one connector (see the module docstring)."""

    def __init__(self, *, timeout: float, verify: bool | str) -> None:
        self.timeout = timeout
        self.verify = verify
        self._shelf = Shelf(MAX_IDLE)
        self._direct: dict[Origin, bool] = {}
        self._auth: tuple[Any, str] | None = None  # the auth object and its header

    def authorization(self, auth: Any) -> str | None:
        """The ``Authorization`` header of ``auth`` when it is one this path sends
        (Basic, Bearer), else None."""
        if self._auth is not None and self._auth[0] is auth:
            return self._auth[1]
        if type(auth) not in (HTTPBasicAuth, HTTPBearerAuth):
            return None
        prepared = http_library.PreparedRequest()
        prepared.headers = CaseInsensitiveDict()
        auth(prepared)
        header = str(prepared.headers["Authorization"])
        self._auth = (auth, header)
        return header

    def serves(self, url: str) -> Origin | None:
        """The origin of ``url`` when this path may send to it: http or https, no proxy."""
        origin = keepalive.origin_of(url)
        if origin is None:
            return None
        direct = self._direct.get(origin)
        if direct is None:
            if len(self._direct) >= MAX_ORIGINS:  # URLs a server named: never many
                self._direct.clear()
            direct = self._direct[origin] = not _proxied(origin[0], origin[1])
        return origin if direct else None

    def send(self, origin: Origin, method: str, url: str, body: bytes,
             headers: Mapping[str, str], *, fresh: bool = False) -> Answer:
        """Send one request on a kept connection to ``origin`` (a new one with ``fresh``,
        or when none is idle) and read the answer's status and headers.

        Raises:
            OSError, http.client.HTTPException: the exchange failed before an answer; the
                connection is closed.
        """
        conn = None if fresh else self._shelf.take(origin)
        if conn is None:
            conn = self._connect(origin)
        try:
            conn.request(method, keepalive.request_target(url), body=body or None,
                         headers=dict(headers))
            response = conn.getresponse()
        except BaseException:
            conn.close()
            raise
        return Answer(self._shelf, origin, conn, response)

    def close(self) -> None:
        self._shelf.close()

    def _connect(self, origin: Origin) -> http.client.HTTPConnection:
        scheme, host, port = origin
        if scheme == "https":
            return http.client.HTTPSConnection(host, port, timeout=self.timeout,
                                               context=keepalive.tls_context(self._ca_file()))
        return http.client.HTTPConnection(host, port, timeout=self.timeout)

    def _ca_file(self) -> str | None:
        if isinstance(self.verify, str):
            return self.verify
        return next((os.environ[v] for v in _CA_VARIABLES if os.environ.get(v)), None)


def _proxied(scheme: str, host: str) -> bool:
    """Whether the environment sends requests to ``host`` through a proxy."""
    proxies = getproxies()
    return bool(proxies.get(scheme) or proxies.get("all")) and not proxy_bypass(host)
