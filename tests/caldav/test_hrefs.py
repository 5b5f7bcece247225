"""Which hrefs in a server's reply name a member of the collection (connectors.caldav_http)."""

from __future__ import annotations

import pytest

from connectors.caldav_http import href_of, member_path

COLLECTION = "http://127.0.0.1:5232/user/cal/"


@pytest.mark.parametrize("href", [
    "/user/cal/a.ics", "a.ics", "http://127.0.0.1:5232/user/cal/a.ics", "/user/%63al/a.ics",
])
def test_a_member_is_named_by_its_decoded_path_however_it_is_written(href: str) -> None:
    assert member_path(COLLECTION, href) == "/user/cal/a.ics"


@pytest.mark.parametrize("href", [
    "/user/other/a.ics", "../other/a.ics", "/user/cal/../other/a.ics", "/user/cal/%2e%2e",
    "/user/cal/a%2F..%2F..%2Fother.ics", "/user/cal//a.ics", "//evil.example/user/cal/a.ics",
    "http://evil.example/user/cal/a.ics", "http://x@127.0.0.1:5232/user/cal/a.ics",
    "/user/cal/a.ics?x=1", "/user/cal/", "/user/cal/sub/a.ics", "/user/cal/a%00.ics",
])
def test_an_href_outside_the_collection_names_no_member(href: str) -> None:
    assert member_path(COLLECTION, href) is None


def test_an_href_that_is_not_utf8_names_no_member_rather_than_another_objects_id() -> None:
    # Decoding with replacement would give "%FF" and "%FE" one id, whose URL (the
    # replacement character, re-encoded) is a third object: never read or written.
    for href in ("/user/cal/%FF.ics", "/user/cal/%FE.ics", "/user/cal/%C3.ics"):
        assert member_path(COLLECTION, href) is None


def test_every_member_id_leads_back_to_the_href_it_came_from() -> None:
    for href in ("/user/cal/a%20b.ics", "/user/cal/%C3%A9t%C3%A9.ics", "/user/cal/a%3Fb.ics",
                 "/user/cal/a%23b.ics", "/user/cal/a%25b.ics"):
        path = member_path(COLLECTION, href)
        assert path is not None
        assert member_path(COLLECTION, href_of(COLLECTION, path)) == path
        assert href_of(COLLECTION, path).endswith(href.rsplit("/", 1)[1])
