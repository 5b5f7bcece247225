"""Every provider transport reports each request it sends, with the status it got (0: no
answer), to :mod:`syncd.telemetry`: retries are requests too, and nothing is counted twice."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, ClassVar

import pytest
import requests
import responses
from googleapiclient.errors import HttpError
from httplib2 import Response as Httplib2Response

from connectors.caldav_http import DavTransport
from connectors.google_http import RequestBudget, RetryPolicy, Transport
from connectors.outlook_http import GraphTransport
from syncd import telemetry
from syncd.crm.pipedrive_http import PipedriveHttp
from syncd.errors import ConnectorError, SyncdError


@pytest.fixture
def seen() -> Iterator[list[tuple[str, int]]]:
    found: list[tuple[str, int]] = []
    remove = telemetry.listen(lambda provider, status: found.append((provider, status)))
    yield found
    remove()


class Tokens:
    def token(self) -> str:
        return "t"

    def invalidate(self) -> None:
        return None


class Sign:
    def headers(self) -> dict[str, str]:
        return {"x-api-token": "t"}

    def refresh(self) -> bool:
        return False


@responses.activate
def test_graph_counts_each_attempt_and_a_lost_connection(seen: list[tuple[str, int]]
                                                         ) -> None:
    base = "https://graph.test/v1.0"
    responses.get(f"{base}/me/events", status=503)
    responses.get(f"{base}/me/events", json={"value": []})
    graph = GraphTransport(requests.Session(), base, Tokens(), mailbox="m@x.org",
                           prefer="", sleep=lambda _s: None)
    assert graph.request("GET", "/me/events").status == 200
    responses.post(f"{base}/me/events", body=requests.ConnectionError("reset"))
    with pytest.raises(ConnectorError):
        graph.request("POST", "/me/events", json={})
    assert seen == [("outlook", 503), ("outlook", 200), ("outlook", 0)]


@responses.activate
def test_pipedrive_counts_each_answer_and_a_lost_connection(seen: list[tuple[str, int]]
                                                            ) -> None:
    base = "https://acme.pipedrive.test"
    responses.get(f"{base}/v1/users/me", status=500, json={"success": False})
    responses.get(f"{base}/v1/users/me", json={"success": True, "data": {"id": 1}})
    http = PipedriveHttp(base, Sign(), sleep=lambda _s: None)
    assert http.get("/v1/users/me").data == {"id": 1}
    responses.post(f"{base}/api/v2/activities", body=requests.ConnectionError("refused"))
    with pytest.raises(SyncdError):
        http.request("POST", "/api/v2/activities", json={})
    assert seen == [("pipedrive", 500), ("pipedrive", 200), ("pipedrive", 0)]


@responses.activate
def test_caldav_counts_each_request(seen: list[tuple[str, int]]) -> None:
    class Client:
        session = requests.Session()
        headers: ClassVar[dict[str, str]] = {}
        auth = None
        timeout = 5
        ssl_verify_cert = True

    responses.add("PROPFIND", "https://dav.test/cal/", status=207, body=b"<x/>")
    responses.add("PROPFIND", "https://dav.test/gone/", body=requests.ConnectionError("x"))
    dav = DavTransport(Client())
    assert dav.send("PROPFIND", "https://dav.test/cal/").status == 207
    with pytest.raises(ConnectorError):
        dav.send("PROPFIND", "https://dav.test/gone/")
    # a read that got no answer is sent once more (5c7ce4a): each attempt is a request
    assert seen == [("caldav", 207), ("caldav", 0), ("caldav", 0)]
    # a write is never sent twice (the server may have applied it): one attempt
    responses.add("PUT", "https://dav.test/cal/x.ics", body=requests.ConnectionError("x"))
    with pytest.raises(ConnectorError):
        dav.send("PUT", "https://dav.test/cal/x.ics", b"BEGIN:VCALENDAR")
    assert seen[3:] == [("caldav", 0)]


class Request:
    """A googleapiclient request stand-in: answers ``answers`` in turn."""

    def __init__(self, answers: list[Any]) -> None:
        self.answers = answers

    def execute(self, num_retries: int = 0) -> Any:
        answer = self.answers.pop(0)
        if isinstance(answer, int):
            raise HttpError(Httplib2Response({"status": answer}), b"{}")
        if isinstance(answer, Exception):
            raise answer
        return answer


def test_google_counts_each_call_and_each_retry(seen: list[tuple[str, int]]) -> None:
    transport = Transport("https://google.test/batch", RequestBudget(600),
                          policy=RetryPolicy(), sleep=lambda _s: None)
    request = Request([503, {"items": []}])
    assert transport.one(lambda: request).status == 200
    lost = Request([OSError("reset")] * 10)
    assert transport.one(lambda: lost).status == 0
    assert seen[:2] == [("google", 503), ("google", 200)]
    assert set(seen[2:]) == {("google", 0)} and len(seen) > 2
