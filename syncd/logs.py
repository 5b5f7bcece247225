"""Logging set-up, with a redaction filter in front of every handler.

Secrets never reach a log (failure mode 28): the filter masks every secret registered with
:mod:`syncd.redact` and the credential shapes it knows.
"""

from __future__ import annotations

import json
import logging
import sys

from syncd.redact import redact
from syncd.text import printable


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
    # alembic announces every migration at INFO: a first start would print twenty lines.
    for noisy in ("urllib3", "niquests", "caldav", "googleapiclient", "msal", "apscheduler",
                  "alembic"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
