"""Logging set-up, with a redaction filter in front of every handler.

Secrets never reach a log (failure mode 28): every secret syncd resolves is registered
here and replaced by ``[redacted]`` wherever it appears, and well-known credential
shapes (Authorization headers, OAuth fields in bodies and URLs) are masked too.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import threading
from collections import OrderedDict

from syncd.text import printable

_lock = threading.Lock()
# The most recent secrets, oldest first. Bounded because rotating refresh tokens add a new
# value on every use; an old rotated token is dead, so forgetting it costs nothing.
_secrets: OrderedDict[str, None] = OrderedDict()
MAX_SECRETS = 2000
_PATTERNS = [
    re.compile(r"(?i)(authorization\s*[:=]\s*)(bearer|basic)?\s*[^\s,'\"}]+"),
    re.compile(r"(?i)((?:access_token|refresh_token|id_token|client_secret|password|"
               r"device_code|assertion|api_token)[\"']?\s*[:=]\s*[\"']?)[^\s&,'\"}]+"),
    re.compile(r"(?i)([?&]code=)[^&\s]+"),  # an OAuth authorisation code in a URL or form
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


class RedactingFilter(logging.Filter):
    """Renders the message (and any traceback) once, redacted, before handlers see it.

    A traceback is kept only while the root logger is at DEBUG (``--debug``, or
    ``[logging] level = "debug"``); otherwise the error's sentence takes its place, so a
    library's own ``log.exception`` (the scheduler's, say) never puts one in a log.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        message = redact(record.getMessage())
        if record.exc_info:
            if logging.getLogger().isEnabledFor(logging.DEBUG):
                record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
            else:
                from syncd.report import describe

                error = record.exc_info[1]
                message += f": {redact(describe(error))}" if error is not None else ""
                record.exc_text = None
            record.exc_info = None
        elif record.exc_text and not logging.getLogger().isEnabledFor(logging.DEBUG):
            record.exc_text = None
        record.msg, record.args = printable(message), None
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        data = {"time": self.formatTime(record), "level": record.levelname.lower(),
                "logger": record.name, "message": record.getMessage()}
        if record.exc_text:
            data["error"] = record.exc_text
        return json.dumps(data)


def setup_logging(level: str = "info", fmt: str = "text", file: str | None = None) -> None:
    """Configure the root logger once for the process."""
    handler: logging.Handler = (
        logging.FileHandler(file, encoding="utf-8") if file else logging.StreamHandler(sys.stderr)
    )
    handler.addFilter(RedactingFilter())
    handler.setFormatter(JsonFormatter() if fmt == "json" else
                         logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    # Client libraries log request bodies at DEBUG; keep them at WARNING even then.
    for noisy in ("urllib3", "niquests", "caldav", "googleapiclient", "msal", "apscheduler"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
