"""The credential shapes syncd masks in every log line (failure mode 28, T13).

Secrets syncd resolves are masked by value; these tests are about the others: an access
token a library holds in memory, a cookie, an authorisation code. They reach a log in the
shapes a library prints them: a header line, a form body, a URL, or the repr of a headers
dict (single or double quotes), so each shape is tried.
"""

from __future__ import annotations

import logging
import sys

import pytest

from syncd.logs import RedactingFilter
from syncd.redact import redact

SECRET = "s3cr3t-Value.42"  # never registered: only the shape can hide it


@pytest.mark.parametrize("line", [
    f"Authorization: Bearer {SECRET}",
    f"authorization=Basic {SECRET}",
    f"Proxy-Authorization: Basic {SECRET}",
    f"{{'Authorization': 'Bearer {SECRET}'}}",
    f'{{"Authorization": "Bearer {SECRET}"}}',
    f"{{'authorization': ['Bearer {SECRET}']}}",
    f'{{"refresh_token": "{SECRET}", "expires_in": 3599}}',
    f"'access_token': '{SECRET}'",
    f"grant_type=refresh_token&refresh_token={SECRET}&client_secret={SECRET}",
    f"b'client_id=app&client_secret={SECRET}'",
    f'"password":"{SECRET}"',
    f"GET https://app.example/callback?code={SECRET}&state=abc",
    f"POST body: code={SECRET}&grant_type=authorization_code",
    f"Cookie: session={SECRET}; other=1",
    f"Set-Cookie: sid={SECRET}; Path=/; HttpOnly",
    f"{{'Cookie': 'session={SECRET}'}}",
    f"X-Goog-Channel-Token: {SECRET}",
    f'{{"clientState": "{SECRET}"}}',
])
def test_credential_shapes_are_masked_however_they_are_quoted(line: str) -> None:
    masked = redact(line)
    assert SECRET not in masked and "[redacted]" in masked


@pytest.mark.parametrize("line", [
    "status code=500 from https://caldav.example/",
    "HTTP 403 quotaExceeded",
    'Graph said {"code": "ErrorAccessDenied"}',
    "account alice: calendar cursor expired; listing the window",
    "the sync token was refused; a full listing follows",
])
def test_words_that_only_look_like_credentials_stay_readable(line: str) -> None:
    assert redact(line) == line


def test_masking_twice_changes_nothing() -> None:
    once = redact(f"{{'Authorization': 'Bearer {SECRET}'}} Cookie: a={SECRET} code={SECRET}")
    assert redact(once) == once


def test_the_filter_masks_the_message_and_its_traceback(
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)  # tracebacks are kept only at DEBUG
    try:
        raise RuntimeError(f"token endpoint said no to {{'Authorization': 'Bearer {SECRET}'}}")
    except RuntimeError:
        record = logging.LogRecord("syncd", logging.ERROR, __file__, 1,
                                   "request headers %s", ({"Cookie": f"sid={SECRET}"},),
                                   exc_info=sys.exc_info())
    assert RedactingFilter().filter(record)
    assert SECRET not in record.getMessage()
    assert SECRET not in (record.exc_text or "")
