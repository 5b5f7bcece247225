"""Every error class: the status table row by row, then each behaviour on the emulator."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from connectors.base import CreateOp, DeleteOp, UpdateOp
from connectors.google import GoogleCalendar
from connectors.google_http import GOOGLE_STATUS, Reply, error_for
from connectors.google_map import MARKER_KEY, event_id_for
from syncd.errors import (
    COMMON_RULES,
    AccountCooldown,
    AuthFailed,
    CursorExpired,
    EtagMismatch,
    EventGone,
    ItemRejected,
    QuotaCooldown,
    RateLimited,
    Transient,
)
from syncd_testkit.emulators.google import FaultRule, GoogleEmulator
from tests.contract import create, timed
from tests.google.helpers import OWNER, FakeClock, connector, user_event

# --- the table, one test per row -----------------------------------------------------------------

#: (status, reason) -> the error type the engine sees
ROWS = [
    (401, "authError", AuthFailed),
    (403, "rateLimitExceeded", RateLimited),
    (403, "userRateLimitExceeded", RateLimited),
    (403, "quotaExceeded", QuotaCooldown),
    (403, "dailyLimitExceeded", QuotaCooldown),
    (403, "insufficientPermissions", AuthFailed),
    (403, "authError", AuthFailed),
    (403, "accessNotConfigured", AccountCooldown),
    (403, "domainPolicy", AccountCooldown),
    (403, "forbiddenForNonOrganizer", ItemRejected),
    (403, "requiredAccessLevel", ItemRejected),
    (404, "notFound", EventGone),
    (409, "duplicate", ItemRejected),
    (409, "conflict", Transient),
    (410, "fullSyncRequired", CursorExpired),
    (410, "updatedMinTooLongAgo", CursorExpired),
    (410, "deleted", EventGone),
    (412, "conditionNotMet", EtagMismatch),
    (429, "rateLimitExceeded", RateLimited),
    (413, "tooLarge", ItemRejected),
    (507, "insufficientStorage", ItemRejected),
    # in no row: the defaults
    (400, "timeRangeEmpty", ItemRejected),
    (500, "backendError", Transient),
    (503, "backendError", Transient),
    (0, "network TimeoutError", Transient),
]


@pytest.mark.parametrize(("status", "reason", "error"), ROWS,
                         ids=[f"{s}-{r}" for s, r, _ in ROWS])
def test_status_and_reason_map_to_one_error(status: int, reason: str, error: type) -> None:
    mapped = error_for(Reply(status, reason=reason, retry_after=7.0), event_id="e1")
    assert type(mapped) is error
    assert Reply(status, reason=reason).error_class is error
    assert "message" not in str(mapped.fields)  # reasons only, never Google's prose


def test_every_table_row_has_a_test() -> None:
    for row in (*GOOGLE_STATUS.rules, *COMMON_RULES):
        assert any(row.matches(status, reason.lower(), 7.0) and error is row.error
                   for status, reason, error in ROWS), row


def test_only_a_conflict_or_throttling_is_sent_again_whatever_the_method() -> None:
    assert Reply(409, reason="conflict").refused_before_work
    assert Reply(429, reason="rateLimitExceeded").refused_before_work
    assert not Reply(409, reason="duplicate").refused_before_work
    assert not Reply(409, reason="conflict", envelope=True).refused_before_work
    assert not Reply(503, reason="backendError").refused_before_work


#: A failed batch envelope: (status, reason) -> the error every part without an answer gets.
ENVELOPES = [
    (404, "notFound", Transient),
    (400, "badRequest", Transient),
    (412, "conditionNotMet", Transient),
    (410, "deleted", Transient),
    (503, "backendError", Transient),
    (429, "rateLimitExceeded", RateLimited),
    (403, "quotaExceeded", QuotaCooldown),
    (401, "authError", AuthFailed),
]


@pytest.mark.parametrize(("status", "reason", "error"), ENVELOPES,
                         ids=[f"{s}-{r}" for s, r, _ in ENVELOPES])
def test_a_failed_batch_envelope_is_a_server_failure_of_each_part_unless_account_wide(
        status: int, reason: str, error: type) -> None:
    mapped = error_for(Reply(status, reason=reason, envelope=True), event_id="e1")
    assert type(mapped) is error


def test_cooldown_is_an_hour_and_throttling_keeps_retry_after() -> None:
    cooldown = error_for(Reply(403, reason="quotaExceeded"))
    assert isinstance(cooldown, AccountCooldown) and cooldown.seconds == 3600
    # Only the usage limits double when met again; an API switched off for the project
    # is retried hourly, whatever came before (an admin's fix is then seen within an hour).
    assert isinstance(error_for(Reply(403, reason="dailyLimitExceeded")), QuotaCooldown)
    assert not isinstance(error_for(Reply(403, reason="accessNotConfigured")), QuotaCooldown)
    throttled = error_for(Reply(429, reason="rateLimitExceeded", retry_after=42.0))
    assert isinstance(throttled, RateLimited) and throttled.retry_after == 42.0


# --- behaviour on the emulator --------------------------------------------------------------------


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def conn(emu: GoogleEmulator, clock: FakeClock) -> Iterator[GoogleCalendar]:
    c = connector(emu, clock=clock)
    yield c
    c.close()


def listings(emu: GoogleEmulator) -> int:
    return len([r for r in emu.requests if r.method == "GET" and r.path.endswith("/events")])


@pytest.mark.parametrize("fault", [FaultRule.rate_limit_exceeded,
                                   FaultRule.user_rate_limit_exceeded],
                         ids=["rateLimitExceeded", "userRateLimitExceeded"])
def test_rate_limit_403s_are_retried_with_backoff(emu: GoogleEmulator, conn: GoogleCalendar,
                                                  clock: FakeClock, fault: type) -> None:
    emu.inject(fault(method="GET", count=2))  # type: ignore[attr-defined]
    assert conn.changes(None).full
    assert listings(emu) == 3
    assert len(clock.sleeps) == 2 and clock.sleeps[1] > clock.sleeps[0] > 0  # exponential


def test_429_waits_at_least_retry_after(emu: GoogleEmulator, conn: GoogleCalendar,
                                        clock: FakeClock) -> None:
    emu.inject(FaultRule.too_many_requests(method="GET", retry_after=7))
    conn.changes(None)
    assert clock.sleeps and clock.sleeps[0] >= 7


@pytest.mark.parametrize("status", [500, 503])
def test_server_errors_are_retried_for_reads(emu: GoogleEmulator, conn: GoogleCalendar,
                                             clock: FakeClock, status: int) -> None:
    emu.inject(FaultRule.backend_error(status, method="GET", count=2))
    assert conn.changes(None).cursor
    assert listings(emu) == 3 and len(clock.sleeps) == 2


def test_quota_exceeded_is_an_account_cooldown_and_is_not_retried(
        emu: GoogleEmulator, conn: GoogleCalendar, clock: FakeClock) -> None:
    emu.inject(FaultRule.quota_exceeded(count=None))
    with pytest.raises(AccountCooldown) as info:
        conn.changes(None)
    assert info.value.seconds == 3600
    assert listings(emu) == 1 and clock.sleeps == []
    results = conn.write([CreateOp("a", "m0000001", 0, timed()),
                          CreateOp("b", "m0000002", 0, timed())])
    assert all(isinstance(r.error, AccountCooldown) for r in results)
    # The batch envelope itself was refused, once, and nothing was sent again.
    assert len([r for r in emu.requests if r.method == "POST"]) == 1 and clock.sleeps == []


def test_401_means_reauthorisation(emu: GoogleEmulator, conn: GoogleCalendar) -> None:
    emu.inject(FaultRule.auth_error(count=None))
    with pytest.raises(AuthFailed):
        conn.changes(None)
    [result] = conn.write([CreateOp("a", "m0000001", 0, timed())])
    assert isinstance(result.error, AuthFailed)
    emu.clear_faults()
    emu.inject(FaultRule.auth_error(inner=True, count=None))  # 401 parts in a 200 batch
    results = conn.write([CreateOp("a", "m0000001", 0, timed()),
                          CreateOp("b", "m0000002", 0, timed())])
    assert all(isinstance(r.error, AuthFailed) for r in results)


def test_throttling_that_outlasts_the_retries_is_reported_per_item(
        emu: GoogleEmulator, conn: GoogleCalendar, clock: FakeClock) -> None:
    emu.inject(FaultRule.too_many_requests(method="POST", count=None))
    [result] = conn.write([CreateOp("a", "m0000001", 0, timed())])
    assert isinstance(result.error, RateLimited)
    assert len(clock.sleeps) == 4  # five attempts in all
    with pytest.raises(RateLimited):
        emu.inject(FaultRule.rate_limit_exceeded(method="GET", count=None))
        conn.changes(None)


def test_a_retry_after_longer_than_a_cycle_is_handed_to_the_engine(
        emu: GoogleEmulator, conn: GoogleCalendar, clock: FakeClock) -> None:
    emu.inject(FaultRule.too_many_requests(method="POST", retry_after=900))
    [result] = conn.write([CreateOp("a", "m0000001", 0, timed())])
    assert isinstance(result.error, RateLimited) and result.error.retry_after == 900
    assert clock.sleeps == []


def test_5xx_on_an_unconditional_patch_is_not_resent(emu: GoogleEmulator, conn: GoogleCalendar,
                                                     clock: FakeClock) -> None:
    [created] = conn.write([CreateOp("a", "m0000001", 0, timed())])
    assert created.event is not None
    emu.inject(FaultRule(method="PATCH", apply_then_fail="503"))
    [result] = conn.write([UpdateOp("a", created.event.event_id, None, timed("New"),
                                    frozenset({"title"}), "m0000001")])
    assert isinstance(result.error, Transient)
    assert len([r for r in emu.requests if r.method == "PATCH"]) == 1 and clock.sleeps == []


def test_5xx_on_a_conditional_write_is_resent_and_its_412_read_as_applied(
        emu: GoogleEmulator, conn: GoogleCalendar) -> None:
    [created] = conn.write([CreateOp("a", "m0000001", 0, timed())])
    assert created.event is not None
    emu.inject(FaultRule(method="PATCH", apply_then_fail="503"))
    [result] = conn.write([UpdateOp("a", created.event.event_id, created.event.etag,
                                    timed("New"), frozenset({"title"}), "m0000001")])
    # The first patch was applied, so the resent one meets a new etag: the engine re-reads
    # and finds its own value there (no lost edit, no double write).
    assert isinstance(result.error, EtagMismatch)
    assert [e["summary"] for e in emu.events(OWNER)] == ["New"]


def test_409_duplicate_adopts_our_live_event(emu: GoogleEmulator, conn: GoogleCalendar) -> None:
    event_id = event_id_for("m0000001", 0)
    emu.put_event(OWNER, user_event(timed(), id=event_id,
                                    extendedProperties={"private": {MARKER_KEY: "m0000001"}}))
    [result] = conn.write([CreateOp("a", "m0000001", 0, timed(), retry=True)])
    assert result.error is None and result.event is not None
    assert result.event.event_id == event_id and result.event.marker == "m0000001"
    assert len(emu.events(OWNER)) == 1


def test_a_retried_create_patches_edits_made_since_its_lost_answer(
        emu: GoogleEmulator, conn: GoogleCalendar) -> None:
    # The insert reached Google but its answer was lost; the activity was edited since.
    conn.write([CreateOp("a", "m0000001", 0, timed("Old title"))])
    [stored] = emu.events(OWNER)
    emu.clear_requests()
    wanted = timed("New title", location="Room 2")
    [result] = conn.write([CreateOp("a", "m0000001", 0, wanted, retry=True)])
    assert result.error is None and result.event is not None
    assert result.event.projection == wanted
    [event] = emu.events(OWNER)
    assert (event["id"], event["summary"], event["location"]) == (
        stored["id"], "New title", "Room 2")
    [patch] = [r for r in emu.requests if r.method == "PATCH"]
    assert patch.headers.get("if-match") == stored["etag"]
    assert set(patch.json()) == {"summary", "location", "extendedProperties"}


def test_a_retried_create_whose_event_matches_is_adopted_without_a_write(
        emu: GoogleEmulator, conn: GoogleCalendar) -> None:
    conn.write([CreateOp("a", "m0000001", 0, timed("Same"))])
    emu.clear_requests()
    [result] = conn.write([CreateOp("a", "m0000001", 0, timed("Same"), retry=True)])
    assert result.error is None and result.event is not None
    assert [r.method for r in emu.requests if r.method == "PATCH"] == []


def test_409_on_our_cancelled_id_restores_it(emu: GoogleEmulator, conn: GoogleCalendar) -> None:
    [first] = conn.write([CreateOp("a", "m0000001", 0, timed("Old", guests=frozenset(
        {"ada@example.org"})))])
    assert first.event is not None
    emu.delete_event_as_user(OWNER, first.event.event_id)
    wanted = timed("Back again", location="Room 2")
    [result] = conn.write([CreateOp("a", "m0000001", 0, wanted)])
    assert result.error is None and result.event is not None
    assert result.event.projection == wanted
    [event] = emu.events(OWNER)
    assert (event["id"], event["status"], event["summary"]) == (
        first.event.event_id, "confirmed", "Back again")
    restore = [r for r in emu.requests if r.method == "PATCH"][-1]
    assert restore.headers.get("if-match") and restore.param("sendUpdates") == "none"


def test_409_on_an_id_that_is_not_ours_is_rejected(emu: GoogleEmulator,
                                                   conn: GoogleCalendar) -> None:
    emu.put_event(OWNER, user_event(timed("Someone else's"), id=event_id_for("m0000001", 0)))
    [result] = conn.write([CreateOp("a", "m0000001", 0, timed())])
    assert isinstance(result.error, ItemRejected)
    assert [e["summary"] for e in emu.events(OWNER)] == ["Someone else's"]


def test_a_batch_reports_each_part_on_its_own(emu: GoogleEmulator, conn: GoogleCalendar,
                                              clock: FakeClock) -> None:
    [existing] = conn.write([CreateOp("x", "m0000009", 0, timed("Existing"))])
    assert existing.event is not None
    [stored] = emu.events(OWNER)
    emu.put_event(OWNER, {**stored, "summary": "User edit"})
    emu.clear_requests()
    emu.inject(FaultRule.too_many_requests(inner=True, method="POST",
                                           path=r"/events$", count=1))
    ops = [
        CreateOp("throttled", "m0000001", 0, timed("First")),  # 429 inside the 200
        UpdateOp("stale", existing.event.event_id, existing.event.etag, timed("Ours"),
                 frozenset({"title"}), "m0000009"),  # 412
        CreateOp("fine", "m0000002", 0, timed("Second")),  # 200
    ]
    results = conn.write(ops)
    assert [r.key for r in results] == ["throttled", "stale", "fine"]
    assert results[0].error is None and results[0].event is not None
    assert isinstance(results[1].error, EtagMismatch)
    assert results[2].error is None
    envelopes = [r for r in emu.requests if r.path == "/batch/calendar/v3"]
    assert [r.status for r in envelopes] == [200]  # the resent 429 part went out alone
    statuses = sorted(r.status or 0 for r in emu.requests if r.inner)
    assert statuses == [200, 412, 429]
    assert len(clock.sleeps) == 1
    assert sorted(e["summary"] for e in emu.events(OWNER)) == ["First", "Second", "User edit"]


def test_deleting_a_vanished_event_reports_gone(emu: GoogleEmulator,
                                                conn: GoogleCalendar) -> None:
    [result] = conn.write([DeleteOp("a", "unknown00001", None)])
    assert isinstance(result.error, EventGone)


def test_a_listing_of_an_unknown_calendar_needs_an_admin(emu: GoogleEmulator) -> None:
    emu.auto_create_calendars = False
    c = connector(emu, calendar="nobody@example.com")
    with pytest.raises(AuthFailed):
        c.changes(None)


# --- failures of the batch itself, and account-wide refusals -------------------------------------


def test_a_404_on_the_batch_itself_reports_no_delete_as_done(emu: GoogleEmulator,
                                                             conn: GoogleCalendar) -> None:
    a = create(conn, timed("A"), marker="a0000001")
    b = create(conn, timed("B"), marker="b0000001")
    emu.inject(FaultRule(path=r"^/batch/", inner=False, status=404, reason="notFound",
                         message="Not Found", count=None))
    results = conn.write([DeleteOp("1", a.event_id, a.etag), DeleteOp("2", b.event_id, b.etag)])
    assert {a.event_id, b.event_id} <= {e["id"] for e in emu.events(OWNER)}
    # EventGone on a delete means "done" to the engine, which would drop the links.
    assert all(isinstance(r.error, Transient) for r in results), results


def test_a_batch_too_large_is_sent_part_by_part_not_quarantined(emu: GoogleEmulator,
                                                                conn: GoogleCalendar) -> None:
    emu.inject(FaultRule(path=r"^/batch/", inner=False, status=413, reason="uploadTooLarge",
                         message="too large", count=1))
    results = conn.write([CreateOp(str(i), f"c000000{i}", 0, timed(f"T{i}")) for i in range(3)])
    assert all(r.error is None for r in results), results
    assert sorted(e["summary"] for e in emu.events(OWNER)) == ["T0", "T1", "T2"]
    assert len([r for r in emu.requests if r.method == "POST" and not r.inner]) == 4


@pytest.mark.parametrize(("reason", "error"), [
    ("insufficientPermissions", AuthFailed), ("authError", AuthFailed),
    ("accessNotConfigured", AccountCooldown), ("domainPolicy", AccountCooldown)])
def test_account_wide_403s_stop_the_account_instead_of_quarantining_the_item(
        emu: GoogleEmulator, conn: GoogleCalendar, reason: str, error: type) -> None:
    a = create(conn, timed("A"), marker="a0000001")
    emu.inject(FaultRule(method="PATCH", status=403, reason=reason, message="forbidden",
                         count=None))
    [r] = conn.write([UpdateOp("1", a.event_id, a.etag, timed("A2"), frozenset({"title"}),
                               "a0000001")])
    assert isinstance(r.error, error), r
    assert len([x for x in emu.requests if x.method == "PATCH"]) == 1  # not retried
