"""A ``syncd verify --repair`` in a process of its own, for the tests that kill it.

``python -m syncd_testkit.repair_child URL ACCOUNT OWNER DATA_DIR TTL_SECONDS`` repairs one
memory account on the database at URL whose calendar holds three orphans, with a repair
lease of TTL_SECONDS. Its calendar's first write prints ``writing`` and then never
returns: the repair stays alive in the middle of a delete batch, its lease kept only by
its heartbeat, until the test kills it. Its lease owner names another machine, so that,
as for a replica elsewhere, only the lease's expiry frees the account (never this host's
check for a dead local process).
"""

from __future__ import annotations

import sys
import time
import uuid
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from datetime import time as clock_time

from connectors.base import CalendarConnector, CreateOp, WriteOp, WriteResult
from connectors.memory import MemoryCalendar
from syncd import repair_lease
from syncd.config import AccountConfig, Config
from syncd.model import Projection, When
from syncd.service import Service
from syncd.store.db import Database
from syncd.verify import verify

#: The lease owner the child repairs as: a host that is not this one.
OWNER = "repair-host-elsewhere:4242"


class Stalled(MemoryCalendar):
    """A calendar whose first write never comes back (a hung request)."""

    def write(self, ops: Sequence[WriteOp]) -> list[WriteResult]:
        print("writing", flush=True)
        while True:
            time.sleep(3600)


def main(argv: Sequence[str]) -> None:
    url, name, owner, data_dir, ttl = argv
    repair_lease.REPAIR_LEASE_TTL = timedelta(seconds=float(ttl))
    account = AccountConfig(name=name, provider="memory", owner=owner)
    service = Service(Config(data_dir=data_dir, accounts=(account,)),
                      db=Database(url, run_migrations=False))
    service.replica = OWNER
    service.store.add_user(owner, "Ann", "UTC")
    calendar = Stalled()
    day = date.today() + timedelta(days=3)
    stray = Projection("Stray", When(datetime.combine(day, clock_time(9), UTC),
                                     datetime.combine(day, clock_time(10), UTC), "UTC"))
    MemoryCalendar.write(calendar, [CreateOp(f"stray{i}", uuid.uuid4().hex, 0, stray)
                                    for i in range(3)])
    def opened(_account: AccountConfig, _now: datetime,
               read_only: bool = False) -> CalendarConnector:
        return calendar

    service._open = opened  # type: ignore[method-assign,assignment]
    verify(service, repair=True)


if __name__ == "__main__":
    main(sys.argv[1:])
