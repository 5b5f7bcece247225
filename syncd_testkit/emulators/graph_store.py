"""State of the Graph emulator: mailboxes, calendars, events, the change log and mail counters.

One re-entrant lock guards everything, so each write (including the If-Match check and the
transactionId lookup) is atomic with respect to concurrent HTTP requests.

Change tracking: every write gives the event a new, globally increasing sequence number
``seq``; a delete or a move out of a calendar leaves a :class:`Tombstone` with its own ``seq``.
Delta tokens record the last ``seq`` a client has seen, so nothing written while a client is
paging can be missed (see :mod:`syncd_testkit.emulators.graph_delta`).
"""

from __future__ import annotations

import copy
import hashlib
import json
import threading
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from .graph_model import (
    MEETING_FIELDS,
    EventTime,
    GraphError,
    StoredEvent,
    apply_payload,
    new_change_key,
    new_ical_uid,
    new_immutable_id,
    new_regular_id,
)
from .recording import MailRecord

__all__ = ["Calendar", "ChangeListener", "GraphStore", "MailRecord", "Mailbox", "Tombstone",
           "etag_matches"]


@dataclass
class Tombstone:
    """A deleted (or moved-away) event as delta reports it: both ids and the change ``seq``.

    ``series``: the event as it was, when it was a series, so that delta can name its
    occurrences as removed too; ``replaced``: only that version of the series is gone (an
    edit), the event itself lives on.
    """

    regular_id: str
    immutable_id: str
    seq: int
    series: StoredEvent | None = None
    replaced: bool = False


@dataclass
class Calendar:
    """One calendar folder of a mailbox."""

    id: str
    name: str
    tombstones: dict[str, Tombstone] = field(default_factory=dict)  # by immutable id
    former_series: list[Tombstone] = field(default_factory=list)  # edited series, as they were
    can_edit: bool = True  # False: shared read-only, every write is 403 ErrorAccessDenied


@dataclass
class Mailbox:
    """One user's mailbox: calendars, events (keyed by immutable id) and sync bookkeeping."""

    upn: str
    user_id: str
    display_name: str
    calendars: dict[str, Calendar]
    default_calendar_id: str
    events: dict[str, StoredEvent] = field(default_factory=dict)
    regular_index: dict[str, str] = field(default_factory=dict)  # regular id -> immutable id
    # transactionId -> (fingerprint of the creating body, immutable id of the event)
    transactions: dict[str, tuple[str, str]] = field(default_factory=dict)
    delta_epoch: int = 0  # tokens minted under an older epoch have expired
    delta_expiry_mode: str = "410"
    delta_expiry_status: int = 410

    def calendar(self, calendar_id: str | None) -> Calendar:
        """The calendar with this id (``None`` = the default calendar); 404 if unknown."""
        cid = calendar_id or self.default_calendar_id
        cal = self.calendars.get(cid)
        if cal is None:
            raise GraphError(
                404, "ErrorItemNotFound", "The specified object was not found in the store."
            )
        return cal

    def events_in(self, calendar_id: str) -> list[StoredEvent]:
        """Events of one calendar in creation order."""
        return [e for e in self.events.values() if e.calendar_id == calendar_id]



ChangeListener = Callable[["Mailbox", str, str, str], None]


def etag_matches(if_match: str, change_key: str) -> bool:
    """Whether an ``If-Match`` value names the current version (``*`` matches anything)."""
    for candidate in if_match.split(","):
        value = candidate.strip()
        if value == "*":
            return True
        if value.startswith("W/"):
            value = value[2:]
        if value.strip('"') == change_key:
            return True
    return False


def _fingerprint(payload: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode("utf-8")).hexdigest()


_CONFLICT_MESSAGE = (
    "The send or update operation could not be performed because the change key passed in the "
    "request does not match the current change key for the item."
)


class GraphStore:
    """All mailboxes of the emulator plus the invitation counters."""

    def __init__(self, now: Callable[[], datetime] | None = None) -> None:
        """Create an empty store; ``now`` supplies timestamps (defaults to the UTC wall clock)."""
        self.lock = threading.RLock()
        self.now: Callable[[], datetime] = now or (lambda: datetime.now(UTC))
        self.seq = 0
        self.mailboxes: dict[str, Mailbox] = {}  # lower-case UPN -> mailbox
        self.invitations_by_recipient: Counter[str] = Counter()
        self.mail_log: list[MailRecord] = []
        self.change_listeners: list[ChangeListener] = []
        """Called under the store lock after every change to an event, with the mailbox,
        the calendar id, the event's immutable id and ``created``/``updated``/``deleted``;
        a listener must only note the change (no I/O, no other lock that waits on this one)."""

    # -- mailboxes ---------------------------------------------------------------------------

    def add_mailbox(self, upn: str, user_id: str | None = None) -> Mailbox:
        """Create a mailbox with a default calendar named "Calendar"."""
        with self.lock:
            cal_id = f"AAMkAGcal{uuid.uuid4().hex}AAA="
            mbx = Mailbox(
                upn=upn,
                user_id=user_id or str(uuid.uuid4()),
                display_name=upn.split("@")[0].replace(".", " ").title(),
                calendars={cal_id: Calendar(cal_id, "Calendar")},
                default_calendar_id=cal_id,
            )
            self.mailboxes[upn.lower()] = mbx
            return mbx

    def add_calendar(self, mbx: Mailbox, name: str) -> Calendar:
        """Create a secondary calendar in ``mbx``."""
        with self.lock:
            cal_id = f"AAMkAGcal{uuid.uuid4().hex}AAA="
            cal = Calendar(cal_id, name)
            mbx.calendars[cal_id] = cal
            return cal

    def find_mailbox(self, ref: str) -> Mailbox | None:
        """Resolve a UPN/e-mail (case-insensitive) or a user id."""
        with self.lock:
            mbx = self.mailboxes.get(ref.lower())
            if mbx is not None:
                return mbx
            for candidate in self.mailboxes.values():
                if candidate.user_id.lower() == ref.lower():
                    return candidate
            return None

    def first_mailbox(self) -> Mailbox | None:
        """The mailbox added first (what ``/me`` means without an identity emulator)."""
        with self.lock:
            return next(iter(self.mailboxes.values()), None)

    # -- events ------------------------------------------------------------------------------

    def next_seq(self) -> int:
        """Advance and return the global change sequence."""
        with self.lock:
            self.seq += 1
            return self.seq

    def find_event(self, mbx: Mailbox, event_id: str) -> StoredEvent:
        """Look an event up by regular or immutable id; 404 ``ErrorItemNotFound`` if absent."""
        with self.lock:
            ev = mbx.events.get(event_id) or mbx.events.get(mbx.regular_index.get(event_id, ""))
            if ev is None:
                raise GraphError(
                    404, "ErrorItemNotFound", "The specified object was not found in the store."
                )
            return ev

    def create_event(
        self, mbx: Mailbox, calendar_id: str | None, payload: dict[str, Any], *, via_api: bool
    ) -> tuple[StoredEvent, bool]:
        """Create an event, or return the existing one for a repeated ``transactionId``.

        Returns:
            ``(event, created)``; ``created`` is False for a deduplicated repeat.

        Raises:
            GraphError: 400 ``ErrorDuplicateTransactionId`` if the transactionId was used for
                a different body; 400 for invalid bodies.
        """
        with self.lock:
            cal = mbx.calendar(calendar_id)
            tid = payload.get("transactionId")
            if isinstance(tid, str) and tid in mbx.transactions:
                fingerprint, existing_id = mbx.transactions[tid]
                existing = mbx.events.get(existing_id)
                if existing is not None:
                    if fingerprint != _fingerprint(payload):
                        raise GraphError(
                            400,
                            "ErrorDuplicateTransactionId",
                            "Your request can't be completed. The TransactionId specified in "
                            "the request has already been used to create a different event.",
                        )
                    return existing, False
            for name in ("start", "end"):
                if name not in payload:
                    raise GraphError(
                        400,
                        "ErrorPropertyValidationFailure",
                        f"At least one property failed validation. The '{name}' property is "
                        "required.",
                    )
            now = self.now()
            placeholder = EventTime(now.replace(tzinfo=None), "UTC", now)
            ev = StoredEvent(
                regular_id=new_regular_id(),
                immutable_id=new_immutable_id(),
                calendar_id=cal.id,
                ical_uid=new_ical_uid(),
                organizer={"name": mbx.display_name, "address": mbx.upn},
                created=now,
                modified=now,
                change_key=new_change_key(),
                start=placeholder,
                end=placeholder,
                original_start_tz="UTC",
                original_end_tz="UTC",
            )
            apply_payload(ev, payload, creating=True)
            ev.original_start_tz = ev.start.zone
            ev.original_end_tz = ev.end.zone
            ev.seq = self.next_seq()
            mbx.events[ev.immutable_id] = ev
            mbx.regular_index[ev.regular_id] = ev.immutable_id
            if ev.transaction_id is not None:
                mbx.transactions[ev.transaction_id] = (_fingerprint(payload), ev.immutable_id)
            if via_api:
                self._mail(ev, "invite", ev.attendee_addresses())
            self._changed(mbx, ev.calendar_id, ev.immutable_id, "created")
            return ev, True

    def update_event(
        self,
        mbx: Mailbox,
        ev: StoredEvent,
        payload: dict[str, Any],
        *,
        via_api: bool,
        if_match: str | None = None,
    ) -> StoredEvent:
        """Apply a PATCH; every write gets a new changeKey and a new change ``seq``.

        Raises:
            GraphError: 412 ``ErrorIrresolvableConflict`` if ``if_match`` is stale.
        """
        with self.lock:
            if if_match is not None and not etag_matches(if_match, ev.change_key):
                raise GraphError(412, "ErrorIrresolvableConflict", _CONFLICT_MESSAGE)
            draft = copy.deepcopy(ev)
            before = ev.attendee_addresses()
            changed = apply_payload(draft, payload, creating=False)
            draft.change_key = new_change_key()
            draft.modified = self.now()
            draft.seq = self.next_seq()
            if ev.props.get("recurrence"):
                # Delta names the occurrences this edit took away as removed.
                mbx.calendars[ev.calendar_id].former_series.append(Tombstone(
                    ev.regular_id, ev.immutable_id, draft.seq, copy.deepcopy(ev), True))
            # Mutate in place so references held elsewhere (indexes) stay valid.
            ev.__dict__.update(draft.__dict__)
            # Only the organizer's changes go out as meeting mail: an attendee editing
            # their own copy changes nothing for the others.
            if via_api and changed & MEETING_FIELDS and self._organizes(mbx, ev):
                after = ev.attendee_addresses()
                self._mail(ev, "update", after)
                self._mail(ev, "cancel", [a for a in before if a not in after])
            self._changed(mbx, ev.calendar_id, ev.immutable_id, "updated")
            return ev

    def delete_event(
        self, mbx: Mailbox, ev: StoredEvent, *, via_api: bool, if_match: str | None = None
    ) -> None:
        """Delete an event and leave a tombstone for delta.

        Raises:
            GraphError: 412 ``ErrorIrresolvableConflict`` if ``if_match`` is stale.
        """
        with self.lock:
            if if_match is not None and not etag_matches(if_match, ev.change_key):
                raise GraphError(412, "ErrorIrresolvableConflict", _CONFLICT_MESSAGE)
            self._remove(mbx, ev)
            if ev.transaction_id is not None:
                mbx.transactions.pop(ev.transaction_id, None)
            if via_api and self._organizes(mbx, ev):
                self._mail(ev, "cancel", ev.attendee_addresses())
            self._changed(mbx, ev.calendar_id, ev.immutable_id, "deleted")

    def move_event(self, mbx: Mailbox, ev: StoredEvent, dest_calendar_id: str) -> StoredEvent:
        """Move an event to another calendar: the regular id changes, the immutable id does not."""
        with self.lock:
            dest = mbx.calendar(dest_calendar_id)
            if dest.id == ev.calendar_id:
                return ev
            self._remove(mbx, ev)
            self._changed(mbx, ev.calendar_id, ev.immutable_id, "deleted")
            ev.calendar_id = dest.id
            ev.regular_id = new_regular_id()
            ev.change_key = new_change_key()
            ev.modified = self.now()
            ev.seq = self.next_seq()
            dest.tombstones.pop(ev.immutable_id, None)
            mbx.events[ev.immutable_id] = ev
            mbx.regular_index[ev.regular_id] = ev.immutable_id
            self._changed(mbx, dest.id, ev.immutable_id, "created")
            return ev

    def set_attendee_response(
        self, mbx: Mailbox, ev: StoredEvent, address: str, response: str
    ) -> StoredEvent:
        """Record an attendee's reply (a server-side change: new changeKey, delta entry)."""
        with self.lock:
            for attendee in ev.props.get("attendees", []):
                if attendee["emailAddress"]["address"].lower() == address.lower():
                    stamp = self.now().strftime("%Y-%m-%dT%H:%M:%S.%f0Z")
                    attendee["status"] = {"response": response, "time": stamp}
                    break
            else:
                raise KeyError(address)
            ev.change_key = new_change_key()
            ev.modified = self.now()
            ev.seq = self.next_seq()
            self._changed(mbx, ev.calendar_id, ev.immutable_id, "updated")
            return ev

    def _changed(self, mbx: Mailbox, calendar_id: str, event_id: str, kind: str) -> None:
        for listener in list(self.change_listeners):
            listener(mbx, calendar_id, event_id, kind)

    def _remove(self, mbx: Mailbox, ev: StoredEvent) -> None:
        mbx.events.pop(ev.immutable_id, None)
        mbx.regular_index.pop(ev.regular_id, None)
        cal = mbx.calendars[ev.calendar_id]
        series = copy.deepcopy(ev) if ev.props.get("recurrence") else None
        cal.tombstones[ev.immutable_id] = Tombstone(ev.regular_id, ev.immutable_id,
                                                    self.next_seq(), series)

    @staticmethod
    def _organizes(mbx: Mailbox, ev: StoredEvent) -> bool:
        return str(ev.organizer.get("address", "")).lower() == mbx.upn.lower()

    def _mail(self, ev: StoredEvent, kind: str, recipients: list[str]) -> None:
        organizer = ev.organizer["address"].lower()
        for address in recipients:
            if address == organizer:
                continue
            self.invitations_by_recipient[address] += 1
            self.mail_log.append(
                MailRecord(kind, address, ev.immutable_id, ev.props.get("subject", ""),
                           organizer)
            )
