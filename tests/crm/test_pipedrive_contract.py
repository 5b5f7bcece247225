"""The Pipedrive source passes the CRM-source contract against the Pipedrive emulator,
whether or not Pipedrive lists deleted activities, with its markers on SQLite and on
PostgreSQL."""

from __future__ import annotations

import pytest

from syncd.crm.source import Consistency
from syncd.store.db import Database
from syncd_testkit.emulators.pipedrive import PipedriveEmulator
from tests.crm.contract import SourceContract
from tests.crm.pipedrive_fixtures import PipedriveCrm


class TestPipedriveSource(SourceContract):
    @pytest.fixture(params=[
        pytest.param((False, "state_db"), id="deleted-unlisted-sqlite"),
        pytest.param((True, "state_db"), id="deleted-listed-sqlite"),
        pytest.param((False, "pg_state_db"), id="deleted-unlisted-postgresql",
                     marks=pytest.mark.postgres),
    ])
    def crm(self, request: pytest.FixtureRequest, emulator: PipedriveEmulator) -> PipedriveCrm:
        listed, database = request.param
        emulator.list_deleted = listed
        db: Database = request.getfixturevalue(database)
        return PipedriveCrm(emulator, db)

    def test_reads_check_before_writing(self, crm: PipedriveCrm) -> None:
        assert crm.source.consistency is Consistency.READ_CHECK_WRITE
