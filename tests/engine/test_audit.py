"""The audit behind `syncd verify`, rule by rule (pure: no calendar, no database)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime, time, timedelta

import pytest

from connectors.base import RemoteEvent, Window
from syncd.engine.audit import NOTE_MIN_CHARS, AuditInput, Finding, audit, normalise
from syncd.model import FIELDS, Activity, project_activity
from syncd.pairs import SyncPair

OWNER = 7
NOW = datetime(2026, 12, 1, 8, tzinfo=UTC)
WINDOW = Window(NOW - timedelta(days=30), NOW + timedelta(days=365))


def activity(aid: int, subject: str = "Call", *, owner: int = OWNER, deleted: bool = False,
             day: int = 10) -> Activity:
    return Activity(id=aid, sync_uid=f"m{aid}", owner_id=owner, owner_tz="Europe/Oslo",
                    type="call", subject=subject, due_date=date(2026, 12, day),
                    due_time=time(9), duration_minutes=30, busy=True, description="",
                    location="", guests=(), done=False, marked_done_at=None,
                    deleted=deleted, updated_at=NOW)


def event(eid: str, a: Activity, *, marker: str | None = "same", etag: str = "e1",
          subject: str | None = None, updated: int = 0, **values: str) -> RemoteEvent:
    projection = project_activity(a)
    assert projection is not None
    if subject is not None or values:
        projection = projection.replace({"title": subject or projection.title, **values})
    return RemoteEvent(eid, etag, a.sync_uid if marker == "same" else marker, projection,
                       updated=NOW + timedelta(minutes=updated))


def pair(a: Activity, eid: str | None, *, etag: str = "e1", pending: bool = False) -> SyncPair:
    projection = project_activity(a)
    return SyncPair(a.id, a.sync_uid, eid, etag, projection, projection, pending=pending)


def run(acts: list[Activity], links: list[SyncPair], events: list[RemoteEvent],
        **extra: object) -> list[Finding]:
    data = AuditInput(owner_id=OWNER, links={p.activity_id: p for p in links}, events=events,
                      activities={a.id: a for a in acts}, carried=frozenset(FIELDS),
                      window=WINDOW, **extra)  # type: ignore[arg-type]
    return audit(data)


def kinds(found: list[Finding]) -> list[tuple[str, int | None]]:
    return [(f.kind, f.activity_id) for f in found]


def test_a_synced_account_is_clean() -> None:
    a, b = activity(1), activity(2, "Lunch")
    assert run([a, b], [pair(a, "ev1"), pair(b, "ev2")], [event("ev1", a), event("ev2", b)],
               notes={1: "a private note long enough"}) == []


def test_two_events_with_one_marker_keep_the_paired_one() -> None:
    a = activity(1)
    found = run([a], [pair(a, "ev1")], [event("ev1", a), event("ev9", a, updated=5)])
    assert kinds(found) == [("duplicate", 1)]
    assert found[0].event_ids == ("ev1", "ev9") and found[0].remove == ("ev9",)


def test_duplicates_without_a_pair_keep_the_newest() -> None:
    a = activity(1)
    events = [event("old", a, updated=0), event("new", a, updated=9)]
    found = [f for f in run([a], [], events, markers={"m1": None}) if f.kind == "duplicate"]
    assert found[0].remove == ("old",)


@pytest.mark.parametrize(("marked", "reason"), [
    (None, "unknown_marker"),
    (activity(5, deleted=True), "deleted"),
    (activity(5, owner=99), "other_owner"),
])
def test_an_unpaired_marked_event_of_no_live_activity_here_is_an_orphan(
        marked: Activity | None, reason: str) -> None:
    a = activity(5)
    found = run([], [], [event("ev5", a)], markers={"m5": marked})
    assert kinds(found) == [("orphan", 5 if marked else None)]
    assert found[0].reason == reason and found[0].remove == ("ev5",)


def test_an_unpaired_event_of_a_live_activity_is_not_an_orphan_but_its_next_pairing() -> None:
    a = activity(5)
    assert run([a], [], [event("ev5", a)], markers={"m5": a}) == []


def test_a_deleted_activity_still_paired_is_pending_deletion_not_an_orphan() -> None:
    a = activity(1, deleted=True)
    assert run([a], [pair(a, "ev1")], [event("ev1", a)]) == []


def test_drift_is_a_difference_with_nothing_pending_on_either_side() -> None:
    a = activity(1, "New title")
    stale = pair(activity(1, "Old title"), "ev1")
    in_step = SyncPair(1, "m1", "ev1", "e1", project_activity(a), stale.cal_base)
    found = run([a], [in_step], [event("ev1", a, subject="Old title")])
    assert kinds(found) == [("drift", 1)] and found[0].fields == ("title",)


@pytest.mark.parametrize("pending_side", ["crm", "calendar_etag", "calendar_fields"])
def test_a_change_waiting_on_one_side_is_not_drift(pending_side: str) -> None:
    a = activity(1, "New title")
    old = activity(1, "Old title")
    link = pair(old, "ev1")  # both bases say "Old title"
    ev = event("ev1", old)
    if pending_side == "calendar_etag":
        link = pair(a, "ev1", etag="e0")
    elif pending_side == "calendar_fields":
        link = SyncPair(1, "m1", "ev1", "e1", project_activity(a), link.cal_base)
        ev = event("ev1", a, subject="Calendar title")
    assert run([a], [link], [ev]) == []


@pytest.mark.parametrize(("quarantined", "link", "reason"), [
    ({}, None, "not_synced_yet"),
    ({"crm:1": "v1"}, None, "quarantined"),
    ({}, "gone", "event_missing"),
])
def test_an_activity_in_the_window_without_an_event_is_missing_with_why(
        quarantined: dict[str, str], link: str | None, reason: str) -> None:
    a = activity(1)
    links = [pair(a, link)] if link else []
    found = run([a], links, [], quarantined=quarantined)
    assert kinds(found) == [("missing", 1)] and found[0].reason == reason


def test_pending_creates_and_activities_outside_the_window_are_not_missing() -> None:
    a, far = activity(1), activity(2)
    far = replace(far, due_date=date(2029, 1, 1))
    assert run([a, far], [pair(a, None, pending=True)], []) == []


def test_a_note_found_in_an_event_is_reported_by_ids_and_fields_never_text() -> None:
    a, b = activity(1), activity(2)
    note = "Discount up to 30%, do not tell"
    events = [event("ev1", a, description=f"Agenda\n{note.upper()}"),
              event("ev2", b, location="Room  " + note.replace(" ", "   "))]
    found = run([a, b], [pair(a, "ev1"), pair(b, "ev2")], events, notes={1: note})
    assert [(f.kind, f.activity_id, f.event_ids, f.fields) for f in found if
            f.kind == "privacy"] == [("privacy", 1, ("ev1",), ("description",)),
                                     ("privacy", 1, ("ev2",), ("location",))]
    assert all(note.lower() not in repr(f).lower() for f in found)


def test_short_notes_are_not_searched_and_no_notes_means_not_checked() -> None:
    a = activity(1, "Call ok")
    short = "x" * (NOTE_MIN_CHARS - 1)
    events = [event("ev1", a, description=short)]
    assert [f.kind for f in run([a], [pair(a, "ev1")], events, notes={1: short})] == []
    assert run([a], [pair(a, "ev1")], events, notes=None) == []


def test_two_pairs_on_one_event_are_reported() -> None:
    a, b = activity(1), activity(2)
    found = run([a, b], [pair(a, "ev1"), pair(b, "ev1")], [event("ev1", a)])
    assert ("paired_twice", 1) in kinds(found)


def test_a_paired_event_of_an_activity_handed_to_another_owner_is_an_orphan() -> None:
    # Found by the chaos soak with Pipedrive: the old owner's feed lost the move, so the
    # meeting stayed in both calendars and verify, skipping the pair, was clean.
    moved = activity(1, owner=OWNER + 1)
    found = run([moved], [pair(moved, "ev1")], [event("ev1", moved)])
    assert kinds(found) == [("orphan", 1)]
    assert found[0].reason == "moved_away" and found[0].remove == ("ev1",)
    assert run([moved], [pair(moved, "ev1")], [event("ev1", moved)],
               kept=frozenset({"ev1"})) == []


def test_an_event_kept_because_deleting_it_would_mail_its_guests_is_no_orphan() -> None:
    moved = activity(1, owner=OWNER + 1)  # handed to another owner; its event stays here
    events = [event("ev1", moved)]
    assert kinds(run([moved], [], events)) == [("orphan", None)]  # (markers not given)
    assert run([moved], [], events, kept=frozenset({"ev1"})) == []


def test_a_shared_event_stays_with_the_activity_whose_marker_it_carries() -> None:
    a, b = activity(1), replace(activity(2), updated_at=NOW + timedelta(hours=1))
    found = run([a, b], [pair(a, "ev1"), pair(b, "ev1")], [event("ev1", a)])
    assert [(f.kind, f.activity_id, f.unpair) for f in found] == [("paired_twice", 1, (2,))]
    # without its marker (ambiguous), the activity changed last keeps it
    found = run([a, b], [pair(a, "ev1"), pair(b, "ev1")], [event("ev1", a, marker=None)])
    assert [(f.kind, f.activity_id, f.unpair) for f in found] == [("paired_twice", 2, (1,))]


def test_normalising_folds_case_width_and_spacing() -> None:
    assert normalise("  ＡＢＣ\n  def\tGHI ") == normalise("abc def ghi")


def test_an_event_without_our_marker_that_the_write_log_names_was_touched() -> None:
    a = activity(1)
    foreign = event("theirs", a, marker=None)
    untouched = event("other", a, marker=None)
    found = run([a], [pair(a, "ev1")], [event("ev1", a), foreign, untouched],
                written=frozenset({"ev1", "theirs"}))
    assert [(f.kind, f.event_ids) for f in found] == [("foreign_touched", ("theirs",))]



def test_a_touched_foreign_event_says_whether_it_still_holds_what_we_wrote() -> None:
    a = activity(1)
    events = [event("ev1", a), event("theirs", a, marker=None, etag="e7")]
    for left, reason in (("e7", "unchanged"), ("e6", "changed")):
        found = run([a], [pair(a, "ev1")], events, written=frozenset({"theirs"}),
                    left={"theirs": left})
        assert [(f.kind, f.reason) for f in found] == [("foreign_touched", reason)]
