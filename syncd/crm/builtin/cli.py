"""CRM commands of ``syncd``: users, activity types, persons, organizations, deals,
activities and the bulk import.

Every handler takes ``(args, app)`` and returns an exit code; bad input raises the
``syncd.errors`` types, which ``syncd.cli.main`` words and maps to exit codes (2 for what
the caller must fix, 1 for the rest). ``--json`` (a global flag, before the command)
switches every command to machine-readable output.

These commands run inside the CRM, so ``activity show`` prints the private note; the
note still never reaches a calendar (seed rule A5).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from syncd.crm.builtin.checks import LINK_FIELDS
from syncd.crm.builtin.file_import import (
    COLUMNS,
    STORE_TO_COLUMN,
    Problem,
    ValueProblem,
    parse_date,
    parse_duration,
    parse_guest,
    parse_item_id,
    parse_rows,
    parse_time,
    read_records,
)
from syncd.errors import InvalidInput, UsageError
from syncd.model import ACTIVITY_FIELDS, FIELD_BY_NAME, Activity, ActivityField, Kind

if TYPE_CHECKING:
    from syncd.cli import App

_RAW = argparse.RawDescriptionHelpFormatter


class _Clear:
    """``none`` given to an edit flag: clear the field."""

    def __repr__(self) -> str:
        return "none"


CLEAR = _Clear()


def _argtype(parse: Callable[[str], Any], name: str, clearable: bool = False
             ) -> Callable[[str], Any]:
    """An argparse ``type`` from a parser: its message becomes argparse's error (exit 2)."""

    def convert(text: str) -> Any:
        if clearable and text.strip().lower() == "none":
            return CLEAR
        try:
            return parse(text)
        except ValueProblem as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    convert.__name__ = name
    return convert


DATE = _argtype(parse_date, "date")
ITEM = _argtype(parse_item_id, "id")
GUEST = _argtype(parse_guest, "guest")

# --- helpers ----------------------------------------------------------------------------

#: Store field -> the flag a user typed, so an error names what to fix on the command line
#: (the subject is a positional argument of ``add``, hence its plain name).
_FLAGS = {**{f.name: f.flag for f in ACTIVITY_FIELDS if f.flag}, "subject": "subject"}
#: The fields ``add``/``edit`` take from options of their own, in the order of the help.
_OPTIONS = tuple(f for f in ACTIVITY_FIELDS if f.flag and f.kind is not Kind.USER)


def _dest(spec: ActivityField) -> str:
    """The argparse attribute of a field's option."""
    assert spec.flag is not None
    return spec.flag.lstrip("-").replace("-", "_")


@contextmanager
def _as_flags() -> Iterator[None]:
    """Re-word a store InvalidInput with the command-line flag instead of the field."""
    try:
        yield
    except InvalidInput as exc:
        if exc.field not in _FLAGS:
            raise
        raise InvalidInput(field=_FLAGS[exc.field], value=exc.value, reason=exc.reason) from None


def _owner_id(app: App, email: str | None, store: Any = None) -> int:
    """The user named by ``--owner``, or the only user when none is named (``store``:
    the one to ask instead of the app's)."""
    store = store or app.store
    if email:
        user = store.get_user_by_email(email)
        if user is None:
            raise InvalidInput(field="owner", value=email,
                               reason="no user has this address (see 'syncd user list')")
        return int(user.id)
    users = store.list_users()
    if len(users) == 1:
        return int(users[0].id)
    if not users:
        raise UsageError(message="there are no users yet; add one first with "
                                 "'syncd user add EMAIL'")
    raise UsageError(message=f"there are {len(users)} users; say whose activity this is "
                             "with --owner EMAIL")


def _duration_text(minutes: int) -> str:
    hours, mins = divmod(minutes, 60)
    return (f"{hours}h" if hours else "") + (f"{mins}m" if mins or not hours else "")


def _when(a: Activity) -> str:
    if a.due_date is None:
        return "(no date)"
    if a.due_time is None:
        days = a.duration_minutes // 1440
        return f"{a.due_date} (all day{f', {days} days' if days > 1 else ''})"
    # The night clocks go back has two 02:30s; the store keeps which one (fold).
    second = " (second occurrence)" if a.due_time.fold else ""
    return (f"{a.due_date} {a.due_time.strftime('%H:%M')}{second} "
            f"({_duration_text(a.duration_minutes)})")


def _line(a: Activity, emails: dict[int, str]) -> str:
    tags = [t for t, on in (("done", a.done), ("busy", a.busy), ("deleted", a.deleted)) if on]
    links = [f"{k} {v}" for k, v in (("deal", a.deal_id), ("person", a.person_id),
                                     ("org", a.org_id)) if v is not None]
    extra = "  ".join(filter(None, [
        f"owner {emails.get(a.owner_id, a.owner_id)}",
        ", ".join(links),
        f"[{', '.join(tags)}]" if tags else "",
    ]))
    return f"#{a.id:<5} {_when(a):<30} {a.type:<9} {a.subject}  {extra}"


def _emails(app: App) -> dict[int, str]:
    return {u.id: u.email for u in app.store.list_users()}


def _shown(spec: ActivityField, value: Any) -> str:
    """One field's value as ``activity show`` prints it."""
    if spec.kind is Kind.FLAG:
        return spec.words[0] if value else spec.words[1]
    return str(value).replace("\n", "\n" + " " * 18) or "-"


def _show_text(a: Activity, note: str, emails: dict[int, str]) -> str:
    guests = ", ".join(
        g.email + (f" ({g.name}" + (f", person {g.person_id}" if g.person_id else "") + ")"
                   if g.name or g.person_id else "")
        for g in a.guests) or "-"
    links = ", ".join(f"{f.name.removesuffix('_id')} {getattr(a, f.name)}"
                      for f in ACTIVITY_FIELDS if f.kind in (Kind.ITEM, Kind.LEAD)
                      and getattr(a, f.name) is not None) or "-"
    done = f"yes, marked {a.marked_done_at:%Y-%m-%d %H:%M} UTC" if a.done and a.marked_done_at \
        else ("yes" if a.done else "no")
    rows = [
        ("Subject", a.subject),
        ("Type", a.type),
        ("Owner", f"{emails.get(a.owner_id, a.owner_id)} ({a.owner_tz})"),
        ("When", _when(a)),
        *((f.label, _shown(f, getattr(a, f.name))) for f in ACTIVITY_FIELDS
          if f.projection and f.kind is Kind.FLAG),
        ("Done", done),
        *((f.label, _shown(f, getattr(a, f.name))) for f in ACTIVITY_FIELDS
          if f.projection and f.kind is Kind.LINE),
        ("Guests", guests),
        ("Links", links),
        *((f.label, _shown(f, getattr(a, f.name))) for f in ACTIVITY_FIELDS
          if f.projection and f.kind is Kind.TEXT),
        ("Note (private)", _shown(FIELD_BY_NAME["note"], note)),
    ]
    if a.deleted:
        rows.append(("Deleted", "yes (restorable with 'syncd activity restore' until purged)"))
    head = f"Activity #{a.id}  (sync uid {a.sync_uid})"
    return "\n".join([head, *(f"  {k + ':':<16}{v}" for k, v in rows)])


# --- users, types, items ----------------------------------------------------------------


def _user_add(args: argparse.Namespace, app: App) -> int:
    from syncd.cli import to_jsonable
    from syncd.cli_embedded import login_text, new_login

    user_id = app.store.add_user(args.email, args.name, args.time_zone)
    user = app.store.get_user(user_id)
    text = f"Added user {user.id}: {user.email} ({user.time_zone})."
    # With the embedded calendar server, the user's password is made and shown now, once.
    login = new_login(app, user.email)
    if login is None:
        if not app.config.serves_accounts:  # the embedded server is in use but refuses this login
            from syncd.embedded_auth import refused_because

            text += (f"\nThe embedded calendar server cannot serve this address "
                     f"({refused_because(user.email)}).")
        app.emit(user, text)
    else:
        app.emit({**to_jsonable(user), "calendar_login": login}, f"{text}\n{login_text(login)}")
    return 0


def _user_list(args: argparse.Namespace, app: App) -> int:
    users = app.store.list_users()
    app.emit(users, "\n".join(f"{u.id:<4} {u.email:<32} {u.time_zone:<20} {u.name}"
                              for u in users) or "No users yet.")
    return 0


def _type_add(args: argparse.Namespace, app: App) -> int:
    app.store.add_type(args.key, args.name, args.color)
    app.emit({"key": args.key, "name": args.name, "color": args.color},
             f"Added activity type {args.key!r}.")
    return 0


def _type_list(args: argparse.Namespace, app: App) -> int:
    types = app.store.list_types()
    app.emit(types, "\n".join(
        f"{t.key:<12} {t.name:<20} {t.color}  {'default' if t.is_default else 'custom'}"
        + ("" if t.active else "  (inactive)") for t in types))
    return 0


def _visibility(app: App, args: argparse.Namespace) -> dict[str, Any]:
    owner = _owner_id(app, args.owner) if args.owner or args.private else None
    return {"owner_id": owner, "visible_to_owner_only": bool(args.private)}


def _person_add(args: argparse.Namespace, app: App) -> int:
    person_id = app.store.add_person(args.name, args.email, args.org, **_visibility(app, args))
    app.emit(app.store.get_person(person_id), f"Added person {person_id}: {args.name}.")
    return 0


def _org_add(args: argparse.Namespace, app: App) -> int:
    org_id = app.store.add_org(args.name, **_visibility(app, args))
    app.emit(app.store.get_org(org_id), f"Added organization {org_id}: {args.name}.")
    return 0


def _deal_add(args: argparse.Namespace, app: App) -> int:
    deal_id = app.store.add_deal(args.title, args.person, args.org, **_visibility(app, args))
    app.emit(app.store.get_deal(deal_id), f"Added deal {deal_id}: {args.title}.")
    return 0


def _dates(item: Any) -> str:
    d = item.dates
    return f"last {d.last_activity_date or '-'}  next {d.next_activity_date or '-'}"


def _person_list(args: argparse.Namespace, app: App) -> int:
    rows = app.store.list_persons()
    app.emit(rows, "\n".join(
        f"{p.id:<4} {p.name:<24} {p.email or '-':<28} org {p.org_id or '-':<4} {_dates(p)}"
        for p in rows) or "No persons yet.")
    return 0


def _org_list(args: argparse.Namespace, app: App) -> int:
    rows = app.store.list_orgs()
    app.emit(rows, "\n".join(f"{o.id:<4} {o.name:<32} {_dates(o)}" for o in rows)
             or "No organizations yet.")
    return 0


def _deal_list(args: argparse.Namespace, app: App) -> int:
    rows = app.store.list_deals()
    app.emit(rows, "\n".join(
        f"{d.id:<4} {d.title:<28} person {d.person_id or '-':<4} org {d.org_id or '-':<4} "
        f"{_dates(d)}" for d in rows) or "No deals yet.")
    return 0


# --- activities -------------------------------------------------------------------------


def _activity_fields(args: argparse.Namespace) -> dict[str, Any]:
    """The store fields named by the add/edit flags that were given (CLEAR -> None)."""
    fields: dict[str, Any] = {}
    for spec in _OPTIONS:
        value = getattr(args, _dest(spec), None)
        if spec.kind is Kind.FLAG and spec.off_flag is None:
            continue  # set when adding only (done): see _activity_add
        if spec.kind is Kind.GUESTS:
            if value is not None:
                fields[spec.name] = list(value)
            elif getattr(args, "no_guests", False):
                fields[spec.name] = []
        elif value is not None:
            fields[spec.name] = None if value is CLEAR else value
    return fields


def _activity_add(args: argparse.Namespace, app: App) -> int:
    fields = _activity_fields(args)
    store = _quick_store(app, fields)
    fields["owner_id"] = _owner_id(app, args.owner, store)
    fields.update({f.name: getattr(args, _dest(f)) for f in _OPTIONS
                   if f.kind is Kind.FLAG and f.off_flag is None})
    with _as_flags():
        activity = store.add_activity(**fields)
    app.emit(activity, f"Added activity {activity.id}: {_when(activity)} {activity.subject}")
    return 0


def _quick_store(app: App, fields: dict[str, Any]) -> Any:
    """The store an add goes through: sqlite3 or psycopg alone when the database allows
    it and the activity is linked to no item (SQLAlchemy's import was most of the
    command's time), else the full store (:mod:`syncd.crm.builtin.quick_add` says why)."""
    if any(fields.get(f) is not None for f in LINK_FIELDS) or app.quick is None:
        return app.store
    return _quick(app)


def _quick(app: App) -> Any:
    from syncd.crm.builtin.quick_add import QuickActivities

    return QuickActivities(app.quick)


def _activity_edit(args: argparse.Namespace, app: App) -> int:
    fields = _activity_fields(args)
    if args.owner:
        fields["owner_id"] = _owner_id(app, args.owner)
    if not fields:
        raise UsageError(message="nothing to change; give at least one field flag "
                                 "(see 'syncd activity edit --help')")
    with _as_flags():
        activity = app.store.edit_activity(args.id, **fields)
    app.emit(activity, f"Activity {activity.id}: {_when(activity)} {activity.subject}")
    return 0


def _filter(app: App, args: argparse.Namespace, store: Any = None, **extra: Any) -> Any:
    from syncd.crm.builtin.views import ActivityFilter

    return ActivityFilter(
        owner_id=_owner_id(app, args.owner, store) if args.owner else None,
        type=args.type, done=args.done_filter, **extra)


def _activity_list(args: argparse.Namespace, app: App) -> int:
    # sqlite3 or psycopg alone when the database allows it
    # (:mod:`syncd.crm.builtin.quick_list`).
    store = app.store if app.quick is None else _quick(app)
    flt = _filter(app, args, store, deal_id=args.deal, person_id=args.person,
                  org_id=args.org, due_from=args.due_from, due_to=args.due_to,
                  include_deleted=args.deleted, limit=args.limit)
    activities = store.list_activities(flt)
    emails = {u.id: u.email for u in store.list_users()}
    app.emit(activities, "\n".join(_line(a, emails) for a in activities)
             or "No activities match.")
    return 0


def _activity_show(args: argparse.Namespace, app: App) -> int:
    activity = app.store.get(args.id, include_deleted=True)
    note = app.store.get_note(args.id)
    data = {**{k: v for k, v in activity.__dict__.items()}, "note": note}
    app.emit(data, _show_text(activity, note, _emails(app)))
    return 0


def _activity_done(args: argparse.Namespace, app: App) -> int:
    mark = app.store.mark_done if args.command_name == "done" else app.store.mark_undone
    results = [mark(activity_id) for activity_id in args.ids]
    word = "done" if args.command_name == "done" else "not done"
    app.emit(results, "\n".join(f"Activity {a.id} is {word}." for a in results))
    return 0


def _activity_delete(args: argparse.Namespace, app: App) -> int:
    filtered = any(v is not None for v in (args.owner, args.type, args.done_filter,
                                           args.before))
    if not args.ids and not filtered:
        raise UsageError(message="name activity ids, or filter flags with --yes "
                                 "(see 'syncd activity delete --help')")
    if not filtered:
        count = app.store.delete_activities(args.ids)
    else:
        before = args.before - timedelta(days=1) if args.before else None
        flt = _filter(app, args, due_to=before, ids=args.ids or None)
        if not args.yes:
            matching = len(app.store.list_activities(flt))
            raise UsageError(message=f"this would delete {matching} activities; "
                                     "add --yes to confirm")
        count = app.store.delete_where(flt)
    app.emit({"deleted": count}, f"Deleted {count} activit{'y' if count == 1 else 'ies'}.")
    return 0


def _activity_restore(args: argparse.Namespace, app: App) -> int:
    from syncd.admin import restore_activity
    from syncd.store.state import StateStore

    for activity_id in args.ids:  # every id known before any is restored
        app.store.get(activity_id, include_deleted=True)
    state = StateStore(app.db)
    results = [restore_activity(app.store, state, activity_id) for activity_id in args.ids]
    app.emit(results, "\n".join(f"Activity {a.id} is restored: {a.subject}." for a in results))
    return 0


def _import(args: argparse.Namespace, app: App) -> int:
    from syncd.cli import read_file_arg

    fmt = args.format or Path(args.file).suffix.lower().lstrip(".")
    if fmt not in ("json", "csv"):
        raise UsageError(message=f"cannot tell the format of {args.file}; "
                                 "use a .json or .csv file, or --format")
    records, problems = read_records(read_file_arg(args.file), fmt)

    def owner_for(email: str | None) -> int:
        try:
            return _owner_id(app, email)
        except InvalidInput as exc:
            raise ValueProblem(exc.reason) from None
        except UsageError as exc:
            raise ValueProblem(exc.message) from None

    parsed = parse_rows(records, owner_for)
    problems += parsed.problems
    # The store checks every row that could be read, even one with an unreadable value,
    # so that a second run does not reveal a problem the first one could have shown.
    for index, error in app.store.check_activities([r.item for r in parsed.rows]):
        column = STORE_TO_COLUMN.get(error.field, error.field)
        problems.append(Problem(parsed.rows[index].row, column,
                                f"{error.value!r} {error.reason}"))
    if problems:
        unique = {(p.row, p.column): p for p in reversed(problems)}  # first one per cell
        ordered = sorted(unique.values(), key=lambda p: (p.row, p.column))
        if fmt == "csv":
            ordered = [replace(p, line=p.row + 1) if p.row else p for p in ordered]
        listing = "\n".join(f"  {p}" for p in ordered)
        raise InvalidInput(field="file", value=args.file,
                           reason=f"{len(ordered)} problem(s):\n{listing}\n"
                                  "  Fix them and import the file again")
    ids = app.store.add_activities([r.item for r in parsed.rows])
    app.emit({"imported": len(ids), "ids": ids},
             f"Imported {len(ids)} activit{'y' if len(ids) == 1 else 'ies'} from {args.file}.")
    return 0


# --- argument parsers -------------------------------------------------------------------


def _visibility_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--owner", metavar="EMAIL", help="the user who owns it")
    parser.add_argument("--private", action="store_true",
                        help="visible to its owner only; other users then cannot see the "
                             "activities linked to it either (seed rule B4)")


#: How each kind of field is typed on the command line: (argparse type, metavar); the
#: kinds in _CLEARABLE also take 'none' on edit.
_TYPED: dict[Kind, tuple[Callable[[str], Any], str, str]] = {
    Kind.DATE: (parse_date, "date", "YYYY-MM-DD"),
    Kind.TIME: (parse_time, "time", "HH:MM"),
    Kind.MINUTES: (parse_duration, "duration", "MINUTES"),
    Kind.ITEM: (parse_item_id, "id", "ID"),
}
_CLEARABLE = frozenset({Kind.DATE, Kind.TIME, Kind.ITEM})


def _field_flags(parser: argparse.ArgumentParser, *, edit: bool) -> None:
    """The options of ``activity add`` or ``edit``, one per declared field that has one
    (the owner, and the subject of ``add``, are arguments of their own)."""
    none = " ('none' clears it)" if edit else ""
    for spec in _OPTIONS:
        assert spec.flag is not None
        if spec.required and not edit:
            continue
        if spec.kind is Kind.FLAG:
            if spec.off_flag is None:
                if not edit:
                    parser.add_argument(spec.flag, action="store_true", help=spec.help)
                continue
            pair = parser.add_mutually_exclusive_group()
            pair.add_argument(spec.flag, dest=_dest(spec), action="store_const", const=True,
                              help=spec.help)
            pair.add_argument(spec.off_flag, dest=_dest(spec), action="store_const",
                              const=False, help=spec.off_help)
        elif spec.kind is Kind.GUESTS:
            parser.add_argument(spec.flag, action="append", type=GUEST,
                                metavar="EMAIL|PERSON_ID",
                                help=spec.help + ("; replaces the guest list" if edit else ""))
            if edit:
                parser.add_argument("--no-guests", action="store_true",
                                    help="remove every guest")
        elif spec.kind in _TYPED:
            parse, name, metavar = _TYPED[spec.kind]
            clearable = edit and spec.kind in _CLEARABLE
            parser.add_argument(spec.flag, metavar=metavar,
                                type=_argtype(parse, name, clearable),
                                help=spec.help + (none if spec.kind in _CLEARABLE else ""))
        else:
            parser.add_argument(spec.flag, help=spec.help)


def _done_filter(parser: argparse.ArgumentParser) -> None:
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--done", dest="done_filter", action="store_const", const=True,
                       help="only activities marked done")
    group.add_argument("--open", dest="done_filter", action="store_const", const=False,
                       help="only activities not done yet")


def register_activity(sub: Any) -> None:
    """``syncd activity`` and its actions."""
    activity = sub.add_parser("activity",
                              description="Work with activities: calls, meetings, tasks and "
                                          "the rest, each on its owner's calendar.")
    act = activity.add_subparsers(dest="activity_command", metavar="ACTION", required=True)

    add = act.add_parser(
        "add", help="add an activity", formatter_class=_RAW,
        description="Add an activity. It is free (not busy) unless --busy is given.",
        epilog="examples:\n"
               "  syncd activity add 'Call Pia' --type call --due 2026-03-02 --time 14:30 \\\n"
               "      --duration 30m --deal 3 --note 'ask about the budget'\n"
               "  syncd activity add 'Trade fair' --due 2026-04-10 --duration 3d --busy")
    add.add_argument("subject", help="the title")
    add.add_argument("--owner", metavar="EMAIL",
                     help="the user it is assigned to (default: the only user)")
    _field_flags(add, edit=False)
    add.set_defaults(handler=_activity_add)

    lst = act.add_parser("list", help="list activities, by due date",
                         description="List live activities by due date and time; undated "
                                     "ones last. Filters combine.")
    lst.add_argument("--owner", metavar="EMAIL", help="only this user's activities")
    lst.add_argument("--type", help="only this type")
    _done_filter(lst)
    lst.add_argument("--deal", type=ITEM, metavar="ID", help="only those linked to this deal")
    lst.add_argument("--person", type=ITEM, metavar="ID",
                     help="only those linked to this person (also through a deal)")
    lst.add_argument("--org", type=ITEM, metavar="ID",
                     help="only those linked to this organization")
    lst.add_argument("--from", dest="due_from", type=DATE, metavar="YYYY-MM-DD",
                     help="due on or after this day")
    lst.add_argument("--to", dest="due_to", type=DATE, metavar="YYYY-MM-DD",
                     help="due on or before this day")
    lst.add_argument("--deleted", action="store_true", help="include deleted activities")
    lst.add_argument("--limit", type=int, metavar="N", help="at most N activities")
    lst.set_defaults(handler=_activity_list)

    show = act.add_parser("show", help="show one activity, with its private note")
    show.add_argument("id", type=int, help="activity id")
    show.set_defaults(handler=_activity_show)

    edit = act.add_parser(
        "edit", help="change fields of an activity", formatter_class=_RAW,
        description="Change the given fields; the others stay as they are. An edit that "
                    "changes nothing writes nothing.",
        epilog="examples:\n"
               "  syncd activity edit 12 --due 2026-03-05 --time 09:00\n"
               "  syncd activity edit 12 --time none        # make it a whole-day activity\n"
               "  syncd activity edit 12 --owner bob@example.com   # keeps the same moment")
    edit.add_argument("id", type=int, help="activity id")
    edit.add_argument("--owner", metavar="EMAIL",
                      help="reassign to this user; a timed activity keeps its moment, "
                           "shown in the new owner's time zone")
    _field_flags(edit, edit=True)
    edit.set_defaults(handler=_activity_edit)

    for name, text in (("done", "mark activities done (records the moment)"),
                       ("undone", "mark activities not done (clears the done time)")):
        cmd = act.add_parser(name, help=text, description=text[0].upper() + text[1:] + ".")
        cmd.add_argument("ids", type=int, nargs="+", metavar="ID", help="activity ids")
        cmd.set_defaults(handler=_activity_done, command_name=name)

    delete = act.add_parser(
        "delete", help="delete activities by id or by filter", formatter_class=_RAW,
        description="Delete activities: by id (all of them or none, if one id is unknown), "
                    "or every activity matching the filters (needs --yes). Deleted "
                    "activities leave the calendars; 'syncd activity restore' brings them "
                    "back until they are purged (after 30 days by default).",
        epilog="examples:\n"
               "  syncd activity delete 4 7 9\n"
               "  syncd activity delete --owner ann@example.com --done --before 2026-01-01 --yes")
    delete.add_argument("ids", type=int, nargs="*", metavar="ID", help="activity ids")
    delete.add_argument("--owner", metavar="EMAIL", help="only this user's activities")
    delete.add_argument("--type", help="only this type")
    _done_filter(delete)
    delete.add_argument("--before", type=DATE, metavar="YYYY-MM-DD",
                        help="only those due before this day")
    delete.add_argument("--yes", action="store_true", help="confirm a delete by filter")
    delete.set_defaults(handler=_activity_delete)

    restore = act.add_parser(
        "restore", help="bring back deleted activities (until they are purged)",
        description="Restore deleted activities: they sync again like any change, and "
                    "their calendar events are made anew. Deleted activities can be "
                    "restored until they are purged ([syncd] retention_days, 30 by default).")
    restore.add_argument("ids", type=int, nargs="+", metavar="ID", help="activity ids")
    restore.set_defaults(handler=_activity_restore)


# The top-level commands' help lines are in ``syncd.cli.COMMANDS``, which names the function
# below that builds each when it is given.


def register_users(sub: Any) -> None:
    """``syncd user`` and its actions."""
    user = sub.add_parser("user", description="CRM users: each owns activities and a calendar.")
    users = user.add_subparsers(dest="user_command", metavar="ACTION", required=True)
    add = users.add_parser("add", help="add a user")
    add.add_argument("email", help="the user's e-mail address")
    add.add_argument("--name", default="", help="display name")
    add.add_argument("--time-zone", default="UTC", metavar="ZONE",
                     help="IANA time zone the user's activity times are in, e.g. "
                          "Europe/Oslo (default UTC)")
    add.set_defaults(handler=_user_add)
    users.add_parser("list", help="list users").set_defaults(handler=_user_list)
    from syncd import cli_embedded

    cli_embedded.register(users)


def register_types(sub: Any) -> None:
    """``syncd type`` and its actions."""
    typ = sub.add_parser("type", description="Activity types: the six defaults and your own.")
    types = typ.add_subparsers(dest="type_command", metavar="ACTION", required=True)
    add = types.add_parser("add", help="add a custom activity type")
    add.add_argument("key", help="short key: lower-case letters, digits, - and _")
    add.add_argument("name", help="display name")
    add.add_argument("--color", default="#888888", metavar="#RRGGBB", help="colour")
    add.set_defaults(handler=_type_add)
    types.add_parser("list", help="list activity types").set_defaults(handler=_type_list)


def register_items(sub: Any) -> None:
    """``syncd person``, ``org`` and ``deal``, and their actions."""
    for noun, title, handler_add, handler_list in (
        ("person", "contact persons", _person_add, _person_list),
        ("org", "organizations", _org_add, _org_list),
        ("deal", "deals", _deal_add, _deal_list),
    ):
        parser = sub.add_parser(noun, description=f"CRM {title}.")
        actions = parser.add_subparsers(dest=f"{noun}_command", metavar="ACTION",
                                        required=True)
        add = actions.add_parser("add", help=f"add one of the {title}")
        if noun == "deal":
            add.add_argument("title", help="the deal's title")
            add.add_argument("--person", type=ITEM, metavar="ID",
                             help="its contact person (linked to its activities, B1)")
            add.add_argument("--org", type=ITEM, metavar="ID", help="its organization")
        else:
            add.add_argument("name", help="the name")
        if noun == "person":
            add.add_argument("--email", help="e-mail; guests with it are linked to the person")
            add.add_argument("--org", type=ITEM, metavar="ID", help="their organization")
        _visibility_flags(add)
        add.set_defaults(handler=handler_add)
        actions.add_parser("list", help=f"list {title} with their last and next "
                                        "activity dates").set_defaults(handler=handler_list)


def register_import(sub: Any) -> None:
    """``syncd import``."""
    imp = sub.add_parser(
        "import", formatter_class=_RAW,
        description="Import activities. Every row is checked first and every problem is "
                    "listed with its row number; the file is imported only when it has none, "
                    "all rows in one transaction.",
        epilog="fields (JSON keys or CSV header): " + ", ".join(COLUMNS) + "\n"
               "  subject is required; owner is an e-mail (default: the only user); due is "
               "YYYY-MM-DD,\n  time HH:MM, duration minutes or 1h30m; guests a list (in CSV "
               "separated by ;)\n"
               "example CSV:\n"
               "  subject,owner,type,due,time,duration,guests\n"
               "  Call Pia,ann@example.com,call,2026-03-02,14:30,30,pia@acme.example")
    imp.add_argument("file", help="the file to import (.json: a list of objects; .csv)")
    imp.add_argument("--format", choices=("json", "csv"),
                     help="the file's format (default: from its extension)")
    imp.set_defaults(handler=_import)


