"""The one status table the HTTP transports share (syncd.errors.StatusTable)."""

from __future__ import annotations

import pickle

from syncd.errors import (
    AccountCooldown,
    AccountWide,
    AuthFailed,
    CursorExpired,
    EtagMismatch,
    EventGone,
    ItemLevel,
    ItemRejected,
    RateLimited,
    Retriable,
    Stale,
    StatusTable,
    Transient,
    rule,
)

PLAIN = StatusTable()


def test_the_shared_rows_hold_for_a_provider_with_no_rows_of_its_own() -> None:
    assert isinstance(PLAIN.error(401), AuthFailed)
    assert isinstance(PLAIN.error(412, event_id="e1"), EtagMismatch)
    assert isinstance(PLAIN.error(404, event_id="e1"), EventGone)
    assert isinstance(PLAIN.error(410, event_id="e1"), EventGone)
    assert isinstance(PLAIN.error(429), RateLimited)
    assert [type(PLAIN.error(s)) for s in (413, 415, 507)] == [ItemRejected] * 3
    assert type(PLAIN.error(400)) is ItemRejected  # an unknown 4xx: this item
    assert type(PLAIN.error(502)) is Transient and type(PLAIN.error(0)) is Transient


def test_a_providers_rows_come_first_and_codes_are_matched_without_case() -> None:
    table = StatusTable(rules=(rule(410, CursorExpired, "fullSyncRequired"),
                               rule(403, AccountCooldown, "quotaExceeded")),
                        other_4xx=Transient, cooldown=90.0)
    assert isinstance(table.error(410, code="FULLSYNCREQUIRED"), CursorExpired)
    assert isinstance(table.error(410, code="deleted"), EventGone)  # the shared row
    cooldown = table.error(403, code="quotaExceeded")
    assert isinstance(cooldown, AccountCooldown) and cooldown.seconds == 90.0
    assert type(table.error(403, code="other")) is Transient  # this provider's default


def test_a_row_may_ask_for_retry_after() -> None:
    table = StatusTable(rules=(rule(503, RateLimited, with_retry_after=True),),
                        retry_after=9.0)
    paused = table.error(503, retry_after=40.0)
    assert isinstance(paused, RateLimited) and paused.retry_after == 40.0
    assert type(table.error(503)) is Transient
    assert isinstance(table.error(429), RateLimited) and table.error(429).retry_after == 9.0


def test_errors_carry_the_status_and_code_never_prose() -> None:
    rejected = PLAIN.error(403, code="forbiddenForNonOrganizer", event_id="e1")
    assert isinstance(rejected, ItemRejected)
    assert rejected.fields == {"event_id": "e1", "reason": "HTTP 403 forbiddenForNonOrganizer",
                               "status": 403}
    assert PLAIN.error(0).fields == {"reason": "HTTP no answer", "status": 0}


def test_each_error_is_in_the_group_that_says_what_the_runner_does_next() -> None:
    groups = {AuthFailed: AccountWide, AccountCooldown: AccountWide, EtagMismatch: Stale,
              EventGone: Stale, CursorExpired: Stale, Transient: Retriable,
              RateLimited: Retriable, ItemRejected: ItemLevel}
    for error, group in groups.items():
        assert issubclass(error, group)
        others = {AccountWide, Stale, Retriable, ItemLevel} - {group}
        assert not any(issubclass(error, other) for other in others)


def test_an_error_survives_a_copy_with_its_fields() -> None:
    error = RateLimited(retry_after=3.0, reason="HTTP 429")
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is RateLimited and copy.fields == error.fields
