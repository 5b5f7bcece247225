"""How many bytes of one answer syncd reads from Google and Graph: a cap, then nothing.

A provider's answer is untrusted input (failure mode 24): a broken or hostile server (or
whatever answers at a configured endpoint) could send a body without end, announce one of
gigabytes, or send a small gzip body that inflates to gigabytes. Either client library
would read all of it into memory. Here every answer is read at most to its cap plus one
byte, counted after decompression:

* a ``Content-Length`` over the cap is refused before a byte of the body is read;
* a chunked or unannounced body is read in pieces and abandoned at ``cap + 1`` bytes;
* a compressed body is inflated at most to ``cap + 1`` bytes;

and the connection it came on is closed, so nothing reads the rest. The answer then fails
as :class:`~syncd.errors.AnswerTooLarge` (a :class:`~syncd.errors.Transient`): that
request failed and nothing of it is used; a listing page is never taken as shorter than
it was (that would read as deletions). The caps are the CalDAV and Pipedrive ones.

Graph (``requests``) streams through :func:`read_capped`; Google's client library reads
through an ``httplib2.Http``, which :class:`CappedHttp` wraps. Token answers are read to
:data:`MAX_TOKEN_ANSWER_BYTES`: Google's refreshes and service-account grants
(``connectors.google_auth.token_request``) and the sign-ins (msal's client, oauthlib's
session, :func:`cap_answers`).
"""

from __future__ import annotations

import http.client
import zlib
from typing import Any
from urllib.parse import urlsplit

import httplib2
import requests

from syncd.errors import AnswerTooLarge

#: Bytes one API answer may take: a listing page of some thousands of events with long
#: descriptions stays far below it (Pipedrive's and CalDAV's listing cap too).
MAX_ANSWER_BYTES = 64 * 1024 * 1024
#: Bytes a token endpoint's answer may take: a token answer is a few kilobytes.
MAX_TOKEN_ANSWER_BYTES = 1024 * 1024
_CHUNK = 64 * 1024


def where(url: str) -> str:
    """The origin and path of ``url``: its query (delta tokens, filters) stays out."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}{parts.path}"


def read_capped(response: requests.Response, url: str, limit: int = MAX_ANSWER_BYTES
                ) -> bytes:
    """The body of a streamed (``stream=True``) answer, read up to ``limit`` bytes.

    The caller closes ``response`` (so the rest is never read).

    Raises:
        AnswerTooLarge: the body announced or passed ``limit`` bytes.
        requests.RequestException: the connection failed in the middle of the body.
    """
    declared = response.headers.get("Content-Length", "").strip()
    if declared.isdigit() and int(declared) > limit:
        raise too_large(url, limit, f"it announced {int(declared):,} bytes")
    parts: list[bytes] = []
    size = 0
    # Decoded bytes are counted: a gzip answer is held to the cap once inflated.
    for chunk in response.iter_content(_CHUNK):
        size += len(chunk)
        if size > limit:
            how = "inflates to" if response.headers.get("Content-Encoding") else "sent"
            raise too_large(url, limit, f"it {how} more than {limit:,} bytes")
        parts.append(chunk)
    return b"".join(parts)


def cap_answers(session: requests.Session, limit: int) -> requests.Session:
    """Make ``session`` read every answer (its redirects too) to ``limit`` bytes, for a
    library that reads through a session of its own (oauthlib's sign-in)."""

    def capped(response: requests.Response, **_: Any) -> requests.Response:
        # Response hooks run before requests reads the body: read it here, capped.
        response._content = read_capped(response, response.url, limit)
        return response

    session.hooks["response"].append(capped)
    return session


def too_large(url: str, limit: int, reason: str) -> AnswerTooLarge:
    return AnswerTooLarge(url=where(url), limit=limit, reason=reason)


# --- Google: httplib2 -----------------------------------------------------------------------


class _Oversize(Exception):
    """An answer passed the cap inside httplib2; :class:`CappedHttp` words it."""


class _CappedResponse(http.client.HTTPResponse):
    """An ``http.client`` answer whose whole-body read stops at :attr:`limit` + 1 bytes.

    httplib2 reads a body with one ``read()`` and then inflates it whole; here the body is
    read in pieces, and inflated here too (bounded), so httplib2 gets it plain.
    """

    limit = MAX_ANSWER_BYTES

    def read(self, amt: int | None = None) -> bytes:
        if amt is not None:
            return super().read(amt)
        if self.length is not None and self.length > self.limit:
            raise _Oversize(f"it announced {self.length:,} bytes")
        parts: list[bytes] = []
        size = 0
        while size <= self.limit:
            chunk = super().read(min(_CHUNK, self.limit + 1 - size))
            if not chunk:
                break
            size += len(chunk)
            parts.append(chunk)
        if size > self.limit:
            raise _Oversize(f"it sent more than {self.limit:,} bytes")
        if self.length:
            # The connection ended before the announced length, as read() would say.
            raise http.client.IncompleteRead(b"".join(parts), self.length)
        return self._inflated(b"".join(parts))

    def _inflated(self, body: bytes) -> bytes:
        encoding = (self.msg.get("content-encoding") or "").strip().lower()
        if encoding not in ("gzip", "deflate", "zlib") or not body:
            return body
        try:
            # 47 = 32 + 15: a gzip or a zlib stream, told apart by its header.
            plain = self._inflate(body, 47)
        except zlib.error:
            try:  # "deflate" from some servers is a raw deflate stream
                plain = self._inflate(body, -zlib.MAX_WBITS)
            except zlib.error:
                return body  # httplib2 says it failed to decompress, as it would have
        # Handed over plain: httplib2 must not inflate it again.
        del self.msg["content-encoding"]
        self.msg["-content-encoding"] = encoding
        return plain

    def _inflate(self, body: bytes, wbits: int) -> bytes:
        """``body`` inflated a piece at a time, so that memory never holds more than the
        cap of it (one call without a bound would, and one with it grows a buffer past)."""
        inflater = zlib.decompressobj(wbits)
        parts: list[bytes] = []
        size = 0
        pending = body
        while pending:
            piece = inflater.decompress(pending, 16 * _CHUNK)
            pending = inflater.unconsumed_tail
            size += len(piece)
            if size > self.limit:
                raise _Oversize(f"it inflates to more than {self.limit:,} bytes")
            parts.append(piece)
        parts.append(inflater.flush())
        if size + len(parts[-1]) > self.limit:
            raise _Oversize(f"it inflates to more than {self.limit:,} bytes")
        return b"".join(parts)


class _CappedConnection(httplib2.HTTPConnectionWithTimeout):
    response_class = _CappedResponse


class _CappedTLSConnection(httplib2.HTTPSConnectionWithTimeout):
    response_class = _CappedResponse


def _capped_class(limit: int, base: type[Any]) -> type[Any]:
    if limit == MAX_ANSWER_BYTES:
        return base
    response = type("_Capped", (_CappedResponse,), {"limit": limit})
    return type(base.__name__, (base,), {"response_class": response})


class CappedHttp:
    """An ``httplib2.Http`` (``inner``) whose answers are capped at ``limit`` bytes, and
    which follows no redirect.

    Every connection it opens reads answers with :class:`_CappedResponse`; past the cap
    the connections are closed and :class:`~syncd.errors.AnswerTooLarge` is raised. What
    it does not define (timeout, redirect_codes, connections, ...) is ``inner``'s, so the
    client library and ``google_auth_httplib2`` use it as the ``Http`` it wraps.
    """

    def __init__(self, inner: httplib2.Http, limit: int = MAX_ANSWER_BYTES) -> None:
        # Google's API and token endpoints never redirect, and httplib2 would re-post a
        # 308's body (a refresh token, a signed grant) to any Location, http:// too: the
        # redirect is the answer (a failure to the caller).
        inner.follow_redirects = False
        object.__setattr__(self, "inner", inner)
        object.__setattr__(self, "limit", limit)
        object.__setattr__(self, "_types", {
            "http": _capped_class(limit, _CappedConnection),
            "https": _capped_class(limit, _CappedTLSConnection)})

    def request(self, uri: str, method: str = "GET", body: Any = None, headers: Any = None,
                redirections: int = httplib2.DEFAULT_MAX_REDIRECTS,
                connection_type: Any = None) -> Any:
        scheme = urlsplit(uri).scheme.lower()
        connection_type = connection_type or self._types.get(scheme)
        try:
            return self.inner.request(uri, method, body=body, headers=headers,
                                      redirections=redirections,
                                      connection_type=connection_type)
        except _Oversize as exc:
            # The connection stopped in the middle of an answer: no one may read on.
            self.inner.close()
            raise too_large(uri, self.limit, str(exc)) from None

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def __setattr__(self, name: str, value: Any) -> None:
        setattr(self.inner, name, value)
