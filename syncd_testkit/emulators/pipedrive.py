"""A local Pipedrive emulator (v2 activities, v1 users/activity types/webhooks) over real HTTP.

It serves on a free port of 127.0.0.1 from a background thread::

    with PipedriveEmulator(clock=PipedriveClock(frozen=True)) as emu:
        alice = emu.add_user("Alice", "alice@acme.test")
        session = requests.Session()
        session.headers["x-api-token"] = emu.api_token(alice)
        session.get(emu.base_url + "/api/v2/activities", params={"limit": 500})

Behaviour follows ``/work/shared/reference/providers.md`` section D and
``pipedrive-push-scale.md`` section 1. ``pipedrive_model`` holds the clock, errors and
formats, ``pipedrive_store`` the data and listing rules, ``pipedrive_budget`` the token
budget and burst window, ``pipedrive_webhooks`` webhooks v2, ``pipedrive_oauth`` the OAuth
token endpoint (at :attr:`PipedriveEmulator.token_url`), ``pipedrive_faults`` fault rules.

A request goes: recorded -> fault rule -> authentication (401) -> budget (429, or the CDN's
403 HTML page) -> route. Authentication takes an API token from the ``x-api-token`` header or
the ``api_token`` query parameter, or an OAuth access token from ``Authorization: Bearer``;
OAuth tokens carry scopes (``activities:read``/``activities:full``, ``contacts:read``,
``deals:read``, ``users:read``, ``admin`` for webhooks) [emulator choice: scope names beyond
the activities ones]. Persons, deals and organizations are served read-only and minimal
(``GET /api/v2/persons?ids=``, ``GET /api/v2/{persons,deals,organizations}/{id}``) so a source
can turn participants into guests and links into pages.
"""

from __future__ import annotations

import json
import secrets
import threading
import time
import traceback
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

from ..loopback import QuietHandler, ThreadedHTTPServer, bound
from .pipedrive_budget import Budget, cost_of
from .pipedrive_faults import FaultInjector, FaultRule, RecordedRequest
from .pipedrive_model import (
    JsonDict,
    PipedriveClock,
    PipedriveError,
    User,
    bad_request,
    forbidden,
    unauthorized,
)
from .pipedrive_oauth import OAuthServer
from .pipedrive_store import PipedriveStore
from .pipedrive_webhooks import Webhooks

__all__ = ["FaultRule", "PipedriveClock", "PipedriveEmulator", "RecordedRequest"]

ALL_SCOPES = ("activities:full", "contacts:read", "deals:read", "users:read", "admin")


@dataclass(frozen=True)
class _Credential:
    user_id: int
    oauth: bool
    scopes: frozenset[str] = frozenset()
    expires_at: float | None = None


@dataclass
class _Response:
    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    drop: bool = False

    @classmethod
    def of_json(cls, status: int, payload: Any, headers: dict[str, str] | None = None
                ) -> _Response:
        body = json.dumps(payload, ensure_ascii=False).encode("utf-8")
        return cls(status, body, {"Content-Type": "application/json", **(headers or {})})

    @classmethod
    def of_error(cls, error: PipedriveError) -> _Response:
        return cls.of_json(error.status, error.body(), error.headers)


class PipedriveEmulator(ThreadedHTTPServer):
    """A faithful local Pipedrive company (see the module docstring).

    :param clock: the emulator's clock (``PipedriveClock(frozen=True)`` for deterministic
        tests; advance it to pass a burst window, a retry delay or a day).
    :param plan: ``lite``/``growth``/``premium``/``ultimate`` (budget multiplier and burst).
    :param seats: seats in the daily budget (30,000 x multiplier x seats).
    :param daily_tokens: overrides the computed daily budget.
    :param burst_limit: overrides the plan's requests per token per 2 s.
    :param block_after: 429s in a row before the 403 HTML page [emulator choice: 10].
    :param webhook_timeout: real seconds a receiver has to answer (Pipedrive: 10).
    """

    name = "pipedrive-emulator"

    def __init__(self, *, clock: PipedriveClock | None = None, plan: str = "growth",
                 seats: int = 5, daily_tokens: int | None = None,
                 burst_limit: int | None = None, block_after: int = 10,
                 block_seconds: float = 600.0, webhook_timeout: float = 10.0) -> None:
        self.clock = clock or PipedriveClock()
        self.store = PipedriveStore(self.clock)
        self.budget = Budget(self.clock, plan=plan, seats=seats, daily_tokens=daily_tokens,
                             burst_limit=burst_limit, block_after=block_after,
                             block_seconds=block_seconds)
        self.webhooks = Webhooks(self.store, self.clock, timeout=webhook_timeout,
                                 host=f"{self.store.company_domain}.pipedrive.com")
        self.oauth = OAuthServer(self._issue)
        """The token endpoint at :attr:`token_url`; register apps and grants on it."""
        self._faults = FaultInjector()
        self._credentials: dict[str, _Credential] = {}
        self._api_tokens: dict[int, str] = {}
        self._recorded: list[RecordedRequest] = []
        self._recorded_lock = threading.Lock()

    # ---- lifecycle ----------------------------------------------------------------------------

    def handler(self) -> type[_Handler]:
        return bound(_Handler, emulator=self)

    def on_start(self) -> None:
        self.webhooks.start()
        self.oauth.api_domain = self.base_url

    def on_stop(self) -> None:
        self.webhooks.stop()

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT``: the company's ``api_domain`` (v2 under ``/api/v2``)."""
        return self.origin

    @property
    def token_url(self) -> str:
        """Where ``https://oauth.pipedrive.com/oauth/token`` is served."""
        return self.base_url + "/oauth/token"

    # ---- state open to tests ------------------------------------------------------------------

    def add_user(self, name: str, email: str, *, timezone_name: str = "Europe/Berlin",
                 is_admin: bool = False) -> User:
        """Add a seat; the first admin is the usual webhook owner."""
        return self.store.add_user(name, email, timezone_name=timezone_name,
                                   is_admin=is_admin)

    def let_see(self, viewer: User, owner: User) -> None:
        """Let ``viewer`` see (and edit) ``owner``'s activities (a visibility group)."""
        with self.store.lock:
            viewer.sees.add(owner.id)

    def api_token(self, user: User) -> str:
        """The user's personal API token (one per user, created on first ask)."""
        with self.store.lock:
            token = self._api_tokens.get(user.id)
            if token is None:
                token = secrets.token_hex(20)
                self._api_tokens[user.id] = token
                self._credentials[token] = _Credential(user.id, oauth=False,
                                                       scopes=frozenset(ALL_SCOPES))
            return token

    def oauth_token(self, user: User, scopes: tuple[str, ...] = ALL_SCOPES,
                    expires_in: float = 3599) -> str:
        """A new OAuth access token for ``user`` with ``scopes``; it answers 401 once the
        emulator clock passes ``expires_in`` seconds from now."""
        return self._issue(user.id, scopes, expires_in)

    def _issue(self, user_id: int, scopes: tuple[str, ...], ttl: float) -> str:
        token = "v1u:" + secrets.token_urlsafe(24)
        with self.store.lock:
            self._credentials[token] = _Credential(user_id, oauth=True,
                                                   scopes=frozenset(scopes),
                                                   expires_at=self.clock.now() + ttl)
        return token

    def revoke(self, token: str) -> None:
        """Make ``token`` answer 401 from now on."""
        with self.store.lock:
            self._credentials.pop(token, None)
            for uid, known in list(self._api_tokens.items()):
                if known == token:
                    del self._api_tokens[uid]

    @property
    def list_deleted(self) -> bool:
        """Whether the activity list returns deleted activities (``is_deleted: true``)."""
        return self.store.list_deleted

    @list_deleted.setter
    def list_deleted(self, value: bool) -> None:
        self.store.list_deleted = value

    def create_as_user(self, user: User, **fields: Any) -> JsonDict:
        """Create an activity as ``user`` would in the web app (``change_source: app``)."""
        return self.store.create(user, fields, source="app")

    def edit_as_user(self, user: User, activity_id: int, **fields: Any) -> JsonDict:
        """Edit an activity as ``user`` would in the web app."""
        return self.store.update(user, activity_id, fields, source="app")

    def delete_as_user(self, user: User, activity_id: int) -> None:
        """Delete an activity as ``user`` would in the web app."""
        self.store.delete(user, activity_id, source="app")

    def activity(self, activity_id: int) -> JsonDict:
        """The stored activity with every field (deleted ones too)."""
        return self.store.stored(activity_id)

    @property
    def requests(self) -> list[RecordedRequest]:
        """Every API request so far, in arrival order."""
        with self._recorded_lock:
            return list(self._recorded)

    def clear_requests(self) -> None:
        with self._recorded_lock:
            self._recorded.clear()

    def tokens_spent(self) -> int:
        """Tokens counted against today's budget by the recorded requests."""
        return sum(r.cost for r in self.requests)

    def inject(self, rule: FaultRule) -> None:
        """Add an API fault rule (tried in the order added)."""
        self._faults.add(rule)

    def clear_faults(self) -> None:
        self._faults.clear()

    # ---- request handling ---------------------------------------------------------------------

    def handle(self, method: str, path: str, query: dict[str, list[str]],
               headers: dict[str, str], body: bytes) -> _Response:
        """Answer one request (called from the HTTP handler's thread)."""
        record = RecordedRequest(method, path, query, headers, body)
        with self._recorded_lock:
            self._recorded.append(record)
        response = self._with_faults(record, lambda: self._serve(record))
        record.status = None if response.drop else response.status
        return response

    def _with_faults(self, record: RecordedRequest, run: Any) -> _Response:
        rule = self._faults.take(record.method, record.path)
        if rule is None:
            result: _Response = run()
            return result
        if rule.delay_seconds:
            time.sleep(rule.delay_seconds)
        if rule.after:
            run()
        if rule.drop:
            return _Response(0, drop=True)
        if rule.status is not None:
            return _Response.of_error(PipedriveError(rule.status, rule.message))
        result = run()
        return result

    def _serve(self, record: RecordedRequest) -> _Response:
        if record.path.rstrip("/") == "/oauth/token" and record.method == "POST":
            status, payload = self.oauth.token(record.headers, record.body)
            return _Response.of_json(status, payload)
        credential = self._authenticate(record)
        if credential is None:
            return _Response.of_error(unauthorized())
        token = self._token_of(record)
        refusal, limit_headers = self.budget.admit(token, credential.oauth, record.method,
                                                   record.path)
        if refusal is not None:
            return _Response(refusal.status, refusal.body,
                             {"Content-Type": refusal.content_type, **refusal.headers})
        record.cost = cost_of(record.method, record.path)
        try:
            user = self.store.user(credential.user_id)
            response = self._route(record, user, credential)
        except PipedriveError as exc:
            response = _Response.of_error(exc)
        response.headers.update(limit_headers)
        return response

    @staticmethod
    def _token_of(record: RecordedRequest) -> str:
        header = record.headers.get("x-api-token")
        if header:
            return header
        query = record.param("api_token")
        if query:
            return query
        auth = record.headers.get("authorization", "")
        return auth[7:].strip() if auth[:7].lower() == "bearer " else ""

    def _authenticate(self, record: RecordedRequest) -> _Credential | None:
        token = self._token_of(record)
        with self.store.lock:
            credential = self._credentials.get(token) if token else None
            if credential is None:
                return None
            if credential.expires_at is not None and credential.expires_at <= self.clock.now():
                return None
            if not self.store.users[credential.user_id].active_flag:
                return None
            return credential

    def _route(self, record: RecordedRequest, user: User, cred: _Credential) -> _Response:
        segments = record.path.strip("/").split("/")
        method, store = record.method, self.store
        match segments:
            case ["api", "v2", "activities"] if method == "GET":
                _need(cred, "activities:read")
                data, cursor = store.list_activities(user, record.query)
                return _ok({"success": True, "data": data,
                            "additional_data": {"next_cursor": cursor}})
            case ["api", "v2", "activities"] if method == "POST":
                _need(cred, "activities:full")
                return _ok({"success": True, "data": store.create(user, _body(record))})
            case ["api", "v2", "activities", aid] if aid.isdigit():
                return self._activity(record, user, cred, int(aid))
            case ["api", "v2", "persons"] if method == "GET":
                _need(cred, "contacts:read")
                data, cursor = store.persons_by_ids(record.query)
                return _ok({"success": True, "data": data,
                            "additional_data": {"next_cursor": cursor}})
            case ["api", "v2", ("persons" | "deals" | "organizations") as kind, item_id] if (
                    method == "GET" and item_id.isdigit()):
                _need(cred, "deals:read" if kind == "deals" else "contacts:read")
                return _ok({"success": True, "data": store.linked(kind, int(item_id))})
            case ["v1", "users"] if method == "GET":
                _need(cred, "users:read")
                return _ok({"success": True, "data": store.users_v1(user)})
            case ["v1", "users", "me"] if method == "GET":
                return _ok({"success": True, "data": store.me_v1(user)})
            case ["v1", "users", uid] if method == "GET" and uid.isdigit():
                _need(cred, "users:read")
                return _ok({"success": True, "data": store.user_v1(user, int(uid))})
            case ["v1", "activityTypes"] if method == "GET":
                return _ok({"success": True, "data": store.types_v1()})
            case ["v1", "webhooks"] if method == "GET":
                _need(cred, "admin")
                return _ok({"success": True, "status": "ok",
                            "data": self.webhooks.list(user)})
            case ["v1", "webhooks"] if method == "POST":
                _need(cred, "admin")
                return _Response.of_json(201, {"success": True, "status": "ok",
                                               "data": self.webhooks.create(user,
                                                                            _body(record))})
            case ["v1", "webhooks", wid] if method == "DELETE" and wid.isdigit():
                _need(cred, "admin")
                self.webhooks.delete(user, int(wid))
                return _ok({"success": True, "status": "ok"})
        raise PipedriveError(404, "Unknown method .")

    def _activity(self, record: RecordedRequest, user: User, cred: _Credential, aid: int
                  ) -> _Response:
        store = self.store
        if record.method == "GET":
            _need(cred, "activities:read")
            fields = (record.param("include_fields") or "").split(",")
            return _ok({"success": True, "data": store.get(user, aid, "attendees" in fields)})
        if record.method == "PATCH":
            _need(cred, "activities:full")
            return _ok({"success": True, "data": store.update(user, aid, _body(record))})
        if record.method == "DELETE":
            _need(cred, "activities:full")
            return _ok({"success": True, "data": {"id": store.delete(user, aid)}})
        raise PipedriveError(404, "Unknown method .")


def _need(cred: _Credential, scope: str) -> None:
    """OAuth scope check; ``activities:full`` includes ``activities:read``."""
    if not cred.oauth:
        return
    granted = cred.scopes | ({"activities:read"} if "activities:full" in cred.scopes else set())
    if scope not in granted:
        raise forbidden("Scope and URL mismatch")


def _ok(payload: JsonDict) -> _Response:
    return _Response.of_json(200, payload)


def _body(record: RecordedRequest) -> JsonDict:
    if not record.body.strip():
        return {}
    try:
        payload = json.loads(record.body)
    except ValueError as exc:
        raise bad_request("Request body is not valid JSON") from exc
    if not isinstance(payload, dict):
        raise bad_request("Request body must be a JSON object")
    return payload


class _Handler(QuietHandler):
    emulator: PipedriveEmulator  # set on the per-server subclass

    def do_GET(self) -> None:
        body = self.read_body()
        raw_path, _, raw_query = self.path.partition("?")
        query = parse_qs(raw_query, keep_blank_values=True)
        headers = {k.lower(): v for k, v in self.headers.items()}
        try:
            response = self.emulator.handle(self.command, raw_path, query, headers, body)
        except Exception as exc:  # a bug in the emulator must still produce an answer
            traceback.print_exc()
            response = _Response.of_error(PipedriveError(500, f"Emulator bug: {exc!r}"))
        if response.drop:
            self.close_connection = True
            return
        self.reply(response.status, response.body, response.headers)

    do_POST = do_PUT = do_PATCH = do_DELETE = do_GET

