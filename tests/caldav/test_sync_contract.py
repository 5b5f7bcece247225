"""The engine-level contract on CalDAV: Radicale and Xandikos, each behind a recording proxy."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from syncd_testkit.servers import DavServer
from tests.caldav.world import DavWorld, close_world, make_dav_world
from tests.sync_contract import SyncContract


@pytest.fixture
def world(tmp_path: Path, dav_server: DavServer) -> Iterator[DavWorld]:
    w = make_dav_world(tmp_path, dav_server, proxied=True)
    yield w
    close_world(w)


class TestCalDAVKeepsTheSyncContract(SyncContract):
    pass
