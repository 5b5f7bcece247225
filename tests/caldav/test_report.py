"""One REPORT path (``DavTransport.report``) for every CalDAV report: sync-collection,
calendar-multiget and the agenda's calendar-query, each one request, with the answer's
status, headers and parsed body; a busy server's ``Retry-After`` reaches the engine."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from types import SimpleNamespace

import pytest
import requests

from connectors.caldav_busy import calendar_query
from connectors.caldav_http import DavTransport
from syncd.errors import RateLimited, Transient
from syncd_testkit.loopback import HandlerServer, QuietHandler

START, END = datetime(2026, 12, 7, tzinfo=UTC), datetime(2026, 12, 14, tzinfo=UTC)
MULTISTATUS = (b'<?xml version="1.0"?><D:multistatus xmlns:D="DAV:" '
               b'xmlns:C="urn:ietf:params:xml:ns:caldav"><D:response>'
               b"<D:href>/cal/a.ics</D:href><D:propstat><D:prop><D:getetag>\"1\"</D:getetag>"
               b"<C:calendar-data>BEGIN:VCALENDAR\r\nEND:VCALENDAR\r\n</C:calendar-data>"
               b"</D:prop><D:status>HTTP/1.1 200 OK</D:status></D:propstat></D:response>"
               b"</D:multistatus>")


class Script:
    """What the server answers next: status, headers, body; and the requests it saw."""

    def __init__(self) -> None:
        self.answer: tuple[int, dict[str, str], bytes] = (207, {}, MULTISTATUS)
        self.seen: list[tuple[str, str, str]] = []  # method, Depth, Content-Type


@pytest.fixture
def server() -> Iterator[tuple[Script, str]]:
    script = Script()

    class Handler(QuietHandler):
        def do_REPORT(self) -> None:
            self.read_body()
            script.seen.append((self.command, self.headers.get("Depth", ""),
                                self.headers.get("Content-Type", "")))
            status, headers, body = script.answer
            self.reply(status, body, headers, "application/xml; charset=utf-8")

    with HandlerServer(Handler) as running:
        yield script, f"{running.origin}/cal/"


def transport() -> DavTransport:
    client = SimpleNamespace(session=requests.Session(), auth=None, timeout=10,
                             ssl_verify_cert=True, headers={})
    return DavTransport(client)


def test_a_report_hands_back_the_answers_status_headers_and_multistatus(
        server: tuple[Script, str]) -> None:
    script, collection = server
    script.answer = (207, {"X-Server-Note": "kept"}, MULTISTATUS)
    reported = transport().report(collection, "<x/>", depth="1")
    assert reported.status == 207 and reported.headers["X-Server-Note"] == "kept"
    assert reported.root.tag == "{DAV:}multistatus"
    assert script.seen == [("REPORT", "1", "application/xml; charset=utf-8")]


def test_a_calendar_query_is_one_report_through_the_shared_path(
        server: tuple[Script, str]) -> None:
    script, collection = server
    objects, outside = calendar_query(transport(), collection, START, END)
    assert [(o.path, o.etag) for o in objects] == [("/cal/a.ics", '"1"')] and outside == 0
    assert script.seen == [("REPORT", "1", "application/xml; charset=utf-8")]


@pytest.mark.parametrize("status", [429, 503])
def test_a_busy_servers_retry_after_reaches_the_engine(server: tuple[Script, str],
                                                        status: int) -> None:
    script, collection = server
    script.answer = (status, {"Retry-After": "120"}, b"")
    with pytest.raises(RateLimited) as caught:
        calendar_query(transport(), collection, START, END)
    assert caught.value.retry_after == 120
    assert len(script.seen) == 1


def test_a_207_that_is_no_multistatus_fails_the_query_for_now(
        server: tuple[Script, str]) -> None:
    script, collection = server
    script.answer = (207, {}, b'<?xml version="1.0"?><D:error xmlns:D="DAV:"/>')
    with pytest.raises(Transient, match=r"calendar-query: .*not a multistatus"):
        calendar_query(transport(), collection, START, END)
