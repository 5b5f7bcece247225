"""One test per seed rule (A1-A10, B1-B4, D1-D4, E1-E2), on SQLite and PostgreSQL.

The rules are in shared/seed/activities.md; each test is named after the rule it checks.
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, date, datetime, time, timedelta

import pytest

from syncd.crm.builtin.activities import ActivityStore
from syncd.crm.builtin.views import ActivityFilter
from syncd.errors import InvalidInput, NotFound
from syncd.model import DEFAULT_TYPES, Activity, Guest, Tombstone, activity_when, project_activity
from tests.store.helpers import NOW, make_world, row_counts

LATER = NOW + timedelta(hours=3)


def _feed_ids(store: ActivityStore, after: int = 0, owner_id: int | None = None) -> list[int]:
    return [item.id for item in store.changes_after(after, owner_id=owner_id).items]


# --- A: fields ------------------------------------------------------------------------------


def test_a1_subject_is_the_title_and_is_required(store: ActivityStore) -> None:
    w = make_world(store)
    a = store.add_activity(owner_id=w.ann, subject="  Call\r\nPia  ")
    assert a.subject == "Call Pia"  # one line, trimmed: it becomes an event title
    assert store.edit_activity(a.id, subject="Call Pia back").subject == "Call Pia back"
    with pytest.raises(InvalidInput) as err:
        store.add_activity(owner_id=w.ann, subject="   ")
    assert err.value.field == "subject"


def test_a2_six_default_types_and_company_types(store: ActivityStore) -> None:
    w = make_world(store)
    defaults = [(t.key, t.name, t.color) for t in store.list_types() if t.is_default]
    assert defaults == list(DEFAULT_TYPES)  # the migration's seed matches the model
    store.add_type("demo", "Product demo", "#123ABC")
    assert store.list_types()[-1].key == "demo"
    assert store.list_types()[-1].color == "#123abc"
    assert store.add_activity(owner_id=w.ann, subject="Demo", type="demo").type == "demo"
    assert store.add_activity(owner_id=w.ann, subject="Lunch", type="lunch").type == "lunch"
    assert store.add_activity(owner_id=w.ann, subject="Default").type == "task"
    with pytest.raises(InvalidInput) as err:
        store.add_type("demo", "Again")
    assert err.value.field == "key"
    with pytest.raises(InvalidInput) as err:
        store.add_activity(owner_id=w.ann, subject="X", type="webinar")
    assert err.value.field == "type"


def test_a3_date_time_and_duration_a_date_alone_is_whole_day(store: ActivityStore) -> None:
    w = make_world(store)
    whole = store.add_activity(owner_id=w.ann, subject="Deadline", due_date=date(2026, 3, 10))
    when = activity_when(whole)
    assert when is not None and when.all_day
    assert (when.start, when.end) == (date(2026, 3, 10), date(2026, 3, 11))

    timed = store.add_activity(owner_id=w.ann, subject="Call", due_date=date(2026, 3, 10),
                               due_time=time(14, 30), duration_minutes=90)
    assert (timed.due_time, timed.duration_minutes, timed.owner_tz) == (
        time(14, 30), 90, "Europe/Oslo")
    when = activity_when(timed)
    assert when is not None and not when.all_day
    # 14:30 in Oslo (CET, UTC+1 in March) is 13:30 UTC; 90 minutes later is 15:00 UTC.
    assert when.start == datetime(2026, 3, 10, 13, 30, tzinfo=UTC)
    assert when.end == datetime(2026, 3, 10, 15, 0, tzinfo=UTC)

    with pytest.raises(InvalidInput) as err:
        store.add_activity(owner_id=w.ann, subject="X", due_time=time(9, 0))
    assert err.value.field == "due_time"
    unscheduled = store.add_activity(owner_id=w.ann, subject="Someday")
    assert unscheduled.due_date is None and activity_when(unscheduled) is None


def test_a4_activities_are_free_by_default_busy_blocks_the_slot(store: ActivityStore) -> None:
    w = make_world(store)
    free = store.add_activity(owner_id=w.ann, subject="Free", due_date=date(2026, 3, 3))
    assert free.busy is False
    busy = store.add_activity(owner_id=w.ann, subject="Busy", due_date=date(2026, 3, 3),
                              due_time=time(10, 0), duration_minutes=60, busy=True)
    projection = project_activity(busy)
    assert busy.busy is True and projection is not None and projection.busy is True
    assert store.edit_activity(busy.id, busy=False).busy is False


def test_a5_note_is_private_and_only_get_note_reads_it(store: ActivityStore) -> None:
    w = make_world(store)
    canary = "CANARY-7f3a private remark"
    a = store.add_activity(owner_id=w.ann, subject="Call", due_date=date(2026, 3, 3),
                           description="public agenda", note=canary)
    assert "note" not in {f.name for f in dataclasses.fields(Activity)}
    for seen in (a, store.get(a.id), store.list_activities(ActivityFilter()),
                 store.changes_after(0), project_activity(a), store.visible_to(w.bob)):
        assert canary not in repr(seen)
    assert store.get_note(a.id) == canary

    with pytest.raises(InvalidInput) as err:
        store.apply_calendar_changes(a.id, {"note": "overwritten from a calendar"})
    assert err.value.field == "note" and "overwritten" not in str(err.value)
    assert store.get_note(a.id) == canary

    store.edit_activity(a.id, note="new private text")
    assert store.get_note(a.id) == "new private text"
    store.edit_activity(a.id, note="")
    assert store.get_note(a.id) == ""


def test_a6_guests_are_crm_persons_or_any_email(store: ActivityStore) -> None:
    w = make_world(store)
    no_mail = store.add_person("No Mail")
    a = store.add_activity(
        owner_id=w.ann, subject="Meeting", due_date=date(2026, 3, 4),
        guests=[w.person, "Outside@Example.org", Guest("PIA@acme.example", "Pia"),
                Guest("carl@example.net", "Carl")],
    )
    assert a.guests == (
        Guest("pia@acme.example", "Pia Acme", w.person),
        Guest("outside@example.org", None, None),
        Guest("carl@example.net", "Carl", None),
    )  # the duplicate address of Pia collapsed into one guest
    by_mail = store.add_activity(owner_id=w.ann, subject="M", guests=["pia@acme.example"])
    assert by_mail.guests[0].person_id == w.person  # an address finds its CRM person
    assert store.edit_activity(a.id, guests=[]).guests == ()
    with pytest.raises(InvalidInput) as err:
        store.add_activity(owner_id=w.ann, subject="M", guests=[no_mail])
    assert err.value.field == "guests"


def test_a7_location_is_kept_and_synced(store: ActivityStore) -> None:
    w = make_world(store)
    a = store.add_activity(owner_id=w.ann, subject="Lunch", type="lunch",
                           due_date=date(2026, 3, 5), location="Karl Johans gate 1,\nOslo")
    assert a.location == "Karl Johans gate 1, Oslo"
    projection = project_activity(a)
    assert projection is not None and projection.location == a.location
    assert store.edit_activity(a.id, location="").location == ""


def test_a8_description_is_public_and_synced(store: ActivityStore) -> None:
    w = make_world(store)
    a = store.add_activity(owner_id=w.ann, subject="Call", due_date=date(2026, 3, 5),
                           description="Agenda:\n- pricing\n- dates", note="private")
    assert a.description == "Agenda:\n- pricing\n- dates"
    projection = project_activity(a)
    assert projection is not None and projection.description == a.description
    assert store.apply_calendar_changes(a.id, {"description": "Agenda: pricing"}).description \
        == "Agenda: pricing"


def test_a9_owner_decides_the_calendar_and_reassigning_keeps_the_moment(
    store: ActivityStore,
) -> None:
    w = make_world(store)
    a = store.add_activity(owner_id=w.ann, subject="Call", due_date=date(2026, 3, 10),
                           due_time=time(15, 0), duration_minutes=30)
    assert (a.owner_id, a.owner_tz) == (w.ann, "Europe/Oslo")
    seq = store.last_change_seq()
    moved = store.edit_activity(a.id, owner_id=w.bob)
    assert (moved.owner_id, moved.owner_tz) == (w.bob, "America/New_York")
    # New York is already on summer time on 10 March (Oslo is not): 15:00 CET is 10:00 EDT.
    assert (moved.due_date, moved.due_time) == (date(2026, 3, 10), time(10, 0))
    assert activity_when(moved) == activity_when(a)  # the same instant
    # Both calendars learn about it: Ann's to drop the event, Bob's to add it.
    assert _feed_ids(store, seq, owner_id=w.ann) == [a.id]
    assert _feed_ids(store, seq, owner_id=w.bob) == [a.id]
    whole = store.add_activity(owner_id=w.ann, subject="Day", due_date=date(2026, 3, 11))
    assert store.edit_activity(whole.id, owner_id=w.bob).due_date == date(2026, 3, 11)
    with pytest.raises(InvalidInput) as err:
        store.edit_activity(a.id, owner_id=999)
    assert err.value.field == "owner_id"


def test_a10_linked_items_keep_last_next_activity_date_and_update_time(
    store: ActivityStore,
) -> None:
    w = make_world(store)
    other_deal = store.add_deal("Other deal", now=NOW)

    def add(day: int, done: bool = False) -> int:
        return store.add_activity(owner_id=w.ann, subject=f"on {day}", deal_id=w.deal,
                                  due_date=date(2026, 3, day), done=done, now=NOW).id

    add(1, done=True)
    add(2, done=True)
    nearest = add(5)
    add(9)
    undated = store.add_activity(owner_id=w.ann, subject="undated", deal_id=w.deal, now=NOW).id
    for dates in (store.get_deal(w.deal).dates, store.get_person(w.person).dates,
                  store.get_org(w.org).dates):  # B1 links count too
        assert (dates.last_activity_date, dates.next_activity_date) == (
            date(2026, 3, 2), date(2026, 3, 5))
    assert store.get_deal(other_deal).dates.next_activity_date is None

    store.mark_done(nearest, now=LATER)
    deal = store.get_deal(w.deal).dates
    assert (deal.last_activity_date, deal.next_activity_date) == (
        date(2026, 3, 5), date(2026, 3, 9))
    assert deal.update_time == LATER

    later2 = LATER + timedelta(hours=1)
    store.edit_activity(nearest, deal_id=other_deal, now=later2)  # old and new both updated
    assert store.get_deal(w.deal).dates.last_activity_date == date(2026, 3, 2)
    assert store.get_deal(other_deal).dates.last_activity_date == date(2026, 3, 5)
    assert store.get_deal(other_deal).dates.update_time == later2
    assert store.get_deal(w.deal).dates.update_time == later2

    later3 = later2 + timedelta(hours=1)
    store.edit_activity(undated, subject="renamed", now=later3)  # any change counts
    assert store.get_deal(w.deal).dates.update_time == later3
    store.delete_activities([i.id for i in store.list_activities(ActivityFilter(
        deal_id=w.deal))], now=later3)
    dates = store.get_deal(w.deal).dates
    assert (dates.last_activity_date, dates.next_activity_date) == (None, None)


# --- B: links -------------------------------------------------------------------------------


def test_b1_deal_link_adds_person_and_org(store: ActivityStore) -> None:
    w = make_world(store)
    a = store.add_activity(owner_id=w.ann, subject="Call", deal_id=w.deal)
    assert (a.deal_id, a.person_id, a.org_id) == (w.deal, w.person, w.org)
    for flt in (ActivityFilter(deal_id=w.deal), ActivityFilter(person_id=w.person),
                ActivityFilter(org_id=w.org)):
        assert [x.id for x in store.list_activities(flt)] == [a.id]
    # A person named explicitly wins; moving to another deal moves the automatic links.
    someone = store.add_person("Someone")
    b = store.add_activity(owner_id=w.ann, subject="Call", deal_id=w.deal, person_id=someone)
    assert (b.person_id, b.org_id) == (someone, w.org)
    bare_deal = store.add_deal("Bare")
    moved = store.edit_activity(a.id, deal_id=bare_deal)
    assert (moved.deal_id, moved.person_id, moved.org_id) == (bare_deal, None, None)


def test_b2_person_link_adds_their_org(store: ActivityStore) -> None:
    w = make_world(store)
    a = store.add_activity(owner_id=w.ann, subject="Call", person_id=w.person)
    assert (a.deal_id, a.person_id, a.org_id) == (None, w.person, w.org)
    assert [x.id for x in store.list_activities(ActivityFilter(org_id=w.org))] == [a.id]
    assert store.edit_activity(a.id, person_id=None).org_id is None


def test_b3_org_link_adds_nothing_more(store: ActivityStore) -> None:
    w = make_world(store)
    a = store.add_activity(owner_id=w.ann, subject="Visit", org_id=w.org)
    assert (a.deal_id, a.person_id, a.org_id) == (None, None, w.org)
    assert store.list_activities(ActivityFilter(person_id=w.person)) == []
    assert store.list_activities(ActivityFilter(deal_id=w.deal)) == []


def test_b4_others_see_an_activity_only_if_they_see_every_linked_item(
    store: ActivityStore,
) -> None:
    w = make_world(store)
    cleo = store.add_user("cleo@example.com", "Cleo")
    secret_person = store.add_person("Quiet", owner_id=w.bob, visible_to_owner_only=True)
    secret_deal = store.add_deal("Hush", secret_person, w.org, owner_id=w.bob,
                                 visible_to_owner_only=True)
    open_deal_quiet_contact = store.add_deal("Open deal", secret_person, w.org)
    open_one = store.add_activity(owner_id=w.ann, subject="Open", deal_id=w.deal)
    hidden = store.add_activity(owner_id=w.ann, subject="Hidden", deal_id=secret_deal)
    # Only the automatic (B1) person link is private here: that is enough to hide it.
    via_person = store.add_activity(owner_id=w.ann, subject="Via person",
                                    deal_id=open_deal_quiet_contact)

    def ids(user: int) -> set[int]:
        return {a.id for a in store.visible_to(user)}

    assert ids(w.ann) == {open_one.id, hidden.id, via_person.id}  # the owner sees her own
    assert ids(w.bob) == {open_one.id, hidden.id, via_person.id}  # owns the private items
    assert ids(cleo) == {open_one.id}
    # A permission system of its own plugs in per item.
    assert {a.id for a in store.visible_to(cleo, can_see=lambda kind, _: kind != "person")} \
        == set()
    assert {a.id for a in store.visible_to(cleo, can_see=lambda kind, _: True)} == {
        open_one.id, hidden.id, via_person.id}
    with pytest.raises(NotFound):
        store.visible_to(999)


# --- D: completing --------------------------------------------------------------------------


def test_d1_marked_done_from_the_list_or_from_a_calendar(store: ActivityStore) -> None:
    w = make_world(store)
    a = store.add_activity(owner_id=w.ann, subject="A", due_date=date(2026, 3, 3))
    b = store.add_activity(owner_id=w.ann, subject="B", due_date=date(2026, 3, 3))
    c = store.add_activity(owner_id=w.ann, subject="C", due_date=date(2026, 3, 3))
    assert store.mark_done(a.id, now=LATER).done  # list, item page, timeline
    assert store.apply_calendar_changes(b.id, {"done": True}, now=LATER).done  # calendar
    assert store.edit_activity(c.id, done=True, now=LATER).done
    assert store.list_activities(ActivityFilter(done=False)) == []


def test_d2_marked_done_time_is_the_moment_of_marking(store: ActivityStore) -> None:
    w = make_world(store)
    a = store.add_activity(owner_id=w.ann, subject="Call", due_date=date(2026, 3, 3), now=NOW)
    assert a.marked_done_at is None
    assert store.mark_done(a.id, now=LATER).marked_done_at == LATER
    seq = store.last_change_seq()
    again = store.mark_done(a.id, now=LATER + timedelta(days=1))
    assert again.marked_done_at == LATER and store.last_change_seq() == seq  # a no-op
    assert store.mark_undone(a.id, now=LATER).marked_done_at is None
    assert store.mark_done(a.id, now=LATER + timedelta(days=2)).marked_done_at \
        == LATER + timedelta(days=2)
    created_done = store.add_activity(owner_id=w.ann, subject="Done", done=True, now=NOW)
    assert created_done.marked_done_at == NOW


def test_d3_due_date_keeps_the_planned_time_when_marked_done(store: ActivityStore) -> None:
    w = make_world(store)
    planned = (date(2026, 2, 20), time(8, 15))
    a = store.add_activity(owner_id=w.ann, subject="Late call", due_date=planned[0],
                           due_time=planned[1], duration_minutes=15)
    done = store.mark_done(a.id, now=LATER)
    assert (done.due_date, done.due_time, done.duration_minutes) == (*planned, 15)
    undone = store.mark_undone(a.id, now=LATER)
    assert (undone.due_date, undone.due_time) == planned


def test_d4_due_date_editable_into_the_past_done_time_still_records_marking(
    store: ActivityStore,
) -> None:
    w = make_world(store)
    a = store.add_activity(owner_id=w.ann, subject="Call", due_date=date(2026, 3, 20))
    store.mark_done(a.id, now=LATER)
    past = store.edit_activity(a.id, due_date=date(2025, 12, 1), due_time=time(9, 0),
                               now=LATER + timedelta(days=3))
    assert (past.due_date, past.due_time) == (date(2025, 12, 1), time(9, 0))
    assert past.marked_done_at == LATER
    reopened = store.mark_undone(a.id, now=LATER + timedelta(days=4))
    assert reopened.marked_done_at is None and reopened.due_date == date(2025, 12, 1)


# --- E: deleting ----------------------------------------------------------------------------


def test_e1_delete_one_activity_soft_then_purged_after_30_days(store: ActivityStore) -> None:
    w = make_world(store)
    a = store.add_activity(owner_id=w.ann, subject="Call", deal_id=w.deal, note="n")
    keep = store.add_activity(owner_id=w.ann, subject="Keep")
    seq = store.last_change_seq()
    store.delete_activity(a.id, now=NOW)
    with pytest.raises(NotFound):
        store.get(a.id)
    assert store.get(a.id, include_deleted=True).deleted
    assert [x.id for x in store.list_activities(ActivityFilter())] == [keep.id]
    assert [x.id for x in store.list_activities(ActivityFilter(include_deleted=True))] == [
        a.id, keep.id]
    assert _feed_ids(store, seq) == [a.id]
    assert store.get_by_sync_uid(a.sync_uid) is not None
    with pytest.raises(NotFound):
        store.edit_activity(a.id, subject="too late")
    store.delete_activity(a.id, now=NOW)  # deleting again changes nothing
    assert store.last_change_seq() == seq + 1

    assert store.purge_deleted(now=NOW + timedelta(days=29)) == 0
    assert store.purge_deleted(now=NOW + timedelta(days=30)) == 1
    page = store.changes_after(seq + 1)
    assert page.items == [Tombstone(a.id, a.sync_uid)]
    assert store.get_by_sync_uid(a.sync_uid) is None
    with pytest.raises(NotFound):
        store.get_note(a.id)
    assert row_counts(store)["activity_notes"] == 0


def test_e1_a_deleted_activity_is_restored_whole_until_it_is_purged(store: ActivityStore
                                                                    ) -> None:
    w = make_world(store)
    a = store.add_activity(owner_id=w.ann, subject="Call", deal_id=w.deal, note="n",
                           due_date=date(2026, 3, 20), guests=["x@example.org"])
    store.delete_activity(a.id, now=NOW)
    assert store.get_deal(w.deal).dates.next_activity_date is None
    seq = store.last_change_seq()
    back = store.restore_activity(a.id, now=NOW + timedelta(days=29))
    assert back == dataclasses.replace(a, updated_at=NOW + timedelta(days=29))
    assert store.get_note(a.id) == "n"
    assert store.get_deal(w.deal).dates.next_activity_date == date(2026, 3, 20)  # A10
    assert _feed_ids(store, seq) == [a.id]  # an ordinary change for every sync
    store.restore_activity(a.id)  # restoring a live activity changes nothing
    assert store.last_change_seq() == seq + 1

    store.delete_activity(a.id, now=NOW)
    renewed = store.restore_activity(a.id, new_sync_uid=True, now=NOW)
    assert renewed.sync_uid != a.sync_uid and len(renewed.sync_uid) == 32
    store.delete_activity(a.id, now=NOW)
    assert store.purge_deleted(now=NOW + timedelta(days=30)) == 1
    with pytest.raises(NotFound):
        store.restore_activity(a.id)


def test_e2_bulk_delete_is_all_or_nothing(store: ActivityStore) -> None:
    w = make_world(store)
    ids = [store.add_activity(owner_id=w.ann, subject=f"#{n}", type="call" if n % 2 else "task",
                              due_date=date(2026, 3, 1 + n)).id for n in range(6)]
    before = row_counts(store)
    with pytest.raises(NotFound):
        store.delete_activities([ids[0], ids[1], 424242])
    assert row_counts(store) == before
    assert store.delete_activities(ids[:2], now=NOW) == 2
    assert store.last_change_seq() == before["last_change_seq"] + 2
    # A filter delete: the list view's "select all calls" (ids[1] is already gone).
    assert store.delete_where(ActivityFilter(type="call"), now=NOW) == 2
    assert [a.id for a in store.list_activities(ActivityFilter())] == [ids[2], ids[4]]
    with pytest.raises(InvalidInput):
        store.delete_where(ActivityFilter())  # no criterion: would delete everything
    assert store.delete_where(ActivityFilter(due_to=date(2026, 3, 3)), now=NOW) == 1
