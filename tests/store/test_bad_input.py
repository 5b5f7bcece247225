"""Bad input gives a clear error naming the field, and writes nothing at all.

"Nothing" is checked as every CRM table's row count plus the change feed's last number,
before and after the failed call.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, time
from typing import Any

import pytest

from syncd.crm.builtin.activities import ActivityStore
from syncd.errors import InvalidInput, NotFound
from syncd.model import Guest
from tests.store.helpers import make_world, row_counts


def _refused(store: ActivityStore, call: Callable[[], Any], field: str,
             error: type[Exception] = InvalidInput) -> Exception:
    before = row_counts(store)
    with pytest.raises(error) as caught:
        call()
    assert row_counts(store) == before, "a refused call wrote something"
    if isinstance(caught.value, InvalidInput):
        assert caught.value.field == field
        assert caught.value.reason  # there is something to show the user
    return caught.value


def test_malformed_guest_email_is_refused(store: ActivityStore) -> None:
    w = make_world(store)
    err = _refused(store, lambda: store.add_activity(
        owner_id=w.ann, subject="Call", guests=["pia@acme.example", "not an address"]),
        "guests")
    assert isinstance(err, InvalidInput) and err.value == "not an address"
    _refused(store, lambda: store.add_activity(
        owner_id=w.ann, subject="Call", guests=[Guest("two@@example.com")]), "guests")
    _refused(store, lambda: store.add_activity(
        owner_id=w.ann, subject="Call", guests="pia@acme.example"), "guests")  # not a list


def test_unknown_type_is_refused(store: ActivityStore) -> None:
    w = make_world(store)
    err = _refused(store, lambda: store.add_activity(
        owner_id=w.ann, subject="Call", type="webinar"), "type")
    assert "call" in str(err)  # the message lists the known types


def test_time_without_a_date_is_refused(store: ActivityStore) -> None:
    w = make_world(store)
    _refused(store, lambda: store.add_activity(
        owner_id=w.ann, subject="Call", due_time=time(10, 0)), "due_time")
    a = store.add_activity(owner_id=w.ann, subject="Call", due_date=date(2026, 3, 3),
                           due_time=time(10, 0))
    # Removing the date but keeping the time is the same mistake, made by an edit.
    _refused(store, lambda: store.edit_activity(a.id, due_date=None), "due_time")


def test_negative_duration_is_refused(store: ActivityStore) -> None:
    w = make_world(store)
    _refused(store, lambda: store.add_activity(
        owner_id=w.ann, subject="Call", duration_minutes=-15), "duration_minutes")
    a = store.add_activity(owner_id=w.ann, subject="Call")
    _refused(store, lambda: store.edit_activity(a.id, duration_minutes=-1), "duration_minutes")


def test_link_to_a_missing_deal_is_refused(store: ActivityStore) -> None:
    w = make_world(store)
    err = _refused(store, lambda: store.add_activity(
        owner_id=w.ann, subject="Call", deal_id=9999), "deal_id")
    assert isinstance(err, InvalidInput) and err.reason == "no such deal"
    a = store.add_activity(owner_id=w.ann, subject="Call", deal_id=w.deal)
    _refused(store, lambda: store.edit_activity(a.id, deal_id=9999), "deal_id")
    for field in ("person_id", "org_id", "project_id"):
        _refused(store, lambda f=field: store.add_activity(  # type: ignore[misc]
            owner_id=w.ann, subject="Call", **{f: 9999}), field)
    _refused(store, lambda: store.add_activity(
        owner_id=w.ann, subject="Call", lead_id="no-such-lead"), "lead_id")


def test_other_bad_values_are_refused_too(store: ActivityStore) -> None:
    w = make_world(store)
    a = store.add_activity(owner_id=w.ann, subject="Call")
    cases: list[tuple[Callable[[], Any], str]] = [
        (lambda: store.add_activity(owner_id=4242, subject="Call"), "owner_id"),
        (lambda: store.add_activity(owner_id=w.ann, subject=""), "subject"),
        (lambda: store.add_activity(owner_id=w.ann, subject="X", due_date="2026-03-03"),
         "due_date"),
        (lambda: store.add_activity(owner_id=w.ann, subject="X", busy="yes"), "busy"),
        (lambda: store.add_activity(owner_id=w.ann, subject="X", sync_uid="abc"), "sync_uid"),
        (lambda: store.add_activity(owner_id=w.ann, subject="X", sync_uid=a.sync_uid),
         "sync_uid"),
        (lambda: store.edit_activity(a.id, colour="red"), "colour"),
        (lambda: store.edit_activity(a.id, sync_uid="0" * 32), "sync_uid"),
        (lambda: store.apply_calendar_changes(a.id, {"owner_id": w.bob}), "owner_id"),
        (lambda: store.apply_calendar_changes(a.id, {"deal_id": w.deal}), "deal_id"),
        (lambda: store.add_user("nobody"), "email"),
        (lambda: store.add_user("ann@example.com"), "email"),
        (lambda: store.add_user("new@example.com", time_zone="Mars/Olympus"), "time_zone"),
        (lambda: store.add_type("Bad Key", "Bad"), "key"),
        (lambda: store.add_type("ok", "Ok", color="red"), "color"),
        (lambda: store.add_person("P", email="broken@"), "email"),
        (lambda: store.add_deal("D", person_id=9999), "person_id"),
        (lambda: store.add_deal("D", visible_to_owner_only=True), "visible_to_owner_only"),
        (lambda: store.changes_after(-1), "after"),
        (lambda: store.purge_deleted(older_than_days=-1), "older_than_days"),
    ]
    for call, field in cases:
        _refused(store, call, field)
    _refused(store, lambda: store.edit_activity(4242, subject="X"), "", NotFound)
    _refused(store, lambda: store.mark_done(4242), "", NotFound)


def test_note_never_appears_in_an_error(store: ActivityStore) -> None:
    w = make_world(store)
    a = store.add_activity(owner_id=w.ann, subject="Call")
    secret = "CANARY-9b1e " * 10_000  # too long: refused, but not echoed
    err = _refused(store, lambda: store.edit_activity(a.id, note=secret), "note")
    assert "CANARY" not in str(err) and "CANARY" not in repr(err.__dict__)


def test_bulk_add_with_one_bad_item_writes_nothing_and_check_lists_every_problem(
    store: ActivityStore,
) -> None:
    w = make_world(store)
    items = [
        {"owner_id": w.ann, "subject": "fine"},
        {"owner_id": w.ann, "subject": "bad type", "type": "webinar"},
        {"owner_id": w.ann, "subject": "fine too", "due_date": date(2026, 3, 3)},
        {"owner_id": w.ann, "subject": "bad guest", "guests": ["nope"]},
    ]
    err = _refused(store, lambda: store.add_activities(items), "items[1].type")
    assert isinstance(err, InvalidInput)
    problems = store.check_activities(items)
    assert [(n, e.field) for n, e in problems] == [(1, "type"), (3, "guests")]
    assert store.check_activities(items[::2]) == []
    assert len(store.add_activities(items[::2])) == 2
