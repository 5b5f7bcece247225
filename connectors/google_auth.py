"""Google credentials: a service account with domain-wide delegation, or a user's OAuth grant.

* ``mode = "service_account"``: the key JSON (``service_account_file``, a secret reference)
  signs a JWT for ``subject`` (default: the account's owner); Workspace admins grant the
  client id the one scope below. Nothing is stored.
* ``mode = "oauth"``: ``syncd auth google ACCOUNT`` runs the consent flow once in a
  terminal and stores the refresh token with :class:`~syncd.store.credentials.CredentialStore`
  (encrypted at rest); the daemon refreshes access tokens from it, and a rotated refresh
  token is stored at once (failure mode 13).

Scope: only :data:`SCOPE` (events on the user's calendars, no sharing or ACL rights,
section 3.2 of the failure catalogue). A test pins it: widening it is a product decision.
The consent flow also asks for ``openid email`` (:data:`CONSENT_SCOPES`), which only say
who signed in: the grant is stored only when that is the account's user (``subject`` or
owner), so a grant of the wrong Google account never writes into the wrong calendar.

A refused refresh (``invalid_grant``: revoked, expired, password change) becomes
:class:`~syncd.errors.AuthFailed`, so the engine marks that one account as needing
re-authorisation and the others carry on. No token, secret or code is ever logged or put in
an error.

Every token request (a refresh, a service account's grant) goes through
:func:`token_request`, whatever transport the caller hands ``refresh()``: its answer is
read at most to :data:`~connectors.answer_caps.MAX_TOKEN_ANSWER_BYTES`, and past it the
cycle fails with :class:`~syncd.errors.AnswerTooLarge` naming the token endpoint.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any
from urllib.parse import parse_qs

import httplib2
from google.auth.credentials import AnonymousCredentials, Credentials
from google.auth.exceptions import GoogleAuthError, RefreshError, TransportError
from google.auth.transport import Request
from google.oauth2 import service_account
from google.oauth2.credentials import Credentials as UserCredentials
from google_auth_httplib2 import Request as HttpRequest  # type: ignore[import-untyped]
from oauthlib.oauth2.rfc6749.errors import OAuth2Error  # type: ignore[import-untyped]

from connectors.answer_caps import MAX_TOKEN_ANSWER_BYTES, CappedHttp, cap_answers
from syncd.config_checks import Finding, transport_problem, url_problem
from syncd.config_types import AccountConfig, SecretRef
from syncd.errors import AuthFailed, ConnectorError, SecretUnavailable, Transient
from syncd.model import normalize_email
from syncd.network import same_origin_redirects

#: The one scope syncd asks for. Pinned by tests/google/test_auth.py.
SCOPE = "https://www.googleapis.com/auth/calendar.events"
SCOPES: tuple[str, ...] = (SCOPE,)
#: What the consent page asks for: the calendar scope, plus who signed in (no data access).
CONSENT_SCOPES: tuple[str, ...] = ("openid", "email", SCOPE)
#: CredentialStore kind under which a user's refresh token is kept.
REFRESH_TOKEN_KIND = "google_refresh_token"
DEFAULT_TOKEN_URI = "https://oauth2.googleapis.com/token"
DEFAULT_AUTH_URI = "https://accounts.google.com/o/oauth2/auth"
DEFAULT_API_ENDPOINT = "https://www.googleapis.com/calendar/v3/"
#: Seconds a token request may take (the connector's own default for the API).
TOKEN_TIMEOUT = 30.0


def auth_error(exc: GoogleAuthError) -> ConnectorError:
    """What a failure of the auth library means for the engine.

    Only the OAuth error code is kept (e.g. ``invalid_grant``): descriptions and request
    details may carry tokens.
    """
    if isinstance(exc, TransportError) or exc.retryable:
        return Transient(reason=f"the token endpoint failed ({type(exc).__name__})")
    code = ""
    if isinstance(exc, RefreshError) and len(exc.args) > 1 and isinstance(exc.args[1], Mapping):
        code = str(exc.args[1].get("error", ""))
    if not code and isinstance(exc, RefreshError) and exc.args:
        head = str(exc.args[0]).split(":", 1)[0]
        code = head if head.replace("_", "").isalpha() and len(head) < 40 else ""
    return AuthFailed(reason=f"token refresh refused: {code or type(exc).__name__}")


def token_request(timeout: float = TOKEN_TIMEOUT) -> Request:
    """A transport for token requests: answers read at most to
    :data:`~connectors.answer_caps.MAX_TOKEN_ANSWER_BYTES`, on an ``Http`` of its own
    (httplib2 reuses a host's open connection whatever cap it was opened with, so one
    shared with the API would mix the two caps)."""
    transport: Request = HttpRequest(CappedHttp(httplib2.Http(timeout=timeout),
                                                MAX_TOKEN_ANSWER_BYTES))
    return transport


class _CappedTokens:
    """Credentials whose token requests go through :func:`token_request`, whatever
    transport ``refresh()`` is handed.

    Two callers hand one of their own: google-auth-httplib2's ``AuthorizedHttp`` (the
    API's ``Http``, capped at an API answer's 64 MiB) and the API client's batch, which
    refreshes through a new ``httplib2.Http()`` with no cap and no timeout
    (``googleapiclient._auth.refresh_credentials``). A token answer is a few kilobytes.
    """

    _token_transport: Request | None = None

    def _tokens(self) -> Request:
        if self._token_transport is None:
            self._token_transport = token_request()
        return self._token_transport


class StoredUserCredentials(_CappedTokens, UserCredentials):
    """User credentials that hand a rotated refresh token to ``on_rotate`` at once."""

    def __init__(self, *args: Any, on_rotate: Callable[[str], None] | None = None,
                 **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._on_rotate = on_rotate

    def refresh(self, request: Request) -> None:
        """Refresh the access token (through :func:`token_request`, not ``request``);
        store the refresh token if Google rotated it."""
        before = self.refresh_token
        super().refresh(self._tokens())
        after = self.refresh_token
        if self._on_rotate is not None and after and after != before:
            self._on_rotate(after)


class ServiceAccountCredentials(_CappedTokens, service_account.Credentials):
    """A service account's credentials, granted through :func:`token_request`."""

    def refresh(self, request: Request) -> None:
        super().refresh(self._tokens())


def service_account_credentials(key_json: str, *, subject: str,
                                token_uri: str | None = None) -> Credentials:
    """Domain-wide delegated credentials acting as ``subject``, limited to :data:`SCOPES`."""
    try:
        info = json.loads(key_json)
    except ValueError:
        raise AuthFailed(reason="the service account key is not JSON") from None
    if not isinstance(info, dict):
        raise AuthFailed(reason="the service account key is not a JSON object")
    if token_uri:
        info = {**info, "token_uri": token_uri}
    _check_token_uri(info.get("token_uri"), "the service account key")
    try:
        creds: Credentials = ServiceAccountCredentials.from_service_account_info(
            info, scopes=list(SCOPES), subject=subject)
    except (ValueError, KeyError, TypeError) as exc:
        # The message may quote the key; only its kind is reported.
        raise AuthFailed(reason=f"the service account key is unusable ({type(exc).__name__})"
                         ) from None
    return creds


def project_of(account: AccountConfig) -> str:
    """The Cloud project whose per-project quota the account's requests count against:
    the ``project_id`` of its service account key or OAuth client, or, when that cannot
    be read now (the cycle reports why), the key's reference or the API endpoint.
    Accounts on one key share one project, whichever name is used."""
    auth = account.auth
    ref = auth.get("service_account_file") if auth.get("mode", "service_account") \
        == "service_account" else auth.get("client_secrets_file")
    if isinstance(ref, SecretRef):
        try:
            data = json.loads(ref.resolve())
        except (SecretUnavailable, ValueError):
            return ref.ref
        if isinstance(data, dict):
            client = data.get("installed") or data.get("web") or data
            project = client.get("project_id") if isinstance(client, dict) else None
            if isinstance(project, str) and project:
                return project
        return ref.ref
    return str(auth.get("api_endpoint") or "default")


def _check_token_uri(uri: Any, what: str) -> None:
    """Refuse a token endpoint a file names (the config's own passed its TLS check) unless
    it is https://, or http:// to loopback (a test server): the grant sent there carries
    a signed assertion, or the refresh token and the client secret."""
    if uri is None:
        return  # the library's default, Google's https endpoint
    found = url_problem(uri) if isinstance(uri, str) else Finding("is not a URL", "")
    if found is None:
        found = transport_problem(uri, credentials=True, allow_insecure=True)
    if found is not None:
        raise AuthFailed(reason=f"{what} names a token_uri that {found.problem}; set "
                                "token_uri in [account.auth] to Google's https:// endpoint")


def client_config(ref: SecretRef | None, token_uri: str | None = None) -> dict[str, Any]:
    """The OAuth client (``{"installed": {...}}`` or ``{"web": {...}}``) from its secret,
    with ``token_uri`` (the config's) in place of the file's when given."""
    if ref is None:
        raise AuthFailed(reason="no client_secrets_file is configured for OAuth")
    try:
        data = json.loads(ref.resolve())
    except ValueError:
        raise AuthFailed(reason="the OAuth client secrets file is not JSON") from None
    kind = next((k for k in ("installed", "web") if isinstance(data, dict) and k in data), None)
    if kind is None or not {"client_id", "client_secret"} <= set(data[kind]):
        raise AuthFailed(reason="the OAuth client secrets file has no installed or web client")
    data[kind].setdefault("auth_uri", DEFAULT_AUTH_URI)
    data[kind].setdefault("token_uri", DEFAULT_TOKEN_URI)
    if token_uri:
        data[kind]["token_uri"] = token_uri
    _check_token_uri(data[kind]["token_uri"], "the OAuth client secrets file")
    return dict(data)


def _client(config: Mapping[str, Any]) -> dict[str, Any]:
    return dict(config.get("installed") or config["web"])


def user_credentials(account: AccountConfig, store: Any) -> Credentials:
    """Credentials from the stored refresh token of ``account`` (``mode = "oauth"``)."""
    if store is None:
        raise AuthFailed(reason="no credential store is available for the OAuth token")
    refresh_token = store.get(account.name, REFRESH_TOKEN_KIND)
    if not refresh_token:
        raise AuthFailed(reason=f"not authorised yet: run 'syncd auth google {account.name}'")
    client = _client(client_config(account.auth.get("client_secrets_file"),
                                   account.auth.get("token_uri")))
    creds: Credentials = StoredUserCredentials(
        token=None, refresh_token=refresh_token, client_id=client["client_id"],
        client_secret=client["client_secret"],
        token_uri=client["token_uri"], scopes=list(SCOPES),
        on_rotate=lambda token: store.put(account.name, REFRESH_TOKEN_KIND, token))
    return creds


def load_credentials(account: AccountConfig, store: Any = None) -> Credentials:
    """The credentials ``account`` is configured for.

    With neither a key nor OAuth configured but an ``api_endpoint`` set (a local test
    server or an authenticating proxy), requests go out without credentials.

    Args:
        account: the account; ``auth`` holds the Google options.
        store: the :class:`~syncd.store.credentials.CredentialStore` (OAuth mode only).

    Returns:
        google-auth credentials, not yet refreshed.

    Raises:
        AuthFailed: nothing usable is configured or stored.
        SecretUnavailable: a secret reference cannot be read.
    """
    auth = account.auth
    if auth.get("mode", "service_account") == "oauth":
        return user_credentials(account, store)
    key: SecretRef | None = auth.get("service_account_file")
    if key is None:
        if auth.get("api_endpoint"):
            return AnonymousCredentials()
        raise AuthFailed(reason="no service_account_file is configured")
    return service_account_credentials(key.resolve(), subject=auth.get("subject") or account.owner,
                                       token_uri=auth.get("token_uri"))


# --- the consent flow of ``syncd auth google ACCOUNT`` ---------------------------------------


@contextmanager
def _relaxed_scope() -> Iterator[None]:
    """Let oauthlib accept a narrower grant, so that we can say what is missing.

    With granular consent a user may untick the calendar; oauthlib would then raise a bare
    "Scope has changed" warning instead.
    """
    old = os.environ.get("OAUTHLIB_RELAX_TOKEN_SCOPE")
    os.environ["OAUTHLIB_RELAX_TOKEN_SCOPE"] = "1"
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("OAUTHLIB_RELAX_TOKEN_SCOPE", None)
        else:
            os.environ["OAUTHLIB_RELAX_TOKEN_SCOPE"] = old


def code_from_answer(answer: str, state: str | None) -> str:
    """The authorisation code from what the user pasted: the redirected address or the code."""
    answer = answer.strip()
    if not answer:
        raise AuthFailed(reason="nothing was pasted")
    if not answer.startswith(("http://", "https://", "?")) and "code=" not in answer:
        return answer  # the bare code
    query = parse_qs(answer.split("?", 1)[-1])
    if "error" in query:
        raise AuthFailed(reason=f"the browser reported {query['error'][0][:40]}")
    if state is not None and "state" not in query:
        raise AuthFailed(reason="the pasted address has no state; paste the whole address")
    if state is not None and query["state"][0] != state:
        raise AuthFailed(reason="the pasted address belongs to another sign-in (state mismatch)")
    codes = query.get("code")
    if not codes or not codes[0]:
        raise AuthFailed(reason="the pasted address has no code")
    return codes[0]


def id_token_email(id_token: object) -> str | None:
    """The ``email`` claim of an OpenID Connect id_token, if it has a verified one.

    The signature is not checked: the token came straight from Google's token endpoint
    over TLS, which OpenID Connect Core 3.1.3.7 accepts in place of the signature.
    """
    if not isinstance(id_token, str) or id_token.count(".") != 2:
        return None
    payload = id_token.split(".")[1]
    try:
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (ValueError, binascii.Error):
        return None
    if not isinstance(claims, dict) or claims.get("email_verified") in (False, "false"):
        return None
    email = claims.get("email")
    return email if isinstance(email, str) and email else None


def primary_calendar_id(account: AccountConfig, access_token: object,
                        http: httplib2.Http | None = None) -> str | None:
    """The id of the signed-in user's primary calendar (their address), by one request."""
    if not isinstance(access_token, str) or not access_token:
        return None
    root = str(account.auth.get("api_endpoint") or DEFAULT_API_ENDPOINT).rstrip("/")
    try:
        capped = CappedHttp(http or httplib2.Http(timeout=30), MAX_TOKEN_ANSWER_BYTES)
        response, content = capped.request(
            f"{root}/users/me/calendarList/primary", "GET",
            headers={"Authorization": f"Bearer {access_token}"})
        entry = json.loads(content) if response.status == 200 else None
    except (OSError, httplib2.HttpLib2Error, ValueError):
        return None
    value = entry.get("id") if isinstance(entry, dict) else None
    return value if isinstance(value, str) and value else None


def check_signed_in_user(account: AccountConfig, token: Mapping[str, Any],
                         http: httplib2.Http | None = None) -> str:
    """Make sure the grant is the account's user's (``subject`` or owner); returns it.

    Who signed in is read from the id_token, or, without one, from the primary calendar.

    Raises:
        AuthFailed: another Google account signed in, or who signed in cannot be told.
    """
    expected = normalize_email(account.auth.get("subject") or account.owner)
    actual = id_token_email(token.get("id_token"))
    if actual is None:
        actual = primary_calendar_id(account, token.get("access_token"), http)
    if actual is None:
        raise AuthFailed(reason="could not tell which Google account signed in; nothing "
                                "was stored, try again")
    if normalize_email(actual) != expected:
        raise AuthFailed(reason=f"signed in as {actual}, but account {account.name} is "
                                f"{expected}; nothing was stored. Sign in as {expected} "
                                "(use another browser profile or sign out first)")
    return expected


def store_grant(account: AccountConfig, store: Any, token: Mapping[str, Any],
                http: httplib2.Http | None = None) -> tuple[str, ...]:
    """Check the grant and who gave it, then store its refresh token; returns the scopes.

    ``http`` carries the primary-calendar look-up when the answer has no id_token.
    """
    raw = token.get("scope", "")
    granted = tuple(raw.split() if isinstance(raw, str) else raw)
    if SCOPE not in granted:
        raise AuthFailed(reason="calendar access was not granted; allow it on the consent page")
    refresh_token = token.get("refresh_token")
    if not refresh_token:
        raise AuthFailed(reason="Google returned no refresh token; remove syncd's access in "
                                "the Google account's security settings and try again")
    check_signed_in_user(account, token, http)
    store.put(account.name, REFRESH_TOKEN_KIND, str(refresh_token))
    return granted


def _refused(exc: Exception) -> AuthFailed:
    # oauthlib errors may quote the request or Google's description: only the OAuth error
    # code is kept.
    code_name = getattr(exc, "error", "") or type(exc).__name__
    return AuthFailed(reason=f"the code was refused ({str(code_name)[:40]})")


def authorize_console(account: AccountConfig, store: Any, *,
                      prompt: Callable[[str], str] | None = None,
                      say: Callable[[str], None] | None = None,
                      port: int = 8765) -> tuple[str, ...]:
    """Run the consent flow in a terminal (works over SSH): print a URL, read the answer.

    The redirect goes to a loopback address that nothing listens on; the browser shows an
    error page whose address holds the code, and the user pastes that address back. Google
    retired the out-of-band copy-the-code page, so this is the console-friendly form of the
    loopback flow. PKCE protects the code.

    Args:
        account: an account with ``mode = "oauth"`` and a ``client_secrets_file``.
        store: where the refresh token goes (encrypted at rest).
        prompt: reads the user's answer (default ``input``).
        say: shows a line to the user (default ``print``).
        port: the loopback port named in the redirect address.

    Returns:
        The scopes granted.

    Raises:
        AuthFailed: the user refused, pasted something else, or did not grant the scope.
    """
    from google_auth_oauthlib.flow import Flow

    prompt, say = prompt or input, say or print
    config = client_config(account.auth.get("client_secrets_file"),
                           account.auth.get("token_uri"))
    flow = Flow.from_client_config(config, scopes=list(CONSENT_SCOPES),
                                   redirect_uri=f"http://127.0.0.1:{port}/")
    cap_answers(same_origin_redirects(flow.oauth2session), MAX_TOKEN_ANSWER_BYTES)
    url, state = flow.authorization_url(access_type="offline", prompt="consent",
                                        login_hint=account.auth.get("subject") or account.owner)
    say(f"Authorise syncd to use the calendar of {account.owner}:")
    say(f"  1. Open this address in a browser and allow access:\n\n{url}\n")
    say("  2. The browser then tries to open an http://127.0.0.1 address and fails.")
    say("     Copy that whole address from the address bar and paste it here.")
    code = code_from_answer(prompt("Address (or code): "), state)
    try:
        with _relaxed_scope():
            token = flow.fetch_token(code=code)
    except (OAuth2Error, ValueError, OSError) as exc:
        raise _refused(exc) from None
    return store_grant(account, store, token)


def authorize_local_server(account: AccountConfig, store: Any, *, port: int = 0,
                           say: Callable[[str], None] | None = None) -> tuple[str, ...]:
    """The consent flow with a loopback listener (for a desktop with a browser)."""
    from google_auth_oauthlib.flow import InstalledAppFlow

    say = say or print

    config = client_config(account.auth.get("client_secrets_file"),
                           account.auth.get("token_uri"))
    flow = InstalledAppFlow.from_client_config(config, scopes=list(CONSENT_SCOPES))
    cap_answers(same_origin_redirects(flow.oauth2session), MAX_TOKEN_ANSWER_BYTES)
    try:
        with _relaxed_scope():
            flow.run_local_server(host="127.0.0.1", port=port, open_browser=False,
                                  authorization_prompt_message="Open this address to "
                                                               "authorise syncd:\n{url}",
                                  access_type="offline", prompt="consent",
                                  login_hint=account.auth.get("subject") or account.owner)
    except OAuth2Error as exc:
        raise _refused(exc) from None
    say("Authorisation received.")
    return store_grant(account, store, flow.oauth2session.token)
