"""Crash safety: ``syncd sync`` is killed with SIGKILL at named points and restarted.

The process dies the way an OOM kill or a power cut stops it (no cleanup at all), at the
points where a naive sync duplicates or loses data: after the create intent is committed
but before the request, after the server answered but before the answer is recorded, and
after all writes but before the cursors move.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections import Counter
from datetime import date, time
from pathlib import Path

import caldav
import icalendar
import pytest

from syncd.crm.builtin.activities import ActivityStore
from syncd.store.db import Database
from syncd.store.state import StateStore
from syncd_testkit.servers import DavServer
from tests.conftest import fresh_calendar

FAILPOINTS = ["after_intent_commit", "after_write_request", "before_cursor_commit"]


def write_config(tmp_path: Path, server: DavServer, user: str, calendar_url: str) -> Path:
    config = tmp_path / "syncd.toml"
    config.write_text(
        f'[syncd]\ndata_dir = "{tmp_path / "data"}"\n'
        f'[logging]\nlevel = "warning"\n'
        f'[[account]]\nname = "crash"\nprovider = "caldav"\nowner = "{user}"\n'
        f'calendar = "{calendar_url}"\n'
        f'[account.auth]\nurl = "{server.url}"\nusername = "{user}"\n'
    )
    return config


def syncd_sync(config: Path, failpoint: str | None = None) -> int:
    env = {k: v for k, v in os.environ.items() if k != "SYNCD_FAILPOINT"}
    if failpoint:
        env["SYNCD_FAILPOINT"] = failpoint
    done = subprocess.run([sys.executable, "-m", "syncd", "--config", str(config), "sync"],
                          env=env, capture_output=True, timeout=120)
    return done.returncode


def server_markers(server: DavServer, user: str, calendar_url: str) -> Counter[str]:
    client = caldav.DAVClient(url=server.url, username=user, password="x")
    cal = client.calendar(url=calendar_url)
    markers: Counter[str] = Counter()
    for obj in cal.get_objects_by_sync_token(load_objects=True).objects:
        vevent = next(iter(icalendar.Calendar.from_ical(obj.data).walk("VEVENT")))
        markers[str(vevent.get("X-SYNCD-ID"))] += 1
    return markers


@pytest.mark.parametrize("failpoint", FAILPOINTS)
def test_sigkill_at_any_point_leaves_no_duplicate_and_no_lost_edit(
    tmp_path: Path, radicale: DavServer, failpoint: str
) -> None:
    user, calendar_url = fresh_calendar(radicale)
    config = write_config(tmp_path, radicale, user, calendar_url)
    db = Database(f"sqlite:///{tmp_path / 'data' / 'syncd.db'}")
    store = ActivityStore(db)
    owner = store.add_user(user, "Crash Test", "Europe/Oslo")
    activities = [store.add_activity(owner_id=owner, subject=f"Visit {i}",
                                     due_date=date(2026, 12, 10 + i), due_time=time(10),
                                     duration_minutes=30) for i in range(4)]

    assert syncd_sync(config, failpoint) == -signal.SIGKILL
    assert syncd_sync(config) == 0
    assert syncd_sync(config) == 0
    markers = server_markers(radicale, user, calendar_url)
    assert markers == Counter({a.sync_uid: 1 for a in activities})
    links = StateStore(db).links("crash")
    assert len(links) == 4 and not any(link.pending for link in links.values())

    # An edit made while a cycle dies after writing but before its cursors move is
    # neither lost nor applied twice.
    store.edit_activity(activities[0].id, subject="Visit 0 (moved)")
    assert syncd_sync(config, failpoint) in (0, -signal.SIGKILL)
    assert syncd_sync(config) == 0
    markers = server_markers(radicale, user, calendar_url)
    assert markers == Counter({a.sync_uid: 1 for a in activities})
    client = caldav.DAVClient(url=radicale.url, username=user, password="x")
    summaries = sorted(
        str(next(iter(icalendar.Calendar.from_ical(o.data).walk("VEVENT")))["SUMMARY"])
        for o in client.calendar(url=calendar_url).get_objects_by_sync_token(
            load_objects=True).objects)
    assert summaries == ["Visit 0 (moved)", "Visit 1", "Visit 2", "Visit 3"]
    db.close()
