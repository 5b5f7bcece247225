"""Commands that show and undo what sync did: ``conflicts``, ``quarantine``, ``purge``.

* ``syncd conflicts [--account A] [--open]``: each conflict's field, both values, the
  side that won and when; ``syncd conflicts resolve ID --take crm|calendar`` keeps one
  side's value (the losing side's is written to the activity and reaches the calendar
  with the next cycle) and closes the conflict.
* ``syncd quarantine [--account A]``: items set aside, with reasons, versions and
  attempts; ``syncd quarantine retry ID`` lets the next cycle try the item again.
* ``syncd purge [--dry-run]``: removes for good the activities deleted more than
  ``[syncd] retention_days`` ago (the daemon does this once a day).

``syncd activity restore ID`` lives with the other activity commands (``syncd.crm.builtin.cli``).
Every command takes ``--json`` (before or after the command name) for scripts. Values
and reasons come from calendars, so they are printed as single clean lines.
"""

from __future__ import annotations

import argparse
import json
from typing import TYPE_CHECKING, Any

from syncd.text import clean_text

if TYPE_CHECKING:
    from syncd.cli import App


def shorten(value: Any, limit: int = 80) -> str:
    """One printable line of at most ``limit`` characters (control characters removed)."""
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True,
                                                          ensure_ascii=False)
    text = clean_text(text, single_line=True)
    return text if len(text) <= limit else text[:limit - 1] + "\u2026"


def value_text(field: str, value: Any) -> str:
    """A conflict value as an admin reads it: times in their zone, guests as a list."""
    from syncd.model import When

    if value is None:
        return "(deleted)"
    if field == "when":
        try:
            when = When.from_json(value)
        except (KeyError, TypeError, ValueError):
            return shorten(value)
        if when.all_day:
            days = (when.end - when.start).days  # type: ignore[operator]
            return f"{when.start} (all day{f', {days} days' if days > 1 else ''})"
        start, end = when.local_start(), when.local_end()
        until = f"{end:%H:%M}" if end.date() == start.date() else f"{end:%Y-%m-%d %H:%M}"
        return f"{start:%Y-%m-%d %H:%M}-{until} {when.tz}"
    if field == "busy":
        return "busy" if value else "free"
    if field == "guests":
        return shorten(", ".join(value)) if value else "(none)"
    return shorten(value) if value != "" else "(empty)"


def json_flag(parser: argparse.ArgumentParser) -> None:
    """A command's own ``--json`` (``syncd status --json``), beside the global one."""
    # SUPPRESS: absent here, the global --json (given before the command) stands.
    parser.add_argument("--json", action="store_true", default=argparse.SUPPRESS,
                        help="machine-readable output")


def _positive_id(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not an id (a whole number)")
    return int(text)


def register(sub: Any) -> None:
    conflicts = sub.add_parser(
        "conflicts",
        description="List conflicts: a field changed in the CRM and in the calendar to "
                    "different values. The policy's winner is on both sides; the other "
                    "value is kept here until the conflict is resolved.")
    conflicts.add_argument("--account", help="only this account")
    conflicts.add_argument("--open", action="store_true", help="only unresolved conflicts")
    json_flag(conflicts)
    conflicts.set_defaults(handler=_conflicts)
    actions = conflicts.add_subparsers(dest="conflicts_command", metavar="ACTION")
    resolve = actions.add_parser(
        "resolve", help="keep one side's value and close the conflict",
        description="Keep one side's value. Taking the winner only closes the conflict. "
                    "Taking the other side writes its value to the activity; the next "
                    "sync cycle copies it to the calendar.")
    resolve.add_argument("id", type=_positive_id, metavar="ID", help="the conflict's id")
    resolve.add_argument("--take", required=True, choices=("crm", "calendar"),
                         help="the side whose value to keep")
    json_flag(resolve)
    resolve.set_defaults(handler=_resolve)

    quarantine = sub.add_parser(
        "quarantine",
        description="List the items sync set aside (quarantined) or keeps retrying, with "
                    "the reason. A quarantined item is tried again when it changes, or "
                    "after 'syncd quarantine retry ID'.")
    quarantine.add_argument("--account", help="only this account")
    json_flag(quarantine)
    quarantine.set_defaults(handler=_quarantine)
    q_actions = quarantine.add_subparsers(dest="quarantine_command", metavar="ACTION")
    retry = q_actions.add_parser("retry", help="let the next cycle try the item again")
    retry.add_argument("id", type=_positive_id, metavar="ID", help="the item's id")
    json_flag(retry)
    retry.set_defaults(handler=_retry)

    purge = sub.add_parser(
        "purge",
        description="Remove for good the activities deleted at least [syncd] "
                    "retention_days ago (30 by default), with their private notes. The "
                    "daemon does this once a day.")
    purge.add_argument("--dry-run", action="store_true", help="list, remove nothing")
    purge.add_argument("--older-than", type=int, metavar="DAYS",
                       help="this many days instead of the configured retention_days")
    json_flag(purge)
    purge.set_defaults(handler=_purge)


def _state(app: App) -> Any:
    from syncd.store.state import StateStore

    return StateStore(app.db)


def _check_account(app: App, name: str | None) -> None:
    """A misspelt --account must not read as "nothing to show"."""
    if name is None:
        return
    from syncd.errors import UsageError
    from syncd.service import Service

    known = {a.name for a in Service(app.config, db=app.db).accounts()}
    known |= {a.name for a in _state(app).accounts()}
    if name not in known:
        raise UsageError(message=f"unknown account: {name}")


def _conflicts(args: argparse.Namespace, app: App) -> int:
    _check_account(app, args.account)
    rows = _state(app).conflicts(args.account, open_only=args.open)
    lines = []
    for c in rows:
        who = f"activity {c['activity_id']}" if c["activity_id"] is not None else "-"
        lines.append(
            f"#{c['id']} {c['account']} {who} {c['field']}: "
            f"crm {value_text(c['field'], c['crm_value'])} | "
            f"calendar {value_text(c['field'], c['calendar_value'])} -> {c['winner']} won "
            f"({c['policy']}, {c['at']:%Y-%m-%d %H:%M} UTC)"
            + ("  [resolved]" if c["resolved"] else ""))
    app.emit(rows, "\n".join(lines) or "No conflicts.")
    return 0


def _resolve(args: argparse.Namespace, app: App) -> int:
    from syncd.admin import resolve_conflict
    from syncd.service import Service

    service = Service(app.config, db=app.db)
    accounts = {a.name: a for a in service.accounts()}
    done = resolve_conflict(service.source, service.state, args.id, args.take, accounts)
    if done.already_closed:
        text = f"Conflict {done.conflict_id} was already resolved; nothing changed."
    elif done.applied:
        text = (f"Conflict {done.conflict_id} resolved: activity {done.activity_id} takes "
                f"the {done.took} value of {done.field}; the next sync of {done.account} "
                "writes it to the other side.")
    else:
        text = (f"Conflict {done.conflict_id} resolved: the {done.took} value of "
                f"{done.field} was already on both sides.")
    app.emit(done, text)
    return 0


def _quarantine(args: argparse.Namespace, app: App) -> int:
    _check_account(app, args.account)
    rows = _state(app).quarantine_list(args.account)
    lines = [
        f"#{q['id']} {q['account']} {shorten(q['item'])} {q['state']}, "
        f"{q['attempts']} attempt(s), version {shorten(q['version'] or '-', 20)}, "
        f"last {q['last_at']:%Y-%m-%d %H:%M} UTC: {shorten(q['reason'], 200)}"
        for q in rows
    ]
    app.emit(rows, "\n".join(lines) or "Nothing is quarantined.")
    return 0


def _retry(args: argparse.Namespace, app: App) -> int:
    item = _state(app).retry_item(args.id)
    app.emit(item, f"Item {item['id']} ({shorten(item['item'])}) will be tried again by "
                   f"the next sync of {item['account']}.")
    return 0


def _purge(args: argparse.Namespace, app: App) -> int:
    from syncd.admin import purge_expired
    from syncd.cli import require
    from syncd.service import Service

    days = app.config.retention_days if args.older_than is None else args.older_than
    require(days >= 0, "--older-than must not be negative")
    service = Service(app.config, db=app.db)
    ids = purge_expired(service.store, service.state, days, dry_run=args.dry_run)
    word = "Would purge" if args.dry_run else "Purged"
    listed = f": {', '.join(map(str, ids))}" if ids else ""
    app.emit({"purged": ids, "dry_run": args.dry_run, "older_than_days": days},
             f"{word} {len(ids)} activit{'y' if len(ids) == 1 else 'ies'} deleted at least "
             f"{days} day(s) ago{listed}.")
    return 0
