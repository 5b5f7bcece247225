"""pytest fixtures for the Google Calendar emulator (import them into a conftest.py).

``google_emulator`` yields a started :class:`GoogleEmulator` with default settings;
``google_service`` a real ``googleapiclient`` Calendar service pointed at it. Tests that need
quotas or other constructor options build their own emulator with ``with GoogleEmulator(...)``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httplib2
import pytest
from googleapiclient.discovery import build
from googleapiclient.http import BatchHttpRequest

from .google import GoogleEmulator


def build_service(emulator: GoogleEmulator, *, http: httplib2.Http | None = None) -> Any:
    """A real Calendar v3 service that talks to ``emulator`` (no credentials, no network).

    ``static_discovery=True`` uses the discovery document bundled with the client, so
    nothing is fetched from Google.
    """
    return build("calendar", "v3", http=http or httplib2.Http(timeout=10),
                 static_discovery=True, cache_discovery=False,
                 client_options={"api_endpoint": emulator.api_endpoint})


def new_batch(emulator: GoogleEmulator, callback: Any = None) -> BatchHttpRequest:
    """A batch aimed at the emulator (``service.new_batch_http_request()`` would not be)."""
    return BatchHttpRequest(callback=callback, batch_uri=emulator.batch_uri)


@pytest.fixture
def google_emulator() -> Iterator[GoogleEmulator]:
    """A started Google Calendar emulator, stopped after the test."""
    emulator = GoogleEmulator().start()
    try:
        yield emulator
    finally:
        emulator.stop()


@pytest.fixture
def google_service(google_emulator: GoogleEmulator) -> Any:
    """A googleapiclient Calendar service bound to ``google_emulator``."""
    return build_service(google_emulator)
