"""CalDAV's rows of the shared status table: what a write's HTTP status means."""

from __future__ import annotations

import pytest

from connectors.caldav_http import CALDAV_STATUS, status_error
from syncd.errors import (
    COMMON_RULES,
    AuthFailed,
    EtagMismatch,
    EventGone,
    ItemRejected,
    RateLimited,
    Transient,
)
from syncd.report import describe

#: (status, Retry-After header or None) -> the error the engine sees
ROWS: list[tuple[int, str | None, type]] = [
    (401, None, AuthFailed),
    (403, None, ItemRejected),  # one read-only event: never the whole account
    (404, None, EventGone),
    (410, None, EventGone),
    (412, None, EtagMismatch),
    (413, None, ItemRejected),
    (415, None, ItemRejected),
    (507, None, ItemRejected),
    (429, None, RateLimited),
    (429, "12", RateLimited),
    (503, "40", RateLimited),  # the server names when to come back
    (503, None, Transient),
    (500, None, Transient),
    (409, None, ItemRejected),  # unknown 4xx: this event's failure, set aside
    (0, None, Transient),
]


@pytest.mark.parametrize(("status", "retry", "error"), ROWS,
                         ids=[f"{s}-{r}" for s, r, _ in ROWS])
def test_a_write_status_maps_to_one_error(status: int, retry: str | None, error: type) -> None:
    headers = {"Retry-After": retry} if retry else {}
    mapped = status_error(status, "/cal/a.ics", headers)
    assert type(mapped) is error
    if isinstance(mapped, EtagMismatch | EventGone | ItemRejected):
        assert mapped.event_id == "/cal/a.ics"


def test_every_row_has_a_test() -> None:
    for row in (*CALDAV_STATUS.rules, *COMMON_RULES):
        assert any(row.matches(status, "", float(retry) if retry else None)
                   and error is row.error for status, retry, error in ROWS), row


def test_retry_after_is_kept_and_a_missing_one_has_a_default() -> None:
    named = status_error(503, "/cal/a.ics", {"Retry-After": "40"})
    assert isinstance(named, RateLimited) and named.retry_after == 40
    bare = status_error(429, "/cal/a.ics")
    assert isinstance(bare, RateLimited) and bare.retry_after == CALDAV_STATUS.retry_after


def test_a_refused_event_is_worded_in_report_by_its_status() -> None:
    read_only = status_error(403, "/cal/a.ics")
    assert describe(read_only) == ("The server refused event /cal/a.ics (HTTP 403): syncd "
                                   "may not change it; it may be read-only.")
    assert describe(status_error(418, "/cal/a.ics")) == (
        "The server refused event /cal/a.ics (HTTP 418).")
