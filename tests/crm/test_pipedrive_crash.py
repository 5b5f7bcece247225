"""An import killed between its POST and recording the new id makes no duplicate.

A child process imports with a failpoint that SIGKILLs it right after (or right before)
the POST; a fresh source then meets the same import again, or first reads the activity in
the owner's feed, as the engine after a restart would.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from datetime import date, time

import pytest

from syncd.crm.source import ImportActivity
from tests.crm.pipedrive_fixtures import COMPANY, WEB, PipedriveCrm

UID = "ab" * 16
FIELDS = {"subject": "Imported", "due_date": date(2026, 12, 3), "due_time": time(10),
          "duration_minutes": 30}

CHILD = """
import sys
from datetime import date, time
from syncd.crm.pipedrive import PipedriveSource, Settings
from syncd.crm.pipedrive_auth import ApiToken
from syncd.crm.pipedrive_http import PipedriveHttp
from syncd.crm.pipedrive_markers import MarkerStore
from syncd.crm.source import ImportActivity
from syncd.store.db import Database

base, token, url, owner, company, web, read_first = sys.argv[1:8]
source = PipedriveSource(PipedriveHttp(base, ApiToken(token)),
                         MarkerStore(Database(url), company), Settings(company, web))
if read_first == "yes":  # the owner's feed first, as in a cycle: the intent gets a floor
    source.changes(None, owner_id=int(owner))
fields = {"subject": "Imported", "due_date": date(2026, 12, 3), "due_time": time(10),
          "duration_minutes": 30}
source.write([ImportActivity("ab" * 16, int(owner), "meeting", fields)])
"""


def import_and_die(crm: PipedriveCrm, failpoint: str, *, read_first: bool = False) -> None:
    env = {**os.environ, "SYNCD_FAILPOINT": failpoint}
    child = subprocess.run(
        [sys.executable, "-c", CHILD, crm.emulator.base_url, crm.emulator.api_token(crm.ada),
         crm.db.url, str(crm.owner_id), COMPANY, WEB, "yes" if read_first else "no"],
        env=env, timeout=120,
        capture_output=True, text=True)
    assert child.returncode == -signal.SIGKILL, child.stderr


def activities_in_pipedrive(crm: PipedriveCrm) -> list[int]:
    return sorted(crm.emulator.store.activities)


@pytest.mark.parametrize(("listed", "read_first"), [(False, False), (True, False), (False, True)],
                         ids=["deleted-unlisted", "deleted-listed", "with-a-floor"])
def test_killed_after_the_post_the_import_again_finds_it(
        crm: PipedriveCrm, listed: bool, read_first: bool) -> None:
    crm.emulator.list_deleted = listed
    older = crm.add("Older call") if read_first else None
    import_and_die(crm, "pipedrive_after_post", read_first=read_first)
    [created] = [a for a in activities_in_pipedrive(crm) if a != older]
    intent = crm.source.markers.by_uid(UID)
    assert intent is not None and (intent.floor is not None) == read_first
    source = crm.new_source()
    [result] = source.write([ImportActivity(UID, crm.owner_id, "meeting", FIELDS)])
    assert result.ok and not result.created
    assert result.activity is not None and result.activity.id == created
    assert result.activity.sync_uid == UID
    assert [a for a in activities_in_pipedrive(crm) if a != older] == [created]
    posts = [r for r in crm.emulator.requests if r.method == "POST"]
    assert len(posts) == 1
    if read_first:  # looked for from the floor on, not through the whole history
        assert any(r.param("updated_since") for r in crm.emulator.requests)


def test_killed_after_the_post_the_feed_gives_it_the_imports_marker(
        crm: PipedriveCrm) -> None:
    import_and_die(crm, "pipedrive_after_post")
    [created] = activities_in_pipedrive(crm)
    source = crm.new_source()
    page = source.changes(None, owner_id=crm.owner_id)
    assert [(a.id, a.sync_uid) for a in page.items] == [(created, UID)]
    found = source.find(UID)
    assert found is not None and found.id == created
    [result] = source.write([ImportActivity(UID, crm.owner_id, "meeting", FIELDS)])
    assert result.ok and not result.created and activities_in_pipedrive(crm) == [created]


def test_killed_before_the_post_the_import_is_made_once(crm: PipedriveCrm) -> None:
    import_and_die(crm, "pipedrive_before_post")
    assert activities_in_pipedrive(crm) == []
    source = crm.new_source()
    assert source.find(UID) is None
    [result] = source.write([ImportActivity(UID, crm.owner_id, "meeting", FIELDS)])
    assert result.ok and result.created and result.activity is not None
    assert activities_in_pipedrive(crm) == [result.activity.id]


def test_an_activity_someone_made_alike_by_hand_is_not_taken_for_the_import(
        crm: PipedriveCrm) -> None:
    import_and_die(crm, "pipedrive_before_post")
    bob = crm.emulator.add_user("Bob", "bob@acme.test", is_admin=True)
    crm.emulator.create_as_user(bob, subject="Imported", type="meeting",
                                owner_id=crm.owner_id, due_date="2026-12-03",
                                due_time="09:00", duration="00:30")
    source = crm.new_source()
    [result] = source.write([ImportActivity(UID, crm.owner_id, "meeting", FIELDS)])
    assert result.ok and result.created
    assert len(activities_in_pipedrive(crm)) == 2
