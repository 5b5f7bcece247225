"""A corpus of hostile and broken iCalendar objects, each with what syncd must make of it.

``expect`` is a fragment of the quarantine reason, or one of the outcomes
:data:`SKIPPED_RECURRING` (detected, never expanded) and :data:`SYNCED` (odd but
readable, and read safely). Every object is small unless its point is its size.
"""

from __future__ import annotations

from dataclasses import dataclass

SKIPPED_RECURRING = "<skipped: recurring>"
SYNCED = "<synced>"


@dataclass(frozen=True)
class Hostile:
    name: str
    data: bytes
    expect: str

    @property
    def uid(self) -> str:
        return f"hostile-{self.name}"


def _event(name: str, *lines: str, head: tuple[str, ...] = (), dates: bool = True) -> bytes:
    body = ["BEGIN:VCALENDAR", "VERSION:2.0", "PRODID:-//hostile//EN", *head,
            "BEGIN:VEVENT", f"UID:hostile-{name}", "DTSTAMP:20261201T000000Z"]
    if dates:
        body += ["DTSTART:20261210T100000Z", "DTEND:20261210T110000Z"]
    body += [*lines, "END:VEVENT", "END:VCALENDAR", ""]
    return "\r\n".join(body).encode()


def _vtimezone(tzid: str, rule: str) -> tuple[str, ...]:
    return ("BEGIN:VTIMEZONE", f"TZID:{tzid}",
            "BEGIN:STANDARD", "DTSTART:16010101T000000", rule,
            "TZOFFSETFROM:+0200", "TZOFFSETTO:+0100", "END:STANDARD",
            "BEGIN:DAYLIGHT", "DTSTART:16010101T000001", rule,
            "TZOFFSETFROM:+0100", "TZOFFSETTO:+0200", "END:DAYLIGHT",
            "END:VTIMEZONE")


def _zoned(name: str, tzid: str, rule: str) -> bytes:
    return _event(name, f"DTSTART;TZID={tzid}:20261210T100000",
                  f"DTEND;TZID={tzid}:20261210T110000", "SUMMARY:zoned",
                  head=_vtimezone(tzid, rule), dates=False)


CORPUS: tuple[Hostile, ...] = (
    # --- CPU: rules that would be expanded second by second --------------------------
    Hostile("tz-secondly", _zoned("tz-secondly", "Evil Secondly",
                                  "RRULE:FREQ=SECONDLY;INTERVAL=2"), "is not yearly"),
    Hostile("tz-minutely", _zoned("tz-minutely", "Evil Minutely", "RRULE:FREQ=MINUTELY"),
            "is not yearly"),
    Hostile("tz-yearly-byhour", _zoned(
        "tz-yearly-byhour", "Evil Hourly",
        "RRULE:FREQ=YEARLY;BYMONTH=3;BYDAY=SU;BYHOUR=0,1,2,3,4,5,6,7,8,9,10,11;"
        "BYMINUTE=0,10,20,30,40,50;BYSECOND=0,1,2,3,4,5,6,7,8,9"), "uses BYHOUR"),
    Hostile("tz-many-rdates", _event(
        "tz-many-rdates", "DTSTART;TZID=Evil Rdates:20261210T100000",
        "DTEND;TZID=Evil Rdates:20261210T110000", "SUMMARY:rdates",
        head=("BEGIN:VTIMEZONE", "TZID:Evil Rdates", "BEGIN:STANDARD",
              "DTSTART:16010101T000000", "RDATE:" + ",".join(
                  f"{1700 + i // 12:04d}{i % 12 + 1:02d}01T000000" for i in range(3000)),
              "TZOFFSETFROM:+0200", "TZOFFSETTO:+0100", "END:STANDARD", "END:VTIMEZONE"),
        dates=False), "more than 400 onsets"),
    Hostile("rrule-secondly", _event("rrule-secondly", "RRULE:FREQ=SECONDLY;COUNT=1000000000",
                                     "SUMMARY:bomb"), SKIPPED_RECURRING),
    Hostile("rrule-and-exrule", _event("rrule-and-exrule", "RRULE:FREQ=SECONDLY",
                                       "EXRULE:FREQ=SECONDLY", "SUMMARY:never yields"),
            SKIPPED_RECURRING),
    # --- time: overflow, ranges and nonsense ----------------------------------------
    Hostile("end-of-time", _event("end-of-time", "DTSTART:99991231T230000Z", "DURATION:P2D",
                                  "SUMMARY:overflow", dates=False), "outside the range"),
    Hostile("duration-huge", _event("duration-huge", "DTSTART:20261210T100000Z",
                                    "DURATION:P99999999W", "SUMMARY:weeks", dates=False),
            "longer than the 366 days"),
    Hostile("year-1000", _event("year-1000", "DTSTART:10000101T100000Z",
                                "DTEND:10000101T110000Z", "SUMMARY:long ago", dates=False),
            "outside the range"),
    Hostile("no-dtstart", _event("no-dtstart", "SUMMARY:when?", dates=False),
            "has no DTSTART"),
    Hostile("backwards", _event("backwards", "DTSTART:20261210T100000Z",
                                "DTEND:20261209T100000Z", "SUMMARY:back", dates=False),
            "DTEND is before DTSTART"),
    Hostile("date-and-time", _event("date-and-time", "DTSTART;VALUE=DATE:20261210",
                                    "DTEND:20261211T100000Z", "SUMMARY:mixed", dates=False),
            "mix a date and a date-time"),
    Hostile("unknown-tzid", _event("unknown-tzid", "DTSTART;TZID=Mars/Olympus:20261210T100000",
                                   "DTEND;TZID=Mars/Olympus:20261210T110000", "SUMMARY:mars",
                                   dates=False), "unknown time zone"),
    Hostile("tzid-traversal", _event(
        "tzid-traversal", "DTSTART;TZID=../../../../etc/passwd:20261210T100000",
        "DTEND;TZID=../../../../etc/passwd:20261210T110000", "SUMMARY:path", dates=False),
        "unknown time zone"),
    Hostile("bad-date", _event("bad-date", "DTSTART:20261340T100000Z",
                               "DTEND:20261341T100000Z", "SUMMARY:month 13", dates=False),
            "unreadable event"),
    # --- structure ----------------------------------------------------------------
    Hostile("no-vevent", b"BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//hostile//EN\r\n"
            b"BEGIN:VTODO\r\nUID:hostile-no-vevent\r\nDTSTAMP:20261201T000000Z\r\n"
            b"SUMMARY:a task\r\nEND:VTODO\r\nEND:VCALENDAR\r\n", "no VEVENT"),
    Hostile("deep-nesting", _event("deep-nesting", *(["BEGIN:X-DEEP"] * 3000),
                                   *(["END:X-DEEP"] * 3000), "SUMMARY:deep"), SYNCED),
    Hostile("unbalanced", _event("unbalanced", "END:VALARM", "SUMMARY:unbalanced"),
            "not valid iCalendar"),
    Hostile("many-properties", _event("many-properties", "SUMMARY:props",
                                      *(f"X-JUNK-{i}:{'j' * 40}" for i in range(4000))),
            SYNCED),
    # --- text: encoding and injection ---------------------------------------------
    Hostile("bad-utf8", _event("bad-utf8", "SUMMARY:caf").replace(b"SUMMARY:caf",
                                                                  b"SUMMARY:caf\xc3\x28"),
            SYNCED),
    Hostile("control-chars", _event("control-chars", "SUMMARY:bell\x07 and form\x0cfeed",
                                    "DESCRIPTION:nul\\u0000 escape"), SYNCED),
    Hostile("injection", _event("injection", "SUMMARY:title\\nATTENDEE:mailto:evil@x.org",
                                "LOCATION:<script>alert(1)</script>"), SYNCED),
    Hostile("huge-attendee-list", _event("huge-attendee-list", "SUMMARY:crowd", *(
        f"ATTENDEE;CN=Guest {i}:mailto:g{i}@crowd.example" for i in range(2000))), SYNCED),
)

#: Objects whose point is their size (built on demand: they are megabytes).
def oversized(name: str, megabytes: float) -> Hostile:
    filler = "x" * 70
    count = int(megabytes * 1024 * 1024 / 80)
    lines = [f"X-FILL-{i}:{filler}" for i in range(count)]
    return Hostile(name, _event(name, "SUMMARY:big", *lines), "over the")


# --- free/busy replies (RFC 4791 7.10) ----------------------------------------------------


@dataclass(frozen=True)
class HostileFreeBusy:
    """A free-busy-query reply and what syncd must make of it: ``busy`` intervals kept and
    ``skipped`` items set aside, or ``refused`` (a fragment of why the whole reply is not
    used: "no VFREEBUSY" makes the connector read the events instead)."""

    name: str
    data: bytes
    busy: int = 0
    skipped: int = 0
    refused: str | None = None


def _vfreebusy(*lines: str, wrap: bool = True) -> bytes:
    body = ["BEGIN:VFREEBUSY", "DTSTART:20261208T000000Z", "DTEND:20261209T000000Z",
            *lines, "END:VFREEBUSY"]
    if wrap:
        body = ["BEGIN:VCALENDAR", "VERSION:2.0", "PRODID:-//hostile//EN", *body,
                "END:VCALENDAR"]
    return ("\r\n".join(body) + "\r\n").encode()


FREE_BUSY_CORPUS: tuple[HostileFreeBusy, ...] = (
    HostileFreeBusy("plain", _vfreebusy(
        "FREEBUSY;FBTYPE=BUSY:20261208T090000Z/20261208T100000Z",
        "FREEBUSY;FBTYPE=BUSY-TENTATIVE:20261208T110000Z/PT30M",
        "FREEBUSY;FBTYPE=BUSY-UNAVAILABLE:20261208T120000Z/20261208T130000Z",
        "FREEBUSY;FBTYPE=FREE:20261208T140000Z/20261208T150000Z"), busy=3),
    HostileFreeBusy("folded-and-listed", _vfreebusy(
        "FREEBUSY;VALUE=PERIOD:20261208T090000Z/20261208T1000",
        " 00Z,20261208T110000Z/20261208T120000Z"), busy=2),
    HostileFreeBusy("unknown-fbtype-is-busy", _vfreebusy(
        'FREEBUSY;FBTYPE=X-MEETING;X-NOTE="a:b;c":20261208T090000Z/20261208T100000Z'),
        busy=1),
    HostileFreeBusy("local-and-date-periods", _vfreebusy(
        "FREEBUSY:20261208T090000/20261208T100000",
        "FREEBUSY:20261208/20261209",
        "FREEBUSY:20261208T090000Z/20261208T100000Z"), busy=1, skipped=2),
    HostileFreeBusy("garbage-periods", _vfreebusy(
        "FREEBUSY:not a period", "FREEBUSY:", "FREEBUSY;FBTYPE=BUSY",
        "FREEBUSY:20261308T090000Z/20261208T100000Z",
        "FREEBUSY:20261208T090000Z/P99999999W",
        "FREEBUSY:20261208T100000Z/20261208T090000Z",
        "FREEBUSY:20261208T090000Z/20261208T100000Z"), busy=1, skipped=6),
    HostileFreeBusy("bad-utf8-and-controls", _vfreebusy(
        "FREEBUSY:20261208T090000Z/20261208T100000Z").replace(
        b"VERSION:2.0", b"X-JUNK:\xc3\x28\x00\x07\r\nVERSION:2.0"), busy=1),
    HostileFreeBusy("no-vfreebusy", b"<html><body>Free/busy is off</body></html>",
                    refused="no VFREEBUSY"),
    HostileFreeBusy("a-multistatus", b'<?xml version="1.0"?><D:multistatus xmlns:D="DAV:"/>',
                    refused="no VFREEBUSY"),
    HostileFreeBusy("bare-vfreebusy", _vfreebusy(
        "FREEBUSY:20261208T090000Z/20261208T100000Z", wrap=False), busy=1),
    HostileFreeBusy("many-periods", _vfreebusy("FREEBUSY:" + ",".join(
        "20261208T090000Z/20261208T100000Z" for _ in range(25_000))),
        refused="over 20000 items"),
    HostileFreeBusy("many-lines", _vfreebusy(*("X-JUNK:x" for _ in range(120_000))),
                    refused="over 100000 lines"),
)
