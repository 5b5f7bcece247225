"""Hostile input to the booking page's readers (path, query, form body, headers): every
answer is a page with a status below 500, and nothing is ever booked without a form
this page signed."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from syncd.crm.builtin.views import ActivityFilter
from syncd.http.router import Request
from tests.booking.conftest import Site

FIELDS = st.sampled_from(["csrf", "slot", "name", "email", "tz", "x", "", "slot[]"])
VALUES = st.one_of(st.text(max_size=60), st.sampled_from(
    ["2026-12-07T08:00:00+00:00", "2026-12-07T08:00:00", "9" * 33, "UTC", "../..",
     "a@b.co", "%00", "\u202e", "1.2.3", "9999999999.x.y", "9999999999.x.\u00e9"]))
BODIES = st.one_of(
    st.binary(max_size=300),
    st.lists(st.tuples(FIELDS, VALUES), max_size=14).map(
        lambda pairs: "&".join(f"{k}={v}" for k, v in pairs).encode("utf-8", "replace")))
TYPES = st.sampled_from(["application/x-www-form-urlencoded", "multipart/form-data",
                         "text/plain", "", "application/x-www-form-urlencoded; charset=x"])
TAILS = st.sampled_from(["", "/", "/ics/1", "/booked/1-x", "/ics/-", "/booked/",
                         "/ics/99999999999999999999-a", "/x/y/z", "//", "/ics/1-"])


@settings(max_examples=80, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(method=st.sampled_from(["GET", "POST"]), tail=TAILS, query=st.text(max_size=80),
       body=BODIES, kind=TYPES, fetch=st.sampled_from(["", "same-origin", "cross-site"]),
       token=st.sampled_from(["own", "other", "short", "empty"]))
def test_hostile_requests_get_a_page_below_500_and_book_nothing(
        site: Site, method: str, tail: str, query: str, body: bytes, kind: str, fetch: str,
        token: str) -> None:
    site.clock[0] += 60  # the rate limits are tested elsewhere
    tokens = {"own": site.token, "other": "B" * 43, "short": site.token[:10], "empty": ""}
    headers = {"content-type": kind, **({"sec-fetch-site": fetch} if fetch else {})}
    request = Request(method, f"/book/{tokens[token]}{tail}", query, headers, body,
                      "192.0.2.7")
    answer = site.pages.handle(request)
    assert answer.status in (200, 303, 403, 404, 409, 422, 429)
    assert dict(answer.headers)["X-Frame-Options"] == "DENY"
    assert site.store.list_activities(ActivityFilter(owner_id=site.owner_id)) == []
