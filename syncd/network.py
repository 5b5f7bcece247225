"""Why a request got no answer, in a few words, from whatever the HTTP library raised.

Client libraries wrap the socket's error several times over (requests/niquests around
urllib3 around ``ConnectionRefusedError``); the innermost cause is what tells an admin
whether the server is down, the host is wrong or TLS failed.
"""

from __future__ import annotations

import socket
import ssl

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
