"""The booking pages as HTML (and the booking as an ``.ics``): pure functions, no I/O.

Every value that reaches a page is escaped here (``html.escape`` with quotes), so names
and addresses a visitor typed can never become markup. The pages carry no inline script
or style: ``/booking-assets/booking.css`` styles them and ``booking.js`` only picks the
visitor's time zone when the URL names none (the pages work without it). A page shows
free slots and the owner's name, never anything about the owner's other events.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from html import escape
from pathlib import Path
from zoneinfo import ZoneInfo, available_timezones

import icalendar

from syncd.model import Activity

ASSETS = Path(__file__).parent / "booking_assets"
ASSET_TYPES = {"booking.css": "text/css; charset=utf-8",
               "booking.js": "text/javascript; charset=utf-8"}


@cache
def zones() -> tuple[str, ...]:
    """The time zones a visitor may pick: IANA's region/city names, and UTC."""
    return ("UTC", *sorted(z for z in available_timezones()
                           if "/" in z and not z.startswith(("Etc/", "SystemV/", "posix/",
                                                             "right/"))))


def pick_zone(value: str | None) -> str | None:
    """``value`` when it is a zone the page offers, else None."""
    return value if value in set(zones()) else None


@dataclass(frozen=True)
class Offer:
    """What the booking page shows: whose link, how long, and the free slots."""

    owner_name: str
    type_name: str
    duration_minutes: int
    slots: Sequence[tuple[datetime, datetime]]


@dataclass(frozen=True)
class FormState:
    """The form as the visitor left it, and what was wrong with it."""

    name: str = ""
    email: str = ""
    slot: str = ""
    message: str = ""
    field: str = ""  # the field the message is about ("" none, "slot", "name", "email")


def _e(value: object) -> str:
    return escape(str(value), quote=True)


def _document(title: str, body: str) -> bytes:
    return (
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
        "<meta name=\"robots\" content=\"noindex, nofollow\">\n"
        f"<title>{_e(title)}</title>\n"
        "<link rel=\"stylesheet\" href=\"/booking-assets/booking.css\">\n"
        "<script src=\"/booking-assets/booking.js\" defer></script>\n"
        f"</head>\n<body>\n<main id=\"main\">\n{body}\n</main>\n</body>\n</html>\n"
    ).encode()


def _day(moment: datetime) -> str:
    return f"{moment:%A} {moment.day} {moment:%B %Y}"


def _clock(moment: datetime) -> str:
    """``moment``'s wall time; with its UTC offset when the clock shows that time twice
    that night (clocks going back), so the two 01:30s of such a night are told apart."""
    text = f"{moment:%H:%M}"
    offset = moment.utcoffset()
    if offset is not None and moment.replace(fold=1 - moment.fold).utcoffset() != offset:
        minutes = int(offset.total_seconds()) // 60
        sign = "+" if minutes >= 0 else "\u2212"
        text += f" (UTC{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d})"
    return text


def _zone_form(action: str, zone: str) -> str:
    options = "".join(f"<option value=\"{_e(z)}\"{' selected' if z == zone else ''}>"
                      f"{_e(z.replace('_', ' '))}</option>" for z in zones())
    return (f"<form class=\"zone\" method=\"get\" action=\"{_e(action)}\">"
            "<label for=\"tz\">Times shown in</label> "
            f"<select id=\"tz\" name=\"tz\" data-zone=\"{_e(zone)}\">{options}</select> "
            "<button type=\"submit\">Show</button></form>")


def booking_page(action: str, offer: Offer, zone: str, csrf: str,
                 state: FormState = FormState()) -> bytes:
    """The booking page: the slots grouped by day in ``zone``, then name and e-mail."""
    tz = ZoneInfo(zone)
    title = f"Book a {offer.type_name.lower()} with {offer.owner_name}"
    parts = [f"<h1>{_e(title)}</h1>",
             f"<p class=\"lead\">{offer.duration_minutes} minutes. Pick a free time, then "
             "give your name and e-mail address.</p>",
             _zone_form(action, zone)]
    if state.message:
        parts.append(f"<p class=\"problem\" role=\"alert\" id=\"problem\">"
                     f"{_e(state.message)}</p>")
    days: dict[str, list[str]] = {}
    for n, (start, end) in enumerate(offer.slots):
        local, until = start.astimezone(tz), end.astimezone(tz)
        value = start.astimezone(UTC).isoformat()
        checked = " checked" if value == state.slot else ""
        days.setdefault(_day(local), []).append(
            f"<li><input type=\"radio\" name=\"slot\" id=\"s{n}\" value=\"{_e(value)}\""
            f"{checked} required><label for=\"s{n}\">{_clock(local)}"
            f"<span class=\"until\"> – {_clock(until)}</span></label></li>")
    fields = [f"<input type=\"hidden\" name=\"csrf\" value=\"{_e(csrf)}\">",
              f"<input type=\"hidden\" name=\"tz\" value=\"{_e(zone)}\">"]
    if days:
        groups = "".join(f"<fieldset class=\"day\"><legend>{_e(day)}</legend>"
                         f"<ul class=\"slots\">{''.join(items)}</ul></fieldset>"
                         for day, items in days.items())
        fields.append("<section class=\"times\" aria-labelledby=\"times\">"
                      f"<h2 id=\"times\">Free times</h2>{groups}</section>")
        fields.append(
            "<div class=\"aside\"><fieldset class=\"who\"><legend>Your details</legend>"
            + _input("name", "Your name", "text", state.name, "name", state.field, 100)
            + _input("email", "Your e-mail address", "email", state.email, "email",
                     state.field, 254)
            + "</fieldset><button type=\"submit\" class=\"book\">Book</button></div>")
        parts.append(f"<form method=\"post\" action=\"{_e(action)}\" class=\"booking\">"
                     f"{''.join(fields)}</form>")
    else:
        parts.append("<p class=\"empty\">There are no free times in the coming weeks. "
                     "Please try again later.</p>")
    return _document(title, "\n".join(parts))


def _input(name: str, label: str, kind: str, value: str, autocomplete: str, bad: str,
           limit: int) -> str:
    invalid = " aria-invalid=\"true\" aria-describedby=\"problem\"" if bad == name else ""
    return (f"<p><label for=\"{name}\">{_e(label)}</label>"
            f"<input id=\"{name}\" name=\"{name}\" type=\"{kind}\" value=\"{_e(value)}\" "
            f"maxlength=\"{limit}\" autocomplete=\"{autocomplete}\" required{invalid}></p>")


def confirmation_page(offer: Offer, start: datetime, end: datetime, zone: str,
                      email: str, ics_url: str) -> bytes:
    """The page after booking: when, with whom, for whom (``email``; "" names no one),
    and the ``.ics`` download."""
    tz = ZoneInfo(zone)
    local, until = start.astimezone(tz), end.astimezone(tz)
    title = "Booked"
    body = (f"<h1>{_e(title)}</h1>"
            f"<p class=\"done\" role=\"status\">Your {_e(offer.type_name.lower())} with "
            f"{_e(offer.owner_name)} is booked for <strong>{_e(_day(local))}, "
            f"{_clock(local)} – {_clock(until)}</strong> ({_e(zone.replace('_', ' '))}).</p>"
            + (f"<p>Booked for {_e(email)}.</p>" if email else "") +
            f"<p><a class=\"button\" href=\"{_e(ics_url)}\" download>Add to your calendar "
            "(.ics)</a></p>")
    return _document(title, body)


def message_page(title: str, message: str) -> bytes:
    """A page that only says something (not found, too many requests)."""
    return _document(title, f"<h1>{_e(title)}</h1><p>{_e(message)}</p>")


def booking_ics(activity: Activity, start: datetime, end: datetime, *, owner_name: str,
                owner_email: str) -> bytes:
    """The booking as an iCalendar file for the visitor's calendar. Its UID is the one
    syncd gives the owner's CalDAV event, so a calendar that also gets the invitation
    sees one meeting."""
    cal = icalendar.Calendar()
    cal.add("PRODID", "-//syncd//booking//EN")
    cal.add("VERSION", "2.0")
    event = icalendar.Event()
    event.add("UID", f"{activity.sync_uid}-0@syncd")
    event.add("DTSTAMP", datetime.now(UTC).replace(microsecond=0))
    event.add("DTSTART", start.astimezone(UTC))
    event.add("DTEND", end.astimezone(UTC))
    event.add("SUMMARY", f"{activity.type.replace('_', ' ').capitalize()} with {owner_name}")
    organizer = icalendar.vCalAddress(f"mailto:{owner_email}")
    organizer.params["CN"] = icalendar.vText(owner_name)
    event.add("ORGANIZER", organizer)
    event.add("STATUS", "CONFIRMED")
    cal.add_component(event)
    return bytes(cal.to_ical())
