"""A local Microsoft Graph (v1.0) calendar emulator for the sync daemon's tests.

It is a real HTTP server on 127.0.0.1 (``ThreadingHTTPServer`` in a background thread), so a
connector's own ``requests`` session works against it with only the base URL changed::

    with IdentityEmulator() as idp, GraphEmulator(identity=idp) as graph:
        graph.add_mailbox("alice@contoso.test")
        session.get(f"{graph.base_url}/users/alice@contoso.test/events", headers=...)

Behaviour follows providers.md section B and must-haves 13-21; the module docstrings of
``graph_model`` (events), ``graph_delta`` (delta), ``graph_batch`` ($batch), ``graph_query``
($filter/$expand), ``graph_faults`` (throttling, faults) and ``graph_push`` (``/subscriptions``
and change notifications, :attr:`GraphEmulator.push`) describe each part. Request
pipeline, for an outer request and for each ``$batch`` item alike:

1. record (:attr:`GraphEmulator.requests`),
2. authenticate (401 ``InvalidAuthenticationToken``),
3. route and resolve the mailbox (``/me`` is refused for app-only tokens),
4. throttle (concurrency gate and 10-minute budget per mailbox: 429 + ``Retry-After``),
5. fault rules and ``latency_seconds``,
6. perform the operation under the store lock.

Choices where the sources are silent, and deliberate deviations:

* ``transactionId``: a repeat with the same body answers 201 with the original event (the
  status is undocumented). The same id with a different body answers 400
  ``ErrorDuplicateTransactionId`` with the message seen in the wild ("...has already been used
  to create a different event"); some clients also expect 409, so they should accept both.
  Deleting the event frees its transactionId.
* Expired delta tokens: ``mode="410"`` gives 410 ``resyncRequired`` plus ``Location`` (initial
  URL, empty ``$deltatoken``). ``mode="syncStateNotFound"`` defaults to status 410 with code
  ``SyncStateNotFound`` because that is what was observed (microsoft-graph-docs #2350, #7897);
  ``status=`` selects 400/404 instead.
* ``$select``/``$filter``/``$expand``/``$orderby``/``$search``/``$top`` on calendarView delta
  answer 400 ``ErrorInvalidUrlQuery`` (the docs only say "not supported").
* ``$filter`` on lists understands the extended-property ``any()`` form and ``iCalUId``/
  ``subject``/``transactionId`` comparisons; anything else is 400, never silently ignored.
  ``$expand`` of anything but ``singleValueExtendedProperties`` is ignored. ``$orderby`` on
  lists is ignored (creation order; calendarView is ordered by start).
* Recurrence is stored and echoed (``type`` becomes ``seriesMaster``); ``calendarView``,
  its delta and ``getSchedule`` expand daily, weekly and absoluteMonthly series into
  occurrences (:mod:`.graph_series`, :mod:`.graph_delta`), which ``GET /events/{id}``
  reads too (writing one is not emulated: 404).
* ``getSchedule`` (:mod:`.graph_schedule`) answers from the default calendar.
* ``/me/events`` and ``/me/calendarView`` cover the default calendar only.
* A delegated token may only reach its own mailbox (403 ``ErrorAccessDenied`` otherwise):
  sharing is not modelled.
* The all-day "must be at midnight" message is invented (the 24-hour one is the real one).
  An unknown zone (in a body or in ``Prefer: outlook.timezone``) is 400
  ``TimeZoneNotSupportedException``. A ``dateTime`` carrying an offset is converted.
* ``start`` and ``end`` are required on create; ``originalStartTimeZone``/
  ``originalEndTimeZone`` keep the create-time zone even when a PATCH moves the event.
* Deleting removes the event (Deleted Items is not modelled) and leaves a delta tombstone.
* Ids: either id form is accepted in URLs whatever the ``Prefer`` header says; the form in
  responses follows ``Prefer: IdType="ImmutableId"``.
* Mail counting only covers writes made through the API, not the ``*_as_user`` hooks; an
  update mail goes out only if a meeting field really changed; removed attendees get a
  cancellation; the organizer never mails himself.
* Throttling counts per mailbox (as the brief and older docs say; the newest doc says per
  app). The concurrency 429 message is the observed one; the 10-minute one is invented.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..loopback import QuietHandler, ThreadedHTTPServer, bound
from .graph_batch import run_batch
from .graph_faults import (
    FaultRule,
    MailboxGate,
    RecordedRequest,
    ThrottleDecision,
)
from .graph_model import GraphError, RenderOptions, render_event
from .graph_ops import RequestContext, perform
from .graph_push import GraphPush
from .graph_query import parse_expand, parse_prefer
from .graph_routes import Route, parse_route
from .graph_store import GraphStore, Mailbox, MailRecord
from .graph_tz import UnknownTimeZone, resolve_zone
from .graph_wire import (
    JSON_CONTENT_TYPE,
    ApiRequest,
    ApiResponse,
    error_response,
)
from .raw_json import PlantedEvents, verbatim

if TYPE_CHECKING:
    from syncd_testkit.emulators.identity import IdentityEmulator

__all__ = ["FaultRule", "GraphEmulator", "MailRecord", "RecordedRequest"]

_WWW_AUTHENTICATE = (
    'Bearer realm="", authorization_uri="https://login.microsoftonline.com/common/oauth2/'
    'authorize", client_id="00000003-0000-0000-c000-000000000000"'
)


class GraphEmulator(ThreadedHTTPServer):
    """Microsoft Graph calendar emulator. Start it with :meth:`start` or ``with``.

    Constructor arguments become attributes of the same name and may be changed while the
    server runs. Further switches:

    * ``latency_seconds`` (0.0): sleep per request while holding the mailbox's concurrency slot,
      so concurrent requests overlap observably.
    * ``empty_pages`` (False): every other delta page is empty but carries a nextLink.
    * ``replay_duplicates`` (False): each round started from a deltaLink repeats the newest
      change already delivered (Graph may replay changes).
    * ``default_page_size`` (10): page size without ``$top``/``Prefer: odata.maxpagesize``.
    * ``concurrency_retry_after`` (1): ``Retry-After`` seconds on a MailboxConcurrency 429.
    * ``requests_window_seconds`` (600): the window of ``requests_per_10_min_per_mailbox``
      (a test of pacing shortens it); ``gate.refused_in_window`` counts its 429s.
    * ``requests_per_second_per_app`` (None: not refused): Graph's global 2,000 requests a
      second per app, every mailbox together (429 past it); ``gate.app_peak`` is the most
      requests admitted in any one second, ``gate.refused_for_app`` its 429s.
    * ``clock``: monotonic seconds for the 10-minute window and the app's second (replace
      to simulate time).
    * ``internal_errors``: exceptions from emulator bugs (answered 500 ``UnknownError``).
    * ``schedule_refused`` (False): getSchedule answers 403 ``ErrorAccessDenied``, as for a
      personal Microsoft account, where the permissions table of calendar-getschedule says
      "Not supported" (the status is this emulator's choice: what personal mailboxes are
      seen to answer other calls they do not support, mpalermiti/outlook-mcp#29).

    Without an identity emulator any ``Authorization: Bearer <anything>`` is accepted and
    ``/me`` means the first mailbox added.
    """

    name = "graph-emulator"

    def __init__(
        self,
        *,
        identity: IdentityEmulator | None = None,
        max_concurrent_per_mailbox: int = 4,
        requests_per_10_min_per_mailbox: int = 10_000,
        reject_me_for_app_tokens: bool = True,
    ) -> None:
        """Create a stopped emulator with no mailboxes."""
        self.identity = identity
        self.max_concurrent_per_mailbox = max_concurrent_per_mailbox
        self.requests_per_10_min_per_mailbox = requests_per_10_min_per_mailbox
        self.reject_me_for_app_tokens = reject_me_for_app_tokens
        self.latency_seconds: float = 0.0
        self.empty_pages: bool = False
        self.replay_duplicates: bool = False
        self.default_page_size: int = 10
        self.schedule_refused: bool = False
        self.concurrency_retry_after: int = 1
        self.requests_window_seconds: float = MailboxGate.WINDOW_SECONDS
        self.requests_per_second_per_app: int | None = None
        self.clock: Callable[[], float] = time.monotonic
        self.store = GraphStore()
        self.planted = PlantedEvents()
        """Events served as planted JSON text, by immutable id (:mod:`.raw_json`)."""
        self.requests: list[RecordedRequest] = []
        self.push = GraphPush(self.store, lambda: self.base_url)
        """Subscriptions and change notifications (:mod:`.graph_push`)."""
        self.internal_errors: list[Exception] = []
        self.base_url: str = ""
        self._faults: list[FaultRule] = []
        self._lock = threading.Lock()
        self.gate = MailboxGate(
            max_concurrent=lambda: self.max_concurrent_per_mailbox,
            per_window=lambda: self.requests_per_10_min_per_mailbox,
            clock=lambda: self.clock(),
            concurrency_retry_after=lambda: self.concurrency_retry_after,
            window=lambda: self.requests_window_seconds,
            per_second_per_app=lambda: self.requests_per_second_per_app,
        )

    # -- lifecycle ---------------------------------------------------------------------------

    def handler(self) -> type[_GraphHandler]:
        return bound(_GraphHandler, emulator=self)

    def on_start(self) -> None:
        self.base_url = f"{self.origin}/v1.0"
        self.push.start()

    def on_stop(self) -> None:
        self.push.stop()

    # -- test hooks: data --------------------------------------------------------------------

    def add_mailbox(self, user: str, *, user_id: str | None = None) -> None:
        """Create a mailbox for ``user`` (UPN/e-mail) with a default calendar."""
        self.store.add_mailbox(user, user_id)

    def add_calendar(self, user: str, name: str) -> str:
        """Create a secondary calendar; returns its id."""
        return self.store.add_calendar(self._mailbox(user), name).id

    def default_calendar_id(self, user: str) -> str:
        """The id of ``user``'s default calendar."""
        return self._mailbox(user).default_calendar_id

    def events(
        self, user: str, *, calendar_id: str | None = None, immutable_ids: bool = True
    ) -> list[dict[str, Any]]:
        """Deep copies of a calendar's events as Graph renders them (UTC, HTML body).

        Unlike Graph, extended properties are always included, for inspection. ``id`` is the
        immutable id unless ``immutable_ids=False``.
        """
        with self.store.lock:
            mbx = self._mailbox(user)
            cal = mbx.calendar(calendar_id)
            opts = RenderOptions(immutable_ids=immutable_ids, expand_ext_ids=())
            return [render_event(ev, opts) for ev in mbx.events_in(cal.id)]

    def get_event(self, user: str, event_id: str, *, immutable_ids: bool = True) -> dict[str, Any]:
        """One event (by regular or immutable id), rendered like :meth:`events`."""
        with self.store.lock:
            ev = self.store.find_event(self._mailbox(user), event_id)
            return render_event(ev, RenderOptions(immutable_ids=immutable_ids, expand_ext_ids=()))

    def put_event(self, user: str, event_id: str, changes: dict[str, Any]) -> dict[str, Any]:
        """Apply a user's edit made in Outlook (Graph-shaped ``changes``).

        Like any write it gets a new changeKey/etag and ``lastModifiedDateTime`` and appears in
        delta; no invitation mail is counted (the user, not the daemon, made the change).
        """
        with self.store.lock:
            mbx = self._mailbox(user)
            ev = self.store.update_event(
                mbx, self.store.find_event(mbx, event_id), changes, via_api=False
            )
            return render_event(ev, RenderOptions(immutable_ids=True, expand_ext_ids=()))

    def create_event_as_user(
        self, user: str, event: dict[str, Any], *, calendar_id: str | None = None
    ) -> dict[str, Any]:
        """Create an event as the user would in Outlook (no invitation counted)."""
        with self.store.lock:
            ev, _ = self.store.create_event(self._mailbox(user), calendar_id, event, via_api=False)
            return render_event(ev, RenderOptions(immutable_ids=True, expand_ext_ids=()))

    def set_calendar_writable(self, user: str, writable: bool, *,
                              calendar_id: str | None = None) -> None:
        """Share a calendar read-only (``canEdit`` false, writes 403) or writable again."""
        with self.store.lock:
            self._mailbox(user).calendar(calendar_id).can_edit = writable

    def delete_event_as_user(self, user: str, event_id: str) -> None:
        """Delete an event as the user would in Outlook (tombstone for delta, no mail counted)."""
        with self.store.lock:
            mbx = self._mailbox(user)
            self.store.delete_event(mbx, self.store.find_event(mbx, event_id), via_api=False)

    def move_event(self, user: str, event_id: str, dest_calendar: str) -> dict[str, Any]:
        """Move an event to another calendar of the mailbox.

        The regular id changes (the old one then gives 404); the immutable id stays.
        Returns:
            The moved event with both ids: ``id`` (immutable) and ``regularId``.
        """
        with self.store.lock:
            mbx = self._mailbox(user)
            ev = self.store.move_event(mbx, self.store.find_event(mbx, event_id), dest_calendar)
            out = render_event(ev, RenderOptions(immutable_ids=True, expand_ext_ids=()))
            out["regularId"] = ev.regular_id
            return out

    def set_attendee_response(
        self, user: str, event_id: str, attendee: str, response: str
    ) -> dict[str, Any]:
        """Record an attendee's reply (``accepted``, ``declined``, ``tentativelyAccepted``)."""
        with self.store.lock:
            mbx = self._mailbox(user)
            ev = self.store.find_event(mbx, event_id)
            self.store.set_attendee_response(mbx, ev, attendee, response)
            return render_event(ev, RenderOptions(immutable_ids=True, expand_ext_ids=()))

    def expire_delta_tokens(
        self, user: str | None = None, *, mode: str = "410", status: int = 410
    ) -> None:
        """Invalidate every delta/skip token issued so far (for one mailbox or all).

        ``mode="410"``: 410 Gone with a ``Location`` header holding the initial URL (empty
        ``$deltatoken``). ``mode="syncStateNotFound"``: an error with code
        ``SyncStateNotFound`` and status ``status`` (410, as observed in
        microsoft-graph-docs #2350; pass 400/404 to test other shapes).
        """
        if mode not in ("410", "syncStateNotFound"):
            raise ValueError(f"unknown mode {mode!r}")
        with self.store.lock:
            targets = [self._mailbox(user)] if user else list(self.store.mailboxes.values())
            for mbx in targets:
                mbx.delta_epoch += 1
                mbx.delta_expiry_mode = mode
                mbx.delta_expiry_status = 410 if mode == "410" else status

    # -- test hooks: observation and faults -------------------------------------------------

    @property
    def invitations_sent(self) -> int:
        """Meeting mails Exchange would have sent (invites, updates and cancellations)."""
        return len(self.store.mail_log)

    @property
    def invitations_by_recipient(self) -> Counter[str]:
        """Mails per attendee address (lower-case)."""
        return self.store.invitations_by_recipient

    @property
    def mail_log(self) -> list[MailRecord]:
        """Every meeting mail, in order, with its kind (invite/update/cancel)."""
        return self.store.mail_log

    @property
    def max_in_flight_seen(self) -> dict[str, int]:
        """Per mailbox (lower-case UPN), the most concurrent requests observed."""
        return self.gate.max_in_flight_seen

    def inject(self, rule: FaultRule) -> None:
        """Add a fault rule; rules are tried in the order they were added."""
        with self._lock:
            self._faults.append(rule)

    def clear_faults(self) -> None:
        """Remove all fault rules."""
        with self._lock:
            self._faults.clear()

    def _mailbox(self, user: str) -> Mailbox:
        mbx = self.store.find_mailbox(user)
        if mbx is None:
            raise KeyError(f"no mailbox {user!r}; call add_mailbox first")
        return mbx

    # -- request pipeline -------------------------------------------------------------------

    def handle(self, req: ApiRequest) -> ApiResponse:
        """Run one outer HTTP request through the pipeline."""
        if req.path.strip("/").lower() in ("$batch", "%24batch"):
            self._record(req)
            try:
                self._authenticate(req)
                if req.method != "POST":
                    raise GraphError(405, "MethodNotAllowed", "$batch only accepts POST.")
            except GraphError as err:
                return self.finish(req, self._error(req, err))
            return self.finish(req, run_batch(self, req))
        if req.path.strip("/").split("/")[0].lower() == "subscriptions":
            return self.finish(req, self._subscriptions(req))
        ctx, mailbox, early = self.admit(req)
        if early is not None:
            return self.finish(req, early)
        assert ctx is not None, "admit() returns either a context or an error"
        if mailbox is not None:
            decision = self.gate.enter(mailbox)
            if decision is not None:
                return self.finish(req, self.throttled(req, decision))
        try:
            return self.finish(req, self.run_admitted(req, ctx))
        finally:
            if mailbox is not None:
                self.gate.leave(mailbox)

    def _subscriptions(self, req: ApiRequest) -> ApiResponse:
        """``/subscriptions``: outside the store lock, as creating one waits for the
        receiver's handshake. Fault rules apply (``apply_then_fail`` is not honoured)."""
        self._record(req)
        try:
            principal = self._authenticate(req)
            rule = self._take_fault(req, "")
            if rule is not None and rule.delay_seconds:
                time.sleep(rule.delay_seconds)
            if rule is not None and (rule.status is not None or rule.drop_connection):
                return self._fault_response(req, rule)
            return self.push.handle(req, lambda route: self._resolve_mailbox(route, principal))
        except GraphError as err:
            return self._error(req, err)

    def _record(self, req: ApiRequest) -> RecordedRequest:
        prefer = parse_prefer([req.headers.get("prefer", "")])
        rec = RecordedRequest(
            method=req.method,
            url=req.url,
            path=req.path,
            headers=dict(req.raw_headers),
            body=req.body,
            in_batch=req.in_batch,
            batch_item_id=req.batch_item_id,
            immutable_id_requested=prefer.get("idtype", "").lower() == "immutableid",
        )
        req.record = rec
        with self._lock:
            self.requests.append(rec)
        return rec

    def admit(
        self, req: ApiRequest
    ) -> tuple[RequestContext | None, str | None, ApiResponse | None]:
        """Record, authenticate, route and build the rendering context of a request.

        Returns:
            ``(context, mailbox key, None)`` or ``(None, None, error response)``.
        """
        rec = self._record(req)
        try:
            principal = self._authenticate(req)
            route = parse_route(req.path)
            mbx = self._resolve_mailbox(route, principal)
            rec.mailbox = mbx.upn
            ctx = self._context(req, route, mbx)
        except GraphError as err:
            return None, None, self._error(req, err)
        return ctx, mbx.upn.lower(), None

    def run_admitted(self, req: ApiRequest, ctx: RequestContext) -> ApiResponse:
        """Apply fault rules and latency, then perform the request."""
        rule = self._take_fault(req, ctx.mailbox.upn)
        if rule is not None:
            if rule.delay_seconds:
                time.sleep(rule.delay_seconds)
            fails = rule.status is not None or rule.drop_connection
            if fails and not rule.apply_then_fail:
                return self._fault_response(req, rule)
        if self.latency_seconds:
            time.sleep(self.latency_seconds)
        try:
            with self.store.lock:
                resp = perform(self, req, ctx)
        except GraphError as err:
            resp = self._error(req, err)
        if (
            rule is not None
            and rule.apply_then_fail
            and (rule.status is not None or rule.drop_connection)
        ):
            return self._fault_response(req, rule)
        return resp

    def throttled(self, req: ApiRequest, decision: ThrottleDecision) -> ApiResponse:
        """429 ``ApplicationThrottled`` with ``Retry-After``."""
        return error_response(
            req,
            429,
            "ApplicationThrottled",
            decision.message,
            {"Retry-After": str(decision.retry_after)},
        )

    def finish(self, req: ApiRequest, resp: ApiResponse) -> ApiResponse:
        """Stamp request ids on the response and record its status."""
        if not resp.drop_connection:
            request_id = resp.headers.get("request-id") or str(uuid.uuid4())
            resp.headers.setdefault("request-id", request_id)
            resp.headers.setdefault(
                "client-request-id", req.headers.get("client-request-id", request_id)
            )
        if req.record is not None:
            req.record.status = None if resp.drop_connection else resp.status
        return resp

    def _error(self, req: ApiRequest, err: GraphError) -> ApiResponse:
        headers = dict(err.headers)
        if err.status == 401:
            headers["WWW-Authenticate"] = _WWW_AUTHENTICATE
        return error_response(req, err.status, err.code, err.message, headers)

    def _fault_response(self, req: ApiRequest, rule: FaultRule) -> ApiResponse:
        if rule.drop_connection:
            return ApiResponse(0, drop_connection=True)
        headers = {} if rule.retry_after is None else {"Retry-After": str(rule.retry_after)}
        if rule.body is not None:
            # Alone, the text is the reply's bytes; in a $batch it can only be a JSON string.
            body = rule.body if req.in_batch else verbatim(rule.body)
            return ApiResponse(rule.status or 503, body, {"Content-Type": "text/html", **headers})
        return error_response(req, rule.status or 503, rule.code, rule.message, headers)

    def _take_fault(self, req: ApiRequest, mailbox: str) -> FaultRule | None:
        with self._lock:
            for rule in self._faults:
                if rule.count is not None and rule.fired >= rule.count + rule.skip:
                    continue
                if not rule.matches(req.method, req.path, mailbox, req.in_batch):
                    continue
                rule.fired += 1
                if rule.fired <= rule.skip:
                    return None
                return rule
            return None

    def _authenticate(self, req: ApiRequest) -> tuple[str, str | None]:
        header = req.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise GraphError(401, "InvalidAuthenticationToken", "Access token is empty.")
        if self.identity is None:
            return ("any", None)
        kind = self.identity.token_kind(token.strip())
        if kind is None:
            raise GraphError(
                401,
                "InvalidAuthenticationToken",
                "Access token validation failure: the token is unknown or has expired.",
            )
        return kind

    def _resolve_mailbox(self, route: Route, principal: tuple[str, str | None]) -> Mailbox:
        kind, user = principal
        if route.mailbox_ref is None:
            if kind == "app" and self.reject_me_for_app_tokens:
                raise GraphError(
                    400,
                    "BadRequest",
                    "/me request is only valid with delegated authentication flow.",
                )
            mbx = (
                self.store.find_mailbox(user)
                if kind == "delegated" and user
                else (self.store.first_mailbox())
            )
            if mbx is None:
                raise GraphError(
                    404,
                    "MailboxNotEnabledForRESTAPI",
                    "The mailbox is either inactive, soft-deleted, or is hosted on-premise.",
                )
            return mbx
        mbx = self.store.find_mailbox(route.mailbox_ref)
        if mbx is None:
            raise GraphError(
                404, "ErrorInvalidUser", f"The requested user '{route.mailbox_ref}' is invalid."
            )
        if kind == "delegated" and user is not None and mbx.upn.lower() != user.lower():
            # A delegated token reaches other mailboxes only through sharing, which the
            # emulator does not model.
            raise GraphError(
                403, "ErrorAccessDenied", "Access is denied. Check credentials and try again."
            )
        return mbx

    def _context(self, req: ApiRequest, route: Route, mbx: Mailbox) -> RequestContext:
        prefer = parse_prefer([req.headers.get("prefer", "")])
        applied: list[str] = []
        zone = prefer.get("outlook.timezone")
        if zone is not None:
            try:
                resolve_zone(zone)
            except UnknownTimeZone as exc:
                raise GraphError(
                    400,
                    "TimeZoneNotSupportedException",
                    "A valid TimeZone value must be specified. The following TimeZone value is "
                    f"not supported: '{zone}'.",
                ) from exc
            applied.append(f'outlook.timezone="{zone}"')
        text_body = prefer.get("outlook.body-content-type", "").lower() == "text"
        if text_body:
            applied.append('outlook.body-content-type="text"')
        immutable = prefer.get("idtype", "").lower() == "immutableid"
        if immutable:
            applied.append('IdType="ImmutableId"')
        page_size: int | None = None
        raw_size = prefer.get("odata.maxpagesize")
        if raw_size and raw_size.isdigit() and int(raw_size) > 0:
            page_size = int(raw_size)
            applied.append(f"odata.maxpagesize={page_size}")
        select = req.q("$select")
        opts = RenderOptions(
            out_zone=zone or "UTC",
            text_body=text_body,
            immutable_ids=immutable,
            expand_ext_ids=parse_expand(req.q("$expand")),
            select=frozenset(s.strip() for s in select.split(",")) if select else None,
        )
        return RequestContext(route, mbx, opts, page_size, tuple(applied))


class _GraphHandler(QuietHandler):
    emulator: GraphEmulator  # set on the per-server subclass
    timeout = 60

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        headers: dict[str, str] = {}
        for name, value in self.headers.items():
            headers[name] = f"{headers[name]}, {value}" if name in headers else value
        emu = self.emulator
        req = ApiRequest.from_target(self.command, self.path, headers, body, base_url=emu.base_url)
        if not self.path.lower().startswith("/v1.0/"):
            resp = error_response(req, 400, "BadRequest", "Invalid version: only v1.0 is served.")
        else:
            try:
                resp = emu.handle(req)
            except Exception as exc:
                # An emulator bug: answer 500 (clients treat it as transient) and keep the
                # exception so a test can assert that none happened.
                emu.internal_errors.append(exc)
                resp = error_response(req, 500, "UnknownError", f"Graph emulator bug: {exc!r}")
        if resp.drop_connection:
            # Close without a response: the client sees a reset/RemoteDisconnected.
            self.close_connection = True
            with contextlib.suppress(OSError):
                self.connection.shutdown(socket.SHUT_RDWR)
            return
        data = resp.encoded()
        try:
            self.send_response(resp.status)
            for name, value in resp.headers.items():
                self.send_header(name, value)
            if resp.body is not None and not any(k.lower() == "content-type" for k in resp.headers):
                self.send_header("Content-Type", JSON_CONTENT_TYPE)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if data:
                self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            # The client gave up (e.g. its read timeout fired during a delay fault); the write
            # has happened regardless, which is exactly the case such tests provoke.
            self.close_connection = True

    do_GET = do_POST = do_PATCH = do_DELETE = do_PUT = _serve
