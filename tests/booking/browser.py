"""One headless Chromium for the booking tests: Debian's ``/usr/bin/chromium`` driven by
Playwright (never a browser Playwright downloads). The project's setup installs it
(``.ci/setup-browser``, run by ``.ci/run`` and ``make test``); without it the browser
tests are skipped with that reason."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from typing import Any

import pytest

CHROMIUM = os.environ.get("SYNCD_CHROMIUM", "/usr/bin/chromium")
# Chromium's own traffic (updates, sync, safe browsing) would only meet the closed
# network; the sandbox needs user namespaces that a root CI container lacks.
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        "--disable-dev-shm-usage"]


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    """The session's one browser (each test opens its own contexts)."""
    if shutil.which(CHROMIUM) is None:
        pytest.skip(f"{CHROMIUM} is missing: run .ci/setup-browser as root "
                    "(apt-get install chromium)")
    sync_api = pytest.importorskip("playwright.sync_api",
                                   reason="playwright is missing: pip install -e '.[test]'")
    with sync_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, headless=True,
                                              args=ARGS)
        try:
            yield launched
        finally:
            launched.close()
