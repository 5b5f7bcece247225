"""The Pipedrive emulator over real HTTP with ``requests`` (reference section D and 1).

Every test runs on a frozen emulator clock and moves it on purpose; nothing here depends on
how fast the machine is.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import requests

from syncd_testkit.emulators.pipedrive import FaultRule, PipedriveClock, PipedriveEmulator
from syncd_testkit.emulators.pipedrive_fixtures import START, pipedrive_emulator  # noqa: F401
from syncd_testkit.emulators.pipedrive_model import User
from syncd_testkit.emulators.pipedrive_webhooks import basic_auth
from syncd_testkit.loopback import HandlerServer, QuietHandler

ACTIVITIES = "/api/v2/activities"


@dataclass
class Company:
    emu: PipedriveEmulator
    admin: User
    alice: User
    bob: User

    def session(self, user: User) -> requests.Session:
        session = requests.Session()
        session.headers["x-api-token"] = self.emu.api_token(user)
        return session

    def url(self, path: str) -> str:
        return self.emu.base_url + path


def _company(**options: Any) -> Company:
    return _people(PipedriveEmulator(clock=PipedriveClock(START, frozen=True), **options).start())


def _people(emu: PipedriveEmulator) -> Company:
    admin = emu.add_user("Ada Admin", "ada@acme.test", is_admin=True)
    alice = emu.add_user("Alice", "alice@acme.test", timezone_name="Europe/Berlin")
    bob = emu.add_user("Bob", "bob@acme.test", timezone_name="America/New_York")
    return Company(emu, admin, alice, bob)


@pytest.fixture
def company(pipedrive_emulator: PipedriveEmulator) -> Company:  # noqa: F811
    return _people(pipedrive_emulator)


def _create(c: Company, user: User, **fields: Any) -> dict[str, Any]:
    body = {"subject": "Call", "type": "call", "due_date": "2026-03-03", **fields}
    response = c.session(user).post(c.url(ACTIVITIES), json=body)
    assert response.status_code == 200, response.text
    data: dict[str, Any] = response.json()["data"]
    return data


def _seed(c: Company, user: User, count: int) -> set[int]:
    """Activities made in the web app (no API calls, so no burst limit on a frozen clock)."""
    return {c.emu.create_as_user(user, subject=f"A{i}", type="call")["id"]
            for i in range(count)}


def _list(c: Company, user: User, **params: Any) -> requests.Response:
    return c.session(user).get(c.url(ACTIVITIES), params=params)


# ---- reading ---------------------------------------------------------------------------------

def test_paging_follows_opaque_cursors_until_next_cursor_is_null(company: Company) -> None:
    created = _seed(company, company.alice, 230)
    seen: list[int] = []
    cursor: str | None = None
    pages = 0
    while True:
        params: dict[str, Any] = {"limit": 100}
        if cursor:
            params["cursor"] = cursor
        body = _list(company, company.alice, **params).json()
        assert body["success"] is True
        seen += [a["id"] for a in body["data"]]
        pages += 1
        cursor = body["additional_data"]["next_cursor"]
        if cursor is None:
            break
        assert str(max(seen)) not in cursor  # opaque, not the last id in the clear
    assert pages == 3 and len(seen) == 230 and set(seen) == created
    assert seen == sorted(seen)  # default sort: id ascending


def test_limit_defaults_to_100_and_may_not_exceed_500(company: Company) -> None:
    _seed(company, company.alice, 120)
    assert len(_list(company, company.alice).json()["data"]) == 100
    assert len(_list(company, company.alice, limit=500).json()["data"]) == 120
    too_many = _list(company, company.alice, limit=501)
    assert too_many.status_code == 400
    assert too_many.json()["success"] is False and "500" in too_many.json()["error"]


def test_a_forged_cursor_or_one_from_another_sort_is_a_400(company: Company) -> None:
    for i in range(3):
        _create(company, company.alice, subject=f"A{i}")
    cursor = _list(company, company.alice, limit=1).json()["additional_data"]["next_cursor"]
    assert _list(company, company.alice, cursor="not-a-cursor").status_code == 400
    other = _list(company, company.alice, cursor=cursor, sort_by="update_time")
    assert other.status_code == 400
    assert _list(company, company.alice, cursor=cursor, limit=1).status_code == 200


def test_activity_fields_have_the_documented_types(company: Company) -> None:
    person = company.emu.store.add_person("Pat Person", "pat@client.test")
    deal = company.emu.store.add_deal("Big deal")
    item = _create(company, company.alice, due_time="14:30", duration="01:15", busy=True,
                   public_description="Agenda", note="PRIVATE", deal_id=deal,
                   location={"value": "Main St 1, Berlin"},
                   participants=[{"person_id": person, "primary": True}],
                   attendees=[{"email": "guest@client.test", "name": "Guest"}])
    assert isinstance(item["id"], int) and item["owner_id"] == company.alice.id
    assert item["due_date"] == "2026-03-03" and item["due_time"] == "14:30"
    assert item["duration"] == "01:15" and item["busy"] is True and item["done"] is False
    assert item["update_time"] == item["add_time"] == "2026-03-02T09:00:00Z"
    assert item["location"]["value"] == "Main St 1, Berlin"
    assert item["person_id"] == person and item["deal_id"] == deal
    assert item["participants"] == [{"person_id": person, "primary": True}]
    assert item["is_deleted"] is False and item["note"] == "PRIVATE"
    listed = _list(company, company.alice).json()["data"][0]
    assert "attendees" not in listed
    with_attendees = _list(company, company.alice, include_fields="attendees").json()["data"][0]
    assert with_attendees["attendees"][0]["email"] == "guest@client.test"
    one = company.session(company.alice).get(company.url(f"{ACTIVITIES}/{item['id']}"))
    assert one.json()["data"]["subject"] == "Call" and "attendees" not in one.json()["data"]


def test_participants_deals_and_organizations_can_be_read_for_guests_and_links(
        company: Company) -> None:
    store = company.emu.store
    org = store.add_org("Client GmbH")
    pat = store.add_person("Pat Person", "pat@client.test", org_id=org)
    sam = store.add_person("Sam Second", None)
    deal = store.add_deal("Big deal", person_id=pat, org_id=org)
    session = company.session(company.alice)
    people = session.get(company.url("/api/v2/persons"),
                         params={"ids": f"{pat},{sam},999999"}).json()
    assert [(p["id"], p["emails"]) for p in people["data"]] == [
        (pat, [{"value": "pat@client.test", "primary": True, "label": "work"}]), (sam, [])]
    assert people["additional_data"]["next_cursor"] is None
    got = session.get(company.url(f"/api/v2/deals/{deal}")).json()["data"]
    assert (got["title"], got["person_id"], got["org_id"]) == ("Big deal", pat, org)
    assert session.get(company.url(f"/api/v2/organizations/{org}")).json()["data"]["name"] == (
        "Client GmbH")
    assert session.get(company.url("/api/v2/persons/999999")).status_code == 404
    assert [r.cost for r in company.emu.requests] == [10, 1, 1, 1]


@pytest.mark.parametrize("field,value", [
    ("due_time", "9:00"), ("due_time", "24:00"), ("due_date", "2026-02-30"),
    ("duration", "1h"), ("busy", "yes"), ("type", "no_such_type"), ("user_id", 1),
    ("busy_flag", True), ("owner_id", 999_999), ("location", "a string"),
])
def test_invalid_fields_are_a_400_and_nothing_is_created(company: Company, field: str,
                                                          value: Any) -> None:
    body = {"subject": "x", "type": "call", "due_date": "2026-03-03", field: value}
    response = company.session(company.alice).post(company.url(ACTIVITIES), json=body)
    assert response.status_code == 400, response.text
    assert response.json()["success"] is False
    assert _list(company, company.alice).json()["data"] == []


def test_filters_owner_done_and_ids(company: Company) -> None:
    a = _create(company, company.alice)
    b = _create(company, company.alice, done=True)
    c = _create(company, company.admin, owner_id=company.bob.id)
    admin = company.admin

    def ids(**params: Any) -> list[int]:
        return [x["id"] for x in _list(company, admin, **params).json()["data"]]

    assert ids(owner_id=company.alice.id) == [a["id"], b["id"]]
    assert ids(done="true") == [b["id"]] and ids(done="false") == [a["id"], c["id"]]
    assert ids(ids=f"{c['id']},{a['id']},999999") == [a["id"], c["id"]]
    assert _list(company, admin, ids=",".join(str(i) for i in range(1, 102))).status_code == 400
    assert ids(sort_by="id", sort_direction="desc") == [c["id"], b["id"], a["id"]]


def test_a_user_sees_only_what_their_visibility_allows(company: Company) -> None:
    mine = _create(company, company.alice)
    bobs = _create(company, company.bob)
    assert [x["id"] for x in _list(company, company.alice).json()["data"]] == [mine["id"]]
    hidden = company.session(company.alice).get(company.url(f"{ACTIVITIES}/{bobs['id']}"))
    assert hidden.status_code == 404
    assert _list(company, company.alice, ids=str(bobs["id"])).json()["data"] == []
    company.emu.let_see(company.alice, company.bob)
    assert len(_list(company, company.alice).json()["data"]) == 2
    assert len(_list(company, company.admin).json()["data"]) == 2


# ---- updated_since, seconds precision and the high-water mark ---------------------------------

class HighWaterClient:
    """The high-water mark technique for a seconds-precision ``update_time``: ask
    ``updated_since`` = the newest ``update_time`` seen (inclusive), and skip an item only when
    exactly that version (same content) was already taken at the mark's second; an edit within
    the marked second keeps its ``update_time`` but not its content, so it is not skipped."""

    def __init__(self, c: Company, user: User) -> None:
        self.c, self.user = c, user
        self.mark: str | None = None
        self.at_mark: set[str] = set()
        self.received: list[tuple[int, str, str]] = []

    def poll(self) -> list[tuple[int, str, str]]:
        items: list[dict[str, Any]] = []
        cursor = None
        while True:
            params: dict[str, Any] = {"limit": 2, "sort_by": "update_time"}
            if self.mark:
                params["updated_since"] = self.mark
            if cursor:
                params["cursor"] = cursor
            body = _list(self.c, self.user, **params).json()
            items += body["data"]
            cursor = body["additional_data"]["next_cursor"]
            if cursor is None:
                break
        new = [i for i in items if json.dumps(i, sort_keys=True) not in self.at_mark]
        if items:
            newest = max(i["update_time"] for i in items)
            if newest != self.mark:
                self.mark, self.at_mark = newest, set()
            self.at_mark |= {json.dumps(i, sort_keys=True) for i in items
                             if i["update_time"] == newest}
        got = [(i["id"], i["update_time"], i["subject"]) for i in new]
        self.received += got
        return got


def test_updated_since_is_inclusive_so_equal_second_changes_are_neither_missed_nor_repeated(
        company: Company) -> None:
    emu, alice = company.emu, company.alice
    client = HighWaterClient(company, alice)
    t0, t1 = "2026-03-02T09:00:00Z", "2026-03-02T09:00:01Z"
    a = _create(company, alice, subject="a")
    b = _create(company, alice, subject="b")
    assert client.poll() == [(a["id"], t0, "a"), (b["id"], t0, "b")]
    # Both in the marked second: a client asking "after the mark" would never see them.
    c = _create(company, alice, subject="c")
    emu.edit_as_user(alice, a["id"], subject="a2")
    assert _list(company, alice, updated_since=t1).json()["data"] == []
    assert sorted(client.poll()) == [(a["id"], t0, "a2"), (c["id"], t0, "c")]
    assert client.poll() == []  # nothing repeated
    emu.clock.advance(1)
    emu.edit_as_user(alice, b["id"], subject="b2")
    assert client.poll() == [(b["id"], t1, "b2")]
    assert client.poll() == []
    assert len(client.received) == 5


def test_updated_until_is_exclusive_and_times_have_whole_seconds(company: Company) -> None:
    first = _create(company, company.alice)
    company.emu.clock.advance(1.7)
    second = _create(company, company.alice)
    assert second["update_time"] == "2026-03-02T09:00:01Z"
    body = _list(company, company.alice, updated_until="2026-03-02T09:00:01Z").json()
    assert [x["id"] for x in body["data"]] == [first["id"]]
    since = _list(company, company.alice, updated_since="2026-03-02T10:00:01+01:00").json()
    assert [x["id"] for x in since["data"]] == [second["id"]]
    assert _list(company, company.alice, updated_since="yesterday").status_code == 400


# ---- writing ---------------------------------------------------------------------------------

def test_patch_changes_only_the_given_fields_and_bumps_update_time(company: Company) -> None:
    item = _create(company, company.alice, due_time="10:00", duration="00:30", note="secret",
                   public_description="public")
    company.emu.clock.advance(61)
    response = company.session(company.alice).patch(
        company.url(f"{ACTIVITIES}/{item['id']}"), json={"due_time": "11:00", "done": True})
    assert response.status_code == 200
    after = response.json()["data"]
    changed = {k for k in after if after[k] != item.get(k)}
    assert changed == {"due_time", "done", "update_time", "marked_as_done_time"}
    assert after["update_time"] == "2026-03-02T09:01:01Z"
    assert after["note"] == "secret" and after["duration"] == "00:30"


def test_delete_marks_the_activity_deleted_and_the_switch_decides_if_lists_show_it(
        company: Company) -> None:
    keep = _create(company, company.alice)
    gone = _create(company, company.alice)
    company.emu.clock.advance(2)
    response = company.session(company.alice).delete(company.url(f"{ACTIVITIES}/{gone['id']}"))
    assert response.json() == {"success": True, "data": {"id": gone["id"]}}
    assert [x["id"] for x in _list(company, company.alice).json()["data"]] == [keep["id"]]
    assert _list(company, company.alice, ids=str(gone["id"])).json()["data"] == []
    company.emu.list_deleted = True
    listed = _list(company, company.alice, updated_since="2026-03-02T09:00:02Z").json()["data"]
    assert [(x["id"], x["is_deleted"]) for x in listed] == [(gone["id"], True)]
    by_id = _list(company, company.alice, ids=f"{gone['id']},{keep['id']}").json()["data"]
    assert [(x["id"], x["is_deleted"]) for x in by_id] == [(keep["id"], False),
                                                          (gone["id"], True)]
    one = company.session(company.alice).get(company.url(f"{ACTIVITIES}/{gone['id']}"))
    assert one.json()["data"]["is_deleted"] is True
    again = company.session(company.alice).patch(company.url(f"{ACTIVITIES}/{gone['id']}"),
                                                 json={"subject": "back"})
    assert again.status_code == 404
    company.emu.clock.advance(31 * 86400)
    assert company.session(company.alice).get(
        company.url(f"{ACTIVITIES}/{gone['id']}")).status_code == 404


# ---- users, types, auth ----------------------------------------------------------------------

def test_users_and_activity_types_are_served_as_v1(company: Company) -> None:
    session = company.session(company.alice)
    users = session.get(company.url("/v1/users")).json()["data"]
    assert [(u["email"], u["timezone_name"]) for u in users][1:] == [
        ("alice@acme.test", "Europe/Berlin"), ("bob@acme.test", "America/New_York")]
    assert all(isinstance(u["id"], int) and u["active_flag"] is True for u in users)
    me = session.get(company.url("/v1/users/me")).json()["data"]
    assert me["id"] == company.alice.id and me["is_you"] is True and me["company_domain"]
    types = session.get(company.url("/v1/activityTypes")).json()["data"]
    assert {"call", "meeting", "task"} <= {t["key_string"] for t in types}


def test_bad_or_missing_tokens_are_a_401_with_the_documented_body(company: Company) -> None:
    url = company.url(ACTIVITIES)
    for response in (requests.get(url), requests.get(url, headers={"x-api-token": "nope"}),
                     requests.get(url, params={"api_token": "nope"}),
                     requests.get(url, headers={"Authorization": "Bearer nope"})):
        assert response.status_code == 401
        body = response.json()
        assert body["success"] is False and body["error"] == "unauthorized access"
        assert body["errorCode"] == 401
    token = company.emu.api_token(company.alice)
    assert requests.get(url, params={"api_token": token}).status_code == 200
    bearer = company.emu.oauth_token(company.alice)
    assert requests.get(url, headers={"Authorization": f"Bearer {bearer}"}).status_code == 200
    company.emu.revoke(token)
    assert requests.get(url, params={"api_token": token}).status_code == 401
    assert company.emu.budget.used_today == 20  # the two refused calls cost nothing


def test_an_oauth_token_with_read_scope_cannot_write(company: Company) -> None:
    token = company.emu.oauth_token(company.alice, scopes=("activities:read",))
    headers = {"Authorization": f"Bearer {token}"}
    assert requests.get(company.url(ACTIVITIES), headers=headers).status_code == 200
    write = requests.post(company.url(ACTIVITIES), headers=headers, json={"subject": "x"})
    assert write.status_code == 403 and write.json()["success"] is False


def test_oauth_refresh_gives_an_hour_long_token_and_the_api_domain(company: Company) -> None:
    emu = company.emu
    emu.oauth.register_app("app-id", "app-secret")
    refresh = emu.oauth.refresh_token("app-id", company.alice.id, ("activities:full",))
    form = {"grant_type": "refresh_token", "refresh_token": refresh}
    answer = requests.post(emu.token_url, data=form, auth=("app-id", "app-secret"))
    assert answer.status_code == 200
    token = answer.json()
    assert token["token_type"] == "Bearer" and token["expires_in"] == 3599
    assert token["api_domain"] == emu.base_url and token["refresh_token"] == refresh
    headers = {"Authorization": f"Bearer {token['access_token']}"}
    assert requests.get(emu.base_url + ACTIVITIES, headers=headers).status_code == 200
    emu.clock.advance(3599)
    assert requests.get(emu.base_url + ACTIVITIES, headers=headers).status_code == 401
    again = requests.post(emu.token_url, data=form, auth=("app-id", "app-secret")).json()
    headers = {"Authorization": f"Bearer {again['access_token']}"}
    assert requests.get(emu.base_url + ACTIVITIES, headers=headers).status_code == 200
    assert requests.post(emu.token_url, data=form,
                         auth=("app-id", "wrong")).status_code == 401
    emu.oauth.revoke_refresh(refresh)
    refused = requests.post(emu.token_url, data=form, auth=("app-id", "app-secret"))
    assert refused.status_code == 400 and refused.json()["error"] == "invalid_grant"


def test_an_authorization_code_is_exchanged_once(company: Company) -> None:
    emu = company.emu
    emu.oauth.register_app("app-id", "app-secret")
    code = emu.oauth.authorize("app-id", company.bob.id, ("activities:read",))
    form = {"grant_type": "authorization_code", "code": code, "redirect_uri": "https://x/cb"}
    first = requests.post(emu.token_url, data=form, auth=("app-id", "app-secret"))
    assert first.status_code == 200 and first.json()["scope"] == "activities:read"
    me = requests.get(emu.base_url + "/v1/users/me",
                      headers={"Authorization": f"Bearer {first.json()['access_token']}"})
    assert me.json()["data"]["id"] == company.bob.id
    assert requests.post(emu.token_url, data=form,
                         auth=("app-id", "app-secret")).status_code == 400


# ---- budgets ---------------------------------------------------------------------------------

def test_each_call_costs_its_documented_tokens(company: Company) -> None:
    item = _create(company, company.alice)
    session = company.session(company.alice)
    session.get(company.url(ACTIVITIES))
    session.get(company.url(f"{ACTIVITIES}/{item['id']}"))
    session.patch(company.url(f"{ACTIVITIES}/{item['id']}"), json={"subject": "y"})
    session.get(company.url("/v1/users"))
    assert [r.cost for r in company.emu.requests] == [10, 10, 1, 10, 20]
    assert company.emu.budget.used_today == company.emu.tokens_spent() == 51
    assert company.emu.budget.daily_tokens == 30_000 * 2 * 5  # growth plan, five seats


def test_a_spent_daily_budget_refuses_every_call_until_midnight() -> None:
    c = _company(daily_tokens=25)
    try:
        session = c.session(c.alice)
        statuses = [session.get(c.url(ACTIVITIES)).status_code for _ in range(3)]
        assert statuses == [200, 200, 429]
        refused = session.get(c.url("/v1/users"))
        assert refused.status_code == 429 and refused.json()["success"] is False
        assert int(refused.headers["x-ratelimit-reset"]) == 15 * 3600  # until 00:00 UTC
        c.emu.clock.advance(15 * 3600)
        assert session.get(c.url(ACTIVITIES)).status_code == 200
    finally:
        c.emu.stop()


def test_the_burst_window_answers_429_then_the_cdn_403_page_for_a_client_that_keeps_going(
        ) -> None:
    c = _company(burst_limit=5, block_after=3, block_seconds=600)
    try:
        session = c.session(c.alice)
        first = session.get(c.url("/v1/users/me"))
        assert first.headers["x-ratelimit-limit"] == "5"
        assert first.headers["x-ratelimit-remaining"] == "4"
        for _ in range(4):
            assert session.get(c.url("/v1/users/me")).status_code == 200
        limited = session.get(c.url("/v1/users/me"))
        assert limited.status_code == 429
        assert limited.headers["x-ratelimit-remaining"] == "0"
        assert limited.headers["x-ratelimit-reset"] == "2"
        assert limited.json()["error"] == "Request over limit"
        c.emu.clock.advance(2)
        assert session.get(c.url("/v1/users/me")).status_code == 200  # a patient client
        for _ in range(4):
            session.get(c.url("/v1/users/me"))
        statuses = [session.get(c.url("/v1/users/me")).status_code for _ in range(4)]
        assert statuses == [429, 429, 429, 403]
        page = session.get(c.url("/v1/users/me"))
        assert page.status_code == 403 and page.headers["Content-Type"].startswith("text/html")
        assert "<html>" in page.text
        other = c.session(c.bob).get(c.url("/v1/users/me"))
        assert other.status_code == 200  # per token
        c.emu.clock.advance(600)
        assert session.get(c.url("/v1/users/me")).status_code == 200
    finally:
        c.emu.stop()


def test_oauth_tokens_get_the_larger_burst_limit(company: Company) -> None:
    bearer = company.emu.oauth_token(company.alice)
    response = requests.get(company.url("/v1/users/me"),
                            headers={"Authorization": f"Bearer {bearer}"})
    assert response.headers["x-ratelimit-limit"] == "160"
    api = company.session(company.alice).get(company.url("/v1/users/me"))
    assert api.headers["x-ratelimit-limit"] == "40"


# ---- faults ----------------------------------------------------------------------------------

def test_fault_rules_answer_5xx_or_drop_and_can_fail_after_the_write(company: Company) -> None:
    session = company.session(company.alice)
    company.emu.inject(FaultRule(method="GET", path=ACTIVITIES, status=503,
                                 message="Service unavailable"))
    assert session.get(company.url(ACTIVITIES)).status_code == 503
    assert session.get(company.url(ACTIVITIES)).status_code == 200
    company.emu.inject(FaultRule(method="POST", path=ACTIVITIES, drop=True, after=True))
    with pytest.raises(requests.ConnectionError):
        session.post(company.url(ACTIVITIES), json={"subject": "lost answer", "type": "call"})
    assert [x["subject"] for x in _list(company, company.alice).json()["data"]] == [
        "lost answer"]


# ---- webhooks --------------------------------------------------------------------------------

@dataclass
class Receiver:
    """A loopback HTTP endpoint that records each POST and answers the next scripted status
    (200 once the script is used up)."""

    statuses: list[int] = field(default_factory=list)
    received: list[tuple[dict[str, str], dict[str, Any]]] = field(default_factory=list)
    server: HandlerServer | None = None

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"{self.server.origin}/pipedrive"

    def payloads(self) -> list[dict[str, Any]]:
        return [body for _, body in self.received]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    rec = Receiver()

    class Handler(QuietHandler):
        def do_POST(self) -> None:
            body = json.loads(self.read_body())
            rec.received.append(({k.lower(): v for k, v in self.headers.items()}, body))
            status = rec.statuses.pop(0) if rec.statuses else 200
            self.reply(status, headers={"Location": rec.url} if 300 <= status < 400 else None)

        def do_GET(self) -> None:  # what a followed redirect would turn into
            rec.received.append(({k.lower(): v for k, v in self.headers.items()}, {}))
            self.reply(200)

    with HandlerServer(Handler) as rec.server:
        yield rec


def _hook(c: Company, rec: Receiver, user: User | None = None, **extra: Any
          ) -> dict[str, Any]:
    body = {"subscription_url": rec.url, "event_action": "*", "event_object": "activity",
            "version": "2.0", "http_auth_user": "syncd", "http_auth_password": "s3cret", **extra}
    response = c.session(user or c.admin).post(c.url("/v1/webhooks"), json=body)
    assert response.status_code == 201, response.text
    assert response.json()["success"] is True
    data: dict[str, Any] = response.json()["data"]
    return data


def _settle(c: Company) -> None:
    assert c.emu.webhooks.wait_idle()


def test_webhooks_deliver_create_change_delete_with_basic_auth(company: Company,
                                                              receiver: Receiver) -> None:
    hook = _hook(company, receiver)
    assert hook["version"] == "2.0" and hook["event_object"] == "activity"
    listed = company.session(company.admin).get(company.url("/v1/webhooks")).json()["data"]
    assert [h["id"] for h in listed] == [hook["id"]]
    item = _create(company, company.alice, note="private")
    company.emu.clock.advance(1)
    company.session(company.alice).patch(company.url(f"{ACTIVITIES}/{item['id']}"),
                                         json={"subject": "Renamed"})
    company.emu.delete_as_user(company.alice, item["id"])
    _settle(company)
    assert all(h["authorization"] == basic_auth("syncd", "s3cret") for h, _ in receiver.received)
    assert all(h["content-type"] == "application/json" for h, _ in receiver.received)
    create, change, delete = receiver.payloads()
    assert [p["meta"]["action"] for p in (create, change, delete)] == [
        "create", "change", "delete"]
    meta = create["meta"]
    assert meta["entity"] == "activity" and meta["entity_id"] == str(item["id"])
    assert meta["version"] == "2.0" and meta["attempt"] == 1
    assert meta["webhook_id"] == str(hook["id"]) and meta["change_source"] == "api"
    assert meta["user_id"] == str(company.alice.id) and meta["timestamp"].endswith("Z")
    assert create["data"]["id"] == item["id"] and create["previous"] is None
    assert change["data"]["subject"] == "Renamed"
    assert change["previous"] == {"subject": "Call", "update_time": "2026-03-02T09:00:00Z"}
    assert delete["data"] is None and delete["previous"]["id"] == item["id"]
    assert delete["meta"]["change_source"] == "app"
    assert len({p["meta"]["id"] for p in receiver.payloads()}) == 3


def test_a_failed_delivery_is_retried_after_3_and_30_seconds_with_the_same_meta_id(
        company: Company, receiver: Receiver) -> None:
    _hook(company, receiver)
    receiver.statuses = [500, 503]
    _create(company, company.alice)
    _settle(company)
    assert len(receiver.received) == 1
    company.emu.clock.advance(2.9)
    _settle(company)
    assert len(receiver.received) == 1
    company.emu.clock.advance(0.1)
    _settle(company)
    company.emu.clock.advance(30)
    _settle(company)
    payloads = receiver.payloads()
    assert [p["meta"]["attempt"] for p in payloads] == [1, 2, 3]
    assert len({p["meta"]["id"] for p in payloads}) == 1  # the receiver deduplicates by it
    company.emu.clock.advance(150)
    _settle(company)
    assert len(receiver.received) == 3  # delivered: no fourth attempt


def test_after_four_failed_attempts_the_message_is_lost(company: Company,
                                                       receiver: Receiver) -> None:
    _hook(company, receiver)
    receiver.statuses = [500] * 4
    _create(company, company.alice)
    for step in (0, 3, 30, 150, 1000):
        company.emu.clock.advance(step)
        _settle(company)
    assert [p["meta"]["attempt"] for p in receiver.payloads()] == [1, 2, 3, 4]
    assert len(company.emu.webhooks.lost) == 1


def test_duplicate_and_dropped_deliveries_can_be_injected(company: Company,
                                                         receiver: Receiver) -> None:
    _hook(company, receiver)
    company.emu.webhooks.faults.duplicate = 1
    _create(company, company.alice, subject="twice")
    company.emu.webhooks.faults.drop = 1
    _create(company, company.alice, subject="never")
    _create(company, company.alice, subject="once")
    _settle(company)
    subjects = [p["data"]["subject"] for p in receiver.payloads()]
    assert subjects == ["twice", "twice", "once"]
    first, second = receiver.payloads()[:2]
    assert first["meta"]["id"] == second["meta"]["id"]


def test_ten_first_try_failures_ban_the_webhook_for_30_minutes(company: Company,
                                                              receiver: Receiver) -> None:
    hook = _hook(company, receiver)
    receiver.statuses = [500] * 10
    for i in range(10):
        _create(company, company.alice, subject=f"fail {i}")
        _settle(company)
    assert len(receiver.received) == 10
    _create(company, company.alice, subject="while banned")
    company.emu.clock.advance(200)  # no retries of the ten either: lost with the ban
    _settle(company)
    assert len(receiver.received) == 10
    assert len(company.emu.webhooks.lost) == 11
    company.emu.clock.advance(30 * 60)
    _create(company, company.alice, subject="after the ban")
    _settle(company)
    assert receiver.payloads()[-1]["data"]["subject"] == "after the ban"
    assert company.emu.webhooks.get(hook["id"]) is not None


def test_a_webhook_without_a_successful_delivery_for_three_days_is_deleted(
        company: Company, receiver: Receiver) -> None:
    hook = _hook(company, receiver)
    receiver.statuses = [500] * 100
    _create(company, company.alice)
    _settle(company)
    company.emu.clock.advance(2 * 86400)
    _settle(company)
    assert company.emu.webhooks.get(hook["id"]) is not None
    company.emu.clock.advance(86400)
    _settle(company)
    assert company.emu.webhooks.get(hook["id"]) is None
    listed = company.session(company.admin).get(company.url("/v1/webhooks")).json()["data"]
    assert listed == []


def test_a_webhook_delivers_only_what_its_user_may_see(company: Company,
                                                      receiver: Receiver) -> None:
    _hook(company, receiver, user=company.bob)
    _create(company, company.alice, subject="alice's")
    _create(company, company.bob, subject="bob's")
    _settle(company)
    assert [p["data"]["subject"] for p in receiver.payloads()] == ["bob's"]
    forbidden = company.session(company.bob).post(company.url("/v1/webhooks"), json={
        "subscription_url": receiver.url, "event_action": "*", "event_object": "activity",
        "user_id": company.alice.id})
    assert forbidden.status_code == 403


def test_webhook_registration_is_validated(company: Company, receiver: Receiver) -> None:
    company.emu.budget.enabled = False  # 40 calls in one frozen second
    session = company.session(company.admin)
    base = {"subscription_url": receiver.url, "event_action": "change",
            "event_object": "activity", "version": "2.0"}
    for bad in ({"subscription_url": "http://example.com/hook"}, {"event_action": "merge"},
                {"event_object": "calendar"}, {"subscription_url": None}):
        assert session.post(company.url("/v1/webhooks"), json={**base, **bad}).status_code == 400
    for _ in range(40):
        assert session.post(company.url("/v1/webhooks"), json=base).status_code == 201
    assert session.post(company.url("/v1/webhooks"), json=base).status_code == 400
    hook_id = session.get(company.url("/v1/webhooks")).json()["data"][0]["id"]
    assert session.delete(company.url(f"/v1/webhooks/{hook_id}")).json()["success"] is True
    assert session.delete(company.url(f"/v1/webhooks/{hook_id}")).status_code == 404


def test_a_delayed_delivery_goes_out_when_the_clock_reaches_it(company: Company,
                                                              receiver: Receiver) -> None:
    _hook(company, receiver)
    company.emu.webhooks.faults.delay = 60
    _create(company, company.alice)
    company.emu.clock.advance(59)
    _settle(company)
    assert receiver.received == []
    company.emu.clock.advance(1)
    _settle(company)
    assert [p["meta"]["attempt"] for p in receiver.payloads()] == [1]


def test_a_redirect_is_a_failed_delivery_not_followed(company: Company,
                                                     receiver: Receiver) -> None:
    _hook(company, receiver)
    receiver.statuses = [302]
    _create(company, company.alice)
    _settle(company)
    company.emu.clock.advance(3)
    _settle(company)
    assert [p["meta"]["attempt"] for p in receiver.payloads()] == [1, 2]
    assert [d.status for d in company.emu.webhooks.deliveries] == [302, 200]


def test_an_api_delay_outlasts_a_client_timeout(company: Company) -> None:
    company.emu.inject(FaultRule(method="GET", path=ACTIVITIES, delay_seconds=1.0))
    with pytest.raises(requests.Timeout):
        company.session(company.alice).get(company.url(ACTIVITIES), timeout=0.2)
    assert company.session(company.alice).get(company.url(ACTIVITIES)).status_code == 200


def test_webhook_deliveries_cost_no_tokens(company: Company, receiver: Receiver) -> None:
    _hook(company, receiver)
    before = company.emu.budget.used_today
    company.emu.create_as_user(company.alice, subject="from the app", type="call")
    _settle(company)
    assert len(receiver.received) == 1 and company.emu.budget.used_today == before
