"""A local Google Calendar API v3 emulator that the real ``google-api-python-client`` can use.

It is a real HTTP server on 127.0.0.1 (a free port), run in a background thread::

    with GoogleEmulator() as emu:
        svc = build("calendar", "v3", http=httplib2.Http(), static_discovery=True,
                    cache_discovery=False, client_options={"api_endpoint": emu.api_endpoint})
        batch = BatchHttpRequest(callback=cb, batch_uri=emu.batch_uri)

(``svc.new_batch_http_request()`` would target www.googleapis.com: the client builds that URI
from the discovery document's ``rootUrl``, not from ``api_endpoint``.)

Behaviour follows ``/work/shared/reference/providers.md`` section A and its "Emulator
must-haves"; ``google_model`` holds validation, ``google_store`` the state and writes,
``google_listing`` the reads, ``google_faults`` fault rules and quotas, ``google_push`` watch
channels. The per-user quota and ``primary`` use
the caller's identity: the ``quotaUser`` parameter, else an ``X-Goog-User`` header, else the
``Authorization`` header (per-user quota only), else ``anonymous``.
"""

from __future__ import annotations

import contextlib
import copy
import json
import threading
import time
import traceback
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from email import policy
from email.message import Message
from email.parser import BytesParser
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from ..loopback import QuietHandler, ThreadedHTTPServer, bound
from . import google_listing as listing
from .google_faults import FaultInjector, FaultRule, SlidingWindowCounter, quota_error
from .google_model import (
    ApiError,
    JsonDict,
    apply_fields,
    http_phrase,
    invalid,
    not_found,
    parse_error,
    parse_fields,
)
from .google_push import PushChannels
from .google_store import GoogleStore, Params, first
from .raw_json import PlantedEvents, splice
from .recording import MailRecord
from .recording import RecordedRequest as BaseRecord

__all__ = ["FaultRule", "GoogleEmulator", "RecordedRequest"]

MAX_BATCH_PARTS = 1000
API_PREFIX = "/calendar/v3/"
BATCH_PATH = "/batch/calendar/v3"
# Outer batch headers that must not leak into the parts (the batch guide: all but Content-*).
_NOT_INHERITED = frozenset({"host", "content-length", "content-type", "connection",
                            "transfer-encoding", "accept-encoding"})


@dataclass
class RecordedRequest(BaseRecord):
    """One request the emulator received (see :class:`.recording.RecordedRequest`).

    Parts of a batch are recorded individually with ``inner=True`` (after the envelope).
    """

    inner: bool = False


@dataclass
class _Response:
    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    drop: bool = False

    @classmethod
    def of_json(cls, status: int, payload: Any, headers: dict[str, str] | None = None
                ) -> _Response:
        body = splice(json.dumps(payload, ensure_ascii=False, indent=1)).encode("utf-8")
        all_headers = {"Content-Type": "application/json; charset=UTF-8", **(headers or {})}
        return cls(status, body, all_headers)

    @classmethod
    def of_error(cls, error: ApiError) -> _Response:
        return cls.of_json(error.status, error.body(), error.headers)


class GoogleEmulator(ThreadedHTTPServer):
    """A faithful local Google Calendar v3 server (see the module docstring).

    :param per_user_quota_per_minute: requests per user per sliding minute before 403
        ``userRateLimitExceeded`` (``None`` = unlimited). Batch parts count one each.
    :param per_project_quota_per_minute: the same for all users together, answering 403
        ``rateLimitExceeded``.
    :param quota_window_seconds: the length of the quotas' sliding window (Google's is a
        minute; a test of pacing uses a shorter one). ``user_quota`` shows what it counted.
    :param sequence_autoincrement: bump ``sequence`` when a write changes a significant field
        (times, summary, location, description, attendees, status, recurrence) and the client
        did not raise it itself. Google does not document when it bumps it.
    :param clock: seconds since the epoch; ``created``/``updated`` and ``updatedMin`` use it.
    """

    name = "google-emulator"

    def __init__(self, *, per_user_quota_per_minute: int | None = None,
                 per_project_quota_per_minute: int | None = None,
                 sequence_autoincrement: bool = False,
                 quota_window_seconds: float = 60.0,
                 clock: Callable[[], float] = time.time) -> None:
        self.store = GoogleStore(sequence_autoincrement=sequence_autoincrement, clock=clock)
        self.batch_conflicts = True
        """Answer 409 ``conflict`` to a batch part writing an event an earlier part wrote."""
        self._faults = FaultInjector()
        self._recorded: list[RecordedRequest] = []
        self._recorded_lock = threading.Lock()
        self._user_quota = (SlidingWindowCounter(per_user_quota_per_minute,
                                                 quota_window_seconds)
                            if per_user_quota_per_minute is not None else None)
        self._project_quota = (SlidingWindowCounter(per_project_quota_per_minute,
                                                    quota_window_seconds)
                               if per_project_quota_per_minute is not None else None)
        self.push = PushChannels(self.store)
        self.planted = PlantedEvents()
        """Events served as planted JSON text (see :mod:`syncd_testkit.emulators.raw_json`)."""

    # ---- lifecycle ----------------------------------------------------------------------------

    def handler(self) -> type[_Handler]:
        return bound(_Handler, emulator=self)

    def on_start(self) -> None:
        self.push.start()

    def on_stop(self) -> None:
        self.push.stop()

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT`` (only while started)."""
        return self.origin

    @property
    def api_endpoint(self) -> str:
        """The value for ``client_options={"api_endpoint": ...}``."""
        return self.base_url + API_PREFIX

    @property
    def batch_uri(self) -> str:
        """The value for ``BatchHttpRequest(batch_uri=...)``."""
        return self.base_url + BATCH_PATH

    # ---- state open to tests ------------------------------------------------------------------

    def add_calendar(self, calendar_id: str, *, owner: str | None = None,
                     time_zone: str = "UTC") -> None:
        """Create a calendar. ``owner`` defaults to ``calendar_id`` when that is an e-mail
        address (a user's primary calendar) and to ``user@example.com`` otherwise.

        Unknown calendars are also created on first use unless ``auto_create_calendars`` is
        turned off, after which they answer 404 ``notFound``.
        """
        self.store.add_calendar(calendar_id, owner=owner, time_zone=time_zone)

    def remove_calendar(self, calendar_id: str) -> None:
        """Delete a calendar (calendarList sync reports it as ``deleted``)."""
        self.store.remove_calendar(calendar_id)

    @property
    def auto_create_calendars(self) -> bool:
        """Whether an unknown calendar id is created on first use (default) or is a 404."""
        return self.store.auto_create_calendars

    @auto_create_calendars.setter
    def auto_create_calendars(self, value: bool) -> None:
        self.store.auto_create_calendars = value

    def events(self, calendar_id: str, *, include_cancelled: bool = False) -> list[JsonDict]:
        """Deep copies of the stored events, in creation order (``primary`` resolves)."""
        return self.store.stored_events(calendar_id, include_cancelled)

    def put_event(self, calendar_id: str, event: JsonDict) -> JsonDict:
        """Create or replace an event as a user editing it in the Google UI would.

        Always counts as a change: new etag and ``updated``, recorded for sync tokens. Sends
        no e-mail. Raises :class:`ApiError` for an invalid event.
        """
        return self.store.put_event(calendar_id, event)

    def delete_event_as_user(self, calendar_id: str, event_id: str) -> None:
        """Delete (cancel) an event as its owner would in the UI; KeyError if unknown."""
        self.store.delete_event_as_user(calendar_id, event_id)

    def expire_sync_tokens(self, calendar_id: str | None = None) -> None:
        """Make every token issued so far for ``calendar_id`` (or all calendars and the
        calendar list) answer 410 ``fullSyncRequired``."""
        self.store.expire_sync_tokens(calendar_id)

    @property
    def short_pages(self) -> bool:
        """When on, list pages alternate between empty and half-full, with nextPageToken."""
        return self.store.short_pages

    @short_pages.setter
    def short_pages(self, value: bool) -> None:
        self.store.short_pages = value

    @property
    def updated_min_horizon(self) -> timedelta:
        """How far back ``updatedMin`` may reach before 410 ``updatedMinTooLongAgo``."""
        return self.store.updated_min_horizon

    @updated_min_horizon.setter
    def updated_min_horizon(self, value: timedelta) -> None:
        self.store.updated_min_horizon = value

    @property
    def requests(self) -> list[RecordedRequest]:
        """A snapshot of every request received so far, in arrival order."""
        with self._recorded_lock:
            return list(self._recorded)

    def clear_requests(self) -> None:
        """Forget the recorded requests."""
        with self._recorded_lock:
            self._recorded.clear()

    @property
    def emails_by_recipient(self) -> Counter[str]:
        """E-mails Google would have sent, per lower-cased recipient address."""
        with self.store.lock:
            return Counter(self.store.emails_by_recipient)

    @property
    def mail_log(self) -> list[MailRecord]:
        """Every e-mail Google would have sent, in order, with its kind
        (invite/update/cancel), event and organizer."""
        with self.store.lock:
            return list(self.store.mail_log)

    @property
    def emails_sent(self) -> int:
        """Total e-mails Google would have sent."""
        return sum(self.emails_by_recipient.values())

    def inject(self, rule: FaultRule) -> None:
        """Add a fault rule; rules are tried in the order they were injected."""
        self._faults.add(rule)

    def clear_faults(self) -> None:
        """Remove every fault rule."""
        self._faults.clear()

    @property
    def user_quota(self) -> SlidingWindowCounter | None:
        """The per-user quota's counter (its ``refused`` and ``peak`` per user), if on."""
        return self._user_quota

    @property
    def project_quota(self) -> SlidingWindowCounter | None:
        """The per-project quota's counter (its ``refused`` and ``peak`` under the key
        ``project``: every caller is one project here), if on."""
        return self._project_quota

    def reset_quotas(self) -> None:
        """Forget the requests counted by the per-user and per-project quotas."""
        for counter in (self._user_quota, self._project_quota):
            if counter is not None:
                counter.reset()

    # ---- request handling ---------------------------------------------------------------------

    def handle(self, req: _Request) -> _Response:
        """Answer one top-level request (the HTTP handler calls this from its thread)."""
        if req.path.rstrip("/") == BATCH_PATH and req.method == "POST":
            record = self._record(req)
            response = self._with_faults(req, lambda: self._batch(req))
            record.status = None if response.drop else response.status
            return response
        return self._dispatch(req)

    def _record(self, req: _Request) -> RecordedRequest:
        record = RecordedRequest(req.method, req.path, copy.deepcopy(req.query),
                                 dict(req.headers), req.body, inner=req.inner)
        with self._recorded_lock:
            self._recorded.append(record)
        return record

    def _dispatch(self, req: _Request, conflict: bool = False) -> _Response:
        """Record, fault-inject, quota-check and route one API call (top level or batch part)."""
        record = self._record(req)

        def run() -> _Response:
            error = self._quota_error(req)
            if error is not None:
                return _Response.of_error(error)
            if conflict:
                # [emulator choice] of message; the reason is the documented one.
                return _Response.of_error(ApiError(
                    409, "conflict", "Another request in this batch modifies the same resource."))
            try:
                return self._route(req)
            except ApiError as exc:
                return _Response.of_error(exc)

        response = self._with_faults(req, run)
        record.status = None if response.drop else response.status
        return response

    def _with_faults(self, req: _Request, run: Callable[[], _Response]) -> _Response:
        rule = self._faults.take(req.method, req.path, req.inner)
        if rule is None:
            return run()
        if rule.apply_then_fail is not None:
            response = run()
            if rule.apply_then_fail == "503":
                return _Response.of_error(FaultRule.backend_error(503).error())
            if rule.apply_then_fail == "drop":
                return _Response(0, drop=True)
            time.sleep(rule.delay_seconds)
            return response
        if rule.delay_seconds:
            time.sleep(rule.delay_seconds)
        if rule.status is not None and rule.body is not None:
            return _Response(rule.status, rule.body.encode("utf-8"),
                             {"Content-Type": "text/html; charset=UTF-8"})
        if rule.status is not None:
            return _Response.of_error(rule.error())
        return run()

    def _quota_error(self, req: _Request) -> ApiError | None:
        if not req.path.startswith(API_PREFIX):
            return None
        if self._user_quota is not None and not self._user_quota.acquire(_quota_user(req)):
            return quota_error(per_user=True)
        if self._project_quota is not None and not self._project_quota.acquire("project"):
            return quota_error(per_user=False)
        return None

    def _route(self, req: _Request) -> _Response:
        if not req.path.startswith(API_PREFIX):
            raise not_found()
        # Split before decoding so an encoded "/" stays inside its segment.
        segments = [unquote(s) for s in req.path[len(API_PREFIX):].rstrip("/").split("/")]
        user = req.headers.get("x-goog-user")
        store, params, method = self.store, req.query, req.method
        match segments:
            case ["calendars", cal, "events"] if method == "GET":
                return self._json(req, listing.list_events(store, cal, user, params))
            case ["calendars", cal, "events"] if method == "POST":
                return self._json(req, store.insert(cal, user, _body(req), params))
            case ["calendars", cal, "events", "import"] if method == "POST":
                return self._json(req, store.import_event(cal, user, _body(req)))
            case ["calendars", cal, "events", "watch"] if method == "POST":
                return self._json(req, self.push.watch(cal, user, _body(req)))
            case ["calendars", cal, "events", event_id]:
                return self._event(req, cal, event_id, user)
            case ["calendars", cal] if method == "GET":
                return self._json(req, listing.calendar_resource(store, cal, user))
            case ["users", "me", "calendarList"] if method == "GET":
                return self._json(req, listing.calendar_list(store, params))
            case ["users", "me", "calendarList", cal] if method == "GET":
                return self._json(req, listing.calendar_list_entry(store, cal, user))
            case ["freeBusy"] if method == "POST":
                return self._json(req, listing.free_busy(store, _body(req), user))
            case ["channels", "stop"] if method == "POST":
                self.push.stop_channel(_body(req))
                return _Response(204)
        raise not_found()

    def _event(self, req: _Request, cal: str, event_id: str, user: str | None) -> _Response:
        store, params = self.store, req.query
        if_match = req.headers.get("if-match")
        if req.method == "GET":
            event = store.get(cal, user, event_id)
            if req.headers.get("if-none-match") == event["etag"]:
                return _Response(304, headers={"ETag": event["etag"]})
            return self._json(req, event)
        if req.method == "PATCH":
            return self._json(req, store.patch(cal, user, event_id, _body(req), params, if_match))
        if req.method == "PUT":
            return self._json(req, store.update(cal, user, event_id, _body(req), params,
                                                if_match))
        if req.method == "DELETE":
            store.delete(cal, user, event_id, params, if_match)
            return _Response(204)
        raise not_found()

    def _json(self, req: _Request, payload: JsonDict) -> _Response:
        selector = first(req.query, "fields")
        if selector:
            payload = apply_fields(payload, parse_fields(selector))
        headers = {"ETag": payload["etag"]} if isinstance(payload.get("etag"), str) else {}
        return _Response.of_json(200, self._planted(payload), headers)

    def _planted(self, payload: JsonDict) -> Any:
        """An event resource, or a listing's items, as planted (if any is)."""
        if payload.get("kind") == "calendar#event":
            return self.planted.placeholder(payload.get("id")) or payload
        if payload.get("kind") == "calendar#events":
            items = [self.planted.placeholder(i.get("id")) or i for i in payload["items"]]
            return {**payload, "items": items}
        return payload

    # ---- batch --------------------------------------------------------------------------------

    def _batch(self, req: _Request) -> _Response:
        content_type = req.headers.get("content-type", "")
        if not content_type.lower().startswith("multipart/mixed"):
            return _Response.of_error(invalid("Batch requests must be multipart/mixed."))
        envelope = BytesParser(policy=policy.compat32).parsebytes(
            b"Content-Type: " + content_type.encode("latin-1") + b"\r\n\r\n" + req.body)
        parts = envelope.get_payload() if envelope.is_multipart() else None
        if not isinstance(parts, list) or not parts:
            return _Response.of_error(invalid("Batch request contains no parts."))
        if len(parts) > MAX_BATCH_PARTS:
            return _Response.of_error(invalid(
                f"Exceeded the maximum calls({MAX_BATCH_PARTS}) in a single batch request."))
        inherited = {k: v for k, v in req.headers.items() if k not in _NOT_INHERITED
                     and not k.startswith("content-")}
        written: set[tuple[str, str]] = set()
        boundary = "batch_" + uuid.uuid4().hex
        chunks: list[bytes] = []
        dropped = False
        for part in parts:
            assert isinstance(part, Message)
            content_id = str(part.get("Content-ID", "")).strip()
            inner = _parse_inner(part, inherited)
            if inner is None:
                response = _Response.of_error(invalid("Malformed batch part."))
            else:
                target = self._write_target(inner)
                conflict = self.batch_conflicts and target is not None and target in written
                response = self._dispatch(inner, conflict=conflict)
                if target is not None and response.status < 300:
                    written.add(target)
            dropped = dropped or response.drop
            chunks.append(_render_part(content_id, response))
        if dropped:
            # Every part ran; the client just never hears about it.
            return _Response(0, drop=True)
        body = b"".join(b"--" + boundary.encode() + b"\r\n" + c + b"\r\n" for c in chunks)
        body += b"--" + boundary.encode() + b"--\r\n"
        return _Response(200, body, {"Content-Type": f"multipart/mixed; boundary={boundary}"})

    def _write_target(self, req: _Request) -> tuple[str, str] | None:
        """The (calendar, event id) a batch part writes, to detect two writes to one event."""
        if req.method == "GET" or not req.path.startswith(API_PREFIX):
            return None
        segments = [unquote(s) for s in req.path[len(API_PREFIX):].rstrip("/").split("/")]
        match segments:
            case ["calendars", cal, "events", event_id] if event_id not in ("import", "watch"):
                return cal, event_id
            case ["calendars", cal, "events"]:
                with contextlib.suppress(ValueError, ApiError):
                    body_id = _body(req).get("id")
                    if isinstance(body_id, str):
                        return cal, body_id
        return None


@dataclass
class _Request:
    """A request as the router sees it (top-level, or one part of a batch)."""

    method: str
    path: str
    query: Params
    headers: dict[str, str]
    body: bytes
    inner: bool = False


def _quota_user(req: _Request) -> str:
    return (first(req.query, "quotaUser") or req.headers.get("x-goog-user")
            or req.headers.get("authorization") or "anonymous")


def _body(req: _Request) -> JsonDict:
    if not req.body.strip():
        return {}
    try:
        payload = json.loads(req.body)
    except ValueError as exc:
        raise parse_error() from exc
    if not isinstance(payload, dict):
        raise parse_error()
    return payload


def _parse_inner(part: Message, inherited: dict[str, str]) -> _Request | None:
    """Parse an ``application/http`` batch part into a request (``None`` when malformed)."""
    payload = part.get_payload()
    if not isinstance(payload, str):
        return None
    # The parser decoded the bytes as ASCII with surrogate escapes; undo that for UTF-8 bodies.
    text = payload.encode("ascii", "surrogateescape").decode("utf-8", "replace")
    text = text.lstrip("\r\n").replace("\r\n", "\n")
    head, _, body = text.partition("\n\n")
    lines = head.split("\n")
    request_line = lines[0].split()
    if len(request_line) != 3 or not request_line[2].startswith("HTTP/"):
        return None
    method, target = request_line[0].upper(), request_line[1]
    headers = dict(inherited)
    name = ""
    for line in lines[1:]:
        if line[:1] in (" ", "\t") and name:
            headers[name] += " " + line.strip()
            continue
        name, sep, value = line.partition(":")
        if not sep:
            return None
        name = name.strip().lower()
        headers[name] = value.strip()
    raw_body = body.encode("utf-8")
    length = headers.get("content-length", "")
    raw_body = raw_body[:int(length)] if length.isdigit() else raw_body.rstrip(b"\r\n")
    split = urlsplit(target)
    return _Request(method, split.path, parse_qs(split.query, keep_blank_values=True),
                    headers, raw_body, inner=True)


def _render_part(content_id: str, response: _Response) -> bytes:
    """One part of the batch response, as Google sends it.

    The ``<response-...>`` Content-ID is what ``BatchHttpRequest._header_to_id`` expects: it
    keeps everything after " + " as the request id.
    """
    cid = content_id[1:-1] if content_id.startswith("<") and content_id.endswith(">") \
        else content_id
    status_line = f"HTTP/1.1 {response.status} {http_phrase(response.status)}"
    headers = [status_line] + [f"{k}: {v}" for k, v in response.headers.items()]
    headers.append(f"Content-Length: {len(response.body)}")
    # The client splits a part's headers from its body at the first CRLF CRLF.
    inner = ("\r\n".join(headers) + "\r\n\r\n").encode("utf-8") + response.body
    outer = f"Content-Type: application/http\r\nContent-ID: <response-{cid}>\r\n\r\n"
    return outer.encode("utf-8") + inner


class _Handler(QuietHandler):
    """Turns HTTP/1.1 requests into :class:`_Request` and writes the answers back."""

    emulator: GoogleEmulator  # set on the per-server subclass

    def do_GET(self) -> None:
        self._serve()

    do_POST = do_PUT = do_PATCH = do_DELETE = do_GET

    def _serve(self) -> None:
        body = self.read_body()
        raw_path, _, raw_query = self.path.partition("?")
        query = parse_qs(raw_query, keep_blank_values=True)
        headers = {k.lower(): v for k, v in self.headers.items()}
        method = self.command
        override = headers.get("x-http-method-override")
        if method == "POST" and override:
            # The python client turns a GET with a very long URL into this form.
            method = override.upper()
            if headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
                for key, values in parse_qs(body.decode(), keep_blank_values=True).items():
                    query.setdefault(key, []).extend(values)
                body = b""
        req = _Request(method, raw_path, query, headers, body)
        try:
            response = self.emulator.handle(req)
        except Exception as exc:  # a bug in the emulator must still produce an answer
            traceback.print_exc()
            response = _Response.of_error(ApiError(500, "backendError", f"Emulator bug: {exc!r}"))
        if response.drop:
            self.close_connection = True
            return
        self.send_response(response.status)
        for key, value in response.headers.items():
            self.send_header(key, value)
        if response.status not in (204, 304):
            self.send_header("Content-Length", str(len(response.body)))
        self.end_headers()
        if response.status not in (204, 304):
            self.wfile.write(response.body)
