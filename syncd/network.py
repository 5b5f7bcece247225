"""Why a request got no answer, in a few words, from whatever the HTTP library raised.

Client libraries wrap the socket's error several times over (requests/niquests around
urllib3 around ``ConnectionRefusedError``); the innermost cause is what tells an admin
whether the server is down, the host is wrong or TLS failed.
"""

from __future__ import annotations

import socket
import ssl
from typing import TYPE_CHECKING
from urllib.parse import urljoin, urlsplit

if TYPE_CHECKING:
    from requests import Response, Session

_MAX_DEPTH = 8
# The libraries' own timeout classes, by exact name: urllib3's NewConnectionError
# inherits from its ConnectTimeoutError, so isinstance would call a refusal a timeout.
_TIMEOUTS = {"Timeout", "ConnectTimeout", "ReadTimeout", "ConnectTimeoutError",
             "ReadTimeoutError"}


def _causes(exc: BaseException) -> list[BaseException]:
    """``exc`` and everything it wraps, breadth first, each once."""
    seen: list[BaseException] = []
    queue = [exc]
    while queue and len(seen) < 4 * _MAX_DEPTH:
        current = queue.pop(0)
        if any(current is s for s in seen):
            continue
        seen.append(current)
        inner = [current.__cause__, current.__context__, getattr(current, "reason", None),
                 *current.args]
        queue.extend(x for x in inner if isinstance(x, BaseException))
    return seen


def network_reason(exc: BaseException) -> str:
    """"connection refused", "timed out", "unknown host", "TLS failed: …" or the class name."""
    causes = _causes(exc)
    for cause in causes:
        if isinstance(cause, ConnectionRefusedError):
            return "connection refused"
        if isinstance(cause, socket.gaierror):
            return "unknown host"
        if isinstance(cause, ssl.SSLError):
            return f"TLS failed: {getattr(cause, 'reason', None) or type(cause).__name__}"
        if isinstance(cause, ConnectionResetError):
            return "connection reset"
    if any(isinstance(c, TimeoutError) or type(c).__name__ in _TIMEOUTS for c in causes):
        return "timed out"
    return type(exc).__name__


#: Redirects a session follows at most (requests' own default is 30).
MAX_REDIRECTS = 5
_DEFAULT_PORTS = {"http": 80, "https": 443}


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    return scheme, (parts.hostname or "").lower(), parts.port or _DEFAULT_PORTS.get(scheme)


def same_origin_redirects(session: Session) -> Session:
    """Make a requests ``session`` follow a redirect only within the origin it was sent to
    (scheme, host and port), at most :data:`MAX_REDIRECTS` in a row; any other answers as
    the redirect itself, which callers take as the failure it is.

    requests drops ``Authorization`` when the host changes, but it re-sends a 307/308's
    body (a token grant's refresh token and client secret, an event) wherever the
    Location points, plain ``http://`` included: a provider's endpoint must never move
    a request elsewhere.
    """
    if getattr(session, "_same_origin_only", False):
        return session  # one session handed on to several clients: wrapped once
    follow = session.get_redirect_target

    def target(response: Response) -> str | None:
        location = follow(response)
        if location is None:
            return None
        if _origin(urljoin(response.url, location)) != _origin(response.url):
            return None  # not followed: the 3xx is the answer
        return location

    session.get_redirect_target = target  # type: ignore[method-assign,assignment]
    session.max_redirects = MAX_REDIRECTS
    session._same_origin_only = True  # type: ignore[attr-defined]
    return session
