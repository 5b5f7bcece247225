"""The one place where errors become sentences for admins, each with a next step.

Every runtime sentence is one sentence: what happened, then (after a semicolon) what to
do. The next step must exist for the provider at hand, so :func:`describe` takes the
account the error belongs to when there is one. Foreign exceptions that reach the top
(a full disk, a port taken) are worded here too, so no admin ever sees a bare class
name for a problem they can fix.
"""

from __future__ import annotations

import errno
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from syncd.errors import (
    AccountCooldown,
    AccountUnavailable,
    ActivityChanged,
    AnswerTooLarge,
    AuthFailed,
    BookingRefused,
    CalendarMissing,
    ConfigError,
    ConflictUnresolvable,
    DatabaseUnavailable,
    DeletionsHeld,
    EtagMismatch,
    EventGone,
    FilesNotPrivate,
    Fixable,
    InvalidInput,
    ItemRejected,
    NotFound,
    PortInUse,
    PushRefused,
    QuotaCooldown,
    RateLimited,
    SchemaNotCurrent,
    SecretUnavailable,
    ServerFailed,
    SlotTaken,
    StorageFull,
    StoredSecretUnreadable,
    SyncdError,
    SyncRefused,
    Transient,
    Unreachable,
    UsageError,
)

if TYPE_CHECKING:
    from datetime import datetime

    from syncd.config import AccountConfig
    from syncd.engine.audit import Finding
    from syncd.repair_lease import LeaseHeld
    from syncd.store.channels import ChannelRow

#: Exit codes (the README lists them): 2 for what the caller must fix in the command or
#: config, 1 for a failure at run time, 3 when ``sync`` skipped an account that needs
#: someone (re-authorisation, paused, flagged) or rests after failures.
EXIT_OK = 0
EXIT_RUNTIME = 1
EXIT_USAGE = 2
EXIT_SKIPPED = 3


def exit_code(error: BaseException) -> int:
    return EXIT_USAGE if isinstance(error, Fixable) else EXIT_RUNTIME


def sync_exit_code(reports: Iterable[Any]) -> int:
    """The exit code of a sync: the worst of its accounts' outcomes.

    A skipped account is never success: cron and monitoring must see that it did not
    sync. An account another replica is syncing ("busy") is.
    """
    outcomes = {r.outcome for r in reports}
    if outcomes - {"ok", "dry-run", "busy", "skipped"}:
        return EXIT_RUNTIME
    return EXIT_SKIPPED if "skipped" in outcomes else EXIT_OK


#: Why a cycle that did not fail stopped short (``syncd.store.status.Note`` values).
_NOTES = {
    "retry-next": "some changes will be retried next cycle",
    "lease-lost": "the lease was lost; another replica continues",
    "deadline": "the cycle reached its deadline; the next one goes on",
    "lease-busy": ("another syncd process holds the account's lease: the daemon, a replica, "
                   "another syncd sync or a verify --repair; nothing was done here, and the "
                   "account syncs there or at its next cycle"),
}


def describe_note(note: str) -> str:
    """The words for a cycle's note (why it stopped short without failing)."""
    return _NOTES[note]


def describe(error: BaseException, account: AccountConfig | None = None) -> str:
    """A sentence (or, for a config, a few lines) saying what went wrong and what to do.

    ``account`` is the account the error happened in, when there is one: it picks the
    next step that exists for its provider and names it in the commands to run.
    """
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
        case NotFound() if error.kind == "CRM user":
            return (f"No CRM user {error.key!r} exists; add it with 'syncd user add {error.key}' "
                    "or correct the account's owner in the config.")
        case NotFound():
            return f"No {error.kind} {error.key!r} exists."
        case DeletionsHeld():
            return _deletions_held(error)
        case StoredSecretUnreadable():
            return (f"The stored {error.kind} of {error.account} opens with none of the keys "
                    f"in {error.option}; add the key it was stored with back to {error.option} "
                    f"(after the current one: state_key = [\"env:NEW\", \"env:OLD\"]) and run "
                    f"'syncd admin rotate-key', or sign {error.account} in again with "
                    f"'syncd auth <provider> {error.account}'.")
        case SecretUnavailable():
            return (f"The secret {error.ref} cannot be read ({error.reason}); set it, or point "
                    "the config at the right place.")
        case StorageFull():
            return (f"The disk holding {error.path} is full; free some space there (or move "
                    "[syncd] data_dir), then run again: nothing half-done was kept.")
        case DatabaseUnavailable():
            return (f"The database {error.database} cannot be used ({error.reason}); start it, "
                    "or correct the URL in [syncd] database (or in the secret it names), then "
                    "run again.")
        case PortInUse():
            return (f"Port {error.port} on {error.host} is already in use, so the {error.what} "
                    f"cannot start; stop what holds it or set {error.setting} in the config.")
        case ServerFailed():
            return (f"The {error.what} {error.reason}; its own messages are above (or in the "
                    "log), and 'syncd --debug run' shows more.")
        case SyncRefused():
            return _refused(error)
        case PushRefused():
            status = f", HTTP {error.status}" if error.status else ""
            return (f"{_PUSH_PROVIDERS.get(error.provider, error.provider)} will not notify "
                    f"changes of this calendar ({error.reason}{status}); syncd polls it at "
                    "its interval and asks again in a day, or at once after a change of the "
                    "account's config or [http] public_url.")
        case ConflictUnresolvable():
            return _unresolvable(error)
        case AccountUnavailable():
            return _unavailable(error, account)
        case AuthFailed():
            return _auth_failed(error, account)
        case Unreachable():
            return (f"Nothing answers at {error.url} ({error.reason}); check that the server "
                    "runs and that url in the config has the right host and port (syncd "
                    "retries every cycle).")
        case AnswerTooLarge():
            return (f"The answer from {error.url} was over syncd's "
                    f"{error.limit / 2**20:g} MiB cap ({error.reason}), so nothing of it "
                    "was used and the request failed "
                    "(it is retried next cycle); if it keeps happening, check that the "
                    "account's endpoint is the provider's.")
        case QuotaCooldown():
            return (f"The provider's usage limit was hit ({error.reason}); the account rests "
                    f"{int(error.seconds)} s, twice as long for each limit met again before "
                    "a cycle succeeds (up to a day; 'syncd status' says until when), then "
                    "syncs again by itself.")
        case SchemaNotCurrent():
            return (f"The state database's schema is at revision {error.found}, not "
                    f"{error.expected} as this release of syncd needs, so syncd did not "
                    "start; run the same release of syncd everywhere the database is used "
                    "(an older database is migrated on start, a newer one never).")
        case AccountCooldown():
            return (f"The provider's usage limit was hit ({error.reason}); the account rests "
                    f"for {int(error.seconds)} s, then syncs again by itself.")
        case RateLimited():
            return (f"Throttled by the provider ({error.reason}); "
                    f"retrying after {error.retry_after:g} s.")
        case Transient():
            return f"A temporary provider failure ({error.reason}); it will be retried."
        case CalendarMissing():
            found = f" (it has: {', '.join(error.found)})" if error.found else ""
            which = f" of account {account.name}" if account else ""
            port = ", the port included" if "://" in error.calendar else ""
            return (f"The calendar {error.calendar!r} does not exist on the server{found} and "
                    f"nothing was created; correct calendar and url{which} in the config"
                    f"{port}, or set create_calendar = true in its [account.auth] to have "
                    "syncd make it.")
        case EtagMismatch():
            return f"Event {error.event_id} changed meanwhile; it will be merged again."
        case ActivityChanged():
            return (f"Activity {error.activity_id} changed in the CRM meanwhile; it will be "
                    "merged again.")
        case EventGone():
            return f"Event {error.event_id} no longer exists."
        case ItemRejected():
            return _rejected(error)
        case SlotTaken():
            return (f"The slot {error.start.isoformat()} to {error.end.isoformat()} overlaps a "
                    f"busy activity of user {error.owner_id}; nothing was booked.")
        case BookingRefused():
            return f"Booking refused ({error.reason}): {visitor_message(error)}"
        case SyncdError():
            return f"{type(error).__name__}: {error}."
        case OSError() if error.errno in (errno.ENOSPC, errno.EDQUOT):
            return describe(StorageFull(path=error.filename or "the data directory"))
        case OSError() if error.filename:
            return (f"Cannot use {error.filename} ({error.strerror or type(error).__name__}); "
                    "check that it exists and that syncd may write there.")
        case _:
            return (f"Unexpected error: {type(error).__name__}; run again with --debug for "
                    "details.")

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
        case "event":
            return (f"{head} by taking the CRM side: it is about the event itself, which "
                    "was kept in the calendar, and the CRM has no value to write. Nothing "
                    "was changed; delete the event in the calendar if it should go, and close "
                    f"the conflict with 'syncd conflicts resolve {error.conflict_id} --take "
                    "calendar'.")
        case _:
            return f"{head}: activity {activity} was purged. There is nothing to apply."



def _deletions_held(error: DeletionsHeld) -> str:
    if error.since is not None:
        why = (f"as every deletion of this account has since {error.since:%Y-%m-%d %H:%M} "
               "UTC, when its deletions within 24 hours passed its daily budget")
    else:
        why = (f"the account's deletions within 24 hours would reach {error.count}, past its "
               f"daily budget of {error.limit} (max_daily_deletion_percent of its pairs)")
    return (f"{error.waiting} deletion(s) wait for an admin, {why}; creates and edits go on "
            f"and nothing was deleted. Check that the deletions are meant, then run "
            f"'syncd sync --account {error.account} --force-delete' to let them through.")


def _refused(error: SyncRefused) -> str:
    force = f"'syncd sync --account {error.account} --force-delete'"
    if error.guard == "guest-updates":
        step = (f"the account is paused; check why so many guests would be e-mailed, then "
                f"run 'syncd resume {error.account}'")
    elif error.guard == "scope-changed" and error.changed == "crm":
        where = error.config_file or "the configuration"
        step = (f"nothing was changed; if [crm] company_domain or api_url in {where} was "
                f"changed by mistake, set it back; if the CRM really moved, run {force} "
                "to proceed (activities the links name are not in the new CRM)")
    else:
        step = f"nothing was changed; check the calendar, then run {force} to proceed"
    return f"The {error.guard} guard refused this cycle ({_refusal_detail(error)}); {step}."


def refusal_reason(error: SyncRefused) -> str:
    """The short reason kept in the account's status ("guard: what it saw"), which
    ``syncd status`` and the sentence of a skipped account show."""
    return f"{error.guard}: {_refusal_detail(error)}"


def _refusal_detail(error: SyncRefused) -> str:
    match error.guard:
        case "scope-changed" if error.changed == "crm":
            return ("the CRM is now another Pipedrive company, or another CRM, than the one "
                    "this account's links were made with")
        case "scope-changed":
            return "the account now points at another calendar or user"
        case "empty-calendar":
            return f"the calendar lists no events, but {error.count} were in sync before"
        case "mass-deletion":
            return (f"{error.count} deletions planned, more than the {error.limit} allowed "
                    "per cycle")
        case "guest-updates":
            return (f"{error.count} guest e-mails planned, over the hourly cap of "
                    f"{error.limit}")
    return f"{error.count} planned, {error.limit} allowed"


#: What a refusal of one item by its HTTP status says about that item.
_ITEM_STATUS_WORDS = {
    403: "syncd may not change it; it may be read-only",
    413: "it is too large",
    415: "the server does not take it in this form",
    507: "the server has no room to store it",
}


def _rejected(error: ItemRejected) -> str:
    """An item set aside: what the server answered and, for a status, what it means."""
    event = f"event {error.event_id}" if error.event_id else "a new event"
    if error.status is None:
        return f"The server refused {event}: {error.reason}."
    words = _ITEM_STATUS_WORDS.get(error.status)
    return f"The server refused {event} ({error.reason})" + (f": {words}." if words else ".")


def _auth_failed(error: AuthFailed, account: AccountConfig | None) -> str:
    """The refusal, with the one step that fixes it for this provider and sign-in mode."""
    if account is None:
        return (f"The provider refused the credentials ({error.reason}); fix the account's "
                "credentials (see 'syncd status'), then run 'syncd sync' again.")
    return f"{_refuser(account)} refused the credentials ({error.reason}); {_reauth(account)}."


def _refuser(account: AccountConfig) -> str:
    who = {"caldav": "The CalDAV server", "google": "Google", "outlook": "Microsoft"}
    return f"{who.get(account.provider, 'The provider')} of account {account.name}"


def _reauth(account: AccountConfig) -> str:
    """What makes ``account``'s credentials work again: a command or a secret to replace."""
    name, auth, mode = account.name, account.auth, account.auth.get("mode")
    if account.provider == "caldav":
        secret = _ref(auth.get("password"))
        if account.name.startswith("embedded:") and secret:
            # The embedded server's service password (syncd.embedded_auth): made anew
            # at start when its file is gone.
            return (f"delete {secret.removeprefix('file:')} and restart 'syncd run', which "
                    "makes a new service password that the next cycle uses")
        if secret is None:
            return f"set password = \"env:NAME\" or \"file:PATH\" under [account.auth] of {name}"
        return (f"put the right password in {secret} (user {auth.get('username', '?')}); the "
                "next cycle notices the change and tries again")
    if account.provider in ("google", "outlook") and mode in ("oauth", "delegated"):
        return f"run 'syncd auth {account.provider} {name}' to sign in again"
    if account.provider == "google":
        key = _ref(auth.get("service_account_file")) or "service_account_file"
        subject = auth.get("subject") or account.owner
        return (f"a new key in {key} is tried on the next cycle; after fixing the key's "
                f"domain-wide delegation for {subject} instead, run 'syncd resume {name}'")
    if account.provider == "outlook":
        secret = _ref(auth.get("client_secret")) or "client_secret"
        return (f"a new client secret in {secret} is tried on the next cycle; after granting "
                f"the app its calendar permission instead, run 'syncd resume {name}'")
    return f"fix the credentials, then run 'syncd resume {name}'"


def _unavailable(error: AccountUnavailable, account: AccountConfig | None) -> str:
    """Why an account was skipped this cycle, and what brings it back."""
    name, status = error.account, error.status
    reason = f" ({error.reason})" if error.reason else ""
    until = error.until
    if status == "needs_reauth" and account is not None:
        return f"The credentials were refused{reason}; {_reauth(account)}."
    if status == "paused":
        return f"The account is paused{reason}; check why, then run 'syncd resume {name}'."
    if status == "flagged":
        return (f"The account is flagged{reason}; check the calendar, then run "
                f"'syncd sync --account {name} --force-delete'.")
    if until is not None:
        return (f"The account rests until {until:%Y-%m-%d %H:%M} UTC after "
                f"{'a usage limit' if status == 'cooldown' else 'failing'}{reason}; it syncs "
                f"again by itself then, or run 'syncd resume {name}' once the cause is fixed.")
    return f"Account {name} is {status}{reason}; see 'syncd status'."


def _ref(value: Any) -> str | None:
    """The reference (never the value) of a configured secret."""
    ref = getattr(value, "ref", None)
    return str(ref) if ref else None


# --- push channels ------------------------------------------------------------------------

#: Why an account has no working push channel, as kept in ``push_channels.reason`` (a
#: provider's refusal keeps the provider's own short reason instead).
NO_PUSH = "no-push"
MISSED_NOTIFICATION = "missed-notification"
RENEWAL_FAILED = "renewal-failed"
_PUSH_REASONS = {
    NO_PUSH: "this provider's connector cannot be notified",
    MISSED_NOTIFICATION: "no notification after our write",
    RENEWAL_FAILED: "its renewal failed",
}
_PUSH_PROVIDERS = {"google": "Google", "graph": "Microsoft Graph", "outlook": "Microsoft",
                   "webdav": "The CalDAV server", "caldav": "The CalDAV server"}


def push_status(row: ChannelRow | None, *, public_url: str | None) -> str:
    """The status line of an account's push channel: active, degraded, or why it is
    polled."""
    if public_url is None:
        return "polled: push needs [http] public_url"
    if row is None:
        return "polled: no push channel yet (one is opened after the next cycle)"
    reason = _PUSH_REASONS.get(row.reason or "", row.reason or "no reason given")
    if row.state == "refused":
        return f"polled: {reason}"
    if row.state == "degraded":
        return f"push: degraded ({reason}); polled at the normal interval until it is re-created"
    heard = _when(row.last_message_at) if row.last_message_at else "none yet"
    line = f"push: active until {_when(row.expires_at)}, last notification {heard}"
    if row.expect_by is not None:
        line += f", one due by {_when(row.expect_by)} after our write"
    return line


def _when(at: datetime | None) -> str:
    return at.strftime("%Y-%m-%d %H:%M UTC") if at is not None else "?"


# --- syncd verify ---------------------------------------------------------------------


def describe_repair_held(account: str, held: LeaseHeld | None) -> str:
    """Why ``verify --repair`` left (some of) an account's repair undone: ``held``, the
    lease a live holder has (nothing was written), or None: the repair's own lease was
    taken over midway (what was done is listed; the rest waits)."""
    again = f"'syncd verify --repair --account {account}'"
    if held is None:
        return (f"repair of {account} stopped: another holder took the account's lease "
                f"midway (the rest not done); run {again} again")
    until = f", until {held.until:%Y-%m-%d %H:%M:%S} UTC" if held.until else ""
    who = f" ({held.holder}{until})" if held.holder else ""
    return (f"not repaired: the lease of {account} is held{who} by a sync cycle or another "
            f"repair, and a repair never writes beside one; run {again} again once it ends, "
            "or add --wait SECONDS to wait for it")


def describe_unverified(account: str, sentence: str, *, repair: bool) -> str:
    """The line of an account ``verify`` could not read (``sentence``: :func:`describe`
    of the error, its own next step included), with the run that checks it again; the
    other accounts were audited (and repaired) all the same."""
    again = f"'syncd verify{' --repair' if repair else ''} --account {account}'"
    return (f"{account}: could not be verified: {sentence.rstrip('.')}; then run {again} "
            "again")


def describe_repair_failed(account: str, sentence: str) -> str:
    """Why ``verify --repair`` stopped an account's repair midway on an error
    (``sentence``: :func:`describe` of it): what was done is listed, the rest waits."""
    return (f"repair of {account} stopped: {sentence.rstrip('.')}; the rest is not done, "
            f"so run 'syncd verify --repair --account {account}' again once that is fixed")


def describe_finding(finding: Finding, account: str) -> str:
    """One audit finding as a sentence with the command that repairs it, where one does.
    A privacy finding names the activity and the event, never the note's text."""
    events = ", ".join(finding.event_ids)
    activity = f"activity {finding.activity_id}" if finding.activity_id is not None \
        else "no known activity"
    repair = f"'syncd verify --repair --account {account}'"
    sync = f"'syncd sync --account {account}'"
    match finding.kind:
        case "duplicate":
            return (f"duplicate: {activity} has {len(finding.event_ids)} events ({events}); "
                    f"{repair} keeps one and deletes {', '.join(finding.remove)}")
        case "paired_twice":
            others = ", ".join(map(str, finding.unpair))
            return (f"paired twice: event {events} is paired with activities "
                    f"{finding.reason}; {repair} keeps it with activity "
                    f"{finding.activity_id} and unpairs {others} (the next cycle gives "
                    "each its own event; the dropped pairs are logged in repairs.jsonl)")
        case "orphan" if finding.reason == "moved_away":
            return (f"orphan: event {events} is still paired here but {activity} belongs "
                    f"to another owner now (the meeting is in two calendars); {repair} "
                    "deletes it from this one")
        case "orphan":
            why = {"deleted": "whose activity was deleted",
                   "other_owner": "whose activity belongs to another owner now",
                   "unknown_marker": "whose activity the CRM does not know"}
            return (f"orphan: event {events} carries syncd's marker but no pair, "
                    f"{why.get(finding.reason or '', '')}; {repair} deletes it")
        case "drift":
            return (f"drift: {activity} and event {events} differ in "
                    f"{', '.join(finding.fields)} with no change pending on either side; "
                    f"{repair} makes the next cycle write the activity's values to the "
                    "event (the event's are logged in repairs.jsonl)")
        case "missing":
            fix = {"quarantined": "quarantined: 'syncd quarantine' shows why, "
                                  "'syncd quarantine retry ID' tries again",
                   "event_missing": f"its event is gone from the calendar: {sync} applies "
                                    "on_calendar_delete",
                   "not_synced_yet": f"not synced yet: {sync}"}
            return f"missing: {activity} has no event; {fix.get(finding.reason or '', '')}"
        case "privacy":
            return (f"privacy: the private note of {activity} appears in the "
                    f"{' and '.join(finding.fields)} of event {events}; syncd never writes "
                    "notes, so it was put there in the calendar: remove it there")
        case "foreign_touched":
            since = ("it still holds what syncd wrote" if finding.reason == "unchanged"
                     else "it has been edited since")
            return (f"foreign event touched: syncd wrote to event {events}, which does not "
                    f"carry its marker (it is not syncd's), and {since}; no command "
                    "restores it (syncd keeps no copy of what it held before): check the "
                    "event in the calendar app and correct it there, and report it")
    return f"{finding.kind}: {activity} {events}"


#: What a visitor of a booking page reads for each refusal (``BookingRefused.reason``):
#: plain words, nothing about syncd's insides, never the value they typed.
BOOKING_REASONS = {
    "taken": "Sorry, that time is no longer free. Please pick another one.",
    "not-offered": "That time is not one of the free times offered. Please pick one below.",
    "no-slot": "Please pick a time.",
    "name": "Please give your name (at most 100 characters, on one line, without < > or "
            "a web address).",
    "email": "Please give a valid e-mail address, such as name@example.com.",
    "expired": "This form was open too long or was not sent from this page. Nothing was "
               "booked; please pick a time again.",
    "too-many": "Too many requests from your address. Please wait a minute and try again.",
    "zone": "Unknown time zone; times are shown in UTC.",
    "unavailable": "Booking is not possible right now. Please try again later.",
}


def visitor_message(error: BookingRefused) -> str:
    """The sentence a booking page shows for ``error``."""
    return BOOKING_REASONS.get(error.reason, BOOKING_REASONS["unavailable"])
