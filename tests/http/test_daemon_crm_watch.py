"""``syncd run`` with the built-in CRM and no ``[http]``: a CRM edit reaches the calendar
without waiting for the interval, a burst of edits makes at most two cycles.

The daemon runs in a subprocess with one CalDAV account on a real Radicale and a poll
interval of an hour, so every cycle after the first one is the change watch's doing.
Cycles are counted from the daemon's log (one line per cycle).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import date, timedelta
from datetime import time as daytime
from pathlib import Path
from typing import Any

import caldav
import pytest

from syncd.crm.builtin.activities import ActivityStore
from syncd.store.db import Database
from syncd_testkit.servers import DavServer
from tests.conftest import fresh_calendar
from tests.http.test_daemon_push import Daemon, dav_config, first_cycle, spawn, split_bursts
from tests.test_e2e_run import wait_for


class Running(Daemon):
    store: ActivityStore
    calendar: Any  # a caldav Calendar

    def events(self) -> list[str]:
        return sorted(str(e.icalendar_component.get("summary"))
                      for e in self.calendar.events())


@pytest.fixture
def daemon(tmp_path: Path, radicale: DavServer) -> Iterator[Running]:
    user, calendar = fresh_calendar(radicale)
    data = tmp_path / "data"
    data.mkdir(mode=0o700)
    store = ActivityStore(Database(f"sqlite:///{data / 'syncd.db'}"))
    owner_id = store.add_user(user, "U")
    config = tmp_path / "syncd.toml"
    config.write_text(dav_config(data, user, calendar, radicale.url))
    log = tmp_path / "daemon.log"
    running = Running(spawn(config, log), log, 0, owner_id, ("", ""))
    running.store = store
    running.calendar = caldav.DAVClient(url=radicale.url, username=user,
                                        password="x").calendar(url=calendar)
    with first_cycle(running):
        yield running

def test_a_crm_edit_reaches_the_calendar_in_one_cycle_and_a_burst_makes_at_most_two(
        daemon: Running) -> None:
    assert daemon.settled_cycles() == 1  # the first cycle; the next poll is an hour away
    assert "HTTP receiver" not in daemon.log.read_text()  # local: no listener needed

    due = date.today() + timedelta(days=3)
    call = daemon.store.add_activity(owner_id=daemon.owner_id, subject="Call Ada",
                                     due_date=due, due_time=daytime(10, 0), duration_minutes=30)
    assert daemon.settled_cycles() == 2, daemon.log.read_text()
    assert daemon.events() == ["Call Ada"]

    edited: list[float] = []
    for i in range(200):  # an edit burst, as a bulk edit in the CRM would make
        daemon.store.edit_activity(call.id, subject=f"Call Ada ({i})")
        edited.append(time.monotonic())
    # The burst's last edit reaching the calendar first: on a loaded machine the watch's
    # hint and the debounce may take longer than the quiet window that counts cycles.
    wait_for(lambda: daemon.events() == ["Call Ada (199)"] or None, timeout=60,
             what="the burst's last edit in the calendar")
    after = daemon.settled_cycles()
    assert 3 <= after <= 4 + split_bursts(edited), daemon.log.read_text()

    daemon.stop()
    assert "CRM watch stopped: " in daemon.log.read_text()
