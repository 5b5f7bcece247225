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

    def fingerprint(self, crm: str = "") -> str:
        """What identifies the synced scope: a change here means a re-check, not deletions.

        The provider, owner and calendar, who signs in (:data:`IDENTITY_KEYS`), where the
        calendar lives (:data:`ENDPOINT_KEYS`, written one way by :func:`endpoint_key`, a
        provider's default written as unset) and which CRM the links are made with
        (``crm``, :func:`crm_scope` of the ``[crm]`` table, last, after :data:`CRM_PART`); never
        a secret nor a tuning option. Prefixed with :data:`SCOPE_VERSION`, so a value
        stored by an earlier release is recognised (:meth:`earlier_fingerprints`).
        """
        auth = self.auth
        identity = [str(auth.get(key, "")) for key in IDENTITY_KEYS]
        endpoints = [_scope_endpoint(self.provider, key, auth) for key in ENDPOINT_KEYS]
        return "|".join([SCOPE_VERSION, self.provider, self.owner, self._calendar_key(),
                         *identity, *endpoints]) + CRM_PART + crm

    def earlier_fingerprints(self) -> tuple[str, ...]:
        """The fingerprint as earlier releases computed it for this config: "v2" (the
        endpoints as written, a default spelt out counting as a move; no CRM), and the
        first layout (no endpoint, the url as written). A stored value equal to one is
        this scope as far as that release could tell: accepted once and rewritten at the
        cycle's end, so an upgrade does not refuse every account."""
        auth = self.auth
        v2 = "|".join(["v2", self.provider, self.owner, self._calendar_key(),
                       *(str(auth.get(key, "")) for key in IDENTITY_KEYS),
                       *(endpoint_key(str(auth.get(key) or "")) for key in ENDPOINT_KEYS)])
        first = [auth.get(k, "") for k in ("url", "username", "subject", "tenant", "user")]
        return v2, "|".join([self.provider, self.owner, self.calendar or "", *map(str, first)])

    def _calendar_key(self) -> str:
        calendar = self.calendar or ""
        return endpoint_key(calendar) if "://" in calendar else calendar  # a URL is a place


#: The version of :meth:`AccountConfig.fingerprint`'s layout: "v2" added the endpoints,
#: "v3" the CRM and a provider's default endpoint written as unset.
SCOPE_VERSION = "v3"
#: What precedes the CRM's part, the last, of a fingerprint.
CRM_PART = "|crm="
#: ``[account.auth]`` keys naming who signs in (the scope, unlike a secret or a setting).
IDENTITY_KEYS = ("username", "subject", "tenant", "user")
#: ``[account.auth]`` keys naming where the calendar lives (and who vouches for the
#: identity): CalDAV's server ``url``, Google's ``api_endpoint``, Graph's ``graph_url``
#: and its sign-in ``authority``. Unset is the provider's default, written as "".
ENDPOINT_KEYS = ("url", "api_endpoint", "graph_url", "authority")
#: Each provider's endpoint when its key is unset (the connectors' own defaults:
#: tests/engine/test_scope_fingerprint.py holds them equal), so that writing it out is no
#: move. Graph's authority is its host; the tenant's path is added as the sign-in adds it.
DEFAULT_ENDPOINTS: Mapping[tuple[str, str], str] = {
    ("google", "api_endpoint"): "https://www.googleapis.com/calendar/v3/",
    ("outlook", "graph_url"): "https://graph.microsoft.com/v1.0",
    ("outlook", "authority"): "https://login.microsoftonline.com",
}


def _scope_endpoint(provider: str, key: str, auth: Mapping[str, Any]) -> str:
    """``auth[key]`` as the fingerprint writes it: :func:`endpoint_key`, and "" for the
    provider's default spelt out. An authority without a path signs in to the tenant's
    (``connectors.outlook_auth.authority_url``), so both spellings are one place."""
    written = endpoint_key(str(auth.get(key) or ""))
    default = DEFAULT_ENDPOINTS.get((provider, key), "")
    if key == "authority" and written and default:
        tenant = str(auth.get("tenant") or "")
        default = f"{default}/{tenant}"
        _scheme, sep, rest = written.partition("://")
        if sep and "/" not in rest and "?" not in rest:  # the host alone
            written = endpoint_key(f"{written}/{tenant}")
    return "" if default and written == endpoint_key(default) else written


def crm_scope(kind: str, options: Mapping[str, Any]) -> str:
    """Which CRM an account's links are made with, for :meth:`AccountConfig.fingerprint`:
    "" for the built-in one (it lives in syncd's own database), and for Pipedrive its
    company (``company_domain``, in lower case) with the ``api_url`` when one other than
    the company's own address is configured (written one way by :func:`endpoint_key`).
    An OAuth app's ``api_domain`` is the company's, learnt from each token: not counted."""
    if kind == "builtin":
        return ""
    if kind != "pipedrive":
        return kind
    company = str(options.get("company_domain") or "").strip().lower()
    api = endpoint_key(str(options.get("api_url") or ""))
    if api == endpoint_key(f"https://{company}.pipedrive.com"):
        api = ""
    return f"pipedrive:{company}" + (f"@{api}" if api else "")


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
