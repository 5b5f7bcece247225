"""How the Pipedrive source talks HTTP: one session, size limits, the cost hook, errors.

* **One cost hook**: every request is charged to a :class:`Budget` before it leaves
  (``spend(cost)`` may refuse it) and every answer is shown to it (``answered``), so the
  company's daily token budget and the 2-second burst window are counted in one place.
  :class:`NoBudget` counts nothing; :class:`syncd.crm.pipedrive_budget.PipedriveBudget`
  (the shared ledger) plugs in here. Costs per endpoint are
  :func:`~syncd.crm.pipedrive_budget.cost_of` (the documented figures). A 429 is sent again
  after the wait it asks for, up to :data:`RATE_ATTEMPTS` times (the budget stops sooner
  when the company keeps being refused).
* **Limits**: an answer is read up to :data:`MAX_RESPONSE_BYTES` and parsed by
  :func:`syncd.safe_json.loads` (nesting past the parser's stack is no crash);
  activities over the per-item limit are left out of a page by the source.
* **The note stops here**: every activity parsed from an ``/api/v2/activities`` answer
  loses its ``note`` before this module returns it (:func:`~syncd.crm.pipedrive_map.without_note`);
  only :meth:`PipedriveHttp.notes` (the privacy audit of ``syncd verify``) hands the
  notes out, apart from the answer, as id -> text.
  Nothing here logs a body, a header, a query or a token.
* **Errors**: :func:`error_for` is the one place that turns an answer into a
  :mod:`syncd.errors` type; reads are retried after a 5xx or a lost connection, writes are
  not (a create is found again by the source's import scheme instead).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import urlsplit

import requests

from syncd.crm.pipedrive_budget import cost_of
from syncd.crm.pipedrive_map import notes_of, without_note
from syncd.errors import (
    AccountCooldown,
    AuthFailed,
    EventGone,
    InvalidInput,
    ItemRejected,
    NotFound,
    RateLimited,
    StatusTable,
    SyncdError,
    Transient,
    Unreachable,
    rule,
)
from syncd.http_env import read_environment_once
from syncd.network import network_reason, same_origin_redirects
from syncd.safe_json import loads
from syncd.telemetry import request_answered
from syncd.text import clean_text

log = logging.getLogger("syncd.pipedrive")

#: Bytes one answer may take: 500 activities of a list page with generous descriptions.
MAX_RESPONSE_BYTES = 64 * 1024 * 1024
#: Attempts for a read after a 5xx or a lost connection.
READ_ATTEMPTS = 3
#: Attempts for any call refused with a 429 (it was not carried out, so a write may go again).
RATE_ATTEMPTS = 4
#: The longest pause a 429 may ask for and still be waited out here (seconds); a longer one
#: is the caller's (the account rests instead of a worker sleeping).
MAX_THROTTLE_PAUSE = 10.0
#: Seconds a 403 rate-limit page (Pipedrive's CDN) makes the company wait [inf].
BLOCK_COOLDOWN_SECONDS = 600.0
DEFAULT_TIMEOUT = 30.0

class Budget(Protocol):
    """Where every request's cost is charged and every answer reported (the one hook)."""

    def spend(self, cost: int) -> None:
        """Charge ``cost`` tokens before a request is sent.

        Raises:
            RateLimited: the burst window or the daily budget has no room now.
            AccountCooldown: calls must stop until a reset (the daily budget is spent).
        """

    def answered(self, status: int, headers: Mapping[str, str]) -> None:
        """What the request got: its status (0: no answer) and the answer's headers."""


class NoBudget:
    """A budget that never refuses (until the ledger is configured)."""

    def spend(self, cost: int) -> None:
        return None

    def answered(self, status: int, headers: Mapping[str, str]) -> None:
        return None


class Auth(Protocol):
    """How requests are signed (:mod:`syncd.crm.pipedrive_auth`)."""

    def headers(self) -> dict[str, str]:
        """The headers carrying the credentials."""

    def refresh(self) -> bool:
        """After a 401: get a new credential; True when a retry can succeed."""


@dataclass
class Answer:
    """A successful answer: ``data`` and ``additional_data`` of Pipedrive's envelope."""

    data: Any
    additional: Mapping[str, Any] = field(default_factory=dict)


def _message(body: Any) -> str:
    """Pipedrive's own error text, short and without control characters."""
    text = body.get("error") if isinstance(body, Mapping) else None
    return clean_text(str(text), single_line=True)[:200] if text else ""


#: Pipedrive's rows of the status table every HTTP transport shares. The CDN's rate-limit
#: page after repeated 429s is told apart by being HTML (``"html"`` stands as its code);
#: a JSON 403 is a permission the token's user lacks, which an admin must grant.
PIPEDRIVE_STATUS = StatusTable(rules=(
    rule(403, AccountCooldown, "html"),
    rule(403, AuthFailed),
    rule((400, 422), ItemRejected),
), retry_after=2.0, cooldown=BLOCK_COOLDOWN_SECONDS)


def error_for(status: int, body: Any, *, html: bool = False,
              retry_after: float | None = None, key: Any = None) -> SyncdError:
    """The error for a failed answer: :data:`PIPEDRIVE_STATUS`, in the CRM source's words
    for one activity (``NotFound`` for gone, ``InvalidInput`` for refused).

    Args:
        status: the HTTP status; 0 for no answer.
        body: the parsed JSON body, if any (its error text explains a refusal).
        html: the answer was an HTML page (the CDN's 403 after repeated 429s).
        retry_after: seconds Pipedrive asked to wait, if it said.
        key: the activity concerned, for ``NotFound`` and ``InvalidInput``.
    """
    error = PIPEDRIVE_STATUS.error(status, code="html" if html else None,
                                   retry_after=retry_after)
    if isinstance(error, EventGone):
        return NotFound(kind="activity", key=key)
    if isinstance(error, ItemRejected):
        message = _message(body)
        return InvalidInput(field="activity", value=key,
                            reason=f"Pipedrive refused it (HTTP {status}"
                                   + (f": {message})" if message else ")"))
    return error


def _retry_after(headers: Mapping[str, str]) -> float | None:
    for name in ("retry-after", "x-ratelimit-reset"):
        value = headers.get(name)
        if value is not None:
            try:
                return max(0.0, float(value))
            except ValueError:
                continue
    return None


def pipedrive_session(session: requests.Session | None = None) -> requests.Session:
    """``session`` (or a new one) as every Pipedrive client uses it: redirects followed
    only within their origin (a token grant's body never goes elsewhere), the
    environment's proxies read once per host (:mod:`syncd.http_env`). Wrapping one twice
    changes nothing, so a session handed from one client to another stays as it is."""
    return read_environment_once(same_origin_redirects(session or requests.Session()))


class PipedriveHttp:
    """Requests to one company's API (``base_url``: its ``api_domain``)."""

    def __init__(self, base_url: str | None, auth: Auth, *, budget: Budget | None = None,
                 session: requests.Session | None = None, timeout: float = DEFAULT_TIMEOUT,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        """``base_url`` None: the ``api_domain`` the OAuth token answer names, learnt with
        the first request (so building the source sends nothing)."""
        self.base_url = base_url.rstrip("/") if base_url else None
        self.auth = auth
        self.budget: Budget = budget or NoBudget()
        self.session = pipedrive_session(session)
        self.timeout = timeout
        self.sleep = sleep

    def get(self, path: str, params: Mapping[str, Any] | None = None, *, key: Any = None
            ) -> Answer:
        """A read; retried after a server failure or a lost connection."""
        return self.request("GET", path, params=params, key=key)

    def notes(self, path: str, params: Mapping[str, Any]) -> dict[int, str]:
        """For ``syncd verify``'s privacy audit only: the notes of the activities a list
        answers, as id -> text (:func:`~syncd.crm.pipedrive_map.notes_of`). The answer
        itself comes back without them, as every other answer does."""
        found: dict[int, str] = {}
        self.request("GET", path, params=params, notes=found)
        return found

    def request(self, method: str, path: str, *, params: Mapping[str, Any] | None = None,
                json: Any = None, key: Any = None, notes: dict[int, str] | None = None
                ) -> Answer:
        """One call; raises the :func:`error_for` error when it fails.

        Only reads are sent again after an ambiguous failure; a 401 is retried once after
        the credentials are refreshed (the request was not carried out).
        """
        attempts = READ_ATTEMPTS if method == "GET" else 1
        refreshed = False
        attempt = throttled = 0
        while True:
            attempt += 1
            try:
                return self._once(method, path, params, json, key, notes)
            except RateLimited as exc:
                throttled += 1
                if throttled >= RATE_ATTEMPTS or exc.retry_after > MAX_THROTTLE_PAUSE:
                    raise
                self.sleep(exc.retry_after)
            except AuthFailed:
                if refreshed or not self.auth.refresh():
                    raise
                refreshed = True
            except Transient:
                if attempt >= attempts:
                    raise
                self.sleep(0.25 * 2 ** attempt)

    def _once(self, method: str, path: str, params: Mapping[str, Any] | None, body: Any,
              key: Any, notes: dict[int, str] | None = None) -> Answer:
        headers = self.auth.headers()
        base = self.base_url or getattr(self.auth, "api_domain", None)
        if not base:
            raise AuthFailed(reason="Pipedrive's token answer named no api_domain")
        url = base + path
        self.budget.spend(cost_of(method, path))
        try:
            response = self.session.request(method, url, params=params, json=body,
                                            headers=headers, stream=True,
                                            timeout=self.timeout, allow_redirects=False)
        except requests.RequestException as exc:
            request_answered("pipedrive", 0)
            self.budget.answered(0, {})
            raise Unreachable(reason=network_reason(exc), url=_origin(url), status=0) from None
        request_answered("pipedrive", response.status_code)
        with response:
            answer_headers = {k.lower(): v for k, v in response.headers.items()}
            self.budget.answered(response.status_code, answer_headers)
            raw = _read_capped(response)
        log.debug("pipedrive %s %s -> %s", method, path, response.status_code)
        html = "html" in answer_headers.get("content-type", "")
        parsed: Any = None
        if raw is not None and not html and raw.strip():
            try:
                parsed = loads(raw)
            except ValueError:
                parsed = None
        ok = 200 <= response.status_code < 300
        if not ok or raw is None or not isinstance(parsed, Mapping) or (
                parsed.get("success") is False):
            status = response.status_code if not ok else 502
            raise error_for(status, parsed, html=html, key=key,
                            retry_after=_retry_after(answer_headers))
        data = parsed.get("data")
        if path.startswith("/api/v2/activities"):
            if notes is not None:
                notes.update(notes_of(data))
            data = [without_note(item) for item in data] if isinstance(data, list) \
                else without_note(data)
        additional = parsed.get("additional_data")
        return Answer(data, additional if isinstance(additional, Mapping) else {})


def _read_capped(response: requests.Response, limit: int = MAX_RESPONSE_BYTES
                 ) -> bytes | None:
    """The body, or None when it is (or says it is) larger than ``limit`` bytes."""
    declared = response.headers.get("Content-Length", "").strip()
    if declared.isdigit() and int(declared) > limit:
        return None  # refused before a byte of it is read
    chunks: list[bytes] = []
    total = 0
    for chunk in response.iter_content(1 << 16):
        total += len(chunk)
        if total > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"
