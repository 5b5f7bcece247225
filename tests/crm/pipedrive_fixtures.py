"""``PipedriveCrm``: the contract's ``CrmUser`` for Pipedrive.

It holds the source under test (over the emulator and a migrated database) and acts for
the people of the company in Pipedrive's own app (through the emulator, never the source).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import requests

from syncd.crm.pipedrive import PipedriveSource, Settings
from syncd.crm.pipedrive_auth import ApiToken
from syncd.crm.pipedrive_http import PipedriveHttp
from syncd.crm.pipedrive_markers import MarkerStore
from syncd.store.db import Database
from syncd_testkit.emulators.pipedrive import PipedriveEmulator
from syncd_testkit.emulators.pipedrive_model import User

COMPANY = "acme"
WEB = "https://acme.pipedrive.com"


class PipedriveCrm:
    """Ada, an admin of the Acme company, whose API token syncd uses."""

    def __init__(self, emulator: PipedriveEmulator, db: Database, *,
                 reconcile_after: timedelta = timedelta(0), zone: str = "Europe/Berlin"
                 ) -> None:
        self.emulator = emulator
        self.db = db
        self.email = "ada@acme.test"
        self.ada: User = emulator.add_user("Ada", self.email, timezone_name=zone,
                                           is_admin=True)
        self.owner_id = self.ada.id
        self.session = requests.Session()
        self.reconcile_after = reconcile_after
        self.source = self.new_source()

    def new_source(self) -> PipedriveSource:
        """A source as a freshly started syncd builds it (nothing in memory)."""
        http = PipedriveHttp(self.emulator.base_url, ApiToken(self.emulator.api_token(self.ada)),
                             session=self.session, sleep=lambda _: None)
        return PipedriveSource(http, MarkerStore(self.db, COMPANY),
                               Settings(COMPANY, WEB, reconcile_after=self.reconcile_after))

    def add(self, subject: str, *, note: str = "", day: int = 3, **fields: Any) -> int:
        values: dict[str, Any] = {"subject": subject, "due_date": f"2026-12-{day:02d}",
                                  "due_time": "09:00", "duration": "00:30", **fields}
        if note:
            values["note"] = note
        return int(self.emulator.create_as_user(self.ada, **values)["id"])

    def edit(self, activity_id: int, subject: str) -> None:
        self.emulator.edit_as_user(self.ada, activity_id, subject=subject)

    def delete(self, activity_id: int) -> None:
        self.emulator.delete_as_user(self.ada, activity_id)
