"""The soak's calendar side: "the user" reading, making and editing events on the server.

Nothing here goes through the fault proxy or through syncd: the user's app talks to the
server. Events are read raw (the emulators' own stores; Radicale and Xandikos with one
``calendar-query`` REPORT) and reduced to projections with the connectors' pure readers
(``read_event`` of ``google_map``, ``outlook_map`` and ``ical``), so the oracle compares
what syncd would read without asking syncd. Edits are written in the provider's own form
(a Google event resource, a Graph patch, an iCalendar object PUT back). With ``--import``
the user also makes events (:meth:`CalendarUser.create`) as the calendar app would: no
marker, the server's own id and UID, timed or whole-day, sometimes a weekly series.
"""

from __future__ import annotations

import json
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any
from urllib.parse import quote, unquote, urlsplit

import icalendar

from bench.backends import TZ, GoogleBackend, GraphBackend, RadicaleBackend, XandikosBackend
from bench.soak_model import EventSeen
from connectors import google_map, ical, outlook_map
from connectors.base import RemoteEvent
from syncd.model import When

_DAV = "{DAV:}"
_CAL = "{urn:ietf:params:xml:ns:caldav}"
_QUERY = (b'<?xml version="1.0" encoding="utf-8"?>'
          b'<C:calendar-query xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav">'
          b'<D:prop><D:getetag/><C:calendar-data/></D:prop>'
          b'<C:filter><C:comp-filter name="VCALENDAR"><C:comp-filter name="VEVENT"/>'
          b'</C:comp-filter></C:filter></C:calendar-query>')


@dataclass(frozen=True)
class NewEvent:
    """An event the user makes in the calendar app (``guests``: attendees' e-mails)."""

    title: str
    when: When
    busy: bool
    location: str = ""
    description: str = ""
    guests: Sequence[str] = ()
    weekly: int = 0  # a weekly series of this many events (0: a single event)


class CalendarUser:
    """Reads every event of an owner's calendar and edits one as its owner would."""

    def __init__(self, provider: str, backend: Any, calendars: dict[str, str]) -> None:
        self.provider = provider
        self.backend = backend
        self.calendars = calendars

    # ---- reading --------------------------------------------------------------------

    def read(self, owner: str) -> list[tuple[RemoteEvent, str]]:
        """Every live event of ``owner``'s calendar: what syncd would read, and the raw
        text the server holds for it."""
        calendar = self.calendars[owner]
        if self.provider == "google":
            return [(google_map.read_event(r, owner=owner, default_tz=TZ,
                                           describe_guests=True), json.dumps(r))
                    for r in self.backend.emu.events(calendar)]
        if self.provider == "outlook":
            return [(outlook_map.read_event(r, fallback_tz=TZ, mailbox=owner,
                                            describe_guests=True), json.dumps(r))
                    for r in self.backend.graph.events(calendar)]
        return [(ical.read_event(href, etag, data, default_tz=TZ, owner=owner), data)
                for href, etag, data in self._dav_objects(owner)]

    def seen(self, owner: str) -> list[EventSeen]:
        out = []
        for event, raw in self.read(owner):
            projection = event.projection.to_json() if event.projection else None
            out.append(EventSeen(owner, event.event_id, event.marker, projection, raw))
        return out

    def _dav_objects(self, owner: str) -> list[tuple[str, str | None, str]]:
        calendar = self.calendars[owner]
        status, body = self.backend._request(
            self.backend.owner_of(calendar), "REPORT", quote(calendar), _QUERY,
            {"Depth": "1", "Content-Type": "application/xml; charset=utf-8"})
        if status != 207:
            raise RuntimeError(f"REPORT {calendar}: HTTP {status}")
        out = []
        for response in ET.fromstring(body).iter(f"{_DAV}response"):
            href = unquote(response.findtext(f"{_DAV}href") or "")
            etag = response.findtext(f".//{_DAV}getetag")
            data = response.findtext(f".//{_CAL}calendar-data")
            if data and href.endswith(".ics"):
                out.append((urlsplit(href).path, etag, data))
        return out

    # ---- editing --------------------------------------------------------------------

    def current(self, owner: str, event_id: str) -> RemoteEvent | None:
        """One event as it is now (a fresh read)."""
        calendar = self.calendars[owner]
        if self.provider == "google":
            for r in self.backend.emu.events(calendar):
                if r["id"] == event_id:
                    return google_map.read_event(r, owner=owner, default_tz=TZ,
                                                 describe_guests=True)
            return None
        if self.provider == "outlook":
            try:
                data = self.backend.graph.get_event(calendar, event_id)
            except Exception:
                return None
            return outlook_map.read_event(data, fallback_tz=TZ, mailbox=owner,
                                          describe_guests=True)
        status, data = self.backend._request(self.backend.owner_of(calendar), "GET",
                                             quote(event_id))
        if status != 200:
            return None
        return ical.read_event(event_id, None, data.decode(), default_tz=TZ, owner=owner)

    def edit(self, owner: str, event_id: str, name: str, value: Any) -> bool:
        """Set one projection field of an event; False when the event is gone."""
        calendar = self.calendars[owner]
        if self.provider == "google":
            return self._edit_google(calendar, event_id, name, value)
        if self.provider == "outlook":
            return self._edit_graph(calendar, event_id, name, value)
        return self._edit_dav(calendar, event_id, name, value)

    def delete(self, owner: str, event_id: str) -> bool:
        calendar = self.calendars[owner]
        try:
            if self.provider == "google":
                self.backend.emu.delete_event_as_user(calendar, event_id)
            elif self.provider == "outlook":
                self.backend.graph.delete_event_as_user(calendar, event_id)
            else:
                status, _ = self.backend._request(self.backend.owner_of(calendar), "DELETE",
                                                  quote(event_id))
                return status in (200, 204)
        except KeyError:
            return False
        return True

    def create(self, owner: str, new: NewEvent) -> str:
        """Make an event in ``owner``'s calendar as its app would; returns its event id
        (the href on CalDAV)."""
        calendar = self.calendars[owner]
        if self.provider == "google":
            return self._create_google(calendar, owner, new)
        if self.provider == "outlook":
            return self._create_graph(calendar, new)
        return self._create_dav(calendar, new)

    def _create_google(self, calendar: str, owner: str, new: NewEvent) -> str:
        when = new.when
        event: dict[str, Any] = {
            "summary": new.title, "transparency": "opaque" if new.busy else "transparent",
            "start": {"date": when.start.isoformat()} if when.all_day else
            {"dateTime": when.local_start().isoformat(), "timeZone": TZ},
            "end": {"date": when.end.isoformat()} if when.all_day else
            {"dateTime": when.local_end().isoformat(), "timeZone": TZ}}
        if new.location:
            event["location"] = new.location
        if new.description:
            event["description"] = new.description
        if new.guests:
            event["attendees"] = [{"email": owner, "self": True, "organizer": True,
                                   "responseStatus": "accepted"}] + [
                {"email": g, "responseStatus": "needsAction"} for g in new.guests]
        if new.weekly:
            event["recurrence"] = [f"RRULE:FREQ=WEEKLY;COUNT={new.weekly}"]
        return str(self.backend.emu.put_event(calendar, event)["id"])

    def _create_graph(self, calendar: str, new: NewEvent) -> str:
        event: dict[str, Any] = {"subject": new.title, "showAs": "busy" if new.busy else "free",
                                 **outlook_map.when_payload(new.when)}
        if new.location:
            event["location"] = {"displayName": new.location}
        if new.description:
            event["body"] = {"contentType": "text", "content": new.description}
        if new.guests:
            event["attendees"] = [{"emailAddress": {"address": g}, "type": "required"}
                                  for g in new.guests]
        if new.weekly:
            start = new.when.start
            day = start.date() if isinstance(start, datetime) else start
            event["recurrence"] = {
                "pattern": {"type": "weekly", "interval": 1,
                            "daysOfWeek": [day.strftime("%A").lower()]},
                "range": {"type": "numbered", "startDate": day.isoformat(),
                          "numberOfOccurrences": new.weekly}}
        return str(self.backend.graph.create_event_as_user(calendar, event)["id"])

    def _create_dav(self, calendar: str, new: NewEvent) -> str:
        cal = icalendar.Calendar()
        cal.add("PRODID", "-//soak//calendar app//EN")
        cal.add("VERSION", "2.0")
        vevent = icalendar.Event()
        uid = uuid.uuid4().hex
        vevent.add("UID", uid)
        vevent.add("DTSTAMP", datetime.now().astimezone())
        vevent.add("DTSTART", new.when.start)
        vevent.add("DTEND", new.when.end)
        vevent.add("SUMMARY", new.title)
        vevent.add("TRANSP", "OPAQUE" if new.busy else "TRANSPARENT")
        if new.location:
            vevent.add("LOCATION", new.location)
        if new.description:
            vevent.add("DESCRIPTION", new.description)
        for guest in new.guests:
            vevent.add("ATTENDEE", f"mailto:{guest}")
        if new.weekly:
            vevent.add("RRULE", {"FREQ": "WEEKLY", "COUNT": new.weekly})
        cal.add_component(vevent)
        href = f"{calendar}{uid}.ics"
        status, body = self.backend._request(
            self.backend.owner_of(calendar), "PUT", quote(href), cal.to_ical(),
            {"Content-Type": "text/calendar; charset=utf-8", "If-None-Match": "*"})
        if status not in (200, 201, 204):
            raise RuntimeError(f"PUT {href}: HTTP {status} {body[:200]!r}")
        return href

    def _edit_google(self, calendar: str, event_id: str, name: str, value: Any) -> bool:
        found = [r for r in self.backend.emu.events(calendar) if r["id"] == event_id]
        if not found:
            return False
        event = found[0]
        if name == "title":
            event["summary"] = value
        elif name == "busy":
            event["transparency"] = "opaque" if value else "transparent"
        elif name in ("description", "location"):
            event[name] = value
        elif name == "when":
            if value.all_day:
                event["start"], event["end"] = ({"date": value.start.isoformat()},
                                                {"date": value.end.isoformat()})
            else:
                event["start"], event["end"] = (
                    {"dateTime": value.local_start().isoformat(), "timeZone": TZ},
                    {"dateTime": value.local_end().isoformat(), "timeZone": TZ})
        self.backend.emu.put_event(calendar, event)
        return True

    def _edit_graph(self, calendar: str, event_id: str, name: str, value: Any) -> bool:
        changes: dict[str, Any]
        if name == "title":
            changes = {"subject": value}
        elif name == "busy":
            changes = {"showAs": "busy" if value else "free"}
        elif name == "description":
            changes = {"body": {"contentType": "text", "content": value}}
        elif name == "location":
            changes = {"location": {"displayName": value}}
        else:
            changes = outlook_map.when_payload(value)
        try:
            self.backend.graph.put_event(calendar, event_id, changes)
        except KeyError:
            return False
        except Exception as exc:  # the emulator's "not found" error type
            if "not found" in str(exc).lower() or "ErrorItemNotFound" in str(exc):
                return False
            raise
        return True

    def _edit_dav(self, calendar: str, href: str, name: str, value: Any) -> bool:
        user = self.backend.owner_of(calendar)
        status, data = self.backend._request(user, "GET", quote(href))
        if status != 200:
            return False
        cal = icalendar.Calendar.from_ical(data)
        vevent = next(iter(cal.walk("VEVENT")))
        if name == "when":
            for prop in ("DTSTART", "DTEND", "DURATION"):
                vevent.pop(prop, None)
            vevent.add("DTSTART", value.start)
            vevent.add("DTEND", value.end)
        else:
            prop = {"title": "SUMMARY", "busy": "TRANSP", "description": "DESCRIPTION",
                    "location": "LOCATION"}[name]
            vevent.pop(prop, None)
            vevent.add(prop, ("OPAQUE" if value else "TRANSPARENT") if name == "busy"
                       else value)
        sequence = int(vevent.get("SEQUENCE", 0))
        vevent.pop("SEQUENCE", None)
        vevent.add("SEQUENCE", sequence + 1)
        vevent.pop("DTSTAMP", None)
        vevent.add("DTSTAMP", datetime.now().astimezone())
        status, _ = self.backend._request(user, "PUT", quote(href), cal.to_ical(),
                                          {"Content-Type": "text/calendar; charset=utf-8"})
        return status in (200, 201, 204)


def shifted(when: When, hours: int, minutes: int | None) -> When:
    """``when`` moved by ``hours`` (days, for a whole-day event) and, when timed, lasting
    ``minutes`` if given."""
    from datetime import timedelta

    if when.all_day:
        assert isinstance(when.start, date) and isinstance(when.end, date)
        step = timedelta(days=1 if hours >= 0 else -1)
        return When(when.start + step, when.end + step, when.tz)
    start = when.start + timedelta(hours=hours)
    length = timedelta(minutes=minutes) if minutes else when.end - when.start  # type: ignore[operator]
    return When(start, start + length, TZ)


__all__ = ["CalendarUser", "GoogleBackend", "GraphBackend", "NewEvent", "RadicaleBackend",
           "XandikosBackend", "shifted"]
