"""The fault proxy, seen by the real client libraries: each fault arrives as the provider
would send it, the seed replays the same faults, quiet() injects none, and the counts add up.

Servers: the Google and Graph emulators and a real Radicale, each behind a
:class:`FaultProxy`; clients: googleapiclient over httplib2, requests (as syncd's Graph and
Pipedrive clients), caldav (niquests), and bare http.client where the socket itself matters.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import socket
import threading
import uuid
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import caldav
import httplib2
import pytest
import requests
from googleapiclient.discovery import build
from googleapiclient.errors import HttpError
from googleapiclient.http import BatchHttpRequest

from bench.latency_proxy import LatencyProxy
from syncd_testkit.emulators.google import GoogleEmulator
from syncd_testkit.emulators.google_fixtures import google_emulator
from syncd_testkit.emulators.graph import GraphEmulator
from syncd_testkit.emulators.graph_fixtures import graph_emulator
from syncd_testkit.faults import FaultProxy, FaultRates
from syncd_testkit.servers import RadicaleServer

__all__ = ["google_emulator", "graph_emulator"]

CAL = "alice@example.com"
HEADERS = {"Authorization": "Bearer test", "Content-Type": "application/json"}
GRAPH_EVENT: dict[str, Any] = {
    "subject": "Call", "start": {"dateTime": "2026-12-10T09:00:00", "timeZone": "UTC"},
    "end": {"dateTime": "2026-12-10T09:30:00", "timeZone": "UTC"}}


def google_event(n: int = 0) -> dict[str, Any]:
    return {"id": uuid.uuid4().hex, "summary": f"Call {n}",
            "start": {"dateTime": "2026-12-10T09:00:00Z"},
            "end": {"dateTime": "2026-12-10T09:30:00Z"}}


def service(url: str, timeout: float = 10) -> Any:
    return build("calendar", "v3", http=httplib2.Http(timeout=timeout), static_discovery=True,
                 cache_discovery=False, client_options={"api_endpoint": f"{url}/calendar/v3/"})


@pytest.fixture
def google(google_emulator: GoogleEmulator) -> GoogleEmulator:
    google_emulator.add_calendar(CAL)
    return google_emulator


@pytest.fixture
def graph(graph_emulator: GraphEmulator) -> GraphEmulator:
    graph_emulator.add_mailbox(CAL)
    return graph_emulator


@pytest.fixture
def dav_calendar(radicale: RadicaleServer) -> Iterator[tuple[RadicaleServer, Any, str]]:
    user = f"u{uuid.uuid4().hex[:8]}@example.com"
    client = caldav.DAVClient(url=radicale.url, username=user, password="x")
    calendar = client.principal().make_calendar(name="crm", cal_id="crm")
    yield radicale, calendar, user


def ics(uid: str) -> str:
    return ("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//test//faults//EN\r\nBEGIN:VEVENT\r\n"
            f"UID:{uid}\r\nDTSTAMP:20261201T000000Z\r\nDTSTART:20261210T090000Z\r\n"
            "DTEND:20261210T093000Z\r\nSUMMARY:Call\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n")


def events_url(proxy: FaultProxy) -> str:
    return f"{proxy.url}/v1.0/users/{CAL}/events"


# --- each kind, as a client sees it -----------------------------------------------------------


def test_a_server_error_is_google_s_503_and_the_server_never_sees_the_write(
        google: GoogleEmulator) -> None:
    with FaultProxy(google.origin, FaultRates(server_error=1.0), seed=1,
                    provider="google") as proxy, pytest.raises(HttpError) as caught:
        service(proxy.url).events().insert(calendarId=CAL, body=google_event()).execute()
    assert caught.value.status_code == 503
    assert caught.value.reason == "Backend Error"
    assert caught.value.error_details[0]["reason"] == "backendError"
    assert google.events(CAL) == []
    assert proxy.counts()["server_error"] == 1 and proxy.counts()["requests"] == 0


def test_a_throttled_graph_request_carries_retry_after_and_graph_s_error(
        graph: GraphEmulator) -> None:
    rates = FaultRates(throttle=1.0, retry_after=1.5)
    with FaultProxy(graph.origin, rates, seed=1, provider="graph") as proxy:
        answer = requests.post(events_url(proxy), json=GRAPH_EVENT, headers=HEADERS, timeout=10)
    assert answer.status_code == 429
    assert answer.headers["Retry-After"] == "2"  # whole seconds, rounded up
    error = answer.json()["error"]
    assert error["code"] == "ApplicationThrottled" and error["innerError"]["request-id"]
    assert graph.events(CAL) == []


def test_a_lost_answer_leaves_the_write_applied_on_the_server(graph: GraphEmulator) -> None:
    with FaultProxy(graph.origin, FaultRates(lost_answer=1.0), seed=1,
                    provider="graph") as proxy, pytest.raises(requests.ConnectionError):
        requests.post(events_url(proxy), json=GRAPH_EVENT, headers=HEADERS, timeout=10)
    assert [e["subject"] for e in graph.events(CAL)] == ["Call"]
    assert proxy.counts()["lost_answer"] == 1 and proxy.counts()["writes"] == 1


def test_a_timeout_fires_the_client_s_read_timeout_after_the_write_was_applied(
        graph: GraphEmulator) -> None:
    rates = FaultRates(timeout=1.0, hang_seconds=30)
    with FaultProxy(graph.origin, rates, seed=1, provider="graph") as proxy:
        with pytest.raises(requests.ReadTimeout):
            requests.post(events_url(proxy), json=GRAPH_EVENT, headers=HEADERS,
                          timeout=(5, 0.3))
        assert [e["subject"] for e in graph.events(CAL)] == ["Call"]
    assert proxy.counts()["timeout"] == 1  # and stop() did not wait the 30 s out


def test_a_reset_is_a_tcp_reset_before_the_server_sees_anything(
        google: GoogleEmulator) -> None:
    with FaultProxy(google.origin, FaultRates(reset=1.0), seed=1, provider="google") as proxy:
        conn = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=10)
        conn.request("POST", f"/calendar/v3/calendars/{CAL}/events",
                     body=json.dumps(google_event()), headers={"Content-Type": "application/json"})
        with pytest.raises(ConnectionResetError):
            conn.getresponse()
        conn.close()
    assert google.events(CAL) == [] and google.requests == []


# --- expired sync tokens, as each provider answers them ------------------------------------------


def test_an_expired_google_sync_token_is_410_full_sync_required_and_only_for_tokens(
        google: GoogleEmulator) -> None:
    with FaultProxy(google.origin, FaultRates(expired_token=1.0), seed=1,
                    provider="google") as proxy:
        events = service(proxy.url).events()
        token = events.list(calendarId=CAL).execute()["nextSyncToken"]  # no token: no fault
        with pytest.raises(HttpError) as caught:
            events.list(calendarId=CAL, syncToken=token).execute()
    assert caught.value.status_code == 410
    assert caught.value.error_details[0] == {
        "domain": "global", "reason": "fullSyncRequired", "locationType": "parameter",
        "location": "syncToken",
        "message": "Sync token is no longer valid, a full sync is required."}
    assert proxy.counts()["expired_token"] == 1


def test_an_expired_graph_delta_token_is_410_resync_or_sync_state_not_found(
        graph: GraphEmulator) -> None:
    start = (f"/v1.0/users/{CAL}/calendarView/delta?startDateTime=2026-12-01T00:00:00Z"
             "&endDateTime=2027-01-01T00:00:00Z")
    answers = []
    with FaultProxy(graph.origin, FaultRates(expired_token=1.0), seed=3,
                    provider="graph") as proxy:
        origin = proxy.url
        first = requests.get(origin + start, headers=HEADERS, timeout=10).json()
        delta_link = first["@odata.deltaLink"]
        assert delta_link.startswith(origin)  # the server's link, rewritten to the proxy
        for _ in range(8):
            answers.append(requests.get(delta_link, headers=HEADERS, timeout=10))
    assert {a.status_code for a in answers} == {410}
    codes = {a.json()["error"]["code"] for a in answers}
    assert codes == {"resyncRequired", "SyncStateNotFound"}
    for answer in answers:
        if answer.json()["error"]["code"] == "resyncRequired":
            assert answer.headers["Location"] == f"{origin}{start}&$deltatoken="
    # Both mean "start over" to syncd's Graph client.
    from connectors.outlook_http import CURSOR_CODES
    assert {c.lower() for c in codes} <= CURSOR_CODES


def test_an_expired_caldav_sync_token_is_radicale_s_403_valid_sync_token(
        dav_calendar: tuple[RadicaleServer, Any, str]) -> None:
    server, direct, user = dav_calendar
    direct.add_event(ics("first"))
    token = direct.get_objects_by_sync_token().sync_token
    with FaultProxy(server.origin, FaultRates(expired_token=1.0), seed=1,
                    provider="caldav") as proxy:
        client = caldav.DAVClient(url=f"{proxy.url}/", username=user, password="x")
        calendar = client.calendar(url=f"{proxy.url}/{user}/crm/")
        assert len(calendar.get_objects_by_sync_token().objects) == 1  # initial: no token
        with pytest.raises(caldav.lib.error.AuthorizationError) as caught:
            calendar.get_objects_by_sync_token(sync_token=token, disable_fallback=True)
    assert "{DAV:}valid-sync-token" in caught.value.preconditions
    assert proxy.counts()["expired_token"] == 1


def test_pipedrive_has_no_sync_token_to_expire(graph: GraphEmulator) -> None:
    with FaultProxy(graph.origin, FaultRates(expired_token=1.0), seed=1,
                    provider="pipedrive") as proxy:
        answer = requests.get(f"{proxy.url}/v1.0/users/{CAL}/events?$deltatoken=x",
                              headers=HEADERS, timeout=10)
    assert answer.status_code != 410 and proxy.counts()["expired_token"] == 0


# --- calls refused inside batches ---------------------------------------------------------------


def test_calls_refused_inside_a_google_batch_are_429_or_403_and_never_run(
        google: GoogleEmulator) -> None:
    results: dict[str, Any] = {}
    with FaultProxy(google.origin, FaultRates(throttle=0.4), seed=5,
                    provider="google") as proxy:
        events = service(proxy.url).events()
        bodies = [google_event(n) for n in range(30)]
        envelope_refused = 0
        batch = BatchHttpRequest(callback=lambda rid, resp, exc: results.update({rid: exc}),
                                 batch_uri=f"{proxy.url}/batch/calendar/v3")
        for n, body in enumerate(bodies):
            batch.add(events.insert(calendarId=CAL, body=body), request_id=str(n))
        try:
            batch.execute()
        except HttpError as exc:  # the whole batch throttled: seed 5 does not do that
            envelope_refused = exc.status_code
    assert envelope_refused == 0
    refused = {rid: exc for rid, exc in results.items() if exc is not None}
    assert refused and len(refused) < 30
    assert {exc.status_code for exc in refused.values()} == {403, 429}
    assert {exc.error_details[0]["reason"] for exc in refused.values()} == {"rateLimitExceeded"}
    stored = {e["id"] for e in google.events(CAL)}
    assert stored == {bodies[int(rid)]["id"] for rid, exc in results.items() if exc is None}
    assert proxy.counts()["throttle_parts"] == len(refused)
    assert proxy.counts()["writes"] == 30 - len(refused)


def test_a_call_refused_inside_a_graph_batch_fails_what_depends_on_it(
        graph: GraphEmulator) -> None:
    items = [{"id": str(n), "method": "POST", "url": f"/users/{CAL}/events",
              "headers": {"Content-Type": "application/json"},
              "body": {**GRAPH_EVENT, "subject": f"Call {n}"},
              **({"dependsOn": [str(n - 2)]} if n >= 2 else {})} for n in range(10)]
    with FaultProxy(graph.origin, FaultRates(throttle=0.2), seed=2, provider="graph") as proxy:
        answer = requests.post(f"{proxy.url}/v1.0/$batch", json={"requests": items},
                               headers=HEADERS, timeout=10)
    assert answer.status_code == 200
    status = {r["id"]: r["status"] for r in answer.json()["responses"]}
    assert sorted(status, key=int) == [str(n) for n in range(10)]
    throttled = [n for n in range(10) if status[str(n)] == 429]
    assert throttled
    for n in throttled:  # its chain (every second item) fails after it
        assert all(status[str(m)] == 424 for m in range(n + 2, 10, 2))
    assert {s for s in status.values()} <= {201, 424, 429}
    created = sorted(e["subject"] for e in graph.events(CAL))
    assert created == sorted(f"Call {n}" for n in range(10) if status[str(n)] == 201)
    assert proxy.counts()["throttle_parts"] == sum(s != 201 for s in status.values())


# --- seed, quiet, counts ------------------------------------------------------------------------


def outcomes(upstream: str, seed: int, n: int = 40) -> list[str]:
    """What ``n`` requests met, one connection each."""
    rates = FaultRates(server_error=0.2, throttle=0.2, reset=0.1, lost_answer=0.1)
    seen = []
    with FaultProxy(upstream, rates, seed=seed, provider="google") as proxy:
        for _ in range(n):
            conn = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=10)
            try:
                conn.request("GET", f"/calendar/v3/calendars/{CAL}/events")
                seen.append(str(conn.getresponse().status))
            except (ConnectionError, http.client.HTTPException) as exc:
                seen.append(type(exc).__name__)
            finally:
                conn.close()
    return seen


def test_the_same_seed_gives_the_same_faults_and_another_seed_others(
        google: GoogleEmulator) -> None:
    first = outcomes(google.origin, seed=11)
    assert first == outcomes(google.origin, seed=11)
    assert first != outcomes(google.origin, seed=12)
    assert {"200", "503", "429", "ConnectionResetError", "RemoteDisconnected"} <= set(first)


def test_quiet_injects_nothing_and_faults_resume_after_it(google: GoogleEmulator) -> None:
    with FaultProxy(google.origin, FaultRates(server_error=1.0), seed=1,
                    provider="google") as proxy:
        events = service(proxy.url).events()
        with proxy.quiet():
            for _ in range(5):
                events.list(calendarId=CAL).execute()
        assert proxy.counts()["server_error"] == 0 and proxy.counts()["requests"] == 5
        with pytest.raises(HttpError):
            events.list(calendarId=CAL).execute()
        proxy.set_rates(FaultRates())
        events.list(calendarId=CAL).execute()
    assert proxy.counts()["server_error"] == 1


def test_the_counts_add_up(graph: GraphEmulator) -> None:
    rates = FaultRates(server_error=0.15, throttle=0.15, reset=0.1, lost_answer=0.1,
                       timeout=0.05, hang_seconds=0.2)
    sent = 60
    with FaultProxy(graph.origin, rates, seed=4, provider="graph") as proxy:
        for _ in range(sent):
            with contextlib.suppress(requests.ConnectionError):
                requests.post(events_url(proxy), json=GRAPH_EVENT, headers=HEADERS,
                              timeout=(5, 5))
        counts = proxy.counts()
    assert counts["received"] == sent
    assert counts["received"] == (counts["requests"] + counts["server_error"]
                                  + counts["throttle"] + counts["reset"]
                                  + counts["expired_token"] + counts["batches_refused"])
    assert all(counts[k] > 0 for k in ("server_error", "throttle", "reset", "lost_answer",
                                       "timeout"))
    # Every forwarded POST was applied, answered or not.
    assert counts["writes"] == counts["requests"] == len(graph.events(CAL))


def test_rates_that_cannot_all_happen_are_refused() -> None:
    with pytest.raises(ValueError, match="more than 1"):
        FaultRates(server_error=0.6, throttle=0.5)
    with pytest.raises(ValueError, match="between 0 and 1"):
        FaultRates(reset=-0.1)
    with pytest.raises(ValueError, match="http://host:port"):
        FaultProxy("127.0.0.1", FaultRates(), seed=1, provider="google")


def test_a_body_above_the_cap_is_refused_without_reaching_the_server(
        google: GoogleEmulator) -> None:
    with FaultProxy(google.origin, FaultRates(), seed=1, provider="google") as proxy:
        proxy.max_body = 1000
        answer = requests.post(f"{proxy.url}/calendar/v3/calendars/{CAL}/events",
                               data=b"x" * 1001, timeout=10)
    assert answer.status_code == 413 and google.requests == []


@pytest.mark.parametrize("framing", [b"Content-Length: -5\r\n",
                                     b"Content-Length: many\r\n",
                                     b"Transfer-Encoding: chunked\r\n"])
def test_a_body_whose_framing_is_not_a_number_is_refused(google: GoogleEmulator,
                                                         framing: bytes) -> None:
    with FaultProxy(google.origin, FaultRates(), seed=1, provider="google") as proxy, \
            socket.create_connection(("127.0.0.1", proxy.port), timeout=10) as sock:
        sock.sendall(b"POST /calendar/v3/calendars/x/events HTTP/1.1\r\nHost: x\r\n"
                     + framing + b"\r\nzz\r\n")
        assert sock.recv(100).startswith(b"HTTP/1.1 400")
    assert google.requests == []


def test_an_answer_above_the_cap_is_not_held_and_the_client_gets_502(
        google: GoogleEmulator) -> None:
    for n in range(5):
        google.put_event(CAL, google_event(n))
    with FaultProxy(google.origin, FaultRates(), seed=1, provider="google") as proxy:
        url = f"{proxy.url}/calendar/v3/calendars/{CAL}/events"
        whole = len(requests.get(url, timeout=10).content)
        proxy.max_body = whole - 1
        assert requests.get(url, timeout=10).status_code == 502


def test_many_client_threads_at_once_get_one_decision_each(graph: GraphEmulator) -> None:
    rates = FaultRates(server_error=0.2, throttle=0.2, reset=0.1, lost_answer=0.1)
    threads, each = 8, 15
    seen: list[str] = []
    with FaultProxy(graph.origin, rates, seed=9, provider="graph") as proxy:
        def client() -> None:
            with requests.Session() as session:
                for _ in range(each):
                    try:
                        answer = session.post(events_url(proxy), json=GRAPH_EVENT,
                                              headers=HEADERS, timeout=10)
                        seen.append(str(answer.status_code))
                    except requests.ConnectionError:
                        seen.append("no answer")

        workers = [threading.Thread(target=client) for _ in range(threads)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
        counts = proxy.counts()
    assert len(seen) == counts["received"] == threads * each
    assert seen.count("503") == counts["server_error"]
    assert seen.count("429") == counts["throttle"]
    assert seen.count("no answer") == counts["reset"] + counts["lost_answer"]
    assert seen.count("201") == counts["requests"] - counts["lost_answer"]
    assert len(graph.events(CAL)) == counts["writes"] == counts["requests"]


# --- the benchmarks' latency proxy is the same proxy ------------------------------------------


def test_the_latency_proxy_counts_batch_calls_and_keeps_clients_behind_it(
        graph: GraphEmulator) -> None:
    graph.default_page_size = 1
    for n in range(2):
        requests.post(f"{graph.base_url}/users/{CAL}/events",
                      json={**GRAPH_EVENT, "subject": f"Call {n}"}, headers=HEADERS, timeout=10)
    host = urlsplit(graph.origin)
    with LatencyProxy(host.hostname or "", host.port or 0, latency=0.0) as proxy:
        page = requests.get(f"{proxy.url}/v1.0/users/{CAL}/events", headers=HEADERS,
                            timeout=10).json()
        assert page["@odata.nextLink"].startswith(f"{proxy.url}/")
        batch = {"requests": [{"id": str(n), "method": "GET", "url": f"/users/{CAL}/events"}
                              for n in range(3)]}
        requests.post(f"{proxy.url}/v1.0/$batch", json=batch, headers=HEADERS, timeout=10)
        traffic = proxy.traffic.snapshot()
    assert traffic["http"] == {"GET": 1, "POST": 1}
    assert traffic["calls"] == {"GET": 4}
    assert traffic["batch_sizes"] == {"3": 1}
