"""The Pipedrive source passes the CRM-source contract against the Pipedrive emulator,
whether or not Pipedrive lists deleted activities."""

from __future__ import annotations

import pytest

from syncd.crm.source import Consistency
from syncd.store.db import Database
from syncd_testkit.emulators.pipedrive import PipedriveEmulator
from tests.crm.contract import SourceContract
from tests.crm.pipedrive_fixtures import PipedriveCrm


class TestPipedriveSource(SourceContract):
    @pytest.fixture(params=[False, True], ids=["deleted-unlisted", "deleted-listed"])
    def crm(self, request: pytest.FixtureRequest, emulator: PipedriveEmulator,
            state_db: Database) -> PipedriveCrm:
        emulator.list_deleted = request.param
        return PipedriveCrm(emulator, state_db)

    def test_reads_check_before_writing(self, crm: PipedriveCrm) -> None:
        assert crm.source.consistency is Consistency.READ_CHECK_WRITE
