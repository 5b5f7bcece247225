"""Hypothesis strategies for fuzzing the readers: Google and Graph events, iCalendar objects.

Random bytes rarely get past the first check of a reader, so these strategies build events
that are *structurally valid but weird*: every field the mapper reads is present most of
the time, in its documented shape most of the time, with values drawn from the edges (years
1 and 9999, offsets of +14:00 and +23:59, 24:00 and leap seconds, every IANA and Windows
zone name and garbage ones, lone surrogates, controls, injection) and, some of the time,
any JSON value at all in its place. :func:`check` is the property every reader must hold:
it never raises, and it returns a RemoteEvent with either a projection or a problem.

The tests ``target`` readable events and bigger inputs, so Hypothesis spends its budget
on the paths past the first checks (a cheap stand-in for coverage guidance).

Runs: the ``ci`` profile (200 examples a test) in CI; a longer run with the ``fuzz``
profile, ``HYPOTHESIS_PROFILE=fuzz .venv/bin/pytest -q tests/hostile -k fuzz``
(``SYNCD_FUZZ_EXAMPLES`` sets how many examples, 2,000 by default).
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any
from zoneinfo import available_timezones

from hypothesis import strategies as st

from connectors.base import RemoteEvent
from connectors.outlook_zones import WINDOWS_TO_IANA
from syncd.safe_json import usable_id
from tests.hostile.jsonread import clean

# --- building blocks ------------------------------------------------------------------------

#: Every code point, lone surrogates included (Hypothesis leaves those out by default).
ANY_CHAR = st.characters(min_codepoint=0, max_codepoint=0x10FFFF, exclude_categories=())
NASTY_TEXT = st.sampled_from([
    "", " ", "\x00", "\ud800", "\udfff", "a\ud83d", "\r\n", "\r\nBEGIN:VEVENT\r\n", "\u2028",
    "\u202e", "\ufeff", "<script>alert(1)</script>", "'; DROP TABLE activities;--",
    "Guests:", "\n\nGuests: a@b.cc", "\n\nGuests: Ada <ada@example.org>, x", "%s%n", "\\",
    "\x1b[31m", "Z" * 300, "ø" * 70, "𝕏" * 40,
])
TEXT = st.one_of(st.text(max_size=40), st.text(ANY_CHAR, max_size=20), NASTY_TEXT)
JSON_LEAF = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), TEXT)
ANY_JSON: st.SearchStrategy[Any] = st.recursive(
    JSON_LEAF, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                        st.dictionaries(TEXT, inner, max_size=4)),
    max_leaves=10)

ZONES = sorted(available_timezones())
ZONE = st.one_of(
    st.sampled_from(ZONES), st.sampled_from(sorted(WINDOWS_TO_IANA)),
    st.sampled_from(["", "UTC", "Z", "Etc/GMT+14", "../../etc/passwd", "/etc/localtime",
                     "UTC\x00", "tzone://Microsoft/Utc", "Mars/Olympus", "A" * 300,
                     "Europe/Oslo ", "europe/oslo"]),
    TEXT)
OFFSET = st.sampled_from(["Z", "z", "+00:00", "-00:00", "+14:00", "-12:00", "+05:45",
                          "+23:59", "-23:59", "+24:00", "+0100", "", ""])
FRACTION = st.sampled_from(["", "", ".5", ".0000000", ".123456789", ".9999999"])
EDGE_TIMES = st.sampled_from([
    "9999-12-31T23:59:59Z", "9999-12-31T23:59:59-14:00", "0001-01-01T00:00:00+14:00",
    "0001-01-01T00:00:00Z", "2026-02-29T10:00:00Z", "2028-02-29T10:00:00Z",
    "2026-12-10T24:00:00Z", "2026-12-10T23:59:60Z", "2026-03-29T02:30:00",
    "2026-10-25T02:30:00", "2026-12-10", "20261210T100000Z", "+002026-12-10T10:00:00Z",
    "2026-12-10T10:00:00.0000000", "2026-12-10 10:00:00", "2026-12-10T10:00", "",
])


@st.composite
def date_time_text(draw: st.DrawFn) -> str:
    """A date-time as a provider writes it, from anywhere in years 1 to 9999, or an edge."""
    if draw(st.sampled_from(range(3 + 1))) == 0:
        return draw(EDGE_TIMES)
    when = draw(st.datetimes(min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31)))
    near = draw(st.datetimes(min_value=datetime(2025, 1, 1), max_value=datetime(2028, 1, 1)))
    when = near if draw(st.booleans()) else when
    return when.strftime("%Y-%m-%dT%H:%M:%S") + draw(FRACTION) + draw(OFFSET)


def date_text() -> st.SearchStrategy[str]:
    return st.one_of(
        st.dates(min_value=date(1, 1, 1), max_value=date(9999, 12, 31)).map(date.isoformat),
        st.dates(min_value=date(2025, 1, 1), max_value=date(2028, 1, 1)).map(date.isoformat),
        st.sampled_from(["9999-12-31", "0001-01-01", "2026-02-30", "10000-01-01", "2026-1-1",
                         "2026-12-10T10:00:00Z", ""]))


def shaped(valid: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Mostly the documented shape, sometimes any JSON value at all."""
    return mostly(valid, ANY_JSON, odds=6)


def mostly(valid: st.SearchStrategy[Any], weird: st.SearchStrategy[Any], *,
           odds: int = 12) -> st.SearchStrategy[Any]:
    """``weird`` about once in ``odds`` draws, else ``valid`` (``one_of`` would be 1:1).

    A field that fails ends the mapping early, so the paths behind it are only reached
    when most fields are well-formed.
    """
    return st.sampled_from(range(odds)).flatmap(lambda n: weird if n == 0 else valid)


EMAIL = st.one_of(st.sampled_from(["ada@example.org", "BOB@Example.NET", "owner@example.com",
                                   "not-an-address", "a@b", "x\x00@y.zz", "\ud800@y.zz"]),
                  st.emails().map(str), TEXT)


# --- Google ---------------------------------------------------------------------------------


@st.composite
def google_events(draw: st.DrawFn) -> Any:
    """A Google Calendar v3 Event resource, structurally valid but weird (or not at all)."""
    if draw(st.sampled_from(range(30 + 1))) == 0:
        return draw(ANY_JSON)
    timed = draw(st.sampled_from(range(5 + 1))) > 0  # start and end mostly of the same kind
    edt = shaped(st.one_of(
        st.fixed_dictionaries({"dateTime": date_time_text()}, optional={"timeZone": ZONE})
        if timed else st.fixed_dictionaries({"date": date_text()},
                                            optional={"timeZone": ZONE})))
    attendee = shaped(st.fixed_dictionaries(
        {"email": shaped(EMAIL)},
        optional={"displayName": shaped(TEXT), "self": st.booleans(),
                  "organizer": st.booleans(), "resource": st.booleans(),
                  "responseStatus": shaped(st.sampled_from(["accepted", "needsAction"]))}))
    return draw(st.fixed_dictionaries(
        {"id": mostly(st.text("abcdefghijklmnopqrstuv0123456789", min_size=5, max_size=40),
                      ANY_JSON),
         "start": edt, "end": edt},
        optional={
            "kind": st.just("calendar#event"),
            "etag": mostly(st.just('"3181161784712000"'), ANY_JSON),
            "status": shaped(st.sampled_from(["confirmed", "tentative", "cancelled"])),
            "summary": shaped(TEXT), "description": shaped(TEXT), "location": shaped(TEXT),
            "transparency": shaped(st.sampled_from(["opaque", "transparent"])),
            "updated": shaped(date_time_text()), "created": shaped(date_time_text()),
            "iCalUID": mostly(st.just("x@google.com"), ANY_JSON),
            "attendees": shaped(st.lists(attendee, max_size=4)),
            "organizer": shaped(st.fixed_dictionaries({"email": shaped(EMAIL)})),
            "extendedProperties": shaped(st.fixed_dictionaries(
                {"private": shaped(st.dictionaries(st.sampled_from(["syncd", "other"]),
                                                   shaped(TEXT), max_size=2))})),
            # A series is left alone before anything else is read: keep them rare.
            "recurrence": mostly(st.just([]), st.just(["RRULE:FREQ=DAILY"]) | ANY_JSON),
            "recurringEventId": mostly(st.none(), TEXT),
            "sequence": shaped(st.integers()),
            "x-unknown": ANY_JSON,
        }))


# --- Graph ----------------------------------------------------------------------------------


@st.composite
def graph_events(draw: st.DrawFn) -> Any:
    """A Microsoft Graph event, structurally valid but weird (or not at all)."""
    if draw(st.sampled_from(range(30 + 1))) == 0:
        return draw(ANY_JSON)
    time_ = shaped(st.fixed_dictionaries({"dateTime": mostly(date_time_text(), ANY_JSON),
                                          "timeZone": mostly(ZONE, ANY_JSON)}))
    address = shaped(st.fixed_dictionaries({"address": shaped(EMAIL)},
                                           optional={"name": shaped(TEXT)}))
    attendee = shaped(st.fixed_dictionaries(
        {"emailAddress": address},
        optional={"type": shaped(st.sampled_from(["required", "optional", "resource"]))}))
    prop = shaped(st.fixed_dictionaries({
        "id": st.sampled_from([
            "String {6b1f3e0c-8a2d-4c57-9e31-5d7a0c2b9f48} Name syncdMarker",
            "string {6B1F3E0C-8A2D-4C57-9E31-5D7A0C2B9F48} name syncdMarker",
            "String {6b1f3e0c-8a2d-4c57-9e31-5d7a0c2b9f48} Name syncdGeneration"]),
        "value": shaped(TEXT)}))
    return draw(st.fixed_dictionaries(
        {"id": mostly(st.text("ABCDEFabcdef0123456789=-_", min_size=5, max_size=60),
                      ANY_JSON),
         "start": time_, "end": time_},
        optional={
            "@odata.etag": mostly(st.just('W/"DwAAABYAAAA="'), ANY_JSON),
            "changeKey": mostly(st.just("DwAAABYAAAA="), ANY_JSON),
            "type": mostly(st.just("singleInstance"), st.sampled_from(
                ["occurrence", "seriesMaster", "exception"]) | ANY_JSON),
            "isAllDay": shaped(st.booleans()),
            "subject": shaped(TEXT),
            "body": shaped(st.fixed_dictionaries(
                {"contentType": shaped(st.sampled_from(["text", "html", "HTML"])),
                 "content": shaped(st.one_of(TEXT, st.sampled_from([
                     "<html><body><p>a</p><script>x</script></body></html>",
                     "<p>" * 500, "<br>" * 50 + "&#0;&#xD800;&#x110000;", "<!--",
                     "<div><p>Guests: ada@example.org</p></div>"])))})),
            "location": shaped(st.fixed_dictionaries({"displayName": shaped(TEXT)})),
            "showAs": shaped(st.sampled_from(["busy", "free", "oof", "tentative",
                                              "workingElsewhere", "unknown"])),
            "originalStartTimeZone": shaped(ZONE),
            "lastModifiedDateTime": shaped(date_time_text()),
            "iCalUId": mostly(st.just("040000008200E0"), ANY_JSON),
            "attendees": shaped(st.lists(attendee, max_size=4)),
            "organizer": shaped(st.fixed_dictionaries({"emailAddress": address})),
            "singleValueExtendedProperties": shaped(st.lists(prop, max_size=2)),
            "x-unknown": ANY_JSON,
        }))


# --- iCalendar ------------------------------------------------------------------------------

#: Text an iCalendar line can carry (controls and surrogates are NASTY_TEXT's, sometimes).
ICS_TEXT = st.text(st.characters(exclude_categories=["Cc", "Cs"]), max_size=30)
_ICS_TIMES = st.one_of(
    st.datetimes(min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31)).map(
        lambda d: d.strftime("%Y%m%dT%H%M%S")),
    st.datetimes(min_value=datetime(2025, 1, 1), max_value=datetime(2028, 1, 1)).map(
        lambda d: d.strftime("%Y%m%dT%H%M%S")))
_ICS_VALUE = st.one_of(
    st.tuples(_ICS_TIMES, st.sampled_from(["", "Z"])).map("".join),
    st.dates(min_value=date(1, 1, 1), max_value=date(9999, 12, 31)).map(
        lambda d: d.strftime("%Y%m%d")),
    st.sampled_from(["99991231T230000Z", "00010101T000000", "20261210T240000",
                     "20261210T235960Z", "20260230", "2026-12-10", "", "X"]))
_DURATION = st.sampled_from(["PT1H", "P1D", "P2D", "-PT1H", "P99999999W", "PT0S", "P",
                             "PT99999999999H", "P1W2D", "1H", "P1Y"])


def _escaped(text: str) -> str:
    return (text.replace("\\", "\\\\").replace(";", "\\;").replace(",", "\\,")
            .replace("\r", "").replace("\n", "\\n"))


@st.composite
def ics_lines(draw: st.DrawFn) -> list[str]:
    """The content lines of one VEVENT: mostly well-formed, with weird values."""
    lines: list[str] = []
    for name in ("DTSTART", "DTEND"):
        if draw(st.sampled_from(range(5 + 1))):
            params = draw(st.sampled_from(["", ";VALUE=DATE", ";VALUE=DATE-TIME", ";TZID="]))
            if params == ";TZID=":
                params += draw(st.one_of(st.sampled_from(ZONES),
                                         st.sampled_from(["Custom/Zone", "\"Quoted\"", "X"])))
            lines.append(f"{name}{params}:{draw(_ICS_VALUE)}")
    if draw(st.booleans()):
        lines.append(f"DURATION:{draw(_DURATION)}")
    for name in ("SUMMARY", "DESCRIPTION", "LOCATION", "TRANSP", "X-SYNCD-ID", "UID"):
        if draw(st.sampled_from(range(2 + 1))):
            value = draw(st.one_of(ICS_TEXT, ICS_TEXT, ICS_TEXT, NASTY_TEXT))
            lines.append(f"{name}:{_escaped(value)}")
    for _ in range(draw(st.sampled_from(range(2 + 1)))):
        cn = _escaped(draw(st.text(max_size=10)))
        lines.append(f"ATTENDEE;CN={cn}:mailto:{_escaped(draw(EMAIL))}")
    if draw(st.sampled_from(range(6 + 1))) == 0:
        lines.append(draw(st.sampled_from(["RRULE:FREQ=DAILY;COUNT=3", "RDATE:20261211",
                                           "EXDATE:20261211T100000Z"])))
    if draw(st.sampled_from(range(4 + 1))) == 0:
        lines.append(draw(st.sampled_from([
            "X-WEIRD;A=B;C=\"d\":v", "ORGANIZER:mailto:owner@example.com", "ATTENDEE:",
            "DTSTART;TZID=Europe/Oslo;VALUE=DATE:20261210", "SUMMARY;LANGUAGE=x:a",
            " folded continuation", "NO-COLON", "DTSTART:", ":empty-name"])))
    return lines


_TZ_OFFSET = st.sampled_from(["+0100", "+0200", "-1200", "+1400", "+2359", "+0100", "+0200",
                              "X"])


@st.composite
def vtimezones(draw: st.DrawFn) -> str:
    """A custom VTIMEZONE (yearly rules only: rule bombs are the CPU budget's tests)."""
    tzid = draw(st.sampled_from(["Custom/Zone", "Europe/Oslo", "X"]))
    parts = [f"BEGIN:VTIMEZONE\r\nTZID:{tzid}\r\n"]
    for kind in draw(st.lists(st.sampled_from(["STANDARD", "DAYLIGHT"]), max_size=2)):
        offset_from = draw(_TZ_OFFSET)
        offset_to = draw(_TZ_OFFSET)
        start = draw(st.sampled_from(["16010101T000000", "19700329T020000", "99991231T000000",
                                      "20261210T100000"]))
        rule = draw(st.sampled_from(["", "RRULE:FREQ=YEARLY;BYMONTH=3;BYDAY=-1SU\r\n",
                                     "RRULE:FREQ=YEARLY;COUNT=2\r\n"]))
        parts.append(f"BEGIN:{kind}\r\nDTSTART:{start}\r\nTZOFFSETFROM:{offset_from}\r\n"
                     f"TZOFFSETTO:{offset_to}\r\n{rule}END:{kind}\r\n")
    parts.append("END:VTIMEZONE\r\n")
    return "".join(parts)


@st.composite
def ics_objects(draw: st.DrawFn) -> bytes:
    """One calendar object: a VCALENDAR with one VEVENT, sometimes mangled or truncated."""
    head = "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//fuzz//EN\r\n"
    zones = "".join(draw(st.lists(vtimezones(), max_size=2)))
    body = "".join(line + "\r\n" for line in draw(ics_lines()))
    text = f"{head}{zones}BEGIN:VEVENT\r\nUID:fuzz-1\r\n{body}END:VEVENT\r\nEND:VCALENDAR\r\n"
    data = text.encode("utf-8", "surrogatepass")
    mangle = draw(st.sampled_from(range(12 + 1)))
    if mangle == 0:
        data = data[:draw(st.integers(0, len(data)))]
    elif mangle == 1:
        data = draw(st.binary(max_size=200))
    elif mangle == 2:
        data = data.replace(b"\r\n", b"\n")
    return data


# --- the property ---------------------------------------------------------------------------


def check(event: object) -> RemoteEvent:
    """What every reader must return, whatever it was given.

    A RemoteEvent whose id can be stored, with either a projection (and no problem), or
    a problem, a deletion or a series; a projection's texts are clean and its end is not
    before its start.
    """
    assert isinstance(event, RemoteEvent)
    assert usable_id(event.event_id) or event.event_id == "", repr(event.event_id)
    if event.projection is None:
        assert event.problem or event.deleted or event.recurring, event
        return event
    assert event.problem is None, event
    projection = event.projection
    assert clean([projection.title, projection.description, projection.location,
                  *projection.guests, *projection.guest_names.values()])
    assert projection.when.end >= projection.when.start  # type: ignore[operator]
    return event
