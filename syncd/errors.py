"""Every error syncd raises, grouped by what the caller does next.

Errors carry fields, never prose: ``syncd.report`` is the one place that turns them into
sentences for admins. Nothing here may hold a note, a secret or event content beyond
identifiers, because errors end up in logs and in the status table.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


class SyncdError(Exception):
    """Base class. Keyword arguments become attributes (and ``fields``)."""

    def __init__(self, **fields: Any) -> None:
        self.fields = fields
        for key, value in fields.items():
            setattr(self, key, value)
        super().__init__(", ".join(f"{k}={v!r}" for k, v in fields.items()))


# --- problems the person at the keyboard can fix (exit code 2) ---------------------------


@dataclass(frozen=True)
class ConfigProblem:
    """One problem in a config file: where it is and what was expected."""

    file: str
    key: str
    problem: str
    expected: str = ""


class ConfigError(SyncdError):
    """The configuration is unusable; ``problems`` lists every issue found at once."""

    problems: list[ConfigProblem]


class UsageError(SyncdError):
    """A command was called wrongly (fields: ``message``)."""

    message: str


class InvalidInput(SyncdError):
    """A value given for a field is not acceptable (fields: ``field``, ``value``, ``reason``).

    Raised before anything is written, so bad input never half-applies.
    """

    field: str
    value: Any
    reason: str


class FilesNotPrivate(SyncdError):
    """Files syncd keeps can be read or entered by other users (fields: ``paths``, a list of
    (path, octal mode) pairs). Refused at start: they hold private notes and passwords."""

    paths: list[tuple[str, str]]


# --- runtime problems (exit code 1) -----------------------------------------------------


class NotFound(SyncdError):
    """A record the caller named does not exist (fields: ``kind``, ``key``)."""

    kind: str
    key: Any


class SecretUnavailable(SyncdError):
    """A secret reference could not be resolved (fields: ``ref``, ``reason``)."""

    ref: str
    reason: str


class StorageFull(SyncdError):
    """The disk holding ``path`` has no space left (ENOSPC, SQLite's "disk is full")."""

    path: str


class DatabaseUnavailable(SyncdError):
    """The database cannot be opened or reached (``database``: its URL without the
    password, ``reason``)."""

    database: str
    reason: str


class ServerFailed(SyncdError):
    """A server syncd runs itself (``what``) did not start or answered wrongly
    (``reason``)."""

    what: str
    reason: str


class PortInUse(SyncdError):
    """Something else listens on the port syncd wants (``what``, ``host``, ``port``, and
    ``setting``: the config key that moves it)."""

    what: str
    host: str
    port: int
    setting: str


# --- connector outcomes: what the engine does next ----------------------------------------


class ConnectorError(SyncdError):
    """Base of everything a calendar connector reports."""


class CalendarMissing(ConnectorError):
    """The configured calendar does not exist and syncd may not make it (``calendar``: the
    name or URL configured; ``found``: the names of the calendars that do exist)."""

    calendar: str
    found: tuple[str, ...]


class EtagMismatch(ConnectorError):
    """The event changed since we read it (412): re-read and merge (fields: ``event_id``)."""

    event_id: str


class EventGone(ConnectorError):
    """The event no longer exists (404/410) (fields: ``event_id``)."""

    event_id: str


class ActivityChanged(SyncdError):
    """The activity changed in the CRM after the plan read it (a read-check-write source
    re-read it just before writing): nothing was written; read and plan the pair again
    (fields: ``activity_id``)."""

    activity_id: int


class ItemRejected(ConnectorError):
    """The server refused this one item for good; quarantine it (``event_id``, ``reason``)."""

    event_id: str
    reason: str


class Transient(ConnectorError):
    """Temporary failure (5xx, timeout, reset); retry later (``reason``, ``status``).

    ``maybe_applied`` is true when the request may have reached the server, so the caller
    must read before writing again.
    """

    reason: str


class Unreachable(Transient):
    """Nothing answered at ``url`` (``reason``: refused, timed out, unknown host, TLS).

    A :class:`Transient`, so the engine backs off and retries; it gets its own sentence
    because the usual cause is a server that is down or a wrong host or port.
    """

    url: str


class RateLimited(ConnectorError):
    """Throttled; retry no sooner than ``retry_after`` seconds (``retry_after``, ``reason``)."""

    retry_after: float
    reason: str


class AccountCooldown(ConnectorError):
    """A long, account-wide limit (Google quotaExceeded): pause the account (``seconds``)."""

    seconds: float
    reason: str


class AuthFailed(ConnectorError):
    """Credentials were refused or revoked; the account needs re-authorisation (``reason``)."""

    reason: str


class CursorExpired(ConnectorError):
    """The stored sync token is no longer valid; a full listing is needed."""


# --- engine outcomes --------------------------------------------------------------------


class SyncRefused(SyncdError):
    """A guard refused the plan (fields: ``guard``, ``account``, ``detail``)."""

    guard: str
    account: str
    detail: str


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


class AccountUnavailable(SyncdError):
    """The account is paused, flagged, cooling down or needs re-auth (``account``,
    ``status``; optionally ``reason`` and ``until``, the end of a cool-down)."""

    account: str
    status: str
