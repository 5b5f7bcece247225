r"""The configuration's types, below everything that reads them.

What a connector declares (:class:`ProviderOptions` of :class:`Option`\ s, judged through
an :class:`AccountView`) and what it is handed (:class:`AccountConfig`, whose secrets are
:class:`SecretRef`\ s resolved on demand). Part of the base layer (ARCHITECTURE.md): it
imports only the errors, the model, the value checks and the secret redactor, so the
connectors and the state store can use it without importing :mod:`syncd.config`, the
loader that validates a TOML file against these declarations.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from syncd.config_checks import Finding
from syncd.errors import SecretUnavailable
from syncd.model import is_valid_email
from syncd.redact import register_secret


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


@dataclass(frozen=True)
class Option:
    """One key of the schema.

    ``secret``: the value must be a reference (``env:NAME`` or ``file:PATH``);
    ``reference``: it may be one (``database``); ``url``: "plain" (parsed only), "tls"
    (https where credentials travel, see :mod:`syncd.config_checks`) or "https" (always);
    ``path``: a file that must be readable; ``secret_check`` judges a resolved secret
    (``syncd config check`` only) and never quotes it; ``help`` says what the option is for.
    """

    type: type | tuple[type, ...]
    default: Any = None
    required: bool = False
    choices: tuple[Any, ...] = ()
    secret: bool = False
    check: Callable[[Any], str | None] | None = None  # returns a problem, or None
    expected: str = ""
    help: str = ""
    reference: bool = False
    url: str = ""
    path: bool = False
    secret_check: Callable[[str], str | None] | None = None


@dataclass(frozen=True)
class AccountView:
    """What a connector's rules see of one account: typed values, already validated."""

    account: Mapping[str, Any]
    auth: Mapping[str, Any]
    general: Mapping[str, Any]


@dataclass(frozen=True)
class ProviderOptions:
    """What a connector declares about its ``[account.auth]`` table.

    Declared next to each connector (``connectors/<provider>_options.py``, which import no
    client library) and handed to :func:`parse_config` by the caller, so this module knows
    no provider by name. ``rules`` finds problems between options (keys relative to the
    account, e.g. ``auth.client_secret``); ``sends_credentials`` says whether a password or
    token travels to the URL options marked "tls"; ``calendar_id`` names the calendar an
    account syncs, so two accounts on one calendar are caught.
    """

    options: Mapping[str, Option]
    rules: Callable[[AccountView], list[Finding]] = lambda view: []
    sends_credentials: Callable[[Mapping[str, Any]], bool] = lambda auth: True
    calendar_id: Callable[[AccountView], str | None] = lambda view: None


def positive_check(value: Any) -> str | None:
    return None if value > 0 else "must be greater than zero"



def email_check(value: Any) -> str | None:
    return None if is_valid_email(value) else "is not an e-mail address"


def zone_check(value: Any) -> str | None:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        return "is not an IANA time zone name"
    return None


#: Declared by every connector whose URLs may carry credentials (see config_checks).
ALLOW_INSECURE_HTTP = Option(
    bool, False, expected="true only for a test server on loopback",
    help="accept plain http:// to a loopback test server even though credentials travel")


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
    max_daily_deletion_percent: int = 25
    interval_seconds: int | None = None
    enabled: bool = True
    auth: Mapping[str, Any] = field(default_factory=dict)

    def fingerprint(self) -> str:
        """What identifies the synced scope: a change here means a re-check, not deletions.

        The provider, owner and calendar, who signs in (:data:`IDENTITY_KEYS`) and where
        the calendar lives (:data:`ENDPOINT_KEYS`, written one way by
        :func:`endpoint_key`); never a secret nor a tuning option. Prefixed with
        :data:`SCOPE_VERSION`, so a value stored by an earlier release is recognised
        (:meth:`earlier_fingerprint`).
        """
        auth = self.auth
        identity = [str(auth.get(key, "")) for key in IDENTITY_KEYS]
        endpoints = [endpoint_key(str(auth.get(key) or "")) for key in ENDPOINT_KEYS]
        calendar = self.calendar or ""
        if "://" in calendar:  # a calendar URL (CalDAV) is a place too
            calendar = endpoint_key(calendar)
        return "|".join([SCOPE_VERSION, self.provider, self.owner, calendar, *identity,
                         *endpoints])

    def earlier_fingerprint(self) -> str:
        """The fingerprint as releases before :data:`SCOPE_VERSION` computed it (no
        endpoint, the url as written): a stored value equal to it is this scope as far as
        that release could tell, accepted once and rewritten at the cycle's end, so an
        upgrade does not refuse every account."""
        auth = self.auth
        identity = [auth.get(k, "") for k in ("url", "username", "subject", "tenant", "user")]
        return "|".join([self.provider, self.owner, self.calendar or "", *map(str, identity)])


#: The version of :meth:`AccountConfig.fingerprint`'s layout; "v2" added the endpoints.
SCOPE_VERSION = "v2"
#: ``[account.auth]`` keys naming who signs in (the scope, unlike a secret or a setting).
IDENTITY_KEYS = ("username", "subject", "tenant", "user")
#: ``[account.auth]`` keys naming where the calendar lives (and who vouches for the
#: identity): CalDAV's server ``url``, Google's ``api_endpoint``, Graph's ``graph_url``
#: and its sign-in ``authority``. Unset is the provider's default, written as "".
ENDPOINT_KEYS = ("url", "api_endpoint", "graph_url", "authority")


def endpoint_key(url: str) -> str:
    """``url`` written one way for the scope fingerprint: scheme and host in lower case,
    the scheme's default port dropped, a trailing slash ignored; the path keeps its case
    (servers may tell ``/Cal`` from ``/cal``). Unparsable text is kept as written."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:  # the config's URL checks report it
        return url.strip()
    if not parts.scheme or not parts.netloc:
        return url.strip().rstrip("/")
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    if ":" in host:  # an IPv6 literal keeps its brackets
        host = f"[{host}]"
    if port is not None and port != {"http": 80, "https": 443}.get(scheme):
        host = f"{host}:{port}"
    query = f"?{parts.query}" if parts.query else ""
    return f"{scheme}://{host}{parts.path.rstrip('/')}{query}"
