"""Free/busy and window listings of a CalDAV collection (RFC 4791 7.8, 7.10, 9.6.5).

* ``free-busy-query`` (7.10) answers 200 with a ``text/calendar`` VFREEBUSY (Xandikos says
  ``application/octet-stream``: the body decides, not the type). Its FREEBUSY periods are
  read here, by :func:`read_vfreebusy`, without a library: the format is a few lines, and
  a linear reader bounded in bytes and periods needs no sandbox.
* ``calendar-query`` (7.8) with a ``time-range`` filter, asking the server to expand
  recurrences (9.6.5), lists the events of a span: the agenda, and the free/busy of a
  server that refuses ``free-busy-query``. Its objects are read in the sandbox like every
  object from a server (:func:`connectors.ical.read_instances`).

Both replies are untrusted: capped in bytes, hrefs outside the collection ignored, and a
broken item set aside with its reason while the rest is read.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

from connectors.busy import BusyTally
from connectors.caldav_http import (
    CALDAV,
    DAV,
    BadReply,
    DavTransport,
    Fetched,
    Reply,
    ReplyTooLarge,
    Reported,
    member_path,
    status_error,
)
from syncd.errors import AuthFailed, CalendarMissing, Transient

#: A free-busy reply larger than this is refused: some 80,000 periods.
MAX_FREE_BUSY_BYTES = 4 * 1024 * 1024
#: Lines of a free-busy reply read at most (a period per line is the usual form).
MAX_LINES = 100_000
#: A calendar-query reply larger than this is refused (as a multiget's).
MAX_QUERY_BYTES = 16 * 1024 * 1024
#: FBTYPE -> busy kind (RFC 5545 3.2.9). FREE is not busy; an unknown type is treated as
#: BUSY, as the RFC asks of x-name and iana-token values a reader does not know.
FBTYPES = {"BUSY": "busy", "BUSY-TENTATIVE": "tentative", "BUSY-UNAVAILABLE": "oof"}
#: What a server says when it does not do free-busy-query: try the calendar-query instead.
REFUSALS = frozenset({400, 403, 405, 406, 409, 412, 415, 422, 501})

_UTC_STAMP = re.compile(r"^(\d{8})T(\d{6})Z$")
_DURATION = re.compile(r"^\+?P(?:(\d{1,6})W)?(?:(\d{1,6})D)?"
                       r"(?:T(?:(\d{1,7})H)?(?:(\d{1,9})M)?(?:(\d{1,9})S)?)?$")


class NoFreeBusy(Exception):
    """The server will not answer a free-busy-query (or not readably); ``args[0]`` says why."""


def _stamp(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")


def free_busy_body(start: datetime, end: datetime) -> str:
    return ('<?xml version="1.0" encoding="utf-8"?>'
            '<C:free-busy-query xmlns:C="urn:ietf:params:xml:ns:caldav">'
            f'<C:time-range start="{_stamp(start)}" end="{_stamp(end)}"/>'
            "</C:free-busy-query>")


def calendar_query_body(start: datetime, end: datetime) -> str:
    span = f'start="{_stamp(start)}" end="{_stamp(end)}"'
    return ('<?xml version="1.0" encoding="utf-8"?>'
            '<C:calendar-query xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav">'
            f"<D:prop><D:getetag/><C:calendar-data><C:expand {span}/></C:calendar-data>"
            "</D:prop><C:filter><C:comp-filter name=\"VCALENDAR\">"
            f'<C:comp-filter name="VEVENT"><C:time-range {span}/></C:comp-filter>'
            "</C:comp-filter></C:filter></C:calendar-query>")


def _judge(reply: Reply | Reported, what: str, collection: str) -> None:
    """Raise for a status that is nobody's refusal of the report itself."""
    if reply.status == 401:
        raise AuthFailed(reason=f"HTTP 401 to {what}")
    if reply.status in (404, 410):
        raise CalendarMissing(calendar=collection, found=())
    if reply.status in (429, 503):
        raise status_error(reply.status, collection, reply.headers)


def free_busy(transport: DavTransport, collection: str, start: datetime, end: datetime,
              tally: BusyTally) -> None:
    """One free-busy-query of [start, end) into ``tally``.

    Raises:
        NoFreeBusy: the server refuses the report, or answers it with no VFREEBUSY.
        AuthFailed, CalendarMissing, RateLimited, Transient: as for any report.
    """
    try:
        reply = transport.send("REPORT", collection, free_busy_body(start, end).encode(), {
            "Content-Type": "application/xml; charset=utf-8", "Depth": "1"},
            max_bytes=MAX_FREE_BUSY_BYTES)
    except ReplyTooLarge:
        raise Transient(reason="free-busy-query: the reply is too large") from None
    _judge(reply, "free-busy-query", collection)
    if reply.status in REFUSALS:
        raise NoFreeBusy(f"HTTP {reply.status}")
    if reply.status != 200:
        raise Transient(reason=f"free-busy-query failed (HTTP {reply.status})",
                        status=reply.status)
    read_vfreebusy(reply.body, tally)


def _unfolded(text: str) -> Iterator[str]:
    """Content lines with RFC 5545 folding undone, at most :data:`MAX_LINES` of them."""
    current: list[str] = []
    count = 0
    for raw in text.replace("\r\n", "\n").replace("\r", "\n").split("\n"):
        if raw[:1] in (" ", "\t") and current:
            current.append(raw[1:])
            continue
        if current:
            yield "".join(current)
        count += 1
        if count > MAX_LINES:
            raise Transient(reason=f"free-busy-query: the reply has over {MAX_LINES} lines",
                            status=200)
        current = [raw]
    if current:
        yield "".join(current)


def _split(line: str) -> tuple[str, dict[str, str], str]:
    """(NAME, {PARAM: value}, value) of one content line; quoted parameter values kept whole."""
    head, value = "", ""
    params: dict[str, str] = {}
    quoted = False
    for index, char in enumerate(line):
        if char == '"':
            quoted = not quoted
        elif not quoted and char == ":":
            head, value = line[:index], line[index + 1:]
            break
    else:
        raise ValueError("a content line without a value")
    parts = head.split(";")
    for part in parts[1:]:
        name, _, param = part.partition("=")
        params[name.strip().upper()] = param.strip().strip('"')
    return parts[0].strip().upper(), params, value.strip()


def _utc(value: str) -> datetime:
    match = _UTC_STAMP.match(value)
    if not match:
        raise ValueError("a period edge that is not a UTC date-time")
    return datetime.strptime(match.group(1) + match.group(2), "%Y%m%d%H%M%S").replace(
        tzinfo=UTC)


def _period(value: str) -> tuple[datetime, datetime]:
    """A PERIOD (RFC 5545 3.3.9): start/end, or start/duration; UTC only (3.8.2.6)."""
    first, sep, second = value.partition("/")
    if not sep:
        raise ValueError("a period without '/'")
    start = _utc(first.strip())
    second = second.strip()
    match = _DURATION.match(second)
    if match and second.upper().startswith(("P", "+P")):
        weeks, days, hours, minutes, seconds = (int(g or 0) for g in match.groups())
        length = timedelta(weeks=weeks, days=days, hours=hours, minutes=minutes,
                           seconds=seconds)
        if length > timedelta(days=3660):
            raise ValueError("a period longer than ten years")
        return start, start + length
    return start, _utc(second)


def read_vfreebusy(body: bytes, tally: BusyTally) -> None:
    """Add the busy periods of a free-busy-query reply to ``tally``.

    FREEBUSY lines of every VFREEBUSY are read (each may list several periods, comma
    separated); FBTYPE=FREE is not busy. A period that is not two UTC instants (or a start
    and a duration) is skipped with the reason.

    Raises:
        NoFreeBusy: the reply holds no VFREEBUSY at all.
        Transient: the reply has more lines or periods than any calendar could.
    """
    text = body.decode("utf-8", "replace")
    inside = found = False
    for line in _unfolded(text):
        upper = line.strip().upper()
        if upper == "BEGIN:VFREEBUSY":
            inside = found = True
            continue
        if upper == "END:VFREEBUSY":
            inside = False
            continue
        if not inside or not upper.startswith("FREEBUSY"):
            continue
        try:
            name, params, value = _split(line)
        except ValueError:
            tally.item()
            tally.skip("a FREEBUSY line without a value")
            continue
        if name != "FREEBUSY":
            continue
        fbtype = params.get("FBTYPE", "BUSY").upper()
        kind = None if fbtype == "FREE" else FBTYPES.get(fbtype, "busy")
        for period in value.split(","):
            tally.item()
            if kind is None:
                continue
            try:
                start, end = _period(period)
            except (ValueError, OverflowError):
                tally.skip("a FREEBUSY period that is not two UTC instants")
                continue
            tally.add(start, end, kind)
    if not found:
        raise NoFreeBusy("the reply holds no VFREEBUSY")


def calendar_query(transport: DavTransport, collection: str, start: datetime,
                   end: datetime) -> tuple[list[Fetched], int]:
    """The objects with events in [start, end), recurrences expanded by the server, and how
    many hrefs outside the collection the reply named (ignored).

    Raises:
        AuthFailed, CalendarMissing, RateLimited: as for any report.
        Transient: the report failed or its reply cannot be used.
    """
    try:
        reply = transport.report(collection, calendar_query_body(start, end), depth="1",
                                 max_bytes=MAX_QUERY_BYTES)
    except ReplyTooLarge:
        raise Transient(reason="calendar-query: the reply is too large") from None
    except BadReply as exc:  # a 207 that is no multistatus
        raise Transient(reason=f"calendar-query: {exc.args[0]}", status=207) from None
    _judge(reply, "calendar-query", collection)
    if reply.status == 403:
        raise AuthFailed(reason="HTTP 403 to calendar-query")
    if reply.status != 207:
        raise Transient(reason=f"calendar-query failed (HTTP {reply.status})",
                        status=reply.status)
    return _objects(collection, reply.root)


def _objects(collection: str, root: Any) -> tuple[list[Fetched], int]:
    found: dict[str, Fetched] = {}
    outside = 0
    for response in root.iterfind(f"{DAV}response"):
        path = member_path(collection, response.findtext(f"{DAV}href") or "")
        if path is None:
            outside += 1
            continue
        if path in found:
            continue  # the same object twice: the first answer stands
        for propstat in response.iterfind(f"{DAV}propstat"):
            line = (propstat.findtext(f"{DAV}status") or "").split()
            if len(line) > 1 and line[1] != "200":
                continue
            etag = propstat.findtext(f"{DAV}prop/{DAV}getetag")
            text = propstat.findtext(f"{DAV}prop/{CALDAV}calendar-data")
            if text is not None:
                found[path] = Fetched(path, etag, text.encode())
                break
        else:
            found[path] = Fetched(path, None, None, 0, problem="the server sent no data")
    return list(found.values()), outside
