"""Every error syncd raises, grouped by what the caller does next.

Errors carry fields, never prose: ``syncd.report`` is the one place that turns them into
sentences for admins. Nothing here may hold a note, a secret or event content beyond
identifiers, because errors end up in logs and in the status table.

Each error is a keyword-only dataclass, so its constructor is explicit and a type checker
holds every raise site to it. The class tree says what happens next, so a caller catches a
group, never a tuple of members:

* :class:`Fixable`: the command or the config is wrong; nothing was done (exit code 2).
* :class:`ConnectorError`, what a calendar connector (or a remote CRM) reports:

  * :class:`AccountWide`: stop this account for this cycle (:class:`AuthFailed`,
    :class:`AccountCooldown`, :class:`CalendarMissing`);
  * :class:`Stale`: what was read is out of date; read again and plan again
    (:class:`EtagMismatch`, :class:`EventGone`, :class:`CursorExpired`,
    :class:`ActivityChanged`);
  * :class:`Retriable`: nothing is wrong with the item or the account; try again later
    (:class:`Transient`, :class:`Unreachable`, :class:`AnswerTooLarge`,
    :class:`RateLimited`);
  * :class:`ItemLevel`: this one item is refused for good; quarantine it
    (:class:`ItemRejected`).

:func:`error_for_status` turns an HTTP answer into one of these through one table that
every HTTP transport shares; a provider's own rows are data handed to it.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any


@dataclass(eq=False, kw_only=True)
class SyncdError(Exception):
    """Base class. Subclasses are keyword-only dataclasses: their fields are the error."""

    @property
    def fields(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}

    def __str__(self) -> str:
        return ", ".join(f"{k}={v!r}" for k, v in self.fields.items())

    def __reduce__(self) -> tuple[Any, ...]:
        # Keyword-only fields: rebuilt from them, not from ``args`` (copy, pickle).
        return _rebuild, (type(self), self.fields)


def _rebuild(cls: type[SyncdError], fields: dict[str, Any]) -> SyncdError:
    return cls(**fields)


# --- problems the person at the keyboard can fix (exit code 2) ---------------------------


@dataclass(eq=False, kw_only=True)
class Fixable(SyncdError):
    """The command or the config is wrong; nothing was done (exit code 2)."""


@dataclass(frozen=True)
class ConfigProblem:
    """One problem in a config file: where it is and what was expected."""

    file: str
    key: str
    problem: str
    expected: str = ""


@dataclass(eq=False, kw_only=True)
class ConfigError(Fixable):
    """The configuration is unusable; ``problems`` lists every issue found at once."""

    problems: list[ConfigProblem]


@dataclass(eq=False, kw_only=True)
class UsageError(Fixable):
    """A command was called wrongly (``message``)."""

    message: str


@dataclass(eq=False, kw_only=True)
class InvalidInput(Fixable):
    """A value given for a field is not acceptable (``field``, ``value``, ``reason``).

    Raised before anything is written, so bad input never half-applies.
    """

    field: str
    value: Any
    reason: str


@dataclass(eq=False, kw_only=True)
class FilesNotPrivate(Fixable):
    """Files syncd keeps can be read or entered by other users (``paths``, a list of
    (path, octal mode) pairs). Refused at start: they hold private notes and passwords."""

    paths: list[tuple[str, str]]


# --- runtime problems (exit code 1) -----------------------------------------------------


@dataclass(eq=False, kw_only=True)
class NotFound(SyncdError):
    """A record the caller named does not exist (``kind``, ``key``)."""

    kind: str
    key: Any


@dataclass(eq=False, kw_only=True)
class SecretUnavailable(SyncdError):
    """A secret reference could not be resolved (``ref``, ``reason``)."""

    ref: str
    reason: str


@dataclass(eq=False, kw_only=True)
class StoredSecretUnreadable(SecretUnavailable):
    """A token syncd stored (``kind`` of ``account``) opens with none of the keys
    ``option`` lists: it was encrypted with a key since removed (or never configured)."""

    account: str
    kind: str
    option: str
    ref: str = ""
    reason: str = "it was encrypted with a key the configuration no longer lists"


@dataclass(eq=False, kw_only=True)
class StorageFull(SyncdError):
    """The disk holding ``path`` has no space left (ENOSPC, SQLite's "disk is full")."""

    path: str


@dataclass(eq=False, kw_only=True)
class DatabaseUnavailable(SyncdError):
    """The database cannot be opened or reached (``database``: its URL without the
    password, ``reason``)."""

    database: str
    reason: str


@dataclass(eq=False, kw_only=True)
class ServerFailed(SyncdError):
    """A server syncd runs itself (``what``) did not start or answered wrongly
    (``reason``)."""

    what: str
    reason: str


@dataclass(eq=False, kw_only=True)
class PortInUse(SyncdError):
    """Something else listens on the port syncd wants (``what``, ``host``, ``port``, and
    ``setting``: the config key that moves it)."""

    what: str
    host: str
    port: int
    setting: str


# --- connector outcomes: what the engine does next ----------------------------------------


@dataclass(eq=False, kw_only=True)
class ConnectorError(SyncdError):
    """Base of everything a calendar connector (or a remote CRM) reports. Raise one of the
    four groups' members, never this class itself."""


@dataclass(eq=False, kw_only=True)
class AccountWide(ConnectorError):
    """Nothing more can be done for this account this cycle: it stops, and its status
    says why (others go on)."""


@dataclass(eq=False, kw_only=True)
class Stale(ConnectorError):
    """What the plan was made from is out of date: read it again and plan again."""


@dataclass(eq=False, kw_only=True)
class Retriable(ConnectorError):
    """Neither the item nor the account is at fault: try again later (within the cycle
    where that is safe, else the next cycle). ``reason``: what went wrong, in a few words
    (an HTTP status and code, or the network's failure)."""

    reason: str


@dataclass(eq=False, kw_only=True)
class ItemLevel(ConnectorError):
    """This one item cannot be written: quarantine it, and the others go on."""


@dataclass(eq=False, kw_only=True)
class AuthFailed(AccountWide):
    """Credentials were refused or revoked; the account needs re-authorisation
    (``reason``: the provider's status and code, never its message)."""

    reason: str


@dataclass(eq=False, kw_only=True)
class AccountCooldown(AccountWide):
    """A long, account-wide limit (Google quotaExceeded): the account rests ``seconds``."""

    seconds: float
    reason: str


@dataclass(eq=False, kw_only=True)
class QuotaCooldown(AccountCooldown):
    """A usage limit that does not say when it ends (Google's ``quotaExceeded``,
    ``dailyLimitExceeded``: the calendar stays read-only for hours). ``seconds`` is the
    first rest; each such limit met again before a cycle succeeds doubles the rest, up to
    a day (:func:`syncd.store.status.quota_rest`)."""


@dataclass(eq=False, kw_only=True)
class CalendarMissing(AccountWide):
    """The configured calendar does not exist and syncd may not make it (``calendar``: the
    name or URL configured; ``found``: the names of the calendars that do exist)."""

    calendar: str
    found: tuple[str, ...] = ()


@dataclass(eq=False, kw_only=True)
class EtagMismatch(Stale):
    """The event changed since we read it (412), or a create's id is taken already:
    re-read (or find) it and merge (``event_id``; "" for a create)."""

    event_id: str


@dataclass(eq=False, kw_only=True)
class EventGone(Stale):
    """The event no longer exists (404/410) (``event_id``)."""

    event_id: str


@dataclass(eq=False, kw_only=True)
class CursorExpired(Stale):
    """The stored sync token is no longer valid; a full listing is needed."""


@dataclass(eq=False, kw_only=True)
class ActivityChanged(Stale):
    """The activity changed in the CRM after the plan read it (a read-check-write source
    re-read it just before writing): nothing was written; read and plan the pair again
    (``activity_id``)."""

    activity_id: int


@dataclass(eq=False, kw_only=True)
class Transient(Retriable):
    """Temporary failure (5xx, timeout, reset); retry later (``reason``, and ``status``:
    the HTTP status when there was an answer).

    Whether the request may have reached the server does not matter to the engine: every
    update and delete is conditional on the etag read, and every create is recorded as
    pending before it is sent and looked for (``find``) before it is sent again.
    """

    status: int | None = None


@dataclass(eq=False, kw_only=True)
class Unreachable(Transient):
    """Nothing answered at ``url`` (``reason``: refused, timed out, unknown host, TLS).

    A :class:`Transient`, so the engine backs off and retries; it gets its own sentence
    because the usual cause is a server that is down or a wrong host or port.
    """

    url: str


@dataclass(eq=False, kw_only=True)
class AnswerTooLarge(Transient):
    """An answer from ``url`` (origin and path, never the query) announced or passed
    ``limit`` bytes (``reason``: how); it was abandoned there and nothing of it was used.

    A :class:`Transient`: that request failed and is tried again later. A listing page
    that fails this way fails the listing, never reads as a shorter one.
    """

    url: str
    limit: int


@dataclass(eq=False, kw_only=True)
class RateLimited(Retriable):
    """Throttled; retry no sooner than ``retry_after`` seconds (and ``reason``)."""

    retry_after: float


#: The longest pause a provider's ``Retry-After`` may impose on every request to one user
#: or mailbox (seconds). Ten minutes is the longest window of any limit syncd meets
#: (Graph's 10,000 requests per 10 minutes per mailbox): once it has passed, every such
#: limit has room again, so a longer pause is a server's mistake or a hostile answer,
#: and honouring it (a year) would stop every replica's requests to that user for as
#: long. Past it syncd asks again; a provider still throttling says so once more.
MAX_PAUSE_SECONDS = 600.0


def bounded_pause(seconds: float) -> float:
    """``seconds`` of a provider's pause within 0 and :data:`MAX_PAUSE_SECONDS` (an
    infinite or undefined one is the longest)."""
    if not math.isfinite(seconds):
        return MAX_PAUSE_SECONDS
    return min(max(seconds, 0.0), MAX_PAUSE_SECONDS)


@dataclass(eq=False, kw_only=True)
class ItemRejected(ItemLevel):
    """The server refused this one item for good; quarantine it (``event_id``, ``reason``;
    ``status``: the HTTP status, when the refusal was one)."""

    event_id: str
    reason: str
    status: int | None = None


# --- engine outcomes --------------------------------------------------------------------


@dataclass(eq=False, kw_only=True)
class PushRefused(SyncdError):
    """The provider, the tenant or the server will not notify changes of this calendar
    (no WebDAV-Push, subscriptions forbidden by the tenant's policy, a refused address):
    the account is polled at its normal interval, and its status line says why.
    ``reason`` is a short identifier or phrase, never a server's text."""

    provider: str
    reason: str
    status: int | None = None


@dataclass(eq=False, kw_only=True)
class DeletionsHeld(SyncdError):
    """The daily deletion budget holds ``waiting`` deletions of ``account`` for an admin;
    the rest of the cycle went on. ``count``/``limit``: the day's deletions with them and
    the budget they would pass; ``since``: when the hold began, if before this cycle."""

    account: str
    waiting: int
    count: int = 0
    limit: int = 0
    since: datetime | None = None


@dataclass(eq=False, kw_only=True)
class SyncRefused(SyncdError):
    """A guard refused the whole plan; nothing was written (``guard``, ``account``).

    ``count`` and ``limit`` are the guard's numbers: deletions planned and allowed
    ("mass-deletion"), guest e-mails planned and the hourly cap ("guest-updates"), pairs
    in sync before ("empty-calendar"); "scope-changed" has none, but says what moved
    (``changed``: "crm" or "calendar") and the file the account is configured in
    (``config_file``, "" when not known).
    """

    guard: str
    account: str
    count: int = 0
    limit: int = 0
    changed: str = ""
    config_file: str = ""


@dataclass(eq=False, kw_only=True)
class ConflictUnresolvable(SyncdError):
    """``syncd conflicts resolve`` cannot apply the value asked for (``conflict_id``,
    ``activity_id``, ``field``, ``cause``).

    ``cause`` is "changed" (the field was edited since the conflict, so applying the
    old value would lose that edit), "deleted" (restore the activity first), "purged"
    (nothing is left to apply it to), "undated" (the activity has no date, so it is on
    no calendar) or "event" (the conflict is about the event itself, such as a delete
    withheld so that guests are not e-mailed, and has no CRM value). Nothing was changed.
    """

    conflict_id: int
    activity_id: int | None
    field: str
    cause: str


@dataclass(eq=False, kw_only=True)
class AccountUnavailable(SyncdError):
    """The account is paused, flagged, cooling down or needs re-auth, so its cycle was
    skipped (``account``, ``status``; ``reason``, and ``until``: the end of a rest)."""

    account: str
    status: str
    reason: str | None = None
    until: datetime | None = None


@dataclass(eq=False, kw_only=True)
class SchemaNotCurrent(SyncdError):
    """The state database's recorded schema revision (``found``) is not this release's
    newest (``expected``): another release opened it since it was migrated."""

    found: str
    expected: str


@dataclass(eq=False, kw_only=True)
class LeaseLost(SyncdError):
    """Another replica took the account's lease; this cycle stops (``account``). Raised
    by the fence before a write batch and by a fenced record of finished writes."""

    account: str


# --- booking links ------------------------------------------------------------------


@dataclass(eq=False, kw_only=True)
class SlotTaken(SyncdError):
    """A busy activity of the owner overlaps the slot being booked, so nothing was
    written (``owner_id``, ``start``, ``end``: the slot, aware datetimes)."""

    owner_id: int
    start: datetime
    end: datetime


@dataclass(eq=False, kw_only=True)
class BookingRefused(SyncdError):
    """A visitor's booking or page request was refused (``reason``: one of
    :data:`syncd.report.BOOKING_REASONS`' keys; ``field``: the form field at fault, or
    "" when none is). Carries no value the visitor typed."""

    reason: str
    field: str = ""


# --- HTTP answers: the one status table ---------------------------------------------------


@dataclass(frozen=True)
class StatusRule:
    """One row: the answers it matches and the error they mean.

    ``statuses`` None matches any status, ``codes`` None any provider error code (codes
    are compared in lower case); ``with_retry_after`` matches only answers that carry a
    Retry-After header.
    """

    statuses: frozenset[int] | None
    error: type[ConnectorError]
    codes: frozenset[str] | None = None
    with_retry_after: bool = False

    def matches(self, status: int, code: str, retry_after: float | None) -> bool:
        return ((self.statuses is None or status in self.statuses)
                and (self.codes is None or code in self.codes)
                and (not self.with_retry_after or retry_after is not None))


def rule(status: int | Iterable[int] | None, error: type[ConnectorError], *codes: str,
         with_retry_after: bool = False) -> StatusRule:
    """A :class:`StatusRule` from one status or several (None: any) and any codes."""
    statuses = (None if status is None else
                frozenset((status,) if isinstance(status, int) else status))
    return StatusRule(statuses, error, frozenset(c.lower() for c in codes) or None,
                      with_retry_after)


#: What an HTTP status means for every provider, after the provider's own rows.
COMMON_RULES: tuple[StatusRule, ...] = (
    rule(401, AuthFailed),
    rule(412, EtagMismatch),
    rule((404, 410), EventGone),
    rule(429, RateLimited),
    # The item itself: too large (413), in a form the server does not take (415), or
    # more than the store has room for (507).
    rule((413, 415, 507), ItemRejected),
)


@dataclass(frozen=True)
class StatusTable:
    """How one provider's HTTP answers map onto the error tree: its own ``rules`` first,
    then :data:`COMMON_RULES`; an answer no row matches is ``other_4xx`` for a 4xx and
    :class:`Transient` otherwise (a 5xx, or 0 for no answer at all).

    ``retry_after`` is the pause when a throttling answer names none; ``cooldown`` the
    rest an :class:`AccountCooldown` imposes.
    """

    rules: tuple[StatusRule, ...] = ()
    other_4xx: type[ConnectorError] = ItemRejected
    retry_after: float = 30.0
    cooldown: float = 3600.0

    def error_class(self, status: int, code: str | None = None,
                    retry_after: float | None = None) -> type[ConnectorError]:
        """The class of the error an answer means (the first matching row's)."""
        lowered = (code or "").lower()
        for row in (*self.rules, *COMMON_RULES):
            if row.matches(status, lowered, retry_after):
                return row.error
        return self.other_4xx if 400 <= status < 500 else Transient

    def error(self, status: int, *, code: str | None = None, retry_after: float | None = None,
              event_id: str = "") -> ConnectorError:
        """The error an answer means, with its fields (``status`` 0: no answer).

        Args:
            status: the HTTP status.
            code: the provider's error code from the body (Google's ``errors[0].reason``,
                Graph's ``error.code``); never its message, which can echo content.
            retry_after: the Retry-After pause in seconds, when one was given.
            event_id: the event the request was about ("" for a create or a listing).
        """
        cls = self.error_class(status, code, retry_after)
        reason = f"HTTP {status or 'no answer'}" + (f" {code}" if code else "")
        if cls is RateLimited:
            return RateLimited(retry_after=self.retry_after if retry_after is None
                               else retry_after, reason=reason)
        if issubclass(cls, AccountCooldown):
            return cls(seconds=self.cooldown, reason=reason)
        if cls is AuthFailed:
            return AuthFailed(reason=reason)
        if cls is EtagMismatch:
            return EtagMismatch(event_id=event_id)
        if cls is EventGone:
            return EventGone(event_id=event_id)
        if cls is CursorExpired:
            return CursorExpired()
        if cls is ItemRejected:
            return ItemRejected(event_id=event_id, reason=reason, status=status)
        return Transient(reason=reason, status=status)
