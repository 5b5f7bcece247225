"""The built-in store passes the CRM-source contract, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import date, time

import pytest

from syncd.crm import open_source
from syncd.crm.builtin.activities import ActivityStore
from syncd.crm.builtin.source import BuiltinSource
from syncd.crm.source import Consistency
from syncd.errors import InvalidInput
from tests.crm.contract import SourceContract
from tests.store.conftest import StoreFactory


class StoreUser:
    """People using the built-in CRM: they write through the store, never the source."""

    def __init__(self, store: ActivityStore) -> None:
        self.store = store
        self.email = "ada@example.org"
        self.owner_id = store.add_user(self.email, "Ada", "Europe/Oslo")
        self.source = BuiltinSource(store)

    def add(self, subject: str, *, note: str = "", day: int = 3) -> int:
        return self.store.add_activity(owner_id=self.owner_id, subject=subject,
                                       due_date=date(2026, 12, day), due_time=time(10),
                                       note=note).id

    def edit(self, activity_id: int, subject: str) -> None:
        self.store.edit_activity(activity_id, subject=subject)

    def delete(self, activity_id: int) -> None:
        self.store.delete_activity(activity_id)


class TestBuiltinSource(SourceContract):
    @pytest.fixture
    def crm(self, new_store: StoreFactory) -> StoreUser:
        return StoreUser(new_store())

    def test_is_transactional(self, crm: StoreUser) -> None:
        assert crm.source.consistency is Consistency.TRANSACTIONAL

    def test_a_purged_activity_comes_back_as_a_tombstone(self, crm: StoreUser) -> None:
        activity_id = crm.add("Purged")
        page = crm.source.changes(None, owner_id=crm.owner_id)
        crm.delete(activity_id)
        crm.store.purge_deleted(older_than_days=0)
        later = crm.source.changes(page.cursor, owner_id=crm.owner_id)
        [item] = later.items
        assert item.id == activity_id and not hasattr(item, "subject")
        assert crm.source.get(activity_id) is None


def test_the_config_names_the_source_and_an_unknown_kind_is_refused(
        new_store: StoreFactory) -> None:
    db = new_store().db
    assert isinstance(open_source("builtin", db), BuiltinSource)
    with pytest.raises(InvalidInput) as caught:
        open_source("salesforce", db)
    assert caught.value.field == "crm.kind"
