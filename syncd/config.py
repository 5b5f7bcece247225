"""The configuration: one typed schema, every problem reported at once.

Admins write TOML (``config/syncd.example.toml`` is the complete, commented reference and
a test loads it). The schema below is the single source of truth: each option has a type,
a default, allowed values and whether it is a secret. Unknown keys are errors, because a
misspelt option that is silently ignored is how a sync ends up doing the wrong thing.

Secrets are never written in the file: a secret option takes ``env:NAME`` or
``file:PATH`` and is resolved only when a connector needs it (:class:`SecretRef`).
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from syncd.errors import ConfigError, ConfigProblem, SecretUnavailable
from syncd.logs import register_secret
from syncd.model import is_valid_email

PROVIDERS = ("caldav", "google", "outlook")
POLICIES = ("crm_wins", "calendar_wins", "newest_wins")
DONE_STYLES = ("keep", "prefix")
ON_CALENDAR_DELETE = ("delete_activity", "unlink", "recreate")
DEFAULT_DATA_DIR = "~/.local/share/syncd"


class SecretRef:
    """A reference to a secret (``env:NAME`` or ``file:PATH``), resolved on demand.

    Its ``repr`` shows only the reference, so a config dump or a log line never carries
    the value.
    """

    def __init__(self, ref: str) -> None:
        self.ref = ref

    def __repr__(self) -> str:
        return f"SecretRef({self.ref!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SecretRef) and other.ref == self.ref

    def __hash__(self) -> int:
        return hash(self.ref)

    def resolve(self) -> str:
        """The secret's value; it is registered with the log redactor before it is returned."""
        kind, _, name = self.ref.partition(":")
        if kind == "env":
            value = os.environ.get(name)
            if value is None:
                raise SecretUnavailable(ref=self.ref, reason="the environment variable is not set")
        else:
            try:
                value = Path(name).expanduser().read_text(encoding="utf-8").strip()
            except OSError as exc:
                raise SecretUnavailable(ref=self.ref, reason=exc.strerror or str(exc)) from None
        register_secret(value)
        return value


# --- schema -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Option:
    """One key of the schema."""

    type: type | tuple[type, ...]
    default: Any = None
    required: bool = False
    choices: tuple[Any, ...] = ()
    secret: bool = False
    check: Callable[[Any], str | None] | None = None  # returns a problem, or None
    expected: str = ""


def _positive(value: Any) -> str | None:
    return None if value > 0 else "must be greater than zero"


def _not_negative(value: Any) -> str | None:
    return None if value >= 0 else "must not be negative"


def _zone(value: Any) -> str | None:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        return "is not an IANA time zone name"
    return None


def _email(value: Any) -> str | None:
    return None if is_valid_email(value) else "is not an e-mail address"


def _url(value: Any) -> str | None:
    return None if value.startswith(("http://", "https://")) else "must start with http:// or https://"


GENERAL: dict[str, Option] = {
    "database": Option(str, expected="an SQLAlchemy URL, e.g. postgresql+psycopg://host/db"),
    "data_dir": Option(str, DEFAULT_DATA_DIR, expected="a directory path"),
    "interval_seconds": Option(int, 60, check=_positive, expected="seconds between cycles"),
    "jitter_seconds": Option(int, 5, check=_not_negative, expected="seconds of random delay"),
    "workers": Option(int, 4, check=_positive, expected="accounts synced at once"),
    "state_key": Option(str, secret=True, expected="env:NAME or file:PATH of a Fernet key"),
    "default_time_zone": Option(str, "UTC", check=_zone, expected="an IANA zone, e.g. Europe/Oslo"),
    "retention_days": Option(int, 30, check=_not_negative,
                             expected="days a deleted activity stays restorable"),
    "cycle_deadline_seconds": Option(int, 900, check=_positive,
                                     expected="seconds after which a cycle stops writing"),
    "shutdown_grace_seconds": Option(int, 30, check=_positive,
                                     expected="seconds SIGTERM waits for cycles in flight"),
}
LOGGING: dict[str, Option] = {
    "level": Option(str, "info", choices=("debug", "info", "warning", "error")),
    "format": Option(str, "text", choices=("text", "json")),
    "file": Option(str, expected="a log file path (default: standard error)"),
}
EMBEDDED: dict[str, Option] = {
    "host": Option(str, "127.0.0.1", expected="a loopback address"),
    "port": Option(int, 5232, check=_positive),
}
ACCOUNT: dict[str, Option] = {
    "name": Option(str, required=True, expected="a unique account name"),
    "provider": Option(str, required=True, choices=PROVIDERS),
    "owner": Option(str, required=True, check=_email, expected="the CRM user's e-mail"),
    "calendar": Option(str, expected="the calendar to sync (provider specific)"),
    "time_zone": Option(str, check=_zone, expected="an IANA zone (default: the owner's)"),
    "conflict_policy": Option(str, "crm_wins", choices=POLICIES),
    "done_style": Option(str, "keep", choices=DONE_STYLES),
    "on_calendar_delete": Option(str, "delete_activity", choices=ON_CALENDAR_DELETE),
    "invite_guests": Option(bool, False),
    "import_events": Option(bool, False),
    "import_type": Option(str, "meeting", expected="an activity type key"),
    "window_days_back": Option(int, 30, check=_not_negative),
    "window_days_ahead": Option(int, 365, check=_positive),
    "max_guest_updates_per_hour": Option(int, 20, check=_positive),
    "interval_seconds": Option(int, check=_positive),
    "enabled": Option(bool, True),
}
PROVIDER_AUTH: dict[str, dict[str, Option]] = {
    "caldav": {
        "url": Option(str, required=True, check=_url, expected="the CalDAV server or calendar URL"),
        "username": Option(str),
        "password": Option(str, secret=True, expected="env:NAME or file:PATH"),
        "ca_bundle": Option(str, expected="a CA bundle path for a private certificate authority"),
        "create_calendar": Option(bool, False),
    },
    "google": {
        "mode": Option(str, "service_account", choices=("service_account", "oauth")),
        "service_account_file": Option(str, secret=True, expected="file:PATH of the key JSON"),
        "subject": Option(str, check=_email, expected="the user to act as (default: owner)"),
        "client_secrets_file": Option(str, secret=True, expected="file:PATH of the OAuth client"),
        "api_endpoint": Option(str, check=_url, expected="only for tests and proxies"),
        "token_uri": Option(str, check=_url, expected="only for tests and proxies"),
        "requests_per_minute": Option(int, 500, check=_positive),
    },
    "outlook": {
        "mode": Option(str, "app", choices=("app", "delegated")),
        "tenant": Option(str, required=True, expected="the Entra tenant id or domain"),
        "client_id": Option(str, required=True),
        "client_secret": Option(str, secret=True, expected="env:NAME or file:PATH"),
        "user": Option(str, check=_email, expected="the mailbox (default: owner)"),
        "authority": Option(str, check=_url, expected="only for tests and sovereign clouds"),
        "graph_url": Option(str, check=_url, expected="only for tests and sovereign clouds"),
    },
}


# --- typed result ---------------------------------------------------------------------------


@dataclass(frozen=True)
class LoggingConfig:
    level: str = "info"
    format: str = "text"
    file: str | None = None


@dataclass(frozen=True)
class AccountConfig:
    """One owner's calendar on one provider."""

    name: str
    provider: str
    owner: str
    calendar: str | None = None
    time_zone: str | None = None
    conflict_policy: str = "crm_wins"
    done_style: str = "keep"
    on_calendar_delete: str = "delete_activity"
    invite_guests: bool = False
    import_events: bool = False
    import_type: str = "meeting"
    window_days_back: int = 30
    window_days_ahead: int = 365
    max_guest_updates_per_hour: int = 20
    interval_seconds: int | None = None
    enabled: bool = True
    auth: Mapping[str, Any] = field(default_factory=dict)

    def fingerprint(self) -> str:
        """What identifies the synced scope: a change here means a re-check, not deletions."""
        auth = self.auth
        identity = [auth.get(k, "") for k in ("url", "username", "subject", "tenant", "user")]
        return "|".join([self.provider, self.owner, self.calendar or "", *map(str, identity)])


@dataclass(frozen=True)
class Config:
    """The whole configuration, validated."""

    source: str = "<defaults>"
    database: str | None = None
    data_dir: str = DEFAULT_DATA_DIR
    interval_seconds: int = 60
    jitter_seconds: int = 5
    workers: int = 4
    state_key: SecretRef | None = None
    default_time_zone: str = "UTC"
    retention_days: int = 30  # deleted activities are purged this many days later
    cycle_deadline_seconds: int = 900  # a cycle past it writes no more batches
    shutdown_grace_seconds: int = 30  # how long SIGTERM waits for cycles in flight
    logging: LoggingConfig = field(default_factory=LoggingConfig)
    embedded_host: str = "127.0.0.1"
    embedded_port: int = 5232
    accounts: tuple[AccountConfig, ...] = ()

    @property
    def data_path(self) -> Path:
        return Path(self.data_dir).expanduser()

    @property
    def database_url(self) -> str:
        return self.database or f"sqlite:///{self.data_path / 'syncd.db'}"

    def account(self, name: str) -> AccountConfig:
        for acc in self.accounts:
            if acc.name == name:
                return acc
        raise KeyError(name)


# --- validation -----------------------------------------------------------------------------


def _type_name(t: type | tuple[type, ...]) -> str:
    names = {bool: "true or false", int: "a whole number", str: "a string"}
    types = t if isinstance(t, tuple) else (t,)
    return " or ".join(names.get(x, x.__name__) for x in types)


class _Validator:
    def __init__(self, file: str) -> None:
        self.file = file
        self.problems: list[ConfigProblem] = []

    def problem(self, key: str, problem: str, expected: str = "") -> None:
        self.problems.append(ConfigProblem(self.file, key, problem, expected))

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
                    self.problem(path, "is missing", opt.expected or _type_name(opt.type))
                elif opt.default is not None:
                    out[key] = opt.default
                continue
            value = data[key]
            # bool is an int in Python; a TOML "true" must not pass as a number.
            if not isinstance(value, opt.type) or (opt.type is int and isinstance(value, bool)):
                self.problem(path, f"has the wrong type ({type(value).__name__})",
                             _type_name(opt.type))
                continue
            if opt.choices and value not in opt.choices:
                self.problem(path, f"has the value {value!r}",
                             "one of: " + ", ".join(map(str, opt.choices)))
                continue
            if opt.secret:
                value = str(value)
                if not value.startswith(("env:", "file:")) or len(value.split(":", 1)[1]) == 0:
                    self.problem(path, "holds a secret inline",
                                 "a reference: env:NAME or file:PATH "
                                 "(secrets never go in the file)")
                    continue
                out[key] = SecretRef(value)
                continue
            if opt.check is not None and (message := opt.check(value)) is not None:
                self.problem(path, message, opt.expected)
                continue
            out[key] = value
        return out


def parse_config(data: Mapping[str, Any], source: str = "<string>") -> Config:
    """Validate parsed TOML; raises :class:`ConfigError` with every problem found."""
    v = _Validator(source)
    known_sections = {"syncd", "logging", "embedded", "account"}
    for key in data:
        if key not in known_sections:
            v.problem(key, "is not a known section",
                      "one of: [syncd], [logging], [embedded], [[account]]")
    general = v.table(data.get("syncd", {}), GENERAL, "syncd")
    logging_ = v.table(data.get("logging", {}), LOGGING, "logging")
    embedded = v.table(data.get("embedded", {}), EMBEDDED, "embedded")
    accounts: list[AccountConfig] = []
    raw_accounts = data.get("account", [])
    if not isinstance(raw_accounts, list):
        v.problem("account", "is not a list of tables", "[[account]] entries")
        raw_accounts = []
    seen: set[str] = set()
    for i, raw in enumerate(raw_accounts):
        prefix = f"account[{i}]"
        if isinstance(raw, dict) and isinstance(raw.get("name"), str):
            prefix = f"account[{i}] ({raw['name']})"
        raw = dict(raw) if isinstance(raw, dict) else {}
        auth_raw = raw.pop("auth", {})
        values = v.table(raw, ACCOUNT, prefix)
        provider = values.get("provider")
        auth: dict[str, Any] = {}
        if provider in PROVIDER_AUTH:
            auth = v.table(auth_raw, PROVIDER_AUTH[provider], f"{prefix}.auth")
        name = values.get("name")
        if name is not None:
            if name in seen:
                v.problem(f"{prefix}.name", f"repeats the account name {name!r}", "unique names")
            seen.add(name)
        if {"name", "provider", "owner"} <= values.keys():
            accounts.append(AccountConfig(**values, auth=auth))
    if v.problems:
        raise ConfigError(problems=v.problems)
    return Config(
        source=source,
        logging=LoggingConfig(**logging_),
        embedded_host=embedded.get("host", "127.0.0.1"),
        embedded_port=embedded.get("port", 5232),
        accounts=tuple(accounts),
        **general,
    )


def load_config(path: str | os.PathLike[str] | None) -> Config:
    """Read and validate a TOML file; ``None`` gives the embedded defaults."""
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
    return parse_config(data, file)
