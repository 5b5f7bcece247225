"""Access tokens for Microsoft Graph, with msal.

Two modes (``[account.auth] mode``):

* ``app`` (default): an app registration with a client secret, client-credentials grant,
  scope ``https://graph.microsoft.com/.default``. The app reaches mailboxes as
  ``/users/{user}``, never ``/me``; an admin should scope it with an application access
  policy. msal keeps the token in memory until it expires, and the accounts of one app
  registration in a process share it (:class:`AppShelf`): one grant, not one per mailbox.
* ``delegated``: a user signs in once with a device code (``syncd auth outlook NAME``).
  Microsoft rotates the refresh token on every use (failure mode 13), so each new one is
  stored with ``CredentialStore.put`` (encrypted, committed) *before* the access token that
  came with it is used: a crash after the refresh can lose an access token, never the
  only working refresh token. ``invalid_grant`` and friends raise :class:`AuthFailed`,
  which marks only that account as needing re-authorisation; it is never retried.
  The device flow is a public-client flow, so a ``client_secret`` is not used here.

Between runs (``syncd sync`` from cron) msal's token cache is kept in the credential store
(kind ``outlook_token_cache``, encrypted with ``[syncd] state_key``), holding access tokens
only: while one is valid a new process uses it without building an msal application, so
without the tenant-discovery request and the token request. Without a state_key nothing
is kept (tokens live in memory for the process, as before): a token is never written in
clear text. A token the API refused is dropped from the store too.

msal talks through the injected ``http_client`` (the connector's session), so tests point
it at an identity emulator and production needs no second connection pool. msal sets a
timeout only on a session it makes itself, so every request it sends through ours gets
the connector's (``[syncd] request_timeout_seconds``): a silent identity platform fails
the cycle instead of holding it forever. Nothing here
logs a token or a secret; the client secret is registered with the log redactor when it
is read (the credential store does the same for refresh tokens).
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any, NoReturn
from urllib.parse import urlsplit

import msal
import requests

from connectors.answer_caps import MAX_TOKEN_ANSWER_BYTES, read_capped
from syncd.config_types import AccountConfig, SecretRef
from syncd.errors import AuthFailed, SecretUnavailable, Transient
from syncd.network import network_reason, same_origin_redirects
from syncd.redact import register_secret

GRAPH_APP_SCOPES = ["https://graph.microsoft.com/.default"]
#: msal adds offline_access, openid and profile itself (and refuses them if given).
DELEGATED_SCOPES = ["https://graph.microsoft.com/Calendars.ReadWrite"]
REFRESH_KIND = "outlook_refresh_token"
CACHE_KIND = "outlook_token_cache"
#: A kept cache larger than this is not read (a few access tokens are a few KB).
MAX_CACHE_CHARS = 256 * 1024
log = logging.getLogger("syncd.outlook")
EXPIRY_MARGIN = 300.0  # refresh this many seconds before the token expires
#: (connect, read) seconds a request to the identity platform waits, unless told otherwise.
TOKEN_TIMEOUT: tuple[float, float] = (10.0, 30.0)
#: OAuth errors that only a person can fix; everything else is worth a later retry.
PERMANENT_ERRORS = frozenset({
    "invalid_grant", "invalid_client", "unauthorized_client", "interaction_required",
    "consent_required", "invalid_scope", "access_denied", "authorization_declined",
    "expired_token", "invalid_request",
})


def authority_url(auth: Mapping[str, Any]) -> str:
    """``auth.authority`` when it names a tenant path, else the public cloud's for the tenant."""
    configured = str(auth.get("authority") or "").rstrip("/")
    if configured:
        scheme, _, rest = configured.partition("://")
        if scheme != "https":
            raise AuthFailed(reason="the authority must be an https:// URL")
        return configured if "/" in rest else f"{configured}/{auth['tenant']}"
    return f"https://login.microsoftonline.com/{auth['tenant']}"


class _TimedClient:
    """The session as msal's ``http_client``, with a timeout on every request and each
    answer read at most to :data:`~connectors.answer_caps.MAX_TOKEN_ANSWER_BYTES`
    (past it :class:`~syncd.errors.AnswerTooLarge`, a Transient, reaches the caller)."""

    def __init__(self, session: requests.Session, timeout: tuple[float, float]) -> None:
        self.session = session
        self.timeout = timeout

    def get(self, url: str, **kwargs: Any) -> requests.Response:
        return self._capped("GET", url, kwargs)

    def post(self, url: str, **kwargs: Any) -> requests.Response:
        return self._capped("POST", url, kwargs)

    def _capped(self, method: str, url: str, kwargs: dict[str, Any]) -> requests.Response:
        kwargs.setdefault("timeout", self.timeout)
        with self.session.request(method, url, stream=True, **kwargs) as response:
            body = read_capped(response, url, MAX_TOKEN_ANSWER_BYTES)
        # msal reads .text and .json(): the body read here is what they return.
        response._content = body
        return response

    def close(self) -> None:
        self.session.close()


def _msal_options(auth: Mapping[str, Any], session: requests.Session,
                  timeout: tuple[float, float] = TOKEN_TIMEOUT) -> dict[str, Any]:
    options: dict[str, Any] = {"authority": authority_url(auth),
                               "http_client": _TimedClient(session, timeout)}
    if auth.get("authority"):
        # A configured authority (tests, sovereign clouds): skip the instance-discovery call
        # to login.microsoftonline.com, which would fail or be meaningless there.
        options["instance_discovery"] = False
    return options


def _secret(value: Any) -> str:
    secret = value.resolve() if isinstance(value, SecretRef) else str(value)
    register_secret(secret)
    return secret


def _fail(result: Mapping[str, Any]) -> NoReturn:
    """Raise what a failed token response means (the description is never kept)."""
    error = str(result.get("error") or "unknown_error")
    codes = result.get("error_codes") or []
    reason = error + (f" (AADSTS{codes[0]})" if codes else "")
    if error in PERMANENT_ERRORS:
        raise AuthFailed(reason=reason)
    raise Transient(reason=f"token endpoint: {reason}")


def _build(factory: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Construct an msal application; it fetches the tenant's metadata on the way."""
    try:
        return factory(*args, **kwargs)
    except requests.RequestException as exc:
        raise Transient(reason=f"identity platform: {network_reason(exc)}") from None
    except ValueError:
        # msal says ValueError both for an unreachable and an invalid authority; the
        # https check above already caught the invalid ones.
        raise Transient(reason="the identity platform's metadata could not be read") from None


class KeptTokens:
    """One account's msal token cache, kept between runs in the credential store.

    Only msal's ``AccessToken`` entries are kept (a delegated account's refresh token has
    its own entry, rotated as described above), under the account's identity (authority,
    client, mode and mailbox: a changed config never reuses another identity's token).
    Without a key for the credential store (``credentials.can_encrypt`` false) the cache
    lives in memory only. A kept cache that cannot be read (another key, garbage) is
    ignored: it only saves requests.
    """

    def __init__(self, account: AccountConfig, credentials: Any, *,
                 wall: Callable[[], float] = time.time) -> None:
        self.account = account
        self.credentials = credentials
        self.wall = wall
        self.cache = msal.SerializableTokenCache()
        self.enabled = bool(getattr(credentials, "can_encrypt", False))
        auth = account.auth
        identity = "|".join(str(v) for v in (
            auth.get("mode", "app"), auth.get("authority") or "", auth.get("tenant") or "",
            auth.get("client_id") or "", mailbox_of(account)))
        self.identity = hashlib.sha256(identity.encode()).hexdigest()
        self._loaded = False

    def _load(self) -> None:
        if self._loaded or not self.enabled:
            return
        self._loaded = True
        try:
            text = self.credentials.get(self.account.name, CACHE_KIND)
        except SecretUnavailable:  # another key: a refresh will replace it
            return
        if not text or len(text) > MAX_CACHE_CHARS:
            return
        try:
            kept = json.loads(text)
            if isinstance(kept, dict) and kept.get("for") == self.identity and isinstance(
                    kept.get("AccessToken"), dict):
                self.cache.deserialize(json.dumps({"AccessToken": kept["AccessToken"]}))
        except (ValueError, TypeError):
            log.debug("%s: the kept token cache is unreadable; ignored", self.account.name)

    def token(self, scopes: list[str]) -> tuple[str, float] | None:
        """A kept access token for ``scopes`` valid past the expiry margin, with the
        seconds it has left; None when there is none."""
        self._load()
        now = self.wall()
        client_id = str(self.account.auth.get("client_id") or "")
        environment = urlsplit(authority_url(self.account.auth)).hostname
        try:
            entries = list(self.cache.search(msal.TokenCache.CredentialType.ACCESS_TOKEN,
                                             target=scopes, query={"client_id": client_id,
                                                                   "environment": environment},
                                             now=now))
        except (KeyError, TypeError, ValueError):  # an entry without the fields msal wants
            self.cache = msal.SerializableTokenCache()
            return None
        for entry in entries:
            secret, expires = entry.get("secret"), str(entry.get("expires_on") or "")
            left = float(expires) - now if expires.isdigit() else 0.0
            if isinstance(secret, str) and secret and left > EXPIRY_MARGIN:
                register_secret(secret)
                return secret, left
        return None

    def save(self) -> None:
        """Keep the access tokens msal added (encrypted), when the cache changed."""
        if not self.enabled or not self.cache.has_state_changed:
            return
        tokens = json.loads(self.cache.serialize()).get("AccessToken") or {}
        try:
            self.credentials.put(self.account.name, CACHE_KIND,
                                 json.dumps({"for": self.identity, "AccessToken": tokens}))
        except SecretUnavailable:  # an unusable key: keep tokens in memory only
            self.enabled = False

    def drop(self) -> None:
        """Forget every kept token (the API refused one)."""
        self.cache = msal.SerializableTokenCache()
        if self.enabled:
            self.credentials.delete(self.account.name, CACHE_KIND)


class AppShelf:
    """The client-credentials token of each app registration, shared by the accounts of
    one process (mode ``app``).

    A client-credentials token is the app's, not a mailbox's: without the shelf each
    account made its own msal application (a tenant-discovery request) and asked for its
    own token, so 400 accounts of one app cost 800 sign-in requests at every start and a
    grant each an hour after. With it, the first account to need a token asks (the others
    wait for that one grant rather than send their own) and every account uses it while
    it lasts. Keyed by the authority, the client id and a hash of the secret: an account
    with another secret never gets a token its own secret would not.
    """

    def __init__(self, *, wall: Callable[[], float] = time.time) -> None:
        self.wall = wall
        self._tokens: dict[str, tuple[str, float]] = {}  # key -> (token, expires at)
        self._locks: dict[str, threading.Lock] = {}
        self._lock = threading.Lock()

    def get(self, key: str) -> str | None:
        """The app's token, if it is valid past the expiry margin."""
        found = self._tokens.get(key)
        if found is None or found[1] - self.wall() <= EXPIRY_MARGIN:
            return None
        return found[0]

    def put(self, key: str, token: str, seconds_left: float) -> None:
        self._tokens[key] = (token, self.wall() + seconds_left)

    def drop(self, key: str, token: str | None) -> None:
        """Forget the app's token if it is ``token`` (one the API refused)."""
        with self._lock:
            if token is not None and self._tokens.get(key, ("", 0.0))[0] == token:
                del self._tokens[key]

    def granting(self, key: str) -> threading.Lock:
        """Held while one account asks for the app's token."""
        with self._lock:
            return self._locks.setdefault(key, threading.Lock())


#: The key of :class:`AppShelf` in :attr:`connectors.ConnectorContext.shared`.
SHELF_KEY = "outlook.app_tokens"


def app_shelf(shared: dict[str, Any] | None) -> AppShelf | None:
    """The process's shelf of app tokens in ``shared`` (made on first use), or None."""
    if shared is None:
        return None
    return shared.setdefault(SHELF_KEY, AppShelf())


class AppTokens:
    """Client-credentials tokens for an app registration (mode ``app``)."""

    def __init__(self, auth: Mapping[str, Any], session: requests.Session, *,
                 kept: KeptTokens | None = None,
                 timeout: tuple[float, float] = TOKEN_TIMEOUT,
                 shelf: AppShelf | None = None) -> None:
        """``shelf``: where the accounts of this process share the app's token (None:
        this account asks for its own)."""
        self.auth = auth
        self.session = session
        self.kept = kept
        self.timeout = timeout
        self.shelf = shelf
        self._app: Any = None
        self._key: str | None = None
        self._last: str | None = None  # the token last handed out

    def _shelf_key(self) -> str:
        if self._key is None:
            secret = self.auth.get("client_secret")
            secret_text = _secret(secret) if secret else ""
            self._key = hashlib.sha256("|".join((
                authority_url(self.auth), str(self.auth.get("client_id") or ""),
                secret_text)).encode()).hexdigest()
        return self._key

    def _client(self) -> Any:
        if self._app is None:
            if not self.auth.get("client_secret"):
                raise AuthFailed(reason="app mode needs [account.auth] client_secret")
            options = _msal_options(self.auth, self.session, self.timeout)
            if self.kept is not None:
                options["token_cache"] = self.kept.cache
            self._app = _build(msal.ConfidentialClientApplication, self.auth["client_id"],
                               client_credential=_secret(self.auth["client_secret"]),
                               **options)
        return self._app

    def token(self) -> str:
        """A valid token: the app's on the shelf, else a kept one while it lasts (no
        request, no msal application), else from msal, which asks the identity platform
        when its cache has none (one account of the shelf at a time)."""
        if self.shelf is None:
            self._last = self._own()
            return self._last
        key = self._shelf_key()
        found = self.shelf.get(key)
        if found is None:
            with self.shelf.granting(key):
                found = self.shelf.get(key)  # another account's, asked while this waited
                if found is None:
                    found, left = self._own_with_expiry()
                    if left is not None:
                        self.shelf.put(key, found, left)
        self._last = found
        return found

    def _own(self) -> str:
        return self._own_with_expiry()[0]

    def _own_with_expiry(self) -> tuple[str, float | None]:
        """This account's token and the seconds it has left (None: not known)."""
        if self._app is None and self.kept is not None:
            kept = self.kept.token(GRAPH_APP_SCOPES)
            if kept is not None:
                return kept
        try:
            result = self._client().acquire_token_for_client(GRAPH_APP_SCOPES)
        except requests.RequestException as exc:
            raise Transient(reason=f"identity platform: {network_reason(exc)}") from None
        if "access_token" not in result:
            _fail(result)
        if self.kept is not None:
            self.kept.save()
        try:
            left: float | None = float(result.get("expires_in"))
        except (TypeError, ValueError):
            left = None  # not shared: its expiry is not known
        return str(result["access_token"]), left

    def invalidate(self) -> None:
        """Forget the cached token (after a 401), kept ones and the shelf's too."""
        # A new application object over an empty cache: the next token is fresh.
        if self.kept is not None:
            self.kept.drop()
        if self.shelf is not None:
            self.shelf.drop(self._shelf_key(), self._last)
        self._app = None


class DelegatedTokens:
    """A signed-in user's tokens (mode ``delegated``), refresh token rotated and stored."""

    def __init__(self, account: AccountConfig, credentials: Any, session: requests.Session, *,
                 clock: Callable[[], float] = time.monotonic,
                 kept: KeptTokens | None = None,
                 timeout: tuple[float, float] = TOKEN_TIMEOUT) -> None:
        self.account = account
        self.credentials = credentials
        self.session = session
        self.timeout = timeout
        self.clock = clock
        self.kept = kept
        self._app: Any = None
        self._access: str | None = None
        self._expires_at = 0.0

    def _client(self) -> Any:
        if self._app is None:
            options = _msal_options(self.account.auth, self.session, self.timeout)
            if self.kept is not None:
                options["token_cache"] = self.kept.cache
            self._app = _build(msal.PublicClientApplication, self.account.auth["client_id"],
                               **options)
        return self._app

    def token(self) -> str:
        """The cached access token (this process's, else a kept one), or a new one from
        the stored refresh token."""
        if self._access is not None and self.clock() < self._expires_at - EXPIRY_MARGIN:
            return self._access
        found = self.kept.token(DELEGATED_SCOPES) if self.kept is not None else None
        if found is not None:
            self._access, self._expires_at = found[0], self.clock() + found[1]
            return self._access
        if self.credentials is None:
            raise AuthFailed(reason="no credential store for the refresh token")
        refresh = self.credentials.get(self.account.name, REFRESH_KIND)
        if not refresh:
            raise AuthFailed(reason=f"not signed in; run 'syncd auth outlook {self.account.name}'")
        try:
            result = self._client().acquire_token_by_refresh_token(refresh, DELEGATED_SCOPES)
        except requests.RequestException as exc:
            raise Transient(reason=f"identity platform: {network_reason(exc)}") from None
        if "access_token" not in result:
            _fail(result)
        rotated = result.get("refresh_token")
        if rotated and rotated != refresh:
            # Committed before the access token is used: the old refresh token is dead now.
            self.credentials.put(self.account.name, REFRESH_KIND, str(rotated))
        if self.kept is not None:
            self.kept.save()
        self._access = str(result["access_token"])
        self._expires_at = self.clock() + float(result.get("expires_in") or 3600)
        return self._access

    def invalidate(self) -> None:
        """Forget the access token, kept ones too; the next call refreshes (and rotates)
        again."""
        if self.kept is not None:
            self.kept.drop()
        self._access = None


def token_source(account: AccountConfig, credentials: Any, session: requests.Session, *,
                 clock: Callable[[], float] = time.monotonic,
                 timeout: tuple[float, float] = TOKEN_TIMEOUT,
                 shared: dict[str, Any] | None = None) -> AppTokens | DelegatedTokens:
    """The token source for the account's ``auth.mode``, its tokens kept between runs in
    ``credentials`` (when that store has a key); ``timeout``: (connect, read) seconds each
    request to the identity platform waits; ``shared``: the process's memo, where the
    accounts of one app registration share its token (:class:`AppShelf`)."""
    kept = KeptTokens(account, credentials) if credentials is not None else None
    if account.auth.get("mode", "app") == "delegated":
        return DelegatedTokens(account, credentials, session, clock=clock, kept=kept,
                               timeout=timeout)
    return AppTokens(account.auth, session, kept=kept, timeout=timeout,
                     shelf=app_shelf(shared))


def mailbox_of(account: AccountConfig) -> str:
    """The mailbox the account syncs: ``auth.user``, else the owner."""
    return str(account.auth.get("user") or account.owner)


def device_code_login(account: AccountConfig, credentials: Any, *,
                      session: requests.Session | None = None,
                      announce: Callable[[str], None] = print) -> str:
    """Sign the account's user in with a device code and store the refresh token.

    Args:
        account: an ``outlook`` account in ``delegated`` mode.
        credentials: the :class:`~syncd.store.credentials.CredentialStore`.
        session: the HTTP session msal uses (a fresh one by default).
        announce: shows the user where to go and which code to enter.

    Returns:
        The signed-in user's name.

    Raises:
        AuthFailed: the sign-in failed or was declined, signed in as someone other than
            the account's mailbox, or granted no refresh token.
        Transient: the identity platform could not be reached.
    """
    app = _build(msal.PublicClientApplication, account.auth["client_id"],
                 **_msal_options(account.auth,
                                 same_origin_redirects(session or requests.Session())))
    try:
        flow = app.initiate_device_flow(scopes=DELEGATED_SCOPES)
        if "user_code" not in flow:
            _fail(flow)
        announce(str(flow.get("message") or f"Enter the code {flow['user_code']}"))
        result = app.acquire_token_by_device_flow(flow)
    except requests.RequestException as exc:
        raise Transient(reason=f"identity platform: {network_reason(exc)}") from None
    if "access_token" not in result:
        _fail(result)
    claims = result.get("id_token_claims") or {}
    user = str(claims.get("preferred_username") or "")
    if user.lower() != mailbox_of(account).lower():
        raise AuthFailed(reason=f"signed in as {user or 'an unknown user'}, but the account's "
                                f"mailbox is {mailbox_of(account)}")
    if not result.get("refresh_token"):
        raise AuthFailed(reason="no refresh token was granted (offline_access refused)")
    credentials.put(account.name, REFRESH_KIND, str(result["refresh_token"]))
    return user
