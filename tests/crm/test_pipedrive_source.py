"""The Pipedrive source against the emulator: equal-second cursors, deletions either way,
read-check-write, handovers, the note canary, the cost hook and OAuth."""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Mapping
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import pytest
from sqlalchemy import select

from syncd.crm.pipedrive import PipedriveSource, Settings
from syncd.crm.pipedrive_auth import OAuthTokens
from syncd.crm.pipedrive_cursor import Cursor, Row, advance
from syncd.crm.pipedrive_http import PipedriveHttp
from syncd.crm.pipedrive_markers import MarkerStore
from syncd.crm.source import ApplyChanges, ImportActivity, RemoveActivity
from syncd.errors import ActivityChanged
from syncd.model import Activity, Tombstone
from syncd.store.base import Base
from syncd.store.db import Database
from syncd_testkit.emulators.pipedrive import PipedriveEmulator
from syncd_testkit.emulators.pipedrive_model import User
from tests.crm.contract import CANARY
from tests.crm.pipedrive_fixtures import COMPANY, WEB, PipedriveCrm


def read_all(crm: PipedriveCrm, cursor: str | None, owner: int | None = None, limit: int = 500
             ) -> tuple[list[Activity | Tombstone], str]:
    items: list[Activity | Tombstone] = []
    while True:
        page = crm.source.changes(cursor, owner_id=owner or crm.owner_id, limit=limit)
        items.extend(page.items)
        cursor = page.cursor
        if not page.more:
            return items, cursor


def requests_named(emulator: PipedriveEmulator, method: str, path: str) -> int:
    return sum(1 for r in emulator.requests if r.method == method and r.path == path)


# --- the cursor ---------------------------------------------------------------------------

S1, S2 = "2026-03-02T09:00:00Z", "2026-03-02T09:00:01Z"


def test_a_version_delivered_at_the_high_water_second_is_not_delivered_again() -> None:
    fresh, after = advance(Cursor(), [Row(1, S1, "a"), Row(2, S1, "b")], None)
    assert fresh == [1, 2] and after.since == S1 and dict(after.seen) == {"1": "a", "2": "b"}
    again, same = advance(after, [Row(1, S1, "a"), Row(2, S1, "b")], None)
    assert again == [] and same.encode() == after.encode()


def test_a_change_later_in_the_same_second_is_delivered() -> None:
    _, after = advance(Cursor(), [Row(1, S1, "a")], None)
    fresh, later = advance(after, [Row(1, S1, "a2"), Row(3, S1, "c")], None)
    assert fresh == [1, 3] and dict(later.seen) == {"1": "a2", "3": "c"}


def test_a_newer_second_replaces_the_ids_remembered() -> None:
    _, after = advance(Cursor(), [Row(1, S1, "a"), Row(2, S1, "b")], None)
    fresh, later = advance(after, [Row(2, S1, "b"), Row(1, S2, "a2")], None)
    assert fresh == [1] and later.since == S2 and dict(later.seen) == {"1": "a2"}


def test_a_cursor_carries_what_the_reconciliation_showed_and_a_cursor_without_reads_as_before(
        ) -> None:
    told = Cursor(S1, {"1": "a"}, moved=(9, 4), gone=(9,))
    back = Cursor.decode(told.encode())
    assert (back.moved, back.gone) == ((4, 9), (9,))
    # A cursor with nothing told is the text it was before cursors could tell anything.
    before = json.dumps({"k": {"1": "a"}, "p": None, "q": None, "s": S1},
                        sort_keys=True, separators=(",", ":"))
    plain = Cursor(S1, {"1": "a"})
    assert plain.encode() == "pd1." + base64.urlsafe_b64encode(before.encode()).decode(
        ).rstrip("=")
    assert Cursor.decode(plain.encode()) == plain


def test_a_cursor_mid_listing_keeps_the_query_its_page_belongs_to() -> None:
    _, first = advance(Cursor(S1, {"1": "a"}), [Row(2, S1, "b")], "page-2")
    assert first.page == "page-2" and first.updated_since() == S1
    _, last = advance(first, [Row(3, S2, "c")], None)
    assert last.page is None and last.updated_since() == S2


def test_equal_seconds_on_pipedrive_neither_miss_nor_repeat(crm: PipedriveCrm) -> None:
    # the emulator's clock stands still: every change below is in one second
    first = crm.add("First")
    items, cursor = read_all(crm, None)
    assert [a.id for a in items] == [first]
    second = crm.add("Second")
    items, cursor = read_all(crm, cursor)
    assert [a.id for a in items] == [second]
    crm.edit(first, "First, edited in the same second")
    items, cursor = read_all(crm, cursor)
    assert [(a.id, getattr(a, "subject", None)) for a in items] == [
        (first, "First, edited in the same second")]
    items, again = read_all(crm, cursor)
    assert items == [] and again == cursor
    crm.emulator.clock.advance(1)
    crm.edit(second, "Second, a second later")
    items, later = read_all(crm, cursor)
    assert [a.id for a in items] == [second]
    assert Cursor.decode(later).since == "2026-03-02T09:00:01Z"


def test_a_second_holding_more_changes_than_a_page_is_paged_through(
        crm: PipedriveCrm) -> None:
    made = [crm.add(f"Call {i}") for i in range(7)]
    items, cursor = read_all(crm, None, limit=3)
    assert sorted(a.id for a in items) == made
    assert read_all(crm, cursor, limit=3)[0] == []


# --- deletions ----------------------------------------------------------------------------


@pytest.fixture
def slow_crm(emulator: PipedriveEmulator, state_db: Database) -> PipedriveCrm:
    """Ada's company with the reconciliation due after an hour, as configured by default."""
    return PipedriveCrm(emulator, state_db, reconcile_after=timedelta(hours=1))


def test_a_deletion_pipedrive_lists_needs_no_reconciliation(slow_crm: PipedriveCrm) -> None:
    crm = slow_crm
    crm.emulator.list_deleted = True
    gone = crm.add("Soon gone")
    _, cursor = read_all(crm, None)
    crm.delete(gone)
    crm.emulator.clear_requests()
    items, cursor = read_all(crm, cursor)
    [item] = items
    assert isinstance(item, Activity) and item.id == gone and item.deleted
    assert [(r.method, r.path, r.param("ids")) for r in crm.emulator.requests] == [
        ("GET", "/api/v2/activities", None)]
    assert read_all(crm, cursor)[0] == []


def test_a_deletion_pipedrive_does_not_list_is_found_by_the_reconciliation(
        slow_crm: PipedriveCrm) -> None:
    crm = slow_crm
    kept, gone = crm.add("Kept"), crm.add("Soon gone")
    _, cursor = read_all(crm, None)
    crm.delete(gone)
    items, cursor = read_all(crm, cursor)
    assert items == []  # not seen for an hour yet: not asked about
    clock = datetime.now(UTC) + timedelta(hours=2)
    crm.source.markers.now = lambda: clock
    crm.emulator.clear_requests()
    items, cursor = read_all(crm, cursor)
    [item] = items
    assert isinstance(item, Activity) and item.id == gone and item.deleted and item.sync_uid
    asked = [r.param("ids") for r in crm.emulator.requests if r.param("ids")]
    assert asked == [f"{kept},{gone}"]  # both, in one request
    assert read_all(crm, cursor)[0] == []  # reported once


def test_a_webhook_hint_has_the_next_feed_ask_at_once(slow_crm: PipedriveCrm) -> None:
    crm = slow_crm
    gone = crm.add("Soon gone")
    _, cursor = read_all(crm, None)
    crm.delete(gone)
    crm.source.markers.check_soon([gone])
    items, _ = read_all(crm, cursor)
    assert [(a.id, isinstance(a, Activity) and a.deleted) for a in items] == [(gone, True)]


@pytest.mark.parametrize("listed", [False, True], ids=["deleted-unlisted", "deleted-listed"])
def test_a_purged_activity_comes_back_as_a_tombstone_with_its_marker(
        crm: PipedriveCrm, listed: bool) -> None:
    crm.emulator.list_deleted = listed
    gone = crm.add("Purged soon")
    [read], cursor = read_all(crm, None)
    crm.delete(gone)
    crm.emulator.clock.advance(31 * 86400)  # Pipedrive purges after 30 days
    items, _ = read_all(crm, cursor)
    assert items == [Tombstone(gone, read.sync_uid)]
    assert crm.source.get(gone) is None and crm.source.find(read.sync_uid) is None


# --- writes -------------------------------------------------------------------------------


def test_a_write_over_an_edit_made_in_pipedrive_meanwhile_is_refused(
        crm: PipedriveCrm) -> None:
    activity_id = crm.add("Call")
    read_all(crm, None)
    crm.edit(activity_id, "Renamed in Pipedrive")  # within the same second
    [result] = crm.source.write([ApplyChanges(activity_id, {"location": "Room 4"})])
    assert isinstance(result.error, ActivityChanged) and result.error.activity_id == activity_id
    assert crm.emulator.activity(activity_id)["location"] is None  # nothing written
    assert requests_named(crm.emulator, "PATCH", f"/api/v2/activities/{activity_id}") == 0
    fresh = crm.source.get(activity_id)  # the engine reads again and plans again
    assert fresh is not None and fresh.subject == "Renamed in Pipedrive"
    [result] = crm.source.write([ApplyChanges(activity_id, {"location": "Room 4"})])
    assert result.ok and result.activity is not None and result.activity.location == "Room 4"
    stored = crm.emulator.activity(activity_id)
    assert stored["subject"] == "Renamed in Pipedrive" and stored["location"]["value"] == "Room 4"


def test_a_write_planned_against_an_older_read_is_refused_after_another_account_read_anew(
        crm: PipedriveCrm) -> None:
    # One owner, two calendars: both accounts read the activity through the one source.
    activity_id = crm.add("Call")
    [first], _ = read_all(crm, None)  # the first account's read
    crm.edit(activity_id, "Renamed in Pipedrive")  # within the same second
    second = crm.source.get(activity_id)  # the second account's read, after the edit
    assert isinstance(first, Activity) and second is not None
    [result] = crm.source.write([ApplyChanges(activity_id, {"location": "Room 4"},
                                              base=first)])
    assert isinstance(result.error, ActivityChanged)  # planned against the older version
    assert requests_named(crm.emulator, "PATCH", f"/api/v2/activities/{activity_id}") == 0
    [result] = crm.source.write([ApplyChanges(activity_id, {"location": "Room 4"},
                                              base=second)])
    assert result.ok and result.activity is not None and result.activity.location == "Room 4"
    assert crm.emulator.activity(activity_id)["subject"] == "Renamed in Pipedrive"


def test_a_patch_sends_only_the_managed_fields_that_changed(crm: PipedriveCrm) -> None:
    activity_id = crm.add("Call", public_description="Agenda", deal_id=None)
    [activity], _ = read_all(crm, None)
    assert isinstance(activity, Activity)
    crm.emulator.clear_requests()
    [result] = crm.source.write([ApplyChanges(activity_id, {
        "due_date": date(2026, 12, 3), "due_time": activity.due_time,
        "duration_minutes": 45, "busy": False})])
    assert result.ok
    [patch] = [r for r in crm.emulator.requests if r.method == "PATCH"]
    assert patch.json() == {"due_date": "2026-12-03", "due_time": "09:00",
                            "duration": "00:45", "busy": False}


def test_a_removal_over_an_edit_made_in_pipedrive_meanwhile_is_refused(
        crm: PipedriveCrm) -> None:
    activity_id = crm.add("Call")
    read_all(crm, None)
    crm.edit(activity_id, "Still wanted")
    [result] = crm.source.write([RemoveActivity(activity_id)])
    assert isinstance(result.error, ActivityChanged)
    assert not crm.emulator.activity(activity_id)["is_deleted"]


def test_an_import_with_an_unknown_type_is_refused_and_leaves_no_intent(
        crm: PipedriveCrm) -> None:
    [result] = crm.source.write([ImportActivity("cd" * 16, crm.owner_id, "séance",
                                                {"subject": "X"})])
    assert result.error is not None and getattr(result.error, "field", None) == "type"
    assert crm.source.markers.by_uid("cd" * 16) is None


def test_an_import_pipedrive_refuses_leaves_no_intent(crm: PipedriveCrm) -> None:
    from syncd_testkit.emulators.pipedrive import FaultRule

    crm.emulator.inject(FaultRule(method="POST", path="/api/v2/activities", status=400,
                                  message="bad"))
    [result] = crm.source.write([ImportActivity("cd" * 16, crm.owner_id, "call",
                                                {"subject": "X"})])
    assert result.error is not None and crm.source.markers.by_uid("cd" * 16) is None


# --- handovers ----------------------------------------------------------------------------


def test_an_activity_handed_to_another_owner_shows_in_both_feeds(crm: PipedriveCrm) -> None:
    bob = crm.emulator.add_user("Bob", "bob@acme.test", timezone_name="America/New_York")
    activity_id = crm.add("Call")
    _, ada_cursor = read_all(crm, None)
    _, bob_cursor = read_all(crm, None, owner=bob.id)
    crm.emulator.edit_as_user(crm.ada, activity_id, owner_id=bob.id)
    page = crm.source.changes(bob_cursor, owner_id=bob.id)
    [mine] = page.items
    assert isinstance(mine, Activity) and mine.owner_id == bob.id
    assert mine.owner_tz == "America/New_York" and page.handed_over == {activity_id}
    items, ada_cursor = read_all(crm, ada_cursor)
    assert [(a.id, getattr(a, "owner_id", None)) for a in items] == [(activity_id, bob.id)]
    assert read_all(crm, ada_cursor)[0] == []


def test_a_handover_shown_to_a_cycle_that_died_before_keeping_its_cursor_is_shown_again(
        crm: PipedriveCrm) -> None:
    # Found by the chaos soak: the previous owner's feed forgot the handover as it showed
    # it, so a cycle killed before its cursor commit left the event in their calendar.
    bob = crm.emulator.add_user("Bob", "bob@acme.test")
    activity_id = crm.add("Call")
    _, ada_cursor = read_all(crm, None)
    crm.emulator.edit_as_user(crm.ada, activity_id, owner_id=bob.id)
    read_all(crm, None, owner=bob.id)
    shown, _ = read_all(crm, ada_cursor)  # the cycle dies: this cursor is never kept
    assert [a.id for a in shown] == [activity_id]
    again, kept = read_all(crm, ada_cursor)
    assert [(a.id, getattr(a, "owner_id", None)) for a in again] == [(activity_id, bob.id)]
    assert read_all(crm, kept)[0] == []  # that cursor came back: told, shown no more


def owners_shown(items: list[Activity | Tombstone]) -> list[tuple[int, int | None]]:
    return [(a.id, getattr(a, "owner_id", None)) for a in items]


def handed_on_twice(crm: PipedriveCrm) -> tuple[int, int, User, str, str]:
    """An activity of Ada's handed to Bob, read by Bob's feed (his account makes his
    event), then on to Cleo, read by Cleo's feed; Ada's feed not read since it was hers.

    Returns the activity, Bob's id, Cleo, and Ada's and Bob's cursors from before the
    second move.
    """
    bob = crm.emulator.add_user("Bob", "bob@acme.test")
    cleo = crm.emulator.add_user("Cleo", "cleo@acme.test")
    activity_id = crm.add("Call")
    _, ada_cursor = read_all(crm, None)
    crm.emulator.edit_as_user(crm.ada, activity_id, owner_id=bob.id)
    mine, bob_cursor = read_all(crm, None, owner=bob.id)
    assert owners_shown(mine) == [(activity_id, bob.id)]
    crm.emulator.edit_as_user(crm.ada, activity_id, owner_id=cleo.id)
    assert owners_shown(read_all(crm, None, owner=cleo.id)[0]) == [(activity_id, cleo.id)]
    assert crm.source.markers.moved_away(bob.id, 10) == [activity_id]
    assert crm.source.markers.moved_away(crm.ada.id, 10) == [activity_id]
    return activity_id, bob.id, cleo, ada_cursor, bob_cursor


def test_an_activity_handed_on_twice_before_the_first_owner_was_told_tells_both(
        crm: PipedriveCrm) -> None:
    # Found by the chaos soak: the row kept only the first previous owner, so Bob, who had
    # the meeting in his calendar when it went on to Cleo, was never told it left him.
    activity_id, bob_id, cleo, ada_cursor, bob_cursor = handed_on_twice(crm)
    told_bob, bob_cursor = read_all(crm, bob_cursor, owner=bob_id)
    assert owners_shown(told_bob) == [(activity_id, cleo.id)]
    told_ada, ada_cursor = read_all(crm, ada_cursor)
    assert owners_shown(told_ada) == [(activity_id, cleo.id)]
    # Each told once its own cursor came back, and not before.
    assert read_all(crm, bob_cursor, owner=bob_id)[0] == []
    assert read_all(crm, ada_cursor)[0] == []
    assert crm.source.markers.moved_away(bob_id, 10) == []
    assert crm.source.markers.moved_away(crm.ada.id, 10) == []


def test_the_second_owner_is_shown_the_move_again_when_its_cycle_died_before_its_cursor(
        crm: PipedriveCrm) -> None:
    activity_id, bob_id, cleo, ada_cursor, bob_cursor = handed_on_twice(crm)
    shown, _ = read_all(crm, bob_cursor, owner=bob_id)  # the cycle dies: never kept
    assert owners_shown(shown) == [(activity_id, cleo.id)]
    # Ada's feed being told meanwhile leaves Bob waiting.
    _, ada_kept = read_all(crm, ada_cursor)
    assert read_all(crm, ada_kept)[0] == []
    again, kept = read_all(crm, bob_cursor, owner=bob_id)
    assert owners_shown(again) == [(activity_id, cleo.id)]
    assert read_all(crm, kept, owner=bob_id)[0] == []


@pytest.mark.parametrize("first", ["ada", "bob"])
def test_an_activity_handed_back_to_an_owner_still_waiting_is_its_own_not_moved_away(
        crm: PipedriveCrm, first: str) -> None:
    bob = crm.emulator.add_user("Bob", "bob@acme.test")
    activity_id = crm.add("Call")
    cursors = {crm.ada.id: read_all(crm, None)[1]}
    crm.emulator.edit_as_user(crm.ada, activity_id, owner_id=bob.id)
    cursors[bob.id] = read_all(crm, None, owner=bob.id)[1]  # Bob's account makes his event
    crm.emulator.clock.advance(1)  # (within the second, Ada's feed sees the row it knows)
    crm.emulator.edit_as_user(crm.ada, activity_id, owner_id=crm.ada.id)
    # Whichever feed reads it first, Ada's shows it as hers (her account keeps or makes
    # her event), never as moved away, and Bob's shows it moved away from him.
    order = [crm.ada.id, bob.id] if first == "ada" else [bob.id, crm.ada.id]
    for owner in order:
        shown, cursors[owner] = read_all(crm, cursors[owner], owner=owner)
        assert owners_shown(shown) == [(activity_id, crm.ada.id)]
        assert crm.source.markers.moved_away(crm.ada.id, 10) == []
    for owner in order:
        assert read_all(crm, cursors[owner], owner=owner)[0] == []


def test_a_deletion_the_reconciliation_found_is_shown_again_until_its_cursor_is_kept(
        slow_crm: PipedriveCrm) -> None:
    crm = slow_crm
    gone = crm.add("Soon gone")
    _, cursor = read_all(crm, None)
    crm.delete(gone)
    clock = datetime.now(UTC) + timedelta(hours=2)  # past reconcile_after, once
    crm.source.markers.now = lambda: clock
    shown, _ = read_all(crm, cursor)  # the cycle dies before keeping the cursor after it
    assert [(a.id, isinstance(a, Activity) and a.deleted) for a in shown] == [(gone, True)]
    again, kept = read_all(crm, cursor)
    assert [a.id for a in again] == [gone]
    assert read_all(crm, kept)[0] == []


# --- the note -----------------------------------------------------------------------------


def test_the_note_canary_is_in_no_request_no_log_and_no_state(
        crm: PipedriveCrm, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    activity_id = crm.add("Secret call", note=CANARY, public_description="Public")
    source = crm.source
    items, cursor = read_all(crm, None)
    marker = items[0].sync_uid
    source.get(activity_id)
    source.get_many([activity_id])
    source.find(marker)
    source.due_between(crm.owner_id, date(2026, 12, 1), date(2026, 12, 31))
    source.write([ApplyChanges(activity_id, {"subject": "Call", "description": "Changed"}),
                  ImportActivity("ef" * 16, crm.owner_id, "call", {"subject": "New"})])
    crm.edit(activity_id, "Edited in Pipedrive")
    read_all(crm, cursor)
    assert crm.emulator.activity(activity_id)["note"] == CANARY  # kept by Pipedrive
    sent = [(r.path, repr(r.query), r.body, repr(r.headers)) for r in crm.emulator.requests]
    assert sent and not [s for s in sent if CANARY in repr(s)]
    assert CANARY not in caplog.text and CANARY not in cursor
    with crm.db.session() as session:
        for table in Base.metadata.sorted_tables:
            for row in session.execute(select(table)).all():
                assert CANARY not in repr(row), table.name


# --- the cost hook and OAuth --------------------------------------------------------------


class Counting:
    """A budget that only counts, to compare with what Pipedrive charged."""

    def __init__(self) -> None:
        self.spent = 0
        self.statuses: list[int] = []

    def spend(self, cost: int) -> None:
        self.spent += cost

    def answered(self, status: int, headers: Mapping[str, str]) -> None:
        self.statuses.append(status)


def test_every_request_is_charged_to_the_budget_at_pipedrives_cost(
        crm: PipedriveCrm) -> None:
    budget = Counting()
    crm.source.http.budget = budget
    crm.emulator.clear_requests()
    activity_id = crm.add("Call")
    read_all(crm, None)
    crm.source.get_many([activity_id, 999_999])
    crm.source.write([ApplyChanges(activity_id, {"subject": "Moved"}),
                      ImportActivity("ab" * 16, crm.owner_id, "call", {"subject": "New"})])
    crm.source.user(crm.email)
    assert budget.spent == crm.emulator.tokens_spent() > 0
    assert len(budget.statuses) == len(crm.emulator.requests)


def installed_app(emulator: PipedriveEmulator) -> tuple[User, OAuthTokens]:
    """Ada, an admin who installed syncd's OAuth app, and the app's tokens."""
    ada = emulator.add_user("Ada", "ada@acme.test", is_admin=True)
    emulator.oauth.register_app("app-id", "app-secret")
    refresh = emulator.oauth.refresh_token("app-id", ada.id, ("activities:full", "users:read",
                                                             "contacts:read"))
    return ada, OAuthTokens("app-id", "app-secret", refresh, token_url=emulator.token_url)


def test_oauth_tokens_come_from_the_refresh_token_and_are_renewed_after_a_401(
        emulator: PipedriveEmulator, state_db: Database) -> None:
    ada, tokens = installed_app(emulator)
    source = PipedriveSource(PipedriveHttp(emulator.base_url, tokens),
                             MarkerStore(state_db, COMPANY), Settings(COMPANY, WEB))
    assert source.user("ada@acme.test") is not None
    first = tokens.headers()["Authorization"]
    emulator.revoke(first.removeprefix("Bearer "))
    emulator.create_as_user(ada, subject="Call", due_date="2026-12-03")
    page = source.changes(None, owner_id=ada.id)
    assert len(page.items) == 1 and tokens.headers()["Authorization"] != first


# --- answers that are not data ------------------------------------------------------------


def test_a_throttled_read_is_sent_again_and_a_failed_read_retried(crm: PipedriveCrm) -> None:
    from syncd_testkit.emulators.pipedrive import FaultRule

    crm.add("Call")
    crm.emulator.inject(FaultRule(method="GET", path="/api/v2/activities", status=429))
    crm.emulator.inject(FaultRule(method="GET", path="/api/v2/activities", status=502))
    crm.emulator.clear_requests()
    page = crm.source.changes(None, owner_id=crm.owner_id)
    assert len(page.items) == 1
    assert [r.status for r in crm.emulator.requests
            if r.path == "/api/v2/activities"][:3] == [429, 502, 200]


def test_a_post_that_failed_after_pipedrive_applied_it_is_found_not_repeated(
        crm: PipedriveCrm) -> None:
    from syncd.errors import Transient
    from syncd_testkit.emulators.pipedrive import FaultRule

    crm.emulator.inject(FaultRule(method="POST", path="/api/v2/activities", status=503,
                                  after=True))
    op = ImportActivity("ab" * 16, crm.owner_id, "call", {"subject": "New",
                                                          "due_date": date(2026, 12, 3)})
    [failed] = crm.source.write([op])
    assert isinstance(failed.error, Transient)
    [created] = crm.emulator.store.activities  # applied although the answer was an error
    [again] = crm.source.write([op])
    assert again.ok and not again.created and again.activity is not None
    assert again.activity.id == created and list(crm.emulator.store.activities) == [created]
    assert requests_named(crm.emulator, "POST", "/api/v2/activities") == 1


def test_the_config_builds_a_source_that_talks_to_the_company(
        emulator: PipedriveEmulator, state_db: Database, monkeypatch: pytest.MonkeyPatch
        ) -> None:
    from connectors import provider_options
    from syncd.config import parse_config
    from syncd.crm import open_source, source_options

    ada = emulator.add_user("Ada", "ada@acme.test", is_admin=True)
    emulator.create_as_user(ada, subject="Call", due_date="2026-12-03", due_time="09:00")
    monkeypatch.setenv("SYNCD_TEST_PD_TOKEN", emulator.api_token(ada))
    config = parse_config({"crm": {
        "kind": "pipedrive", "company_domain": COMPANY, "api_token": "env:SYNCD_TEST_PD_TOKEN",
        "api_url": emulator.base_url, "allow_insecure_http": True, "plan": "growth",
        "seats": 5}}, "x.toml", provider_options(), crm_sources=source_options())
    emulator.clear_requests()
    source = open_source(config.crm_kind, state_db, config.crm_options)
    assert emulator.requests == []  # building it sends nothing
    user = source.user("ADA@acme.test")
    assert user is not None and user.id == ada.id and user.time_zone == "Europe/Berlin"
    [activity] = source.changes(None, owner_id=ada.id).items
    assert isinstance(activity, Activity) and activity.subject == "Call"


def test_a_user_without_a_known_zone_is_read_in_the_configured_default_zone(
        emulator: PipedriveEmulator, state_db: Database) -> None:
    from syncd.crm import open_source

    ada = emulator.add_user("Ada", "ada@acme.test", is_admin=True, timezone_name="Mars/Base")
    emulator.create_as_user(ada, subject="Call", due_date="2026-12-03", due_time="09:00")
    source = open_source("pipedrive", state_db,
                         {"company_domain": COMPANY, "api_token": emulator.api_token(ada),
                          "api_url": emulator.base_url}, default_zone="Europe/Oslo")
    user = source.user("ada@acme.test")
    assert user is not None and user.time_zone == "Europe/Oslo"
    [activity] = source.changes(None, owner_id=ada.id).items
    assert isinstance(activity, Activity) and activity.owner_tz == "Europe/Oslo"
    assert activity.due_time == time(10, 0)  # 09:00 UTC on a winter day in Oslo


def test_with_oauth_the_api_domain_comes_from_the_token_answer(
        emulator: PipedriveEmulator, state_db: Database) -> None:
    _, tokens = installed_app(emulator)
    source = PipedriveSource(PipedriveHttp(None, tokens), MarkerStore(state_db, COMPANY),
                             Settings(COMPANY, WEB))
    assert source.user("ada@acme.test") is not None
    assert tokens.api_domain == emulator.base_url


@pytest.mark.parametrize(("status", "html", "expected"), [
    (401, False, "AuthFailed"),
    (403, True, "AccountCooldown"),  # the CDN's page after repeated 429s
    (403, False, "AuthFailed"),  # a permission an admin must grant
    (404, False, "NotFound"),
    (410, False, "NotFound"),
    (400, False, "InvalidInput"),
    (429, False, "RateLimited"),
    (500, False, "Transient"),
    (0, False, "Transient"),
])
def test_each_answer_means_one_error(status: int, html: bool, expected: str) -> None:
    from syncd.crm.pipedrive_http import error_for

    error = error_for(status, {"success": False, "error": "Activity type is not active"},
                      html=html, key=7)
    assert type(error).__name__ == expected
    if expected == "InvalidInput":
        assert "Activity type is not active" in str(error)


def test_a_pipedrive_cursor_no_longer_taken_falls_back_to_the_high_water_mark(
        crm: PipedriveCrm) -> None:
    made = [crm.add(f"Call {i}") for i in range(5)]
    page = crm.source.changes(None, owner_id=crm.owner_id, limit=2)
    assert page.more
    position = Cursor.decode(page.cursor)
    expired = Cursor(position.since, position.seen, "not-a-pipedrive-cursor", position.query)
    items, _ = read_all(crm, expired.encode(), limit=2)
    assert {a.id for a in page.items} | {a.id for a in items} == set(made)


@pytest.mark.parametrize(("field", "value"), [
    ("due_time", 930),  # not HH:MM text
    ("due_date", "2026-13-45"),  # not a date
    ("subject", "x" * (2 << 20)),  # an item over the size bound
    ("attendees", "everyone"),  # not a list
], ids=["time-number", "date-impossible", "oversized", "attendees-text"])
def test_a_malformed_activity_is_skipped_alone_and_its_note_is_not_logged(
        crm: PipedriveCrm, caplog: pytest.LogCaptureFixture, field: str, value: Any) -> None:
    caplog.set_level(logging.DEBUG)
    good = [crm.add("Call 1"), crm.add("Call 2")]
    bad = crm.add("Broken", note="hostile-note-canary")
    crm.emulator.store.activities[bad][field] = value  # as a misbehaving server would send
    items, _ = read_all(crm, None)
    assert sorted(a.id for a in items) == sorted(good)  # the rest still syncs
    assert f"activity {bad} was skipped" in caplog.text
    assert "hostile-note-canary" not in caplog.text
