"""The configuration: one typed schema, every problem reported at once.

Admins write TOML (``config/syncd.example.toml`` is the complete, commented reference and
a test loads it). The schema below is the single source of truth: each option has a type,
a default, allowed values and whether it is a secret. Unknown keys are errors, because a
misspelt option that is silently ignored is how a sync ends up doing the wrong thing.

Secrets are never written in the file: a secret option takes ``env:NAME`` or
``file:PATH`` and is resolved only when a connector needs it (:class:`SecretRef`), or by
``syncd config check``, which reads every one to judge it and never shows it.

This module knows no provider by name: each connector declares its ``[account.auth]``
options and the rules between them (:class:`ProviderOptions`, in
``connectors/<provider>_options.py``) and the caller hands them in. The types those
declarations and the typed result are made of (:class:`~syncd.config_types.Option`,
:class:`~syncd.config_types.AccountConfig`, :class:`~syncd.config_types.SecretRef`, ...)
live in :mod:`syncd.config_types`, below the connectors; this module is the loader above
them. The value checks (URLs, TLS where credentials travel, secret files, database URLs)
are in :mod:`syncd.config_checks`.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from syncd.config_checks import (
    INSECURE_HTTP_KEY,
    REFERENCE_FIX,
    Finding,
    database_url_problem,
    fernet_key_problem,
    is_loopback_address,
    listen_problem,
    public_url_problem,
    readable_file_problem,
    secret_problem,
    transport_problem,
    url_problem,
)
from syncd.config_types import (
    ALLOW_INSECURE_HTTP,
    AccountConfig,
    AccountView,
    Option,
    ProviderOptions,
    SecretRef,
    email_check,
    positive_check,
    zone_check,
)
from syncd.engine.policy import ConflictPolicy, OnCalendarDelete
from syncd.errors import ConfigError, ConfigProblem
from syncd.hours import WORKING_HOURS, HoursRule, overlaps, rule_from
from syncd.model import DoneStyle
from syncd.team import (
    SEPARATOR,
    TeamConfig,
    fill,
    has_placeholder,
    unknown_placeholders,
)

# The choices are the engine's enums, so a new value is declared in one place.
POLICIES = tuple(ConflictPolicy)
DONE_STYLES = tuple(DoneStyle)
ON_CALENDAR_DELETE = tuple(OnCalendarDelete)
DEFAULT_DATA_DIR = "~/.local/share/syncd"


# --- schema -------------------------------------------------------------------------------


def _not_negative(value: Any) -> str | None:
    return None if value >= 0 else "must not be negative"


def _percent(value: Any) -> str | None:
    return None if 1 <= value <= 100 else "is not a percent from 1 to 100"


def _port(value: Any) -> str | None:
    return None if 1 <= value <= 65535 else "is not a port number (1-65535)"


def _loopback(value: Any) -> str | None:
    return None if is_loopback_address(value) else "is not a loopback address"


#: Accounts one process syncs at once. An idle cycle is mostly a wait on the network, so
#: far more than the cores fit; each worker may hold a database connection (the pool is
#: sized to match) and SQLite's single writer queues their short commits.
DEFAULT_WORKERS = 16

#: How long a cycle's lease lasts unless renewed (before every write batch).
DEFAULT_LEASE_SECONDS = 600
#: A lease must outlast a cycle's longest step between two renewals: its reads (a first
#: listing of a large calendar) or one write batch with its retries. Shorter, a healthy
#: replica would lose its accounts mid-cycle to another, over and over.
MIN_LEASE_SECONDS = 60
#: A day: longer, a killed replica's accounts would wait more than a day for another.
MAX_LEASE_SECONDS = 86_400


def _lease_range(value: Any) -> str | None:
    if value < MIN_LEASE_SECONDS:
        return (f"is shorter than {MIN_LEASE_SECONDS} seconds, so a replica would lose its "
                "accounts in the middle of a long read")
    if value > MAX_LEASE_SECONDS:
        return (f"is longer than a day ({MAX_LEASE_SECONDS} seconds), so a killed replica's "
                "accounts would wait that long for another")
    return None


#: The daemon audits each account (``syncd verify``, read-only) once in this many hours.
DEFAULT_VERIFY_HOURS = 24
#: 30 days: rarer, a duplicate or an orphan would go unseen for longer than a month.
MAX_VERIFY_HOURS = 720


def _verify_range(value: Any) -> str | None:
    if value < 0:
        return "is negative"
    if value > MAX_VERIFY_HOURS:
        return (f"is more than {MAX_VERIFY_HOURS} hours (30 days), so a duplicate or an "
                "orphan could go unseen for over a month")
    return None


GENERAL: dict[str, Option] = {
    "database": Option(str, reference=True,
                       expected="an SQLAlchemy URL, e.g. postgresql+psycopg://host/db, or "
                                "env:NAME / file:PATH holding one that has a password"),
    "data_dir": Option(str, DEFAULT_DATA_DIR, expected="a directory path"),
    "interval_seconds": Option(int, 60, check=positive_check, expected="seconds between cycles"),
    "jitter_seconds": Option(int, 5, check=_not_negative, expected="seconds of random delay"),
    "workers": Option(int, DEFAULT_WORKERS, check=positive_check,
                      expected="accounts synced at once"),
    "replica": Option(bool, False, expected="true or false",
                      help="take accounts from the database's work queue, so that several "
                           "syncd run processes share one PostgreSQL"),
    "lease_seconds": Option(int, DEFAULT_LEASE_SECONDS, check=_lease_range,
                            expected=f"seconds, {MIN_LEASE_SECONDS} to {MAX_LEASE_SECONDS}",
                            help="how long an account stays with a replica that stopped "
                                 "renewing its lease (killed or paused) before another "
                                 "takes it over"),
    # Several keys rotate it (point 3.1): the first encrypts, every one decrypts.
    "state_key": Option((str, list), secret=True, secret_check=fernet_key_problem,
                        expected="env:NAME or file:PATH of a Fernet key, or a list of them "
                                 "(the first encrypts, all decrypt)"),
    "default_time_zone": Option(str, "UTC", check=zone_check,
                                expected="an IANA zone, e.g. Europe/Oslo"),
    "retention_days": Option(int, 30, check=_not_negative,
                             expected="days a deleted activity stays restorable"),
    "verify_hours": Option(int, DEFAULT_VERIFY_HOURS, check=_verify_range,
                           expected=f"hours between two read-only audits of each account by "
                                    f"syncd run, 1 to {MAX_VERIFY_HOURS}, or 0 for none",
                           help="how often the daemon audits each account as 'syncd "
                                "verify' does (never repairing) and exports the findings "
                                "on /metrics"),
    "cycle_deadline_seconds": Option(int, 900, check=positive_check,
                                     expected="seconds after which a cycle stops writing"),
    "shutdown_grace_seconds": Option(int, 30, check=positive_check,
                                     expected="seconds SIGTERM waits for cycles in flight"),
    "request_timeout_seconds": Option(int, 30, check=positive_check,
                                      expected="seconds a request waits for the server",
                                      help="how long a calendar or CRM request may wait for "
                                           "an answer before it counts as lost"),
}
LOGGING: dict[str, Option] = {
    "level": Option(str, "info", choices=("debug", "info", "warning", "error")),
    "format": Option(str, "text", choices=("text", "json")),
    "file": Option(str, expected="a log file path (default: standard error)"),
}
EMBEDDED: dict[str, Option] = {
    "host": Option(str, "127.0.0.1", check=_loopback,
                   expected="a loopback address such as 127.0.0.1 or ::1 (the embedded server "
                            "is for this machine; serve others through a TLS reverse proxy)"),
    "port": Option(int, 5232, check=_port, expected="a free port within 1-65535"),
}
HTTP: dict[str, Option] = {
    # Off unless listen is set: a listener is an open door, and an intranet install that
    # providers cannot reach gains nothing from it (polling does the work).
    "listen": Option(str, expected="host:port, e.g. 127.0.0.1:8765 behind a TLS reverse proxy",
                     help="where syncd run serves webhooks (/hooks/...); off when unset"),
    "public_url": Option(str, expected="https://syncd.example.com, the reverse proxy's address",
                         help="the base URL providers call; /hooks/<provider> is appended"),
    "certificate": Option(str, path=True, expected="a PEM certificate (chain) file",
                          help="TLS served by syncd itself (with private_key)"),
    "private_key": Option(str, path=True, expected="a PEM private key file (chmod 600)",
                          help="the key of certificate"),
    "max_body_bytes": Option(int, 1024 * 1024, check=positive_check,
                             expected="the largest request body accepted, in bytes"),
    INSECURE_HTTP_KEY: ALLOW_INSECURE_HTTP,
}
PUSH: dict[str, Option] = {
    # Only used when [http] public_url is set and the account's provider can notify.
    "backstop_minutes": Option(int, 15, check=positive_check,
                               expected="minutes between polls of an account whose push "
                                        "channel is healthy",
                               help="the poll that catches a notification lost on the way"),
    "liveness_seconds": Option(int, 180, check=positive_check,
                               expected="seconds a notification of syncd's own write may take",
                               help="none by then: the channel is re-created, polled meanwhile"),
}
CRM: dict[str, Option] = {
    # The CRM source the engine syncs with (syncd.crm); the other kinds and their options
    # are declared by the sources (syncd.crm.source_options()) and handed in.
    "kind": Option(str, "builtin", choices=("builtin",),
                   help="the CRM syncd syncs activities with: builtin (its own store)"),
}
ACCOUNT: dict[str, Option] = {
    "name": Option(str, required=True, expected="a unique account name"),
    "provider": Option(str, required=True),
    "owner": Option(str, required=True, check=email_check, expected="the CRM user's e-mail"),
    "calendar": Option(str, expected="the calendar to sync (provider specific)"),
    "time_zone": Option(str, check=zone_check, expected="an IANA zone (default: the owner's)"),
    "conflict_policy": Option(str, "crm_wins", choices=POLICIES),
    "done_style": Option(str, "keep", choices=DONE_STYLES),
    "on_calendar_delete": Option(str, "delete_activity", choices=ON_CALENDAR_DELETE),
    "invite_guests": Option(bool, False),
    "import_events": Option(bool, False),
    "import_type": Option(str, "meeting", expected="an activity type key"),
    "window_days_back": Option(int, 30, check=_not_negative),
    "window_days_ahead": Option(int, 365, check=positive_check),
    "max_guest_updates_per_hour": Option(int, 20, check=positive_check),
    "max_daily_deletion_percent": Option(
        int, 25, check=_percent,
        expected="a percent of the account's pairs, 1 to 100 (100 turns the budget off)",
        help="propagated deletions within 24 hours above max(10, this share of the "
             "account's pairs) wait for 'syncd sync --force-delete'"),
    "interval_seconds": Option(int, check=positive_check),
    "enabled": Option(bool, True),
}
TEAM_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")
TEAM: dict[str, Option] = {
    "name": Option(str, required=True,
                   check=lambda x: None if TEAM_NAME.fullmatch(x) else "is not a team name",
                   expected="lower-case letters, digits, - and _ (accounts are named "
                            "<team>:<e-mail>)"),
}


# --- typed result ---------------------------------------------------------------------------


@dataclass(frozen=True)
class LoggingConfig:
    level: str = "info"
    format: str = "text"
    file: str | None = None


@dataclass(frozen=True)
class HttpConfig:
    """The daemon's HTTP listener (``[http]``); ``listen`` None: no listener."""

    listen: str | None = None
    public_url: str | None = None
    certificate: str | None = None
    private_key: str | None = None
    max_body_bytes: int = 1024 * 1024
    allow_insecure_http: bool = False

    def hook_url(self, provider: str) -> str | None:
        """Where ``provider`` must deliver its notifications, if a public URL is set."""
        if self.public_url is None:
            return None
        return f"{self.public_url.rstrip('/')}/hooks/{provider}"


@dataclass(frozen=True)
class PushConfig:
    """Push channels (``[push]``): the backstop poll of healthy channels and how long a
    notification of syncd's own write may take before the channel is presumed dead."""

    backstop_minutes: int = 15
    liveness_seconds: int = 180


@dataclass(frozen=True)
class Config:
    """The whole configuration, validated."""

    source: str = "<defaults>"
    database: str | SecretRef | None = None
    data_dir: str = DEFAULT_DATA_DIR
    interval_seconds: int = 60
    jitter_seconds: int = 5
    workers: int = DEFAULT_WORKERS
    replica: bool = False  # accounts come from the work queue (syncd.replica)
    lease_seconds: int = DEFAULT_LEASE_SECONDS  # a cycle's lease unless renewed
    # one key, or several: the first encrypts, all decrypt (syncd.store.credentials)
    state_key: SecretRef | tuple[SecretRef, ...] | None = None
    default_time_zone: str = "UTC"
    retention_days: int = 30  # deleted activities are purged this many days later
    verify_hours: int = DEFAULT_VERIFY_HOURS  # the daemon audits each account this often
    cycle_deadline_seconds: int = 900  # a cycle past it writes no more batches
    shutdown_grace_seconds: int = 30  # how long SIGTERM waits for cycles in flight
    request_timeout_seconds: int = 30  # a request with no answer by then counts as lost
    logging: LoggingConfig = field(default_factory=LoggingConfig)
    embedded_host: str = "127.0.0.1"
    embedded_port: int = 5232
    crm_kind: str = "builtin"  # which CRM source ([crm] kind)
    crm_options: Mapping[str, Any] = field(default_factory=dict)  # the rest of [crm]
    http: HttpConfig = field(default_factory=HttpConfig)
    push: PushConfig = field(default_factory=PushConfig)
    accounts: tuple[AccountConfig, ...] = ()
    teams: tuple[TeamConfig, ...] = ()
    working_hours: tuple[HoursRule, ...] = ()  # [[working_hours]] (syncd.hours)

    @property
    def serves_accounts(self) -> bool:
        """Whether accounts are configured (else the embedded calendar server serves)."""
        return bool(self.accounts or self.teams)

    @property
    def state_keys(self) -> tuple[SecretRef, ...]:
        """Every key of ``state_key``, the one that encrypts first."""
        if self.state_key is None:
            return ()
        return (self.state_key,) if isinstance(self.state_key, SecretRef) else self.state_key

    @property
    def data_path(self) -> Path:
        return Path(self.data_dir).expanduser()

    @property
    def database_url(self) -> str:
        """The database URL; a reference is resolved (and redacted from logs) each time.

        Raises:
            SecretUnavailable: ``database`` is a reference that cannot be read.
        """
        if isinstance(self.database, SecretRef):
            return self.database.resolve()
        return self.database or f"sqlite:///{self.data_path / 'syncd.db'}"

    def account(self, name: str) -> AccountConfig:
        for acc in self.accounts:
            if acc.name == name:
                return acc
        raise KeyError(name)


# --- validation -----------------------------------------------------------------------------


def type_name(t: type | tuple[type, ...]) -> str:
    """How a value of type ``t`` is described to admins ("a whole number")."""
    names = {bool: "true or false", int: "a whole number", str: "a string"}
    types = t if isinstance(t, tuple) else (t,)
    return " or ".join(names.get(x, x.__name__) for x in types)


class _Validator:
    """Collects every problem of one file; ``resolve``: also read each secret (config check)."""

    def __init__(self, file: str, resolve: bool = False) -> None:
        self.file = file
        self.resolve = resolve
        self.problems: list[ConfigProblem] = []

    def problem(self, key: str, problem: str, expected: str = "") -> None:
        self.problems.append(ConfigProblem(self.file, key, problem, expected))

    def finding(self, key: str, found: Finding) -> None:
        self.problem(f"{key}.{found.key}" if found.key else key, found.problem, found.fix)

    def table(self, data: Any, schema: Mapping[str, Option], prefix: str) -> dict[str, Any]:
        """Validate one TOML table against ``schema``; returns the typed values."""
        out: dict[str, Any] = {}
        if not isinstance(data, dict):
            self.problem(prefix, "is not a table", f"a [{prefix}] table")
            return out
        for key in data:
            if key not in schema:
                known = ", ".join(sorted(schema))
                self.problem(f"{prefix}.{key}", "is not a known option", f"one of: {known}")
        for key, opt in schema.items():
            path = f"{prefix}.{key}"
            if key not in data:
                if opt.required:
                    self.problem(path, "is missing", opt.expected or type_name(opt.type))
                elif opt.default is not None:
                    out[key] = opt.default
                continue
            value = self.value(path, opt, data[key])
            if value is not None:
                out[key] = value
        return out

    def value(self, path: str, opt: Option, value: Any) -> Any:
        """One value, typed and checked; None (with the problem recorded) if unusable."""
        # bool is an int in Python; a TOML "true" must not pass as a number.
        if not isinstance(value, opt.type) or (opt.type is int and isinstance(value, bool)):
            self.problem(path, f"has the wrong type ({type(value).__name__})",
                         type_name(opt.type))
            return None
        if opt.choices and value not in opt.choices:
            self.problem(path, f"has the value {value!r}",
                         "one of: " + ", ".join(map(str, opt.choices)))
            return None
        if opt.secret and isinstance(value, list):
            return self.secrets(path, opt, value)
        if opt.secret or (opt.reference and str(value).startswith(("env:", "file:"))):
            return self.secret(path, opt, str(value))
        if opt.url and (found := url_problem(str(value))) is not None:
            self.finding(path, found)
            return None
        if opt.check is not None and (message := opt.check(value)) is not None:
            self.problem(path, message, opt.expected)
            return None
        if opt.reference and (found := database_url_problem(str(value))) is not None:
            self.finding(path, found)
            return None
        if opt.path and self.resolve and (found := readable_file_problem(str(value))) is not None:
            self.finding(path, found)
            return None
        return value

    def secrets(self, path: str, opt: Option, values: list[Any]) -> tuple[SecretRef, ...] | None:
        """A list of secret references (``state_key``'s keys), each judged as one."""
        if not values:
            self.problem(path, "is an empty list", opt.expected)
            return None
        refs: list[SecretRef] = []
        for i, value in enumerate(values):
            if not isinstance(value, str):
                self.problem(f"{path}[{i}]", f"has the wrong type ({type(value).__name__})",
                             "env:NAME or file:PATH")
            elif value in values[:i]:
                self.problem(f"{path}[{i}]", f"repeats {value}", "each key once")
            elif (ref := self.secret(f"{path}[{i}]", opt, value)) is not None:
                refs.append(ref)
        return tuple(refs) if len(refs) == len(values) else None

    def secret(self, path: str, opt: Option, value: str) -> SecretRef | None:
        """A secret reference; with ``resolve``, read and judged (its value never shown)."""
        if not value.startswith(("env:", "file:")) or not value.split(":", 1)[1]:
            self.problem(path, "holds a secret inline", REFERENCE_FIX)
            return None
        ref = SecretRef(value)
        if not self.resolve:
            return ref
        if (found := secret_problem(value)) is not None:
            self.finding(path, found)
            return ref
        resolved = ref.resolve()
        if opt.reference and (found := database_url_problem(resolved, inline=False)):
            self.problem(path, f"names a value that {found.problem}", found.fix)
        elif opt.secret_check is not None and (message := opt.secret_check(resolved)):
            self.problem(path, f"names a secret that {message}", opt.expected)
        return ref

    def transport(self, prefix: str, schema: ProviderOptions, auth: Mapping[str, Any]) -> None:
        """TLS where credentials travel, for the URL options the connector marked."""
        credentials = schema.sends_credentials(auth)
        for key, opt in schema.options.items():
            if opt.url in ("tls", "https") and isinstance(auth.get(key), str):
                found = transport_problem(auth[key], credentials=credentials,
                                          allow_insecure=bool(auth.get(INSECURE_HTTP_KEY)),
                                          https_only=opt.url == "https")
                if found is not None:
                    self.finding(f"{prefix}.auth.{key}", found)


    def http(self, values: Mapping[str, Any]) -> None:
        """[http]: where the listener may listen, and what providers may be told to call."""
        tls = [key for key in ("certificate", "private_key") if key in values]
        if len(tls) == 1:
            other = "private_key" if tls == ["certificate"] else "certificate"
            self.problem(f"http.{tls[0]}", f"is set without {other}", "both, or neither")
        if isinstance(values.get("listen"), str):
            found = listen_problem(values["listen"], tls=len(tls) == 2)
            if found is not None:
                self.finding("http.listen", found)
        if isinstance(values.get("public_url"), str):
            found = public_url_problem(values["public_url"],
                                       allow_insecure=bool(values.get(INSECURE_HTTP_KEY)))
            if found is not None:
                self.finding("http.public_url", found)
        if self.resolve and "private_key" in values:
            found = secret_problem(f"file:{values['private_key']}")
            if found is not None:
                self.finding("http.private_key", found)


def parse_config(data: Mapping[str, Any], source: str,
                 providers: Mapping[str, ProviderOptions], *, resolve: bool = False,
                 crm_sources: Mapping[str, ProviderOptions] | None = None) -> Config:
    """Validate parsed TOML; raises :class:`ConfigError` with every problem found.

    ``providers`` are the connectors' declarations (``connectors.provider_options()``);
    ``crm_sources`` the remote CRM sources' ``[crm]`` options (``syncd.crm.source_options()``);
    ``resolve`` also reads every secret reference and file, as ``syncd config check``
    does, so a missing or exposed secret is caught before a sync needs it.
    """
    v = _Validator(source, resolve)
    known_sections = {"syncd", "logging", "embedded", "http", "push", "crm", "account", "team",
                      "working_hours"}
    for key in data:
        if key not in known_sections:
            v.problem(key, "is not a known section", "one of: [syncd], [logging], [embedded], "
                      "[http], [push], [crm], [[account]], [[team]], [[working_hours]]")
    general = v.table(data.get("syncd", {}), GENERAL, "syncd")
    logging_ = v.table(data.get("logging", {}), LOGGING, "logging")
    embedded = v.table(data.get("embedded", {}), EMBEDDED, "embedded")
    http = v.table(data.get("http", {}), HTTP, "http")
    v.http(http)
    push = v.table(data.get("push", {}), PUSH, "push")
    crm = _crm_table(v, data.get("crm", {}), crm_sources or {}, general)
    account_schema = {**ACCOUNT, "provider": Option(str, required=True,
                                                    choices=tuple(sorted(providers)))}
    accounts: list[AccountConfig] = []
    calendars: dict[str, str] = {}
    seen: set[str] = set()
    for i, raw in enumerate(_blocks(v, data, "account")):
        prefix = f"account[{i}]"
        if isinstance(raw.get("name"), str):
            prefix = f"account[{i}] ({raw['name']})"
        account = _account(v, raw, prefix, account_schema, providers, general, calendars)
        name = raw.get("name")
        if isinstance(name, str):
            if name in seen:
                v.problem(f"{prefix}.name", f"repeats the account name {name!r}", "unique names")
            seen.add(name)
        if account is not None:
            accounts.append(account)
    teams = _teams(v, data, account_schema, providers, general)
    for team in teams:
        for account in accounts:
            if account.name.startswith(f"{team.name}{SEPARATOR}"):
                v.problem(f"team ({team.name}).name",
                          f"is the prefix of the account name {account.name!r}",
                          "a team name no [[account]] name starts with")
    working_hours = _working_hours(v, data)
    if v.problems:
        raise ConfigError(problems=v.problems)
    return Config(
        source=source,
        logging=LoggingConfig(**logging_),
        embedded_host=embedded.get("host", "127.0.0.1"),
        embedded_port=embedded.get("port", 5232),
        crm_kind=crm.pop("kind", "builtin"),
        crm_options=crm,
        http=HttpConfig(**http),
        push=PushConfig(**push),
        accounts=tuple(accounts),
        teams=tuple(teams),
        working_hours=working_hours,
        **general,
    )


def _working_hours(v: _Validator, data: Mapping[str, Any]) -> tuple[HoursRule, ...]:
    """``[[working_hours]]`` blocks (:mod:`syncd.hours`): each checked, then no user in two."""
    rules: list[tuple[int, HoursRule]] = []
    for i, raw in enumerate(_blocks(v, data, "working_hours")):
        rule, problems = rule_from(v.table(raw, WORKING_HOURS, f"working_hours[{i}]"))
        for key, problem, fix in problems:
            v.problem(f"working_hours[{i}].{key}", problem, fix)
        if rule is not None:
            rules.append((i, rule))
    for i, user in overlaps(rules):
        v.problem(f"working_hours[{i}].users", f"names {user} again",
                  "each user (and \"*\") in one [[working_hours]] block")
    return tuple(rule for _, rule in rules)


def _blocks(v: _Validator, data: Mapping[str, Any], section: str) -> list[dict[str, Any]]:
    """The tables of an array-of-tables section (``[[account]]``, ``[[team]]``)."""
    raw = data.get(section, [])
    if not isinstance(raw, list):
        v.problem(section, "is not a list of tables", f"[[{section}]] entries")
        return []
    blocks: list[dict[str, Any]] = []
    for i, block in enumerate(raw):
        if not isinstance(block, dict):
            v.problem(f"{section}[{i}]", "is not a table", f"a [[{section}]] table")
            block = {}
        blocks.append(dict(block))
    return blocks


def _account(v: _Validator, raw: Mapping[str, Any], prefix: str,
             schema: Mapping[str, Option], providers: Mapping[str, ProviderOptions],
             general: Mapping[str, Any], calendars: dict[str, str]) -> AccountConfig | None:
    """One account block checked on its own and against the calendars seen so far."""
    raw = dict(raw)
    auth_raw = raw.pop("auth", {})
    values = v.table(raw, schema, prefix)
    declared = providers.get(values.get("provider", ""))
    auth: dict[str, Any] = {}
    if declared is not None:
        auth = v.table(auth_raw, declared.options, f"{prefix}.auth")
        v.transport(prefix, declared, auth)
        view = AccountView(values, auth, general)
        for found in declared.rules(view):
            v.finding(prefix, found)
        calendar = declared.calendar_id(view)
        if calendar is not None and values.get("enabled", True):
            key = f"{values['provider']}:{calendar}"
            if key in calendars:
                v.problem(f"{prefix}.calendar", f"is the calendar {calendars[key]} syncs too",
                          "one account per calendar (two would each take the other's "
                          "events for their own)")
            calendars.setdefault(key, prefix)
    if {"name", "provider", "owner"} <= values.keys():
        return AccountConfig(**values, auth=auth)
    return None


# Two made-up members a [[team]] block is checked with: its options filled in for each must
# pass every [[account]] check, and name two different calendars.
SAMPLE_MEMBERS = ("member.one@example.com", "member.two@example.com")


def _teams(v: _Validator, data: Mapping[str, Any], account_schema: Mapping[str, Option],
           providers: Mapping[str, ProviderOptions], general: Mapping[str, Any]
           ) -> list[TeamConfig]:
    """``[[team]]`` blocks: each is an account block with placeholders, checked as the
    accounts of two sample members (:mod:`syncd.team`)."""
    teams: list[TeamConfig] = []
    names: set[str] = set()
    for i, raw in enumerate(_blocks(v, data, "team")):
        prefix = f"team[{i}]"
        if isinstance(raw.get("name"), str):
            prefix = f"team[{i}] ({raw['name']})"
        for key, text in _texts(raw):
            for unknown in unknown_placeholders(text):
                v.problem(f"{prefix}.{key}", f"has the placeholder {{{unknown}}}",
                          "{email}, {user} or {USER}")
        owners = _owners(v, raw.get("owners"), f"{prefix}.owners")
        name = _team_name(v, raw.get("name"), f"{prefix}.name", names)
        before = len(v.problems)
        resolve, v.resolve = v.resolve, False  # a templated secret names no one yet
        sample = [_account(v, {**_fill_block(raw, email), "name": "team", "owner": email},
                           prefix, account_schema, providers, general, {})
                  for email in SAMPLE_MEMBERS]
        v.resolve = resolve
        v.problems[before:] = list(dict.fromkeys(v.problems[before:]))  # once, not per sample
        one, two = sample
        if one is None or two is None or owners is None or name is None \
                or len(v.problems) > before:
            continue
        declared = providers[one.provider]
        ids = [declared.calendar_id(AccountView({"owner": a.owner, "calendar": a.calendar},
                                                a.auth, general)) for a in (one, two)]
        if ids[0] is not None and ids[0] == ids[1]:
            v.problem(f"{prefix}.calendar", "names one calendar for every member",
                      "{user} or {email} in calendar (or in the auth option that picks the "
                      "mailbox)")
            continue
        teams.append(TeamConfig(name=str(name), owners=owners, template=_template(one, raw)))
    return teams


def _team_name(v: _Validator, value: Any, path: str, names: set[str]) -> str | None:
    if value is None:
        v.problem(path, "is missing", TEAM["name"].expected)
        return None
    if v.value(path, TEAM["name"], value) is None:
        return None
    if value in names:
        v.problem(path, f"repeats the team name {value!r}", "unique names")
    names.add(value)
    return str(value)


def _texts(raw: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(key, text) of every string option of a block, its auth table's included."""
    found = [(k, x) for k, x in raw.items() if isinstance(x, str)]
    auth = raw.get("auth")
    if isinstance(auth, dict):
        found += [(f"auth.{k}", x) for k, x in auth.items() if isinstance(x, str)]
    return found


def _fill_block(raw: Mapping[str, Any], email: str) -> dict[str, Any]:
    def one(value: Any) -> Any:
        return fill(value, email) if isinstance(value, str) else value
    out = {k: one(x) for k, x in raw.items() if k not in ("auth", "owners")}
    if "auth" in raw:
        auth = raw["auth"]
        out["auth"] = {k: one(x) for k, x in auth.items()} if isinstance(auth, dict) else auth
    return out


def _template(sample: AccountConfig, raw: Mapping[str, Any]) -> AccountConfig:
    """The account a member's is filled from: the sample's typed values, with the
    placeholders put back where the block had them."""
    def back(value: Any, written: Any) -> Any:
        if not isinstance(written, str) or not has_placeholder(written):
            return value
        return SecretRef(written) if isinstance(value, SecretRef) else written
    auth_raw = raw.get("auth") if isinstance(raw.get("auth"), dict) else {}
    assert isinstance(auth_raw, dict)
    auth = {k: back(x, auth_raw.get(k)) for k, x in sample.auth.items()}
    return replace(sample, name=str(raw["name"]), owner="",
                   calendar=back(sample.calendar, raw.get("calendar")), auth=auth)


def _owners(v: _Validator, value: Any, path: str) -> tuple[str, ...] | None:
    """``owners``: "*", or a list of e-mails and @domain entries."""
    entries = [value] if isinstance(value, str) else value
    expected = '"*", or a list of e-mails and "@domain" entries'
    if not isinstance(entries, list) or not entries:
        v.problem(path, "is missing" if value is None else "is not a list of e-mails", expected)
        return None
    out: list[str] = []
    for entry in entries:
        text = entry.strip().lower() if isinstance(entry, str) else None
        if text is None or not (text == "*" or email_check(text) is None
                                or (text.startswith("@") and email_check(f"x{text}") is None)):
            v.problem(path, f"holds {entry!r}", expected)
            continue
        out.append(text)
    return tuple(out) if len(out) == len(entries) else None


def _crm_table(v: _Validator, raw: Any, sources: Mapping[str, ProviderOptions],
               general: Mapping[str, Any]) -> dict[str, Any]:
    """``[crm]``: its kind, and the options the kind's source declares."""
    kind_option = replace(CRM["kind"], choices=("builtin", *sorted(sources)))
    kind = raw.get("kind", "builtin") if isinstance(raw, dict) else "builtin"
    declared = sources.get(kind) if isinstance(kind, str) else None
    crm = v.table(raw, {**CRM, "kind": kind_option, **(declared.options if declared else {})},
                  "crm")
    if declared is not None and crm.get("kind") == kind:
        for key, opt in declared.options.items():
            if opt.url in ("tls", "https") and isinstance(crm.get(key), str):
                found = transport_problem(crm[key], credentials=declared.sends_credentials(crm),
                                          allow_insecure=bool(crm.get(INSECURE_HTTP_KEY)),
                                          https_only=opt.url == "https")
                if found is not None:
                    v.finding(f"crm.{key}", found)
        for found in declared.rules(AccountView(crm, crm, general)):
            v.finding("crm", found)
    return crm


def load_config(path: str | os.PathLike[str] | None,
                providers: Mapping[str, ProviderOptions], *, resolve: bool = False,
                crm_sources: Mapping[str, ProviderOptions] | None = None) -> Config:
    """Read and validate a TOML file; ``None`` gives the embedded defaults.

    See :func:`parse_config` for ``providers``, ``resolve`` and ``crm_sources``.
    """
    if path is None:
        return Config()
    file = str(path)
    try:
        text = Path(file).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(problems=[ConfigProblem(file, "-", f"cannot be read ({exc.strerror})",
                                                  "a readable TOML file")]) from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(problems=[ConfigProblem(file, "-", f"is not valid TOML: {exc}",
                                                  "TOML syntax (https://toml.io)")]) from None
    return parse_config(data, file, providers, resolve=resolve, crm_sources=crm_sources)
