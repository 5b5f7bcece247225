"""One engine cycle between Pipedrive and a CalDAV calendar in a process of its own: the
kill loop's child (``python -m tests.pipedrive.child API TOKEN DB OWNER ZONE CALENDAR NOW``).

It builds everything afresh, as a restarted syncd would, and exits 0 after an ok cycle.
"""

from __future__ import annotations

import sys
from datetime import datetime

from connectors.caldav import CalDAVCalendar
from syncd.config import AccountConfig
from syncd.crm.pipedrive import PipedriveSource, Settings
from syncd.crm.pipedrive_auth import ApiToken
from syncd.crm.pipedrive_budget import Limits, PipedriveBudget, token_key_of
from syncd.crm.pipedrive_http import PipedriveHttp
from syncd.crm.pipedrive_markers import MarkerStore
from syncd.service import sync_account
from syncd.store.budgets import BudgetLedger
from syncd.store.db import Database
from syncd.store.state import StateStore


def main(argv: list[str]) -> int:
    api, token, db_url, owner, zone, calendar, now = argv
    db = Database(db_url)
    budget = PipedriveBudget(BudgetLedger(db), "acme", Limits.for_plan("growth", 5),
                             token_key_of(token))
    source = PipedriveSource(PipedriveHttp(api, ApiToken(token), budget=budget),
                             MarkerStore(db, "acme"), Settings("acme", "https://acme.pipedrive.com"))
    account = AccountConfig(name="kill", provider="caldav", owner=owner, calendar=calendar,
                            auth={"url": calendar, "username": owner}, import_events=True)
    report = sync_account(account, CalDAVCalendar(account, owner_tz=zone), source,
                          StateStore(db), now=datetime.fromisoformat(now))
    print(report.outcome, report.message or "", dict(report.counts))
    return 0 if report.outcome == "ok" else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
