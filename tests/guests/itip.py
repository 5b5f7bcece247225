"""What an RFC 6638 scheduling server would e-mail for an organizer's write.

Radicale does not schedule, so the CalDAV scenario reads the iTIP parameters syncd wrote
and applies the server's rules (RFC 6638 3.2): an attendee whose ``SCHEDULE-AGENT`` is
absent or ``SERVER`` is the server's to message, ``CLIENT`` is not. A new object or a
change to what attendees see sends each server-scheduled attendee a REQUEST; an attendee
removed, or the whole object deleted, sends the server-scheduled ones a CANCEL.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import icalendar

from syncd.model import normalize_email

#: Properties whose change makes a REQUEST (what attendees see of the meeting).
SIGNIFICANT = ("SUMMARY", "DTSTART", "DTEND", "DURATION", "LOCATION", "DESCRIPTION")


def _people(body: bytes | None) -> tuple[dict[str, bool], tuple[str, ...]]:
    """attendee -> server-scheduled, and the significant properties, of one object."""
    if body is None:
        return {}, ()
    cal = icalendar.Calendar.from_ical(body)
    vevent = next(iter(cal.walk("VEVENT")))
    attendees = vevent.get("ATTENDEE", [])
    scheduled: dict[str, bool] = {}
    for att in attendees if isinstance(attendees, list) else [attendees]:
        params: Any = getattr(att, "params", {})
        email = normalize_email(str(att).split(":", 1)[-1])
        scheduled[email] = str(params.get("SCHEDULE-AGENT", "SERVER")).upper() == "SERVER"
    return scheduled, tuple(vevent.get(p, "").to_ical().decode() if p in vevent else ""
                            for p in SIGNIFICANT)


def messages(old: bytes | None, new: bytes | None) -> Counter[str]:
    """The scheduling messages, per recipient, for writing ``new`` over ``old``
    (``new`` None: a delete; ``old`` None: a create)."""
    before, old_sig = _people(old)
    after, new_sig = _people(new)
    out: Counter[str] = Counter()
    if new is not None and (old is None or old_sig != new_sig or set(before) != set(after)):
        out.update(e for e, server in after.items() if server)  # REQUEST
    out.update(e for e, server in before.items() if server and e not in after)  # CANCEL
    return out
