"""An owner's busy time, free slots and agenda, read from the CRM and their calendars.

The pure rules are :mod:`syncd.engine.availability` and :mod:`syncd.engine.agenda`; this
module reads what they need and nothing else:

* the owner's activities from the CRM source (``due_between``: busy ones block, A4);
* each of the owner's calendars (every served account whose ``owner`` is them), through
  a read-only connector: its free/busy answer for availability (``busy_between``: Google
  ``freeBusy``, Graph ``getSchedule``, CalDAV ``free-busy-query``), its listing of the span
  for the agenda (``events_between``, recurrences expanded). A connector with neither
  (the test calendar in memory) gives its full listing, filtered here.
* the sync state's pairs (activity id <-> event id), so a synced pair shows once.

Nothing read here is stored, cached or written anywhere. A calendar that cannot be read
fails an availability question (time nobody can vouch for is never offered as free);
the agenda shows what could be read and names the calendars that could not.

Calendar time of the kinds busy, tentative and out-of-office blocks a slot; "working
elsewhere" does not (the owner works, only from another place: Graph's all-day "working
from home" markers would otherwise close whole days).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from connectors.base import CalendarConnector, FreeBusyReadable, RemoteEvent, WindowReadable
from syncd.config import AccountConfig
from syncd.crm.source import SourceUser
from syncd.engine.agenda import AgendaItem, agenda
from syncd.engine.availability import (
    DEFAULT_STEP,
    Busy,
    Slot,
    WorkingHours,
    free_slots,
    in_zone,
)
from syncd.errors import NotFound
from syncd.hours import hours_for
from syncd.model import activity_when, day_in_range, normalize_email
from syncd.report import describe

if TYPE_CHECKING:
    from syncd.service import Service

log = logging.getLogger("syncd.availability")

#: Calendar kinds that do not block a slot (see the module docstring).
NOT_BLOCKING = frozenset({"elsewhere"})
#: How far before a span activities are read, for the multi-day ones that reach into it.
LOOK_BACK = timedelta(days=31)
#: The most days one agenda shows.
MAX_AGENDA_DAYS = 31


@dataclass
class Agenda:
    """An owner's agenda: the entries, and the calendars that could not be read (name ->
    the reason, a sentence)."""

    owner: str
    time_zone: str
    days: list[date]
    items: list[AgendaItem]
    unreadable: dict[str, str] = field(default_factory=dict)


class Availability:
    """Reads for one :class:`~syncd.service.Service` (its config, CRM source and state)."""

    def __init__(self, service: Service,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self.service, self.clock = service, clock

    # --- who --------------------------------------------------------------------------

    def user(self, owner: str) -> SourceUser:
        """The CRM user ``owner`` (an e-mail).

        Raises:
            NotFound: the CRM has no such user.
        """
        user = self.service.source.user(owner)
        if user is None:
            raise NotFound(kind="CRM user", key=owner)
        return user

    def hours(self, owner: str) -> WorkingHours:
        """The owner's working hours (``[[working_hours]]``, else the default)."""
        return hours_for(self.service.config.working_hours, owner, self.user(owner).time_zone)

    def owner_buffers(self, owner: str) -> tuple[timedelta, timedelta]:
        """The owner's buffers before and after a meeting (from :meth:`hours`)."""
        hours = self.hours(owner)
        return hours.buffer_before, hours.buffer_after

    def accounts(self, owner: str) -> list[AccountConfig]:
        """The served accounts whose calendars are the owner's.

        With no accounts configured, the owner's calendar is on the embedded server; until
        the daemon has set that server up (its service secret written) the calendar does
        not exist, so there is none to read, rather than a secret that cannot be read.
        """
        from syncd.embedded_auth import EmbeddedCredentials

        config = self.service.config
        if not config.serves_accounts and \
                not EmbeddedCredentials(config.data_path).secret_file.exists():
            return []
        email = normalize_email(owner)
        return [a for a in self.service.accounts() if normalize_email(a.owner) == email]

    # --- busy time and free slots -------------------------------------------------------

    def owner_busy(self, owner: str, start: datetime, end: datetime) -> list[Busy]:
        """Everything of the owner's that may block [start, end): their activities (free
        ones too, with ``blocks`` False) and their calendars' busy time.

        Raises:
            NotFound: no such CRM user.
            ConnectorError: a calendar could not answer (never read as free).
        """
        user = self.user(owner)
        items = self._activities(user, start, end)
        for account in self.accounts(owner):
            with self._reader(account) as connector:
                items += calendar_busy(connector, start, end)
        return items

    def owner_free_slots(self, owner: str, start: datetime, end: datetime,
                         duration: timedelta, now: datetime | None = None,
                         step: timedelta = DEFAULT_STEP) -> list[Slot]:
        """The owner's free slots of ``duration`` in [start, end) (UTC; render them in
        ``self.hours(owner).time_zone``).

        Raises:
            NotFound: no such CRM user.
            ConnectorError: a calendar could not answer.
            ValueError: see :func:`~syncd.engine.availability.free_slots`.
        """
        hours = self.hours(owner)
        # Busy items are read with the buffers around the span, so one just outside still
        # keeps its distance.
        margin = max(hours.buffer_before, hours.buffer_after)
        busy = self.owner_busy(owner, start - margin, end + margin)
        return free_slots(busy, hours, start=start, end=end, duration=duration,
                          now=now or self.clock(), step=step)

    # --- agenda ---------------------------------------------------------------------------

    def owner_agenda(self, owner: str, first: date, days: int) -> Agenda:
        """The owner's agenda for ``days`` days from ``first`` (in their CRM zone)."""
        if not 1 <= days <= MAX_AGENDA_DAYS:
            raise ValueError(f"an agenda covers 1 to {MAX_AGENDA_DAYS} days")
        if not (day_in_range(first) and day_in_range(first + timedelta(days=days))):
            raise ValueError("an agenda's days lie in the range syncd accepts")
        user = self.user(owner)
        zone = user.time_zone
        tz = ZoneInfo(zone)
        wanted = [first + timedelta(days=i) for i in range(days)]
        # A little more than the days, in UTC: the core keeps what is on them exactly.
        start = datetime.combine(first, time(), tzinfo=tz) - timedelta(hours=3)
        end = datetime.combine(wanted[-1] + timedelta(days=1), time(), tzinfo=tz) \
            + timedelta(hours=3)
        activities = [a for a in self.service.source.due_between(
            user.id, first - LOOK_BACK, wanted[-1] + timedelta(days=1))]
        events: dict[str, list[RemoteEvent]] = {}
        pairs: dict[tuple[str, str], int] = {}
        unreadable: dict[str, str] = {}
        for account in self.accounts(owner):
            try:
                with self._reader(account) as connector:
                    events[account.name] = calendar_events(connector, start, end)
            except Exception as exc:  # one calendar's failure leaves the others shown
                unreadable[account.name] = describe(exc, account)
                continue
            for link in self.service.state.links(account.name).values():
                if link.event_id is not None:
                    pairs[(account.name, link.event_id)] = link.activity_id
        return Agenda(owner, zone, wanted, agenda(activities, events, pairs, zone, wanted),
                      unreadable)

    # --- reading ----------------------------------------------------------------------

    def _activities(self, user: SourceUser, start: datetime, end: datetime) -> list[Busy]:
        tz = ZoneInfo(user.time_zone)
        first = start.astimezone(tz).date() - LOOK_BACK
        last = end.astimezone(tz).date() + timedelta(days=1)
        out = []
        for activity in self.service.source.due_between(user.id, first, last):
            when = activity_when(activity)
            if when is None or activity.deleted:
                continue
            # an all-day activity takes the days of its owner's zone
            out += in_zone(Busy(when.start, when.end, blocks=activity.busy,
                                label=f"activity {activity.id}"), activity.owner_tz)
        return out

    def _reader(self, account: AccountConfig) -> _Reader:
        return _Reader(self.service.open_connector(account, read_only=True, now=self.clock()))


class _Reader:
    """A read-only connector, closed after use."""

    def __init__(self, connector: CalendarConnector) -> None:
        self.connector = connector

    def __enter__(self) -> CalendarConnector:
        return self.connector

    def __exit__(self, *exc: object) -> None:
        try:
            self.connector.close()
        except Exception:  # closing must not hide the answer or the error
            log.debug("closing a read-only connector failed", exc_info=True)


def calendar_busy(connector: CalendarConnector, start: datetime, end: datetime) -> list[Busy]:
    """A calendar's busy time in [start, end): its free/busy answer where it has one,
    else its busy events."""
    if isinstance(connector, FreeBusyReadable):
        return [Busy(b.start, b.end, blocks=b.kind not in NOT_BLOCKING, label=b.kind)
                for b in connector.busy_between(start, end)]
    out = []
    for event in calendar_events(connector, start, end):
        if event.projection is not None and event.projection.busy:
            when = event.projection.when
            out += in_zone(Busy(when.start, when.end), when.tz)
    return out


def calendar_events(connector: CalendarConnector, start: datetime, end: datetime
                    ) -> list[RemoteEvent]:
    """A calendar's events overlapping [start, end) (all-day ones by their dates, with a
    day's margin: the agenda and the rules place them in the owner's days)."""
    if isinstance(connector, WindowReadable):
        return connector.events_between(start, end)
    return [e for e in connector.changes(None).events
            if e.projection is not None and not e.deleted
            and _overlaps(e.projection.when.start, e.projection.when.end, start, end)]


def _overlaps(s: date | datetime, e: date | datetime, start: datetime, end: datetime) -> bool:
    if not isinstance(s, datetime):
        assert not isinstance(e, datetime)
        return s <= end.date() + timedelta(days=1) and e >= start.date() - timedelta(days=1)
    assert isinstance(e, datetime)
    return s < end and (e > start or s == e >= start)


def slots_as_json(slots: Sequence[Slot], zone: str) -> list[dict[str, str]]:
    """Each slot's start and end as ISO 8601 in ``zone``, with the UTC offset."""
    out = []
    for slot in slots:
        start, end = slot.local(zone)
        out.append({"start": start.isoformat(), "end": end.isoformat()})
    return out
