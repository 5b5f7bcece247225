"""``POST /{me|users/{id}}/calendar/getSchedule`` for the Graph emulator.

Facts [doc: api-reference/v1.0/api/calendar-getschedule.md, learn.microsoft.com/graph/api/
calendar-getschedule; resources/scheduleinformation.md, scheduleitem.md, freebusyerror.md;
learn.microsoft.com/graph/outlook-get-free-busy-schedule]:

* body ``{schedules: [SMTP address], startTime, endTime: dateTimeTimeZone,
  availabilityViewInterval?}``; the interval is minutes, default 30, minimum 5, maximum
  1440;
* answer 200 ``{value: [scheduleInformation]}``, one per address asked, in order:
  ``scheduleId``, ``availabilityView`` (one digit per interval: 0 free or working elsewhere,
  1 tentative, 2 busy, 3 out of office), ``scheduleItems`` (``status`` one of free,
  tentative, busy, oof, workingElsewhere, unknown; ``start``/``end`` dateTimeTimeZone;
  ``isPrivate``, ``subject``, ``location``), ``workingHours``, and ``error``
  (``freeBusyError``: ``message``, ``responseCode``) for an address that could not be
  answered; the other addresses are answered all the same;
* times in the zone of ``Prefer: outlook.timezone``, else UTC;
* the span may be at most 62 days: 400 ``ErrorTimeIntervalTooBig`` "The requested time
  duration specified for FreeBusyViewOptions.TimeWindow is too long. The allowed limit =
  62 days" [doc: microsoft-graph-docs#19703, which corrected the documented 42 to 62].

Emulator choices where the documents are silent: an unknown address answers
``error.responseCode`` ``ErrorMailRecipientNotFound`` (the Exchange response code of that
name); an end not after the start answers 400 ``ErrorInvalidTimeInterval``; a missing or
malformed member of the body answers 400 ``ErrorInvalidRequest``; at most 100 addresses
(400 ``ErrorInvalidRequest`` past that). Items come from the mailbox's default calendar,
series expanded (:mod:`.graph_series`), cancelled events left out; free events are listed
with status ``free`` (they are items of the schedule) and take no part in the view.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from .graph_delta import in_window
from .graph_model import GraphError, StoredEvent
from .graph_series import expanded
from .graph_store import Mailbox
from .graph_tz import UnknownTimeZone, format_graph_datetime, parse_graph_datetime, resolve_zone

if TYPE_CHECKING:
    from .graph_store import GraphStore

__all__ = ["get_schedule"]

MAX_SPAN = timedelta(days=62)
MAX_SCHEDULES = 100
STATUSES = ("free", "tentative", "busy", "oof", "workingElsewhere", "unknown")
_VIEW_DIGIT = {"free": 0, "workingElsewhere": 0, "tentative": 1, "busy": 2, "oof": 3,
               "unknown": 2}


def _bad(message: str) -> GraphError:
    return GraphError(400, "ErrorInvalidRequest", message)


def _moment(body: dict[str, Any], name: str) -> datetime:
    part = body.get(name)
    if not isinstance(part, dict) or not isinstance(part.get("dateTime"), str):
        raise _bad(f"The parameter '{name}' is missing or invalid.")
    try:
        return parse_graph_datetime(part["dateTime"], str(part.get("timeZone") or "UTC"))[1]
    except UnknownTimeZone as exc:
        raise GraphError(400, "TimeZoneNotSupportedException",
                         f"A valid TimeZone value must be specified. The following TimeZone "
                         f"value is not supported: '{exc.name}'.") from None
    except ValueError:
        raise _bad(f"The parameter '{name}' is missing or invalid.") from None


def get_schedule(store: GraphStore, body: Any, out_zone: str) -> dict[str, Any]:
    """The answer to one getSchedule body (see the module docstring); raises GraphError."""
    if not isinstance(body, dict):
        raise _bad("Empty Payload. JSON content expected.")
    schedules = body.get("schedules", body.get("Schedules"))
    if not isinstance(schedules, list) or not schedules or not all(
            isinstance(s, str) for s in schedules):
        raise _bad("The parameter 'schedules' is missing or invalid.")
    if len(schedules) > MAX_SCHEDULES:
        raise _bad(f"At most {MAX_SCHEDULES} schedules may be requested.")
    start, end = _moment(body, "startTime"), _moment(body, "endTime")
    if end <= start:
        raise GraphError(400, "ErrorInvalidTimeInterval",
                         "The end time must be after the start time.")
    if end - start > MAX_SPAN:
        days = -(-(end - start) // timedelta(days=1))
        raise GraphError(400, "ErrorTimeIntervalTooBig",
                         "The requested time duration specified for FreeBusyViewOptions."
                         f"TimeWindow is too long. The allowed limit = 62 days; the actual "
                         f"limit = {days} days.")
    interval = body.get("availabilityViewInterval", 30)
    try:
        minutes = int(interval)
    except (TypeError, ValueError):
        raise _bad("The parameter 'availabilityViewInterval' is invalid.") from None
    if not 5 <= minutes <= 1440:
        raise _bad("The parameter 'availabilityViewInterval' must be between 5 and 1440.")
    zone = resolve_zone(out_zone)
    value = []
    for address in schedules:
        mbx = store.find_mailbox(address)
        if mbx is None:
            value.append({"scheduleId": address, "availabilityView": "", "scheduleItems": [],
                          "error": {"message": "The recipient could not be found.",
                                    "responseCode": "ErrorMailRecipientNotFound"}})
            continue
        items = _items(mbx, start, end)
        value.append({
            "scheduleId": address,
            "availabilityView": _view(items, start, end, timedelta(minutes=minutes)),
            "scheduleItems": [_render(ev, status, zone, out_zone) for ev, status in items],
            "workingHours": {"daysOfWeek": ["monday", "tuesday", "wednesday", "thursday",
                                            "friday"],
                             "startTime": "08:00:00.0000000", "endTime": "17:00:00.0000000",
                             "timeZone": {"name": out_zone}},
        })
    return {"@odata.context":
            "https://graph.microsoft.com/v1.0/$metadata#Collection(microsoft.graph."
            "scheduleInformation)", "value": value}


def _items(mbx: Mailbox, start: datetime, end: datetime) -> list[tuple[StoredEvent, str]]:
    events = [e for e in mbx.events_in(mbx.calendar(None).id)
              if not e.props.get("isCancelled")]
    found = []
    for ev, _master in expanded(events, start, end, in_window):
        status = str(ev.props.get("showAs") or "busy")
        found.append((ev, status if status in STATUSES else "unknown"))
    return found


def _view(items: list[tuple[StoredEvent, str]], start: datetime, end: datetime,
          step: timedelta) -> str:
    digits = []
    at = start
    while at < end:
        slot_end = min(at + step, end)
        digit = max((_VIEW_DIGIT[status] for ev, status in items
                     if ev.start.utc < slot_end and ev.end.utc > at), default=0)
        digits.append(str(digit))
        at = slot_end
    return "".join(digits)


def _render(ev: StoredEvent, status: str, zone: Any, zone_name: str) -> dict[str, Any]:
    def when(moment: datetime) -> dict[str, str]:
        return {"dateTime": format_graph_datetime(moment.astimezone(zone).replace(tzinfo=None)),
                "timeZone": zone_name}

    location = ev.props.get("location") or {}
    return {"isPrivate": ev.props.get("sensitivity") == "private", "status": status,
            "subject": ev.props.get("subject", ""),
            "location": location.get("displayName", "") if isinstance(location, dict) else "",
            "start": when(ev.start.utc), "end": when(ev.end.utc)}
