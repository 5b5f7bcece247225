"""``syncd agenda`` and ``syncd availability``: an owner's day and free time (issue 17).

Both only read (the CRM, the sync state's pairs, the owner's calendars); see
:mod:`syncd.availability_service`.
"""

from __future__ import annotations

import argparse
from datetime import UTC, date, datetime, time, timedelta
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

if TYPE_CHECKING:
    from syncd.availability_service import Agenda
    from syncd.cli import App

#: The span ``syncd availability`` covers when --to is not given.
DEFAULT_SPAN_DAYS = 7


def register(sub: Any) -> None:
    from syncd.cli_admin import json_flag

    agenda = sub.add_parser("agenda")
    agenda.add_argument("owner", help="the CRM user's e-mail")
    agenda.add_argument("--date", help="the first day, YYYY-MM-DD (default: today in the "
                                       "owner's zone)")
    agenda.add_argument("--days", type=int, default=1, help="how many days (1-31; default 1)")
    json_flag(agenda)
    agenda.set_defaults(handler=_agenda)

    free = sub.add_parser("availability")
    free.add_argument("owner", help="the CRM user's e-mail")
    free.add_argument("--from", dest="start",
                      help="YYYY-MM-DD or YYYY-MM-DDTHH:MM in the owner's zone (default: now)")
    free.add_argument("--to", dest="end",
                      help=f"YYYY-MM-DD (that whole day) or YYYY-MM-DDTHH:MM (default: "
                           f"{DEFAULT_SPAN_DAYS} days after --from)")
    free.add_argument("--duration", required=True,
                      help="the slot's length: minutes, or like 30m, 1h, 1h30m")
    free.add_argument("--step", default="15",
                      help="slots start at multiples of this since midnight (default 15 "
                           "minutes)")
    json_flag(free)
    free.set_defaults(handler=_availability)


def _minutes(text: str, option: str) -> timedelta:
    from syncd.cli import require
    from syncd.crm.builtin.file_import import ValueProblem, parse_duration

    try:
        minutes = parse_duration(text)
    except ValueProblem:
        minutes = 0
    require(0 < minutes <= 24 * 60, f"{option} {text!r} is not a length of 1 minute to "
                                     "24 hours (minutes, or like 30m, 1h30m)")
    return timedelta(minutes=minutes)


def _when(text: str, option: str, zone: str, *, end_of_day: bool = False) -> datetime:
    """A date (its midnight; with ``end_of_day`` the next one) or a wall time in ``zone``;
    an explicit offset is taken as given. Only days syncd accepts (model.FIRST_DAY to
    LAST_DAY), so no arithmetic on them can overflow."""
    from syncd.cli import require
    from syncd.model import FIRST_DAY, LAST_DAY, day_in_range

    value: datetime | None = None
    try:
        if len(text) == 10:
            value = datetime.combine(date.fromisoformat(text), time())
        elif len(text) <= 32:
            value = datetime.fromisoformat(text)
    except ValueError:
        value = None
    require(value is not None, f"{option} {text!r} is not a date (YYYY-MM-DD) or a time "
                               "(YYYY-MM-DDTHH:MM)")
    assert value is not None
    require(day_in_range(value.date()), f"{option} {text!r} is not between {FIRST_DAY} and "
                                        f"{LAST_DAY}")
    if len(text) == 10 and end_of_day:
        value += timedelta(days=1)
    return value if value.tzinfo else value.replace(tzinfo=ZoneInfo(zone))


def _service(app: App) -> Any:
    from syncd.private import check_private
    from syncd.service import Service

    check_private(app.config)
    return Service(app.config, db=app.db)


def _availability(args: argparse.Namespace, app: App) -> int:
    from syncd.availability_service import Availability, slots_as_json
    from syncd.cli import require

    duration, step = _minutes(args.duration, "--duration"), _minutes(args.step, "--step")
    service = _service(app)
    try:
        reads = Availability(service)
        hours = reads.hours(args.owner)
        zone = hours.time_zone
        now = datetime.now(UTC)
        start = _when(args.start, "--from", zone) if args.start else now
        end = _when(args.end, "--to", zone, end_of_day=True) if args.end else \
            start + timedelta(days=DEFAULT_SPAN_DAYS)
        require(start < end, "--to must be after --from")
        require(end - start <= timedelta(days=92), "--from and --to may be at most 92 days apart")
        slots = reads.owner_free_slots(args.owner, start, end, duration, now, step)
    finally:
        service.close()
    rows = slots_as_json(slots, zone)
    lines = [f"Free slots of {args.owner} ({zone}), {int(duration / timedelta(minutes=1))} "
             f"minutes:"]
    for slot in slots:
        s, e = slot.local(zone)
        lines.append(f"  {s:%a %Y-%m-%d %H:%M}-{e:%H:%M} ({s:%z})")
    if not slots:
        lines.append("  (none)")
    app.emit({"owner": args.owner, "time_zone": zone, "slots": rows}, "\n".join(lines))
    return 0


def _agenda(args: argparse.Namespace, app: App) -> int:
    from syncd.availability_service import MAX_AGENDA_DAYS, Availability
    from syncd.cli import require
    from syncd.model import FIRST_DAY, LAST_DAY, day_in_range

    require(1 <= args.days <= MAX_AGENDA_DAYS, f"--days is 1 to {MAX_AGENDA_DAYS}")
    service = _service(app)
    try:
        reads = Availability(service)
        zone = reads.user(args.owner).time_zone
        first = datetime.now(ZoneInfo(zone)).date()
        if args.date:
            try:
                first = date.fromisoformat(args.date)
            except ValueError:
                require(False, f"--date {args.date!r} is not a date (YYYY-MM-DD)")
            require(day_in_range(first), f"--date {args.date!r} is not between {FIRST_DAY} "
                                         f"and {LAST_DAY}")
        result = reads.owner_agenda(args.owner, first, args.days)
    finally:
        service.close()
    app.emit(_agenda_json(result), _agenda_text(result))
    return 0


def _agenda_json(result: Agenda) -> dict[str, Any]:
    items = [{"day": i.day.isoformat(), "key": i.key, "title": i.title,
              "start": i.start.isoformat(), "end": i.end.isoformat(), "all_day": i.all_day,
              "busy": i.busy, "source": i.source, "activity_id": i.activity_id,
              "calendars": list(i.calendars), "done": i.done,
              "double_booked": i.double_booked, "clashes": list(i.clashes)}
             for i in result.items]
    return {"owner": result.owner, "time_zone": result.time_zone,
            "days": [d.isoformat() for d in result.days], "items": items,
            "unreadable": result.unreadable}


def _agenda_text(result: Agenda) -> str:
    titles = {i.key: i.title for i in result.items}
    lines = []
    for day in result.days:
        lines.append(f"{day:%A %Y-%m-%d} ({result.time_zone})")
        items = [i for i in result.items if i.day == day]
        for i in items:
            if i.all_day:
                span = "all day"
            else:
                assert isinstance(i.start, datetime) and isinstance(i.end, datetime)
                span = f"{i.start:%H:%M}-{i.end:%H:%M}"
                if i.start.date() != day or i.end.date() != day:
                    span = f"{i.start:%m-%d %H:%M}-{i.end:%m-%d %H:%M}"
            where = {"crm": "CRM only", "synced": f"synced: {', '.join(i.calendars)}",
                     "calendar": f"calendar only: {', '.join(i.calendars)}"}[i.source]
            line = f"  {span:<23} {'busy' if i.busy else 'free':<4}  {i.title}  [{where}]"
            if i.done:
                line += " (done)"
            if i.clashes:
                line += "  DOUBLE BOOKED with " + ", ".join(
                    repr(titles.get(k, k)) for k in i.clashes)
            lines.append(line)
        if not items:
            lines.append("  (nothing)")
    for name, reason in sorted(result.unreadable.items()):
        lines.append(f"Calendar {name} could not be read: {reason}")
    return "\n".join(lines)
