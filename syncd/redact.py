"""Secrets out of every line syncd writes: the registry of resolved secrets and the masking.

Every secret syncd resolves (a password, a client secret, a token) is registered here and
replaced by ``[redacted]`` wherever it appears; well-known credential shapes
(Authorization headers, OAuth fields in bodies and URLs) are masked too (failure mode 28).
Imports nothing of syncd, so whatever resolves a secret (config types, connectors, the
credential store) can register it without depending on the logging set-up above it.
"""

from __future__ import annotations

import re
import threading
from collections import OrderedDict

_lock = threading.Lock()
# The most recent secrets, oldest first. Bounded because rotating refresh tokens add a new
# value on every use; an old rotated token is dead, so forgetting it costs nothing.
_secrets: OrderedDict[str, None] = OrderedDict()
MAX_SECRETS = 2000
# Each pattern keeps its group 1 (the name and separator) and masks what follows. A name
# may be quoted (the repr of a headers dict, a JSON body) and a value may sit in a list;
# a value masked already stays as it is (each handler's filter may see the record).
_NAME_END = r"[\"']?\s*[:=](?!\s*\[?\s*[\"']?\[redacted\])\s*\[?\s*[\"']?"
_PATTERNS = [
    re.compile(r"(?i)(authorization" + _NAME_END + r")(?:(?:bearer|basic)\s+)?[^\s,'\"}\]]+"),
    re.compile(r"(?i)((?:access_token|refresh_token|id_token|client_secret|password|"
               r"device_code|assertion|api_token|clientstate|x-goog-channel-token)"
               + _NAME_END + r")[^\s&,'\"}\]]+"),
    # A cookie's value runs to the end of its header, attributes and all.
    re.compile(r"(?i)((?:set-)?cookie" + _NAME_END + r")[^\r\n'\"}\]]+"),
    # An OAuth authorisation code in a URL or a form body (a number is a status code).
    re.compile(r"(?i)((?:^|[?&\s'\"])code=)(?!\d+\b)[^&\s'\"]+"),
]
REDACTED = "[redacted]"


def register_secret(value: str) -> None:
    """Mask ``value`` in every log line from now on (short values are too common to mask)."""
    if value and len(value) >= 6:
        with _lock:
            _secrets[value] = None
            _secrets.move_to_end(value)
            while len(_secrets) > MAX_SECRETS:
                _secrets.popitem(last=False)


def redact(text: str) -> str:
    for pattern in _PATTERNS:
        text = pattern.sub(lambda m: m.group(1) + REDACTED, text)
    with _lock:
        secrets = sorted(_secrets, key=len, reverse=True)
    for secret in secrets:
        text = text.replace(secret, REDACTED)
    return text
