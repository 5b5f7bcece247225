"""State of the Google Calendar v3 emulator: calendars, events, writes, e-mails.

Every public method takes the store lock, so HTTP handler threads and test hooks can call
them concurrently. Methods raise :class:`~syncd_testkit.emulators.google_model.ApiError`; the HTTP
layer (``google``) turns those into responses. Reading (``events.list``, calendarList,
freeBusy) lives in ``google_listing``.

Each calendar numbers its changes (``change_seq``) and every event remembers the number of
its last change (``event_seq``); sync tokens are built on these numbers.
"""

from __future__ import annotations

import base64
import copy
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from .google_model import (
    SIGNIFICANT_FIELDS,
    ApiError,
    JsonDict,
    client_content,
    format_timestamp,
    invalid,
    merge_patch,
    not_found,
    required,
    validate_content,
    validate_event_id,
    zone,
)
from .recording import MailRecord

Params = dict[str, list[str]]

DEFAULT_USER = "user@example.com"
SEND_UPDATES = ("all", "externalOnly", "none")


def first(params: Params, name: str) -> str | None:
    """First value of a query parameter, or ``None``."""
    values = params.get(name)
    return values[0] if values else None


def precondition_failed() -> ApiError:
    """412 for a stale ``If-Match`` (reason per other Google APIs; unconfirmed for Calendar)."""
    return ApiError(412, "conditionNotMet", "Precondition Failed", location_type="header",
                    location="If-Match")


@dataclass
class StoredCalendar:
    """One calendar with its events and change log."""

    id: str
    owner: str
    time_zone: str
    summary: str
    order: int
    tz: ZoneInfo
    updated: str
    etag: str
    list_seq: int
    events: dict[str, JsonDict] = field(default_factory=dict)
    event_seq: dict[str, int] = field(default_factory=dict)
    event_order: dict[str, int] = field(default_factory=dict)
    change_seq: int = 0
    token_generation: int = 0
    deleted: bool = False

    @property
    def primary(self) -> bool:
        """A user's primary calendar has the user's e-mail address as its id."""
        return self.id.lower() == self.owner.lower()


class GoogleStore:
    """Calendars and events of one emulator instance (see the module docstring)."""

    def __init__(self, *, sequence_autoincrement: bool = False,
                 clock: Callable[[], float] = time.time) -> None:
        self.lock = threading.RLock()
        self.calendars: dict[str, StoredCalendar] = {}
        self.sequence_autoincrement = sequence_autoincrement
        self.auto_create_calendars = True
        self.short_pages = False
        self.updated_min_horizon = timedelta(days=28)
        self.emails_by_recipient: Counter[str] = Counter()
        self.mail_log: list[MailRecord] = []  # the same e-mails, in order, with their kind
        self._clock = clock
        self._last_us = 0
        self._order = 0
        # calendarList has its own change numbering and token generation.
        self.list_seq = 0
        self.list_generation = 0
        # Called with a calendar id after every recorded event change (push channels use it);
        # listeners run under the store lock, so they must only enqueue work.
        self.change_listeners: list[Callable[[str], None]] = []

    # ---- clocks and counters ----------------------------------------------------------------

    def _tick(self) -> tuple[datetime, str]:
        """Return a strictly increasing (timestamp, etag) pair.

        Consecutive writes within one millisecond still get distinct ``updated`` values,
        so a client comparing timestamps never sees two edits as one.
        """
        now_us = max(int(self._clock() * 1_000_000), self._last_us + 1000)
        self._last_us = now_us
        return datetime.fromtimestamp(now_us / 1_000_000, UTC), f'"{now_us}"'

    def now(self) -> datetime:
        """The emulator's current time (from its clock)."""
        return datetime.fromtimestamp(self._clock(), UTC)

    def _next_order(self) -> int:
        self._order += 1
        return self._order

    # ---- calendars ----------------------------------------------------------------------------

    def add_calendar(self, calendar_id: str, *, owner: str | None = None,
                     time_zone: str = "UTC", summary: str | None = None) -> StoredCalendar:
        """Create (or return the existing) calendar ``calendar_id``."""
        with self.lock:
            existing = self.calendars.get(calendar_id)
            if existing is not None and not existing.deleted:
                return existing
            tz = zone(time_zone)
            if tz is None:
                raise ValueError(f"unknown time zone {time_zone!r}")
            if owner is None:
                owner = calendar_id if "@" in calendar_id and not calendar_id.endswith(
                    "calendar.google.com") else DEFAULT_USER
            stamp, etag = self._tick()
            self.list_seq += 1
            cal = StoredCalendar(id=calendar_id, owner=owner, time_zone=time_zone,
                                 summary=summary or calendar_id, order=self._next_order(), tz=tz,
                                 updated=format_timestamp(stamp), etag=etag,
                                 list_seq=self.list_seq)
            self.calendars[calendar_id] = cal
            return cal

    def remove_calendar(self, calendar_id: str) -> None:
        """Delete a calendar; it shows up as ``deleted`` in an incremental calendarList."""
        with self.lock:
            cal = self.calendars[calendar_id]
            self.list_seq += 1
            cal.deleted = True
            cal.list_seq = self.list_seq

    def calendar(self, calendar_id: str, user: str | None = None, *,
                 create: bool | None = None) -> StoredCalendar:
        """Resolve a calendar id as the API does (``primary``, auto-creation, 404).

        ``primary`` is the calendar whose id is ``user`` (the ``X-Goog-User`` header) if
        given, else the first primary calendar added, else the first calendar.
        """
        create = self.auto_create_calendars if create is None else create
        with self.lock:
            live = [c for c in self.calendars.values() if not c.deleted]
            if calendar_id == "primary":
                if user:
                    calendar_id = user
                else:
                    primaries = [c for c in live if c.primary] or live
                    if primaries:
                        return min(primaries, key=lambda c: c.order)
                    calendar_id = DEFAULT_USER
            cal = self.calendars.get(calendar_id)
            if cal is not None and not cal.deleted:
                return cal
            if not create:
                raise not_found()
            return self.add_calendar(calendar_id)

    def expire_sync_tokens(self, calendar_id: str | None = None) -> None:
        """Invalidate the sync tokens of one calendar, or of all calendars and calendarList."""
        with self.lock:
            if calendar_id is None:
                for cal in self.calendars.values():
                    cal.token_generation += 1
                self.list_generation += 1
            else:
                self.calendar(calendar_id, create=False).token_generation += 1

    # ---- writes -------------------------------------------------------------------------------

    def _write(self, cal: StoredCalendar, event_id: str, content: JsonDict, *,
               client_sequence: object = None, force: bool = False,
               organizer: JsonDict | None = None,
               ical_uid: str | None = None) -> tuple[JsonDict, frozenset[str]]:
        """Store ``content`` (validated client fields) as event ``event_id``.

        :returns: the stored resource and the names of the fields that changed (empty for a
            no-op write, which then touches neither etag nor ``updated`` nor the change log).
        """
        existing = cal.events.get(event_id)
        content = dict(content)
        content.setdefault("status", "confirmed")
        old_content = client_content(existing) if existing else {}
        changed = frozenset(
            k for k in old_content.keys() | content.keys() if old_content.get(k) != content.get(k)
        )
        if existing is not None and not changed and not force:
            return existing, changed
        old_seq = int(existing.get("sequence", 0)) if existing else 0
        if isinstance(client_sequence, int) and client_sequence < old_seq:
            raise invalid("Invalid sequence value. The specified sequence number is below the "
                          "current sequence number of the resource.", location="sequence")
        sequence = int(content.pop("sequence", old_seq))
        if (existing is not None and self.sequence_autoincrement
                and changed & SIGNIFICANT_FIELDS and sequence <= old_seq):
            sequence = old_seq + 1
        stamp, etag = self._tick()
        timestamp = format_timestamp(stamp)
        if existing is None:
            created = updated = timestamp
            creator: JsonDict = {"email": cal.owner, "self": True}
            if organizer is None:
                organizer = {"email": cal.id, "self": True}
                if not cal.primary:
                    organizer["displayName"] = cal.summary
            ical_uid = ical_uid or f"{event_id}@google.com"
        else:
            created = existing["created"]
            creator = existing["creator"]
            organizer = organizer or existing["organizer"]
            ical_uid = existing["iCalUID"]
            # Reminders are per-user settings: Google changes the etag but not `updated`.
            updated = existing["updated"] if changed <= {"reminders"} and not force else timestamp
        link = base64.urlsafe_b64encode(f"{event_id} {cal.id}".encode()).decode().rstrip("=")
        resource: JsonDict = {
            "kind": "calendar#event", "etag": etag, "id": event_id,
            "status": content.pop("status"),
            "htmlLink": f"https://www.google.com/calendar/event?eid={link}",
            "created": created, "updated": updated, **content,
            "creator": creator, "organizer": organizer, "iCalUID": ical_uid, "sequence": sequence,
        }
        self._flag_attendees(resource, cal)
        cal.events[event_id] = resource
        cal.event_order.setdefault(event_id, self._next_order())
        cal.change_seq += 1
        cal.event_seq[event_id] = cal.change_seq
        cal.updated, cal.etag = timestamp, etag
        for listener in self.change_listeners:
            listener(cal.id)
        if existing is None:
            changed |= {"status"}  # a new event is guest-visible even without other fields
        return resource, changed

    @staticmethod
    def _flag_attendees(resource: JsonDict, cal: StoredCalendar) -> None:
        organizer_email = str(resource["organizer"].get("email", "")).lower()
        for attendee in resource.get("attendees", []):
            email = attendee["email"].lower()
            if email == cal.owner.lower() or email == cal.id.lower():
                attendee["self"] = True
            if email == organizer_email:
                attendee["organizer"] = True

    def _existing(self, cal: StoredCalendar, event_id: str) -> JsonDict:
        event = cal.events.get(event_id)
        if event is None:
            raise not_found()
        return event

    @staticmethod
    def _check_if_match(event: JsonDict, if_match: str | None) -> None:
        if if_match is not None and if_match.strip() not in ("*", event["etag"]):
            raise precondition_failed()

    def insert(self, calendar_id: str, user: str | None, body: JsonDict,
               params: Params) -> JsonDict:
        """events.insert: 409 ``duplicate`` for a taken id, also a deleted event's id."""
        mode = self._send_updates(params)
        with self.lock:
            cal = self.calendar(calendar_id, user)
            event_id = body.get("id")
            if event_id is not None:
                validate_event_id(event_id)
            else:
                event_id = uuid.uuid4().hex
            ical_uid = body.get("iCalUID") if isinstance(body.get("iCalUID"), str) else None
            clash = event_id in cal.events or (
                ical_uid is not None
                and any(e["iCalUID"] == ical_uid for e in cal.events.values()))
            if clash:
                raise ApiError(409, "duplicate", "The requested identifier already exists.")
            content = validate_content(client_content(body), cal.tz)
            resource, changed = self._write(cal, event_id, content, ical_uid=ical_uid)
            self._count_emails(cal, None, resource, changed, mode)
            return copy.deepcopy(resource)

    def import_event(self, calendar_id: str, user: str | None, body: JsonDict) -> JsonDict:
        """events.import: upsert by ``iCalUID``; organizer settable; never sends e-mail."""
        with self.lock:
            cal = self.calendar(calendar_id, user)
            ical_uid = body.get("iCalUID")
            if not isinstance(ical_uid, str) or not ical_uid:
                raise required("Missing iCalUID.")
            same = [eid for eid, e in cal.events.items() if e["iCalUID"] == ical_uid]
            event_id = same[0] if same else body.get("id") or uuid.uuid4().hex
            if not same:
                validate_event_id(event_id)
                if event_id in cal.events:
                    raise ApiError(409, "duplicate", "The requested identifier already exists.")
            content = validate_content(client_content(body), cal.tz)
            organizer = body.get("organizer") if isinstance(body.get("organizer"), dict) else None
            resource, _ = self._write(cal, event_id, content, organizer=organizer,
                                      ical_uid=ical_uid, client_sequence=body.get("sequence"))
            return copy.deepcopy(resource)

    def get(self, calendar_id: str, user: str | None, event_id: str) -> JsonDict:
        """events.get: deleted events come back with ``status: cancelled``."""
        with self.lock:
            return copy.deepcopy(self._existing(self.calendar(calendar_id, user), event_id))

    def patch(self, calendar_id: str, user: str | None, event_id: str, body: JsonDict,
              params: Params, if_match: str | None) -> JsonDict:
        """events.patch: merge semantics; ``status: confirmed`` restores a deleted event."""
        mode = self._send_updates(params)
        with self.lock:
            cal = self.calendar(calendar_id, user)
            existing = self._existing(cal, event_id)
            self._check_if_match(existing, if_match)
            merged = merge_patch(client_content(existing), client_content(body))
            return self._replace(cal, existing, merged, body, mode)

    def update(self, calendar_id: str, user: str | None, event_id: str, body: JsonDict,
               params: Params, if_match: str | None) -> JsonDict:
        """events.update: full replacement (fields not sent are dropped)."""
        mode = self._send_updates(params)
        with self.lock:
            cal = self.calendar(calendar_id, user)
            existing = self._existing(cal, event_id)
            self._check_if_match(existing, if_match)
            content = client_content(body)
            # A full replace without a status means the default, `confirmed`, which is why
            # an update revives a deleted event. The sequence is kept unless sent.
            content.setdefault("status", "confirmed")
            content.setdefault("sequence", existing.get("sequence", 0))
            content.setdefault("eventType", existing["eventType"])
            return self._replace(cal, existing, content, body, mode)

    def _replace(self, cal: StoredCalendar, existing: JsonDict, content: JsonDict,
                 body: JsonDict, mode: str) -> JsonDict:
        content = validate_content(content, cal.tz)
        if content["eventType"] != existing["eventType"]:
            raise invalid("The event type cannot be changed.", location="eventType")
        before = copy.deepcopy(existing)
        resource, changed = self._write(cal, existing["id"], content,
                                        client_sequence=body.get("sequence"))
        self._count_emails(cal, before, resource, changed, mode)
        return copy.deepcopy(resource)

    def delete(self, calendar_id: str, user: str | None, event_id: str, params: Params,
               if_match: str | None) -> None:
        """events.delete: a soft delete; 410 ``deleted`` the second time."""
        mode = self._send_updates(params)
        with self.lock:
            cal = self.calendar(calendar_id, user)
            existing = self._existing(cal, event_id)
            if existing["status"] == "cancelled":
                raise ApiError(410, "deleted", "Resource has been deleted")
            self._check_if_match(existing, if_match)
            before = copy.deepcopy(existing)
            content = client_content(existing)
            content["status"] = "cancelled"
            resource, changed = self._write(cal, event_id, content)
            self._count_emails(cal, before, resource, changed, mode)

    # ---- test hooks (a user acting in the Google UI) ------------------------------------------

    def put_event(self, calendar_id: str, event: JsonDict) -> JsonDict:
        """Create or fully replace an event as its owner would in the UI (always a change)."""
        with self.lock:
            cal = self.calendar(calendar_id)
            event_id = event.get("id") or uuid.uuid4().hex
            validate_event_id(event_id)
            content = validate_content(client_content(event), cal.tz)
            resource, _ = self._write(cal, event_id, content, force=True)
            return copy.deepcopy(resource)

    def delete_event_as_user(self, calendar_id: str, event_id: str) -> None:
        """Delete an event as its owner would in the UI (KeyError if unknown)."""
        with self.lock:
            cal = self.calendar(calendar_id, create=False)
            if event_id not in cal.events:
                raise KeyError(event_id)
            content = client_content(cal.events[event_id])
            content["status"] = "cancelled"
            self._write(cal, event_id, content, force=True)

    def stored_events(self, calendar_id: str, include_cancelled: bool) -> list[JsonDict]:
        """Deep copies of a calendar's events in creation order."""
        with self.lock:
            cal = self.calendar(calendar_id, create=False)
            ids = sorted(cal.events, key=lambda eid: cal.event_order[eid])
            return [copy.deepcopy(cal.events[eid]) for eid in ids
                    if include_cancelled or cal.events[eid]["status"] != "cancelled"]

    # ---- e-mail -------------------------------------------------------------------------------

    @staticmethod
    def _send_updates(params: Params) -> str:
        mode = first(params, "sendUpdates")
        if mode is None:
            # The deprecated boolean maps onto the new enum.
            return "all" if (first(params, "sendNotifications") or "").lower() == "true" \
                else "none"
        if mode not in SEND_UPDATES:
            raise invalid(f"Invalid value for parameter sendUpdates: {mode}",
                          location="sendUpdates")
        return mode

    def _count_emails(self, cal: StoredCalendar, before: JsonDict | None, after: JsonDict,
                      changed: frozenset[str], mode: str) -> None:
        """Count the mails Google would send: one per guest for a notable change.

        Guests removed by the change get a cancellation, so they are counted too. The
        organizer (the calendar owner) and resources never get mail. ``mail_log`` records
        each with its kind (:func:`_mail_kind`).
        """
        if mode == "none" or not changed & SIGNIFICANT_FIELDS:
            return
        guests = {a["email"].lower(): a for a in after.get("attendees", [])}
        if before is not None:
            for attendee in before.get("attendees", []):
                guests.setdefault(attendee["email"].lower(), attendee)
        owner_domain = cal.owner.rsplit("@", 1)[-1].lower()
        organizer = str(after["organizer"].get("email", "")).lower()
        for email, attendee in guests.items():
            if email in (cal.owner.lower(), organizer) or attendee.get("resource"):
                continue
            if mode == "externalOnly" and email.rsplit("@", 1)[-1] == owner_domain:
                continue
            self.emails_by_recipient[email] += 1
            self.mail_log.append(MailRecord(
                _mail_kind(before, after, attendee, email), email, str(after["id"]),
                str(after.get("summary", "")), cal.owner))


def _mail_kind(before: JsonDict | None, after: JsonDict, attendee: JsonDict, email: str
               ) -> str:
    """What one guest's e-mail is: a cancellation (the event cancelled, or the guest
    removed), an invitation (the guest is new to the event) or an update."""
    if after.get("status") == "cancelled" or attendee not in after.get("attendees", []):
        return "cancel"
    known = {a["email"].lower() for a in (before or {}).get("attendees", [])}
    return "update" if before is not None and email in known else "invite"
