"""Booking links, as a service: the free slots a link offers and booking one (issue 17).

A visitor of ``/book/<token>`` (:mod:`syncd.http.booking_page`) sees the free slots of
the link's owner for the next ``horizon_days`` and books one with a name and an e-mail.
:class:`Bookings` is everything behind the page that is not HTML:

* :meth:`Bookings.slots` asks the availability (``free``, in the daemon
  :meth:`syncd.availability_service.Availability.owner_free_slots`: the owner's working
  hours minus busy activities, A4, and busy calendar time) for slots of the link's
  duration; nothing about any other event leaves this module, only start and end times.
* :meth:`Bookings.book` checks the visitor's input, checks that the slot is still one
  offered, then has the CRM source book it (:class:`syncd.crm.source.SlotBooker`): the
  overlap check against busy activities and the insert are one transaction, so two
  visitors racing for one slot make one activity and one :class:`BookingRefused`
  ("taken"). The activity is busy, of the link's type, owned by the link's owner, with
  the visitor as its one guest; it reaches the owner's calendar like any other activity,
  and the guest is e-mailed only as ``docs/guest-mail.md`` says (docs/booking.md).

A form sent twice (a double click, a reload) books once: the booking's identity comes
from the form's nonce, and the CRM returns the activity the first send made.

Reading the free slots asks every calendar of the owner (a provider request each, from
the owner's provider budget), and the page is public: page views of one link within
:data:`VIEW_SECONDS` share one read (an answer or a failure), so visitors, however many,
cost at most a read per link per period. A booking always reads afresh, and a booking
made forgets the owner's shared reads.
"""

from __future__ import annotations

import hashlib
import logging
import re
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Protocol

from syncd.crm.source import BookSlot, CrmSource, SlotBooker
from syncd.errors import BookingRefused, InvalidInput, SlotTaken, SyncdError
from syncd.model import Activity, Guest, activity_when, is_valid_email, normalize_email
from syncd.report import describe
from syncd.store.booking_links import LinkRow
from syncd.text import clean_text

log = logging.getLogger("syncd.booking")

MAX_NAME = 100
# Bidirectional embeddings, overrides and isolates: in a visitor's name they would
# reorder the rest of the owner's event title ("Meeting with " + name) as displayed.
_BIDI_CONTROLS = re.compile("[\u202a-\u202e\u2066-\u2069]")
# Markup, character references and web addresses: the name lands in the owner's event,
# which Google Calendar shows as HTML (linking addresses) and invitations may quote.
_MARKUP = re.compile(r"[<>]|://|&#?\w+;")
#: How long page views of one link share a read of the owner's free slots (seconds).
VIEW_SECONDS = 30.0
#: At most this many links' reads are kept (links are made by an admin; a bound anyway).
MAX_SHARED = 1024
NO_BUFFERS = (timedelta(0), timedelta(0))


class SlotLike(Protocol):
    """A free slot: ``start`` and ``end`` as aware datetimes."""

    @property
    def start(self) -> datetime: ...

    @property
    def end(self) -> datetime: ...


#: The owner's free slots of ``duration`` in [start, end), none before ``now``, starting
#: on multiples of ``step`` of the owner's wall clock:
#: ``free(owner e-mail, start, end, duration, now, step)``, as
#: :meth:`syncd.availability_service.Availability.owner_free_slots` (working hours, busy
#: activities and busy calendar time); raises a SyncdError when it cannot tell.
FreeSlots = Callable[[str, datetime, datetime, timedelta, datetime, timedelta],
                     Sequence[SlotLike]]


@dataclass(frozen=True)
class Owner:
    """Who a link books: the CRM user's id, the name the page shows, their zone."""

    id: int
    name: str
    email: str
    time_zone: str


@dataclass(frozen=True)
class Booked:
    """A booking made (``created``) or found again (the same form sent twice)."""

    activity: Activity
    start: datetime
    end: datetime
    created: bool


def booking_uid(link_id: int, nonce: str) -> str:
    """The booking's identity (the activity's marker), from the form's nonce: 32 hex."""
    return hashlib.sha256(f"booking:{link_id}:{nonce}".encode()).hexdigest()[:32]


def check_name(value: str) -> str:
    """The visitor's name, cleaned (one line, printable, no bidirectional controls).

    Raises:
        BookingRefused: empty, longer than :data:`MAX_NAME`, more than one line, or
            holding markup or a web address.
    """
    if "\n" in value or "\r" in value or _MARKUP.search(value):
        raise BookingRefused(reason="name", field="name")
    cleaned = clean_text(_BIDI_CONTROLS.sub("", value), single_line=True)
    if not cleaned or len(cleaned) > MAX_NAME:
        raise BookingRefused(reason="name", field="name")
    return cleaned


def check_email(value: str) -> str:
    """The visitor's e-mail address, normalised.

    Raises:
        BookingRefused: not an address (local@domain.tld, at most 254 characters).
    """
    address = normalize_email(value)
    if not is_valid_email(address):
        raise BookingRefused(reason="email", field="email")
    return address


def parse_slot(value: str) -> datetime:
    """A slot's start as the form sends it (ISO 8601 in UTC, as the page wrote it).

    Raises:
        BookingRefused: missing or not such a time.
    """
    if not value:
        raise BookingRefused(reason="no-slot", field="slot")
    try:
        start = datetime.fromisoformat(value) if len(value) <= 32 else None
    except ValueError:
        start = None
    if start is None or start.tzinfo is None:
        raise BookingRefused(reason="not-offered", field="slot")
    return start.astimezone(UTC)


class Bookings:
    """The booking pages' service over one CRM source.

    Args:
        source: the CRM (must be a :class:`SlotBooker` to book; the built-in store is).
        free: the availability (see :data:`FreeSlots`).
        clock: the current time (tests move it).
        monotonic: seconds for sharing reads between page views (tests move it).
        buffers: the owner's (e-mail) buffers before and after a meeting, which the
            CRM's one-transaction check keeps clear too (none by default).
    """

    def __init__(self, source: CrmSource, free: FreeSlots,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC), *,
                 monotonic: Callable[[], float] = time.monotonic,
                 buffers: Callable[[str], tuple[timedelta, timedelta]] = lambda _: NO_BUFFERS
                 ) -> None:
        self.source, self.free, self.clock, self.monotonic = source, free, clock, monotonic
        self.buffers = buffers
        # link id -> (the link as read, when, its slots or the refusal): see VIEW_SECONDS
        self._shared: dict[int, tuple[LinkRow, float, list[SlotLike] | BookingRefused]] = {}
        self._lock = threading.Lock()

    def owner(self, link: LinkRow) -> Owner | None:
        """The link's owner as the CRM knows them now (None: no longer a user)."""
        user = self.source.user(link.owner)
        if user is None:
            return None
        name = getattr(user, "name", "") or link.owner.split("@", 1)[0]
        return Owner(user.id, name, link.owner, user.time_zone)

    def slots(self, link: LinkRow, *, fresh: bool = False) -> list[SlotLike]:
        """The free slots the link offers now, earliest first: read within the last
        :data:`VIEW_SECONDS` for this link unless ``fresh`` (what a booking checks).

        Raises:
            BookingRefused: "unavailable", when the owner's free time cannot be read (a
                calendar that does not answer is never taken as free).
        """
        now, tick = self.clock(), self.monotonic()
        with self._lock:
            kept = None if fresh else self._shared.get(link.id)
        if kept is not None and kept[0] == link and 0 <= tick - kept[1] < VIEW_SECONDS:
            found = kept[2]
        else:
            found = self._read(link, now)
            with self._lock:
                self._shared.pop(link.id, None)
                self._shared[link.id] = (link, tick, found)
                while len(self._shared) > MAX_SHARED:  # the oldest read goes first
                    del self._shared[next(iter(self._shared))]
        if isinstance(found, BookingRefused):
            raise BookingRefused(reason=found.reason)
        return [s for s in found if s.start >= now]

    def _read(self, link: LinkRow, now: datetime) -> list[SlotLike] | BookingRefused:
        try:
            found = self.free(link.owner, now, now + timedelta(days=link.horizon_days),
                              timedelta(minutes=link.duration_minutes), now,
                              step_for(link.duration_minutes))
        except SyncdError as exc:
            log.warning("booking link %d: the free slots of %s cannot be read: %s",
                        link.id, link.owner, describe(exc))
            return BookingRefused(reason="unavailable")
        return sorted((s for s in found if s.start >= now), key=lambda s: s.start)

    def _forget(self, owner: str) -> None:
        """Drop the shared reads of every link of ``owner`` (a booking just changed them)."""
        with self._lock:
            for link_id in [k for k, v in self._shared.items() if v[0].owner == owner]:
                del self._shared[link_id]

    def book(self, link: LinkRow, *, slot: str, name: str, email: str, nonce: str
             ) -> Booked:
        """Book the slot starting at ``slot`` for the visitor.

        Raises:
            BookingRefused: bad input ("name", "email", "no-slot", "not-offered"), the
                slot just taken ("taken"), or the CRM cannot book ("unavailable").
        """
        start = parse_slot(slot)
        visitor = check_name(name)
        address = check_email(email)
        owner = self.owner(link)
        if owner is None or not isinstance(self.source, SlotBooker):
            raise BookingRefused(reason="unavailable")
        uid = booking_uid(link.id, nonce)
        offered = {s.start.astimezone(UTC): s for s in self.slots(link, fresh=True)}
        if start not in offered:
            again = self.source.find(uid)  # the same form sent again after it booked
            if again is not None and not again.deleted:
                return Booked(again, start, start + timedelta(minutes=link.duration_minutes),
                              created=False)
            now = self.clock()
            if now < start < now + timedelta(days=link.horizon_days):
                # offered when the page was made, most likely: another visitor was faster
                raise BookingRefused(reason="taken", field="slot")
            raise BookingRefused(reason="not-offered", field="slot")
        end = offered[start].end.astimezone(UTC)
        before, after = self.buffers(link.owner)
        request = BookSlot(uid, owner.id, link.activity_type, start, end, {
            "subject": f"{link.activity_type.replace('_', ' ').capitalize()} with {visitor}",
            "description": f"Booked by {visitor} through a booking link.",
            "guests": [Guest(address, visitor)],
        }, clear_before=before, clear_after=after)
        try:
            result = self.source.book(request)
        except SlotTaken:
            # Another visitor's booking committed after our fresh read, which may have
            # been kept as the link's shared read since: the page that says "taken" must
            # read afresh, or it offers the taken slot again.
            self._forget(link.owner)
            raise BookingRefused(reason="taken", field="slot") from None
        except InvalidInput as exc:
            log.warning("booking link %d could not book: %s", link.id, exc)
            raise BookingRefused(reason="unavailable") from None
        assert result.activity is not None
        if result.created:
            self._forget(link.owner)
            log.info("booking link %d booked activity %d", link.id, result.activity.id)
        return Booked(result.activity, start, end, result.created)

    def booked(self, link: LinkRow, activity_id: int) -> Activity | None:
        """A live activity this link booked (for the confirmation's .ics), or None."""
        activity = self.source.get(activity_id)
        owner = self.owner(link)
        if activity is None or activity.deleted or owner is None \
                or activity.owner_id != owner.id:
            return None
        return activity

    @staticmethod
    def span(activity: Activity) -> tuple[datetime, datetime] | None:
        """A booked activity's start and end (None when it no longer has a time)."""
        when = activity_when(activity)
        if when is None or not isinstance(when.start, datetime):
            return None
        assert isinstance(when.end, datetime)
        return when.start, when.end


def step_for(duration: int) -> timedelta:
    """Where a link's slots start: on the half hour for meetings of 30 minutes or more,
    else on the quarter (the page lists one button per start)."""
    return timedelta(minutes=30 if duration >= 30 else 15)
