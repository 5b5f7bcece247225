"""One contract every CRM source passes (:mod:`syncd.crm.source`).

A source's test module subclasses :class:`SourceContract` and provides one fixture,
``crm``: a :class:`CrmUser` on a fresh CRM with one user (``owner_id``), whose ``source``
is the source under test and whose other methods act on the CRM the way people in the
CRM's own app would (never through the source).
"""

from __future__ import annotations

import threading
from datetime import date
from typing import Protocol

from syncd.crm.source import (
    ApplyChanges,
    Consistency,
    CrmSource,
    ImportActivity,
    RemoveActivity,
)
from syncd.errors import InvalidInput, NotFound
from syncd.model import Activity, Tombstone

CANARY = "canary-note-7f3a"  # a private note no source may ever return


class CrmUser(Protocol):
    source: CrmSource
    owner_id: int
    email: str

    def add(self, subject: str, *, note: str = "", day: int = 3) -> int: ...
    def edit(self, activity_id: int, subject: str) -> None: ...
    def delete(self, activity_id: int) -> None: ...


def _all_changes(source: CrmSource, cursor: str | None, owner_id: int, limit: int = 1000
                 ) -> tuple[dict[int, Activity | Tombstone], str | None]:
    items: dict[int, Activity | Tombstone] = {}
    while True:
        page = source.changes(cursor, owner_id=owner_id, limit=limit)
        items.update({item.id: item for item in page.items})
        cursor = page.cursor
        if not page.more:
            return items, cursor


class SourceContract:
    """The behaviour the engine relies on, for any CRM source."""

    def test_declares_one_of_the_known_consistencies(self, crm: CrmUser) -> None:
        assert crm.source.consistency in set(Consistency)

    def test_finds_the_owner_by_email_and_nobody_else(self, crm: CrmUser) -> None:
        user = crm.source.user(crm.email)
        assert user is not None and user.id == crm.owner_id and user.time_zone
        assert crm.source.user("nobody@example.org") is None

    def test_lists_its_users_emails_for_teams(self, crm: CrmUser) -> None:
        emails = crm.source.user_emails()
        assert crm.email.lower() in [e.lower() for e in emails]
        assert "nobody@example.org" not in emails

    def test_changes_from_the_beginning_list_every_activity_once(self, crm: CrmUser) -> None:
        ids = [crm.add(f"Call {i}") for i in range(5)]
        items, _ = _all_changes(crm.source, None, crm.owner_id, limit=2)
        assert sorted(items) == sorted(ids)

    def test_a_cursor_is_a_string_that_resumes_after_what_was_read(self, crm: CrmUser) -> None:
        first = crm.add("First")
        _, cursor = _all_changes(crm.source, None, crm.owner_id)
        assert isinstance(cursor, str)
        again = crm.source.changes(cursor, owner_id=crm.owner_id)
        assert again.items == [] and not again.more and again.cursor == cursor
        second = crm.add("Second")
        crm.edit(first, "First, edited")
        items, later = _all_changes(crm.source, cursor, crm.owner_id)
        assert set(items) == {first, second}
        first_now = items[first]
        assert isinstance(first_now, Activity) and first_now.subject == "First, edited"
        assert later is not None and later != cursor

    def test_pages_never_skip_a_change_made_while_reading(self, crm: CrmUser) -> None:
        for i in range(6):
            crm.add(f"Early {i}")
        cursor: str | None = None
        seen: dict[int, Activity | Tombstone] = {}
        added: list[int] = []
        while True:
            page = crm.source.changes(cursor, owner_id=crm.owner_id, limit=2)
            seen.update({item.id: item for item in page.items})
            cursor = page.cursor
            if len(added) < 3:
                added.append(crm.add(f"Meanwhile {len(added)}"))  # between two pages
            if not page.more:
                break
        rest, _ = _all_changes(crm.source, cursor, crm.owner_id)
        seen.update(rest)
        assert set(added) <= set(seen)

    def test_no_change_is_lost_under_concurrent_writers(self, crm: CrmUser) -> None:
        made: list[int] = []
        lock = threading.Lock()
        cursor: str | None = None
        seen: set[int] = set()

        def writer(n: int) -> None:
            for i in range(5):
                activity_id = crm.add(f"Writer {n} call {i}")
                with lock:
                    made.append(activity_id)

        threads = [threading.Thread(target=writer, args=(n,)) for n in range(3)]
        for thread in threads:
            thread.start()
        while any(t.is_alive() for t in threads):
            items, cursor = _all_changes(crm.source, cursor, crm.owner_id, limit=3)
            seen |= set(items)
        for thread in threads:
            thread.join()
        items, cursor = _all_changes(crm.source, cursor, crm.owner_id, limit=3)
        seen |= set(items)
        assert sorted(seen) == sorted(made) and len(made) == 15

    def test_a_cursor_it_never_handed_out_is_refused(self, crm: CrmUser) -> None:
        try:
            crm.source.changes("not a cursor", owner_id=crm.owner_id)
        except InvalidInput as exc:
            assert exc.field == "cursor"
        else:
            raise AssertionError("a foreign cursor was accepted")

    def test_get_and_get_many_include_deleted_and_skip_missing(self, crm: CrmUser) -> None:
        live, gone = crm.add("Live"), crm.add("Gone")
        crm.delete(gone)
        got = crm.source.get(live)
        assert got is not None and got.subject == "Live" and not got.deleted
        deleted = crm.source.get(gone)
        assert deleted is not None and deleted.deleted
        assert crm.source.get(999_999) is None
        many = crm.source.get_many([live, gone, 999_999])
        assert set(many) == {live, gone} and many[gone].deleted

    def test_a_deletion_shows_in_the_changes(self, crm: CrmUser) -> None:
        activity_id = crm.add("Soon gone")
        _, cursor = _all_changes(crm.source, None, crm.owner_id)
        crm.delete(activity_id)
        items, _ = _all_changes(crm.source, cursor, crm.owner_id)
        item = items[activity_id]
        assert isinstance(item, Tombstone) or item.deleted
        assert item.sync_uid  # the marker survives, so the event can be found and removed

    def test_find_answers_by_marker_deleted_ones_included(self, crm: CrmUser) -> None:
        activity_id = crm.add("Marked")
        got = crm.source.get(activity_id)
        assert got is not None
        crm.delete(activity_id)
        found = crm.source.find(got.sync_uid)
        assert found is not None and found.id == activity_id and found.deleted
        assert crm.source.find("0" * 32) is None

    def test_due_between_lists_live_activities_of_those_days(self, crm: CrmUser) -> None:
        inside, outside, gone = crm.add("In", day=4), crm.add("Out", day=20), crm.add("X", day=4)
        crm.delete(gone)
        due = crm.source.due_between(crm.owner_id, date(2026, 12, 4), date(2026, 12, 5))
        assert [a.id for a in due] == [inside] and outside not in {a.id for a in due}

    def test_write_gives_one_result_per_op_in_order_and_a_failure_stops_none(
            self, crm: CrmUser) -> None:
        a, b = crm.add("A"), crm.add("B")
        results = crm.source.write([
            ApplyChanges(a, {"subject": "A from the calendar"}),
            ApplyChanges(999_999, {"subject": "nobody"}),
            RemoveActivity(b),
        ])
        assert len(results) == 3
        assert results[0].ok and results[0].activity is not None
        assert results[0].activity.subject == "A from the calendar"
        assert isinstance(results[1].error, NotFound) and not results[1].ok
        assert results[2].ok
        removed = crm.source.get(b)
        assert removed is None or removed.deleted

    def test_a_bad_value_fails_its_op_and_writes_nothing(self, crm: CrmUser) -> None:
        a = crm.add("A")
        _, cursor = _all_changes(crm.source, None, crm.owner_id)
        [result] = crm.source.write([ApplyChanges(a, {"duration_minutes": -5})])
        assert isinstance(result.error, InvalidInput)
        items, _ = _all_changes(crm.source, cursor, crm.owner_id)
        assert items == {}

    def test_importing_the_same_event_twice_gives_one_activity(self, crm: CrmUser) -> None:
        op = ImportActivity("ab" * 16, crm.owner_id, "meeting",
                            {"subject": "Imported", "due_date": date(2026, 12, 3)})
        first, second = crm.source.write([op, op])
        assert first.ok and first.created and first.activity is not None
        assert second.ok and not second.created and second.activity is not None
        assert second.activity.id == first.activity.id
        assert first.activity.sync_uid == "ab" * 16
        items, _ = _all_changes(crm.source, None, crm.owner_id)
        assert list(items) == [first.activity.id]
        found = crm.source.find("ab" * 16)
        assert found is not None and found.id == first.activity.id

    def test_the_note_is_never_part_of_what_it_returns(self, crm: CrmUser) -> None:
        activity_id = crm.add("Secret call", note=CANARY)
        returned: list[object] = [
            crm.source.get(activity_id), crm.source.find(crm.source.get(activity_id).sync_uid),
            *crm.source.get_many([activity_id]).values(),
            *_all_changes(crm.source, None, crm.owner_id)[0].values(),
            *crm.source.due_between(crm.owner_id, date(2026, 12, 1), date(2026, 12, 31)),
            *crm.source.write([ApplyChanges(activity_id, {"subject": "Call"})]),
        ]
        for item in returned:
            assert CANARY not in repr(item)
            assert not hasattr(item, "note")
