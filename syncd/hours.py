"""Working hours per user, as the admin sets them in ``[[working_hours]]`` blocks.

Each block names its users (e-mail addresses, or ``"*"`` for everyone not named
elsewhere) and their days, hours, zone, buffers and minimum notice::

    [[working_hours]]
    users = ["alice@example.com"]
    days = "mon-thu"            # ranges and names, comma-separated: "mon,wed,fri-sun"
    start = "08:00"
    end = "16:00"               # "24:00": until midnight
    time_zone = "Europe/Oslo"   # default: the CRM user's zone
    buffer_before_minutes = 10
    buffer_after_minutes = 10
    min_notice_minutes = 120

A user named in no block, with no ``"*"`` block, has the default: Monday to Friday,
09:00-17:00 in their CRM zone, no buffers, no notice. Naming a user in two blocks, or
``"*"`` twice, is a configuration error (which would win is not obvious).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import time, timedelta
from typing import Any

from syncd.config_types import Option, email_check, zone_check
from syncd.engine.availability import DEFAULT_DAYS, DEFAULT_END, DEFAULT_START, WorkingHours
from syncd.model import normalize_email

DAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_CLOCK = re.compile(r"([01]\d|2[0-3]):([0-5]\d)|24:00")
#: The longest buffer (a day) and minimum notice (90 days) a block may set.
MAX_BUFFER_MINUTES = 24 * 60
MAX_NOTICE_MINUTES = 90 * 24 * 60


def parse_days(text: str) -> frozenset[int] | None:
    """``"mon-fri"``, ``"mon,wed,fri-sun"`` -> weekday numbers (0 = Monday); None if
    not such a list. A range may wrap past Sunday (``"fri-mon"``)."""
    days: set[int] = set()
    for part in text.lower().replace(" ", "").split(","):
        ends = part.split("-")
        if len(ends) > 2 or not all(e in DAY_NAMES for e in ends):
            return None
        first, last = DAY_NAMES.index(ends[0]), DAY_NAMES.index(ends[-1])
        days.update((first + i) % 7 for i in range((last - first) % 7 + 1))
    return frozenset(days)


def parse_clock(text: str) -> time | None:
    """``"HH:MM"`` (00:00-23:59, or 24:00, which is ``time(0)`` as an end) -> time."""
    if not _CLOCK.fullmatch(text):
        return None
    hour, minute = (int(x) for x in text.split(":"))
    return time(hour % 24, minute)


def _days_check(value: Any) -> str | None:
    return None if parse_days(value) else "is not a list of days"


def _clock_check(value: Any) -> str | None:
    return None if parse_clock(value) is not None else "is not a time of day (HH:MM)"


def _minutes_check(most: int) -> Any:
    def check(value: Any) -> str | None:
        return None if 0 <= value <= most else f"is not between 0 and {most}"
    return check


def _users_check(value: Any) -> str | None:
    users = [value] if isinstance(value, str) else value
    if not users or not all(isinstance(u, str) and (u.strip() == "*" or email_check(u.strip())
                                                    is None) for u in users):
        return "is not \"*\" or a list of e-mail addresses"
    return None


WORKING_HOURS: dict[str, Option] = {
    "users": Option((str, list), required=True, check=_users_check,
                    expected='"*" (everyone not named in another block) or a list of the '
                             "CRM users' e-mail addresses"),
    "days": Option(str, "mon-fri", check=_days_check,
                   expected='day names and ranges, e.g. "mon-fri" or "mon,wed,fri-sun"'),
    "start": Option(str, "09:00", check=_clock_check, expected='"HH:MM", e.g. "09:00"'),
    "end": Option(str, "17:00", check=_clock_check,
                  expected='"HH:MM" after the start, e.g. "17:00" ("24:00": midnight)'),
    "time_zone": Option(str, check=zone_check,
                        expected="an IANA zone (default: the CRM user's)"),
    "buffer_before_minutes": Option(int, 0, check=_minutes_check(MAX_BUFFER_MINUTES),
                                    expected=f"minutes, 0 to {MAX_BUFFER_MINUTES}"),
    "buffer_after_minutes": Option(int, 0, check=_minutes_check(MAX_BUFFER_MINUTES),
                                   expected=f"minutes, 0 to {MAX_BUFFER_MINUTES}"),
    "min_notice_minutes": Option(int, 0, check=_minutes_check(MAX_NOTICE_MINUTES),
                                 expected=f"minutes, 0 to {MAX_NOTICE_MINUTES}"),
}


@dataclass(frozen=True)
class HoursRule:
    """One ``[[working_hours]]`` block, checked. ``users`` are lower-case e-mails or "*"."""

    users: tuple[str, ...]
    days: frozenset[int] = DEFAULT_DAYS
    start: time = DEFAULT_START
    end: time = DEFAULT_END
    time_zone: str | None = None
    buffer_before: timedelta = timedelta(0)
    buffer_after: timedelta = timedelta(0)
    min_notice: timedelta = timedelta(0)

    def hours(self, user_zone: str) -> WorkingHours:
        return WorkingHours(self.time_zone or user_zone, self.days, self.start, self.end,
                            self.buffer_before, self.buffer_after, self.min_notice)


def rule_from(values: Mapping[str, Any]) -> tuple[HoursRule | None, list[tuple[str, str, str]]]:
    """A block's values (already typed and checked one by one against
    :data:`WORKING_HOURS`) -> the rule, or the problems between its options as
    (key, problem, fix)."""
    if not {"users", "days", "start", "end"} <= values.keys():
        return None, []  # a value was refused already
    users = values["users"]
    users = tuple(dict.fromkeys(
        u.strip() if u.strip() == "*" else normalize_email(u)
        for u in ([users] if isinstance(users, str) else users)))
    start, end = parse_clock(values["start"]), parse_clock(values["end"])
    assert start is not None and end is not None
    if not (start < end or end == time(0)):
        return None, [("end", f"is not after the start ({values['start']})",
                       'an end later in the day than the start ("24:00" for midnight)')]
    days = parse_days(values["days"])
    assert days is not None
    minutes = timedelta(minutes=1)
    return HoursRule(users, days, start, end, values.get("time_zone"),
                     values["buffer_before_minutes"] * minutes,
                     values["buffer_after_minutes"] * minutes,
                     values["min_notice_minutes"] * minutes), []


def overlaps(rules: Sequence[tuple[int, HoursRule]]) -> list[tuple[int, str]]:
    """(block index, user) of every user named by an earlier block too."""
    seen: set[str] = set()
    out = []
    for i, rule in rules:
        for user in rule.users:
            if user in seen:
                out.append((i, user))
            seen.add(user)
    return out


def hours_for(rules: Sequence[HoursRule], email: str, user_zone: str) -> WorkingHours:
    """The working hours of the CRM user ``email`` whose zone is ``user_zone``."""
    email = normalize_email(email)
    for wanted in (email, "*"):
        for rule in rules:
            if wanted in rule.users:
                return rule.hours(user_zone)
    return WorkingHours(user_zone)
