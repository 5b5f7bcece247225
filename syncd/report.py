"""The one place where errors become sentences for admins, each with a next step."""

from __future__ import annotations

from syncd.errors import (
    AccountCooldown,
    AccountUnavailable,
    AuthFailed,
    CalendarMissing,
    ConfigError,
    ConflictUnresolvable,
    EtagMismatch,
    EventGone,
    FilesNotPrivate,
    InvalidInput,
    ItemRejected,
    NotFound,
    RateLimited,
    SecretUnavailable,
    SyncdError,
    SyncRefused,
    Transient,
    UsageError,
)

#: Exit codes: 2 for what the caller must fix in the command or config, 1 for the rest.
EXIT_USAGE = 2
EXIT_RUNTIME = 1


def exit_code(error: BaseException) -> int:
    fixable = isinstance(error, ConfigError | UsageError | InvalidInput | FilesNotPrivate)
    return EXIT_USAGE if fixable else EXIT_RUNTIME


def describe(error: BaseException) -> str:
    """A sentence (or a few lines) saying what went wrong and what to do."""
    match error:
        case ConfigError():
            lines = [f"The configuration has {len(error.problems)} problem(s):"]
            for p in error.problems:
                hint = f"; expected {p.expected}" if p.expected else ""
                lines.append(f"  {p.file}: {p.key} {p.problem}{hint}.")
            return "\n".join(lines)
        case UsageError():
            return f"{error.message}. See 'syncd --help'."
        case InvalidInput():
            return f"Invalid {error.field} {error.value!r}: {error.reason}. Nothing was saved."
        case FilesNotPrivate():
            listed = ", ".join(f"{path} (mode {mode})" for path, mode in error.paths)
            paths = " ".join(path for path, _ in error.paths)
            return (f"Other users of this machine can read {listed}, which hold private notes "
                    f"and passwords; syncd will not start until they are private: "
                    f"chmod -R go= {paths}")
        case NotFound():
            return f"No {error.kind} {error.key!r} exists."
        case SecretUnavailable():
            return (f"The secret {error.ref} cannot be read: {error.reason}. "
                    "Set it, or point the config at the right place.")
        case SyncRefused():
            return (f"Account {error.account}: the {error.guard} guard refused this cycle "
                    f"({error.detail}). Nothing was changed. Check the calendar, then run "
                    f"'syncd sync --account {error.account} --force-delete' to proceed.")
        case ConflictUnresolvable():
            return _unresolvable(error)
        case AccountUnavailable():
            return f"Account {error.account} is {error.status}; see 'syncd status'."
        case AuthFailed():
            return (f"The provider refused the credentials ({error.reason}). "
                    "Re-authorise the account with 'syncd auth'.")
        case AccountCooldown():
            return (f"The provider's usage limit was hit ({error.reason}); the account rests "
                    f"for {int(error.seconds)} s.")
        case RateLimited():
            return (f"Throttled by the provider ({error.reason}); "
                    f"retrying after {error.retry_after:g} s.")
        case Transient():
            return f"A temporary provider failure ({error.reason}); it will be retried."
        case CalendarMissing():
            found = f" (it has: {', '.join(error.found)})" if error.found else ""
            return (f"The calendar {error.calendar!r} does not exist on the server{found}. "
                    "Nothing was created: correct 'calendar' in the account's config, or "
                    "set create_calendar = true in its [account.auth] to have syncd make it.")
        case EtagMismatch():
            return f"Event {error.event_id} changed meanwhile; it will be merged again."
        case EventGone():
            return f"Event {error.event_id} no longer exists."
        case ItemRejected():
            return f"The server refused event {error.event_id}: {error.reason}."
        case SyncdError():
            return f"{type(error).__name__}: {error}"
        case _:
            return f"Unexpected error: {type(error).__name__}. Run with --debug for details."


def _unresolvable(error: ConflictUnresolvable) -> str:
    head = f"Conflict {error.conflict_id} cannot be resolved"
    activity = error.activity_id
    match error.cause:
        case "changed":
            return (f"{head}: the activity's {error.field} changed since the conflict, and "
                    "taking the old value would undo that edit. Nothing was changed; edit "
                    f"the activity instead ('syncd activity edit {activity}').")
        case "deleted":
            return (f"{head}: activity {activity} is deleted. Nothing was changed; restore "
                    f"it first with 'syncd activity restore {activity}'.")
        case "undated":
            return (f"{head}: activity {activity} has no date, so it is on no calendar. "
                    "Nothing was changed; give it a date first.")
        case _:
            return f"{head}: activity {activity} was purged. There is nothing to apply."
