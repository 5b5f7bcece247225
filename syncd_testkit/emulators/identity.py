"""A local Microsoft identity platform (Entra ID v2.0) emulator for msal.

It serves the three endpoints msal 1.39 calls (see providers.md B.7 and must-have 22):

* ``GET  /{tenant}/v2.0/.well-known/openid-configuration`` (tenant discovery),
* ``POST /{tenant}/oauth2/v2.0/devicecode`` (device authorisation),
* ``POST /{tenant}/oauth2/v2.0/token`` for ``client_credentials``, ``refresh_token`` and the
  device-code grant.

msal refuses ``http://`` authorities, so it is told ``https://login.emulator.test/<tenant>``
and given a :class:`RoutingSession` as ``http_client``; the session rewrites that prefix to the
emulator's plain-HTTP address. The discovery document also advertises the https names, which is
what msal expects, and the session rewrites those too.

Tokens are opaque random strings. :meth:`IdentityEmulator.token_kind` tells the Graph emulator
whether a bearer token is app-only or delegated (and for whom), which is how ``/me`` is
rejected for app-only tokens.

Usage with msal::

    idp.register_app("client-id", "secret")
    app = msal.ConfidentialClientApplication(
        "client-id", client_credential="secret", authority=idp.authority(),
        instance_discovery=False,  # no call to login.microsoftonline.com
        http_client=RoutingSession(idp),
    )

Choices and deviations:

* Access tokens are opaque, not JWTs; the ``id_token`` is an unsigned JWT (``alg: none``),
  which msal 1.39 accepts because it no longer validates id tokens.
* With ``rotate_refresh_tokens`` (the default) a used refresh token stops working at once.
  Entra ID also hands out a new refresh token on every use, but does not promise to revoke
  the old one immediately; the strict behaviour catches a daemon that forgets to persist the
  new token. Errors: unknown or rotated-away tokens give ``invalid_grant`` AADSTS700082,
  revoked ones AADSTS50173.
* Apps must be registered; a registered secret makes the client confidential. Scopes are not
  checked against any consent, and any tenant name is accepted (its ``tid`` is a stable
  GUID derived from the name).
"""

from __future__ import annotations

import base64
import json
import secrets
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qs, urlsplit

import requests

from ..loopback import QuietHandler, ThreadedHTTPServer, bound

__all__ = ["IdentityEmulator", "RoutingSession"]

DEVICE_CODE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
# Scopes that describe the sign-in itself rather than an API permission; Entra ID does not echo
# them in the token response's ``scope`` field.
_RESERVED_SCOPES = frozenset({"openid", "profile", "offline_access", "email"})


@dataclass
class _App:
    client_id: str
    client_secret: str | None


@dataclass
class _AccessToken:
    kind: str  # "app" or "delegated"
    user: str | None
    client_id: str
    expires_at: float


@dataclass
class _RefreshToken:
    user: str
    client_id: str
    scopes: list[str]
    tenant: str
    revoked: bool = False
    rotated: bool = False
    issued_at: float = field(default_factory=time.time)


@dataclass
class _DeviceFlow:
    device_code: str
    user_code: str
    client_id: str
    scopes: list[str]
    tenant: str
    expires_at: float
    user: str | None = None
    denied: bool = False
    redeemed: bool = False


class _OAuthError(Exception):
    """An OAuth 2.0 error response (RFC 6749 section 5.2) in the Entra ID shape."""

    def __init__(self, error: str, aadsts: int, description: str, status: int = 400) -> None:
        super().__init__(description)
        self.error = error
        self.aadsts = aadsts
        self.description = description
        self.status = status


def _b64url(data: bytes) -> str:
    # JWTs and client_info use unpadded base64url.
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


class IdentityEmulator(ThreadedHTTPServer):
    """Local token service that real msal clients can talk to.

    Use as a context manager or call :meth:`start`/:meth:`stop`. Attributes that tests may
    change at any time:

    * ``rotate_refresh_tokens`` (default ``True``): every ``refresh_token`` grant returns a new
      refresh token and invalidates the one that was presented. When ``False`` the same refresh
      token is returned and stays valid.
    * ``access_token_lifetime`` (seconds, default 3600): reported as ``expires_in``.
    * ``token_requests``: the form fields of every token request, in order.
    * ``device_code_requests``: the form fields of every device-code request.
    * ``internal_errors``: exceptions raised by emulator bugs (answered with HTTP 500).
    """

    authority_host: str = "https://login.emulator.test"

    name = "identity-emulator"

    def __init__(self) -> None:
        """Create a stopped emulator with no registered apps."""
        self.rotate_refresh_tokens: bool = True
        self.access_token_lifetime: int = 3600
        self.token_requests: list[dict[str, str]] = []
        self.device_code_requests: list[dict[str, str]] = []
        self.internal_errors: list[Exception] = []
        self._lock = threading.RLock()
        self._apps: dict[str, _App] = {}
        self._access_tokens: dict[str, _AccessToken] = {}
        self._refresh_tokens: dict[str, _RefreshToken] = {}
        self._device_flows: dict[str, _DeviceFlow] = {}  # keyed by device_code
        self.base_url: str = ""

    # -- lifecycle ---------------------------------------------------------------------------

    def handler(self) -> type[_IdentityHandler]:
        return bound(_IdentityHandler, emulator=self)

    def on_start(self) -> None:
        self.base_url = f"{self.origin}"

    # -- test-facing API ---------------------------------------------------------------------

    def authority(self, tenant: str = "tenant1") -> str:
        """Return the authority URL to give msal, e.g. ``https://login.emulator.test/tenant1``."""
        return f"{self.authority_host}/{tenant}"

    def register_app(self, client_id: str, client_secret: str | None = None) -> None:
        """Register an app registration; a secret makes it a confidential client."""
        with self._lock:
            self._apps[client_id] = _App(client_id, client_secret)

    def approve_device_code(self, user_code: str, *, user: str) -> None:
        """Simulate ``user`` entering ``user_code`` at the verification page and signing in.

        Raises:
            KeyError: if no pending device flow has this user code.
        """
        with self._lock:
            flow = self._flow_by_user_code(user_code)
            flow.user = user

    def deny_device_code(self, user_code: str) -> None:
        """Simulate the user declining consent: polling fails with ``authorization_declined``."""
        with self._lock:
            self._flow_by_user_code(user_code).denied = True

    def pending_user_codes(self) -> list[str]:
        """User codes of device flows that were started but not yet approved or denied."""
        with self._lock:
            return [
                f.user_code
                for f in self._device_flows.values()
                if f.user is None and not f.denied and not f.redeemed
            ]

    def revoke_refresh_token(self, token: str) -> None:
        """Make one refresh token unusable (``invalid_grant`` on its next use)."""
        with self._lock:
            rt = self._refresh_tokens.get(token)
            if rt is not None:
                rt.revoked = True

    def revoke_user(self, user: str) -> None:
        """Revoke every refresh token of ``user`` (e.g. a password reset or session revocation).

        Access tokens already issued stay valid until they expire, as with Entra ID; use
        :meth:`expire_access_tokens` to end them too.
        """
        with self._lock:
            for rt in self._refresh_tokens.values():
                if rt.user.lower() == user.lower():
                    rt.revoked = True

    def expire_access_tokens(self, user: str | None = None) -> None:
        """Expire issued access tokens (all, or only ``user``'s delegated ones).

        The Graph emulator then answers 401 ``InvalidAuthenticationToken`` for them.
        """
        with self._lock:
            for token in self._access_tokens.values():
                if user is None or (token.user or "").lower() == user.lower():
                    token.expires_at = 0.0

    def token_kind(self, access_token: str) -> tuple[str, str | None] | None:
        """Classify a bearer token for the Graph emulator.

        Returns:
            ``("app", None)`` for client-credentials tokens, ``("delegated", user)`` for user
            tokens, or ``None`` if the token is unknown or expired.
        """
        with self._lock:
            token = self._access_tokens.get(access_token)
            if token is None or token.expires_at <= time.time():
                return None
            return (token.kind, token.user)

    def issue_app_token(self, client_id: str = "test-app") -> str:
        """Mint an app-only access token without an HTTP round trip (for Graph-only tests)."""
        return self._new_access_token("app", None, client_id)

    def issue_user_token(self, user: str, client_id: str = "test-app") -> str:
        """Mint a delegated access token for ``user`` without an HTTP round trip."""
        return self._new_access_token("delegated", user, client_id)

    # -- protocol ----------------------------------------------------------------------------

    def _flow_by_user_code(self, user_code: str) -> _DeviceFlow:
        for flow in self._device_flows.values():
            if flow.user_code == user_code:
                return flow
        raise KeyError(f"no device flow with user code {user_code!r}")

    def _new_access_token(self, kind: str, user: str | None, client_id: str) -> str:
        token = "emu-at." + secrets.token_urlsafe(32)
        with self._lock:
            self._access_tokens[token] = _AccessToken(
                kind, user, client_id, time.time() + self.access_token_lifetime
            )
        return token

    def _tenant_id(self, tenant: str) -> str:
        # A stable GUID per tenant name, so "tenant1" always maps to the same tid/utid.
        try:
            return str(uuid.UUID(tenant))
        except ValueError:
            return str(uuid.uuid5(uuid.NAMESPACE_DNS, f"{tenant}.emulator.test"))

    def _user_oid(self, user: str) -> str:
        return str(uuid.uuid5(uuid.NAMESPACE_DNS, f"{user.lower()}.users.emulator.test"))

    def openid_configuration(self, tenant: str) -> dict[str, Any]:
        """The discovery document for ``tenant``; every URL uses :attr:`authority_host`."""
        base = f"{self.authority_host}/{tenant}"
        tid = self._tenant_id(tenant)
        return {
            "issuer": f"{self.authority_host}/{tid}/v2.0",
            "authorization_endpoint": f"{base}/oauth2/v2.0/authorize",
            "token_endpoint": f"{base}/oauth2/v2.0/token",
            "device_authorization_endpoint": f"{base}/oauth2/v2.0/devicecode",
            "end_session_endpoint": f"{base}/oauth2/v2.0/logout",
            "jwks_uri": f"{base}/discovery/v2.0/keys",
            "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
            "scopes_supported": ["openid", "profile", "email", "offline_access"],
            "token_endpoint_auth_methods_supported": ["client_secret_post", "client_secret_basic"],
            "grant_types_supported": [
                "authorization_code",
                "client_credentials",
                "refresh_token",
                DEVICE_CODE_GRANT,
            ],
            "subject_types_supported": ["pairwise"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "tenant_region_scope": "EU",
        }

    def _check_client(self, form: dict[str, str], *, secret_required: bool) -> _App:
        client_id = form.get("client_id", "")
        app = self._apps.get(client_id)
        if app is None:
            raise _OAuthError(
                "unauthorized_client",
                700016,
                f"Application with identifier '{client_id}' was not found in the directory "
                "'emulator'.",
            )
        secret = form.get("client_secret")
        if app.client_secret is not None and (secret_required or secret is not None):
            if secret != app.client_secret:
                raise _OAuthError(
                    "invalid_client",
                    7000215,
                    "Invalid client secret provided. Ensure the secret being sent in the request "
                    "is the client secret value, not the client secret ID.",
                    status=401,
                )
        elif secret_required:
            raise _OAuthError(
                "invalid_client",
                7000218,
                "The request body must contain the following parameter: 'client_assertion' or "
                "'client_secret'.",
                status=401,
            )
        return app

    def device_authorization(self, tenant: str, form: dict[str, str]) -> dict[str, Any]:
        """Handle ``POST /{tenant}/oauth2/v2.0/devicecode``."""
        with self._lock:
            self.device_code_requests.append(dict(form))
            app = self._check_client(form, secret_required=False)
            user_code = "".join(
                secrets.choice("ABCDEFGHJKLMNPQRSTUVWXYZ23456789") for _ in range(9)
            )
            device_code = "emu-dc." + secrets.token_urlsafe(32)
            expires_in = 900
            self._device_flows[device_code] = _DeviceFlow(
                device_code=device_code,
                user_code=user_code,
                client_id=app.client_id,
                scopes=form.get("scope", "").split(),
                tenant=tenant,
                expires_at=time.time() + expires_in,
            )
        verification_uri = "https://microsoft.com/devicelogin"
        return {
            "user_code": user_code,
            "device_code": device_code,
            "verification_uri": verification_uri,
            "expires_in": expires_in,
            # msal sleeps ``interval`` seconds between polls; 1 keeps tests fast.
            "interval": 1,
            "message": (
                f"To sign in, use a web browser to open the page {verification_uri} and enter "
                f"the code {user_code} to authenticate."
            ),
        }

    def token(self, tenant: str, form: dict[str, str]) -> dict[str, Any]:
        """Handle ``POST /{tenant}/oauth2/v2.0/token``; raises :class:`_OAuthError` on failure."""
        with self._lock:
            self.token_requests.append(dict(form))
            grant = form.get("grant_type", "")
            if grant == "client_credentials":
                return self._grant_client_credentials(form)
            if grant == "refresh_token":
                return self._grant_refresh_token(tenant, form)
            if grant == DEVICE_CODE_GRANT:
                return self._grant_device_code(form)
            raise _OAuthError(
                "unsupported_grant_type",
                70003,
                f"The app requested an unsupported grant type '{grant}'.",
            )

    def _grant_client_credentials(self, form: dict[str, str]) -> dict[str, Any]:
        app = self._check_client(form, secret_required=True)
        scopes = form.get("scope", "").split()
        if not scopes or not all(s.endswith("/.default") for s in scopes):
            raise _OAuthError(
                "invalid_scope",
                1002012,
                "The provided value for scope is not valid. Client credential flows must have a "
                "scope value with /.default suffixed to the resource identifier "
                "(application ID URI).",
            )
        return {
            "token_type": "Bearer",
            "expires_in": self.access_token_lifetime,
            "ext_expires_in": self.access_token_lifetime,
            "access_token": self._new_access_token("app", None, app.client_id),
        }

    def _grant_refresh_token(self, tenant: str, form: dict[str, str]) -> dict[str, Any]:
        app = self._check_client(form, secret_required=False)
        presented = form.get("refresh_token", "")
        rt = self._refresh_tokens.get(presented)
        if rt is None or rt.rotated or rt.client_id != app.client_id:
            issued = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f0Z")
            raise _OAuthError(
                "invalid_grant",
                700082,
                f"The refresh token has expired due to inactivity. The token was issued on "
                f"{issued} and was inactive for 90.00:00:00.",
            )
        if rt.revoked:
            raise _OAuthError(
                "invalid_grant",
                50173,
                "The provided grant has expired due to it being revoked, a fresh auth token is "
                "needed. The user might have changed or reset their password.",
            )
        scopes = form.get("scope", "").split() or rt.scopes
        if self.rotate_refresh_tokens:
            rt.rotated = True
            new_rt = self._new_refresh_token(rt.user, app.client_id, scopes, tenant)
        else:
            new_rt = presented
        return self._user_token_response(rt.user, app.client_id, scopes, tenant, new_rt)

    def _grant_device_code(self, form: dict[str, str]) -> dict[str, Any]:
        flow = self._device_flows.get(form.get("device_code", ""))
        if flow is None or flow.redeemed:
            raise _OAuthError(
                "invalid_grant", 70000, "The provided value for the 'device_code' is not valid."
            )
        if flow.expires_at <= time.time():
            raise _OAuthError("expired_token", 70020, "The provided authorization code expired.")
        if flow.denied:
            raise _OAuthError(
                "authorization_declined",
                70019,
                "The end user declined the authorization request.",
            )
        if flow.user is None:
            raise _OAuthError(
                "authorization_pending",
                70016,
                "OAuth 2.0 device flow error. Authorization is pending. Continue polling.",
            )
        flow.redeemed = True
        scopes = flow.scopes
        refresh = self._new_refresh_token(flow.user, flow.client_id, scopes, flow.tenant)
        return self._user_token_response(flow.user, flow.client_id, scopes, flow.tenant, refresh)

    def _new_refresh_token(self, user: str, client_id: str, scopes: list[str], tenant: str) -> str:
        token = "emu-rt." + secrets.token_urlsafe(48)
        self._refresh_tokens[token] = _RefreshToken(user, client_id, list(scopes), tenant)
        return token

    def _user_token_response(
        self, user: str, client_id: str, scopes: list[str], tenant: str, refresh_token: str
    ) -> dict[str, Any]:
        tid = self._tenant_id(tenant)
        oid = self._user_oid(user)
        now = int(time.time())
        claims = {
            "aud": client_id,
            "iss": f"{self.authority_host}/{tid}/v2.0",
            "iat": now,
            "nbf": now,
            "exp": now + self.access_token_lifetime,
            "name": user.split("@")[0],
            "oid": oid,
            "preferred_username": user,
            "sub": _b64url(f"{oid}:{client_id}".encode()),
            "tid": tid,
            "ver": "2.0",
        }
        # Unsigned JWT (alg "none"): msal reads the claims without validating a signature.
        header = _b64url(json.dumps({"alg": "none", "typ": "JWT"}).encode())
        id_token = f"{header}.{_b64url(json.dumps(claims).encode())}."
        api_scopes = [s for s in scopes if s.lower() not in _RESERVED_SCOPES]
        return {
            "token_type": "Bearer",
            "scope": " ".join(api_scopes),
            "expires_in": self.access_token_lifetime,
            "ext_expires_in": self.access_token_lifetime,
            "access_token": self._new_access_token("delegated", user, client_id),
            "refresh_token": refresh_token,
            "id_token": id_token,
            # msal caches an account only when client_info (uid/utid) is present.
            "client_info": _b64url(json.dumps({"uid": oid, "utid": tid}).encode()),
        }


class _IdentityHandler(QuietHandler):
    emulator: IdentityEmulator  # set on the per-server subclass
    timeout = 60

    def _send_json(self, status: int, payload: dict[str, Any]) -> None:
        data = json.dumps(payload).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-store, no-cache")
        self.end_headers()
        self.wfile.write(data)

    def _send_oauth_error(self, err: _OAuthError) -> None:
        trace_id = str(uuid.uuid4())
        correlation_id = self.headers.get("client-request-id") or str(uuid.uuid4())
        stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%SZ")
        self._send_json(
            err.status,
            {
                "error": err.error,
                "error_description": (
                    f"AADSTS{err.aadsts}: {err.description}\r\nTrace ID: {trace_id}\r\n"
                    f"Correlation ID: {correlation_id}\r\nTimestamp: {stamp}"
                ),
                "error_codes": [err.aadsts],
                "timestamp": stamp,
                "trace_id": trace_id,
                "correlation_id": correlation_id,
            },
        )

    def _not_found(self) -> None:
        self._send_json(
            HTTPStatus.NOT_FOUND,
            {"error": "not_found", "error_description": f"No route for {self.path}"},
        )

    def do_GET(self) -> None:
        """Serve the OpenID discovery document."""
        parts = urlsplit(self.path).path.strip("/").split("/")
        if len(parts) == 4 and parts[1:] == ["v2.0", ".well-known", "openid-configuration"]:
            self._send_json(200, self.emulator.openid_configuration(parts[0]))
        else:
            self._not_found()

    def do_POST(self) -> None:
        """Serve the token and device-code endpoints."""
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length).decode("utf-8") if length else ""
        form = {k: v[0] for k, v in parse_qs(raw, keep_blank_values=True).items()}
        parts = urlsplit(self.path).path.strip("/").split("/")
        if len(parts) != 4 or parts[1:3] != ["oauth2", "v2.0"]:
            self._not_found()
            return
        tenant, endpoint = parts[0], parts[3]
        try:
            if endpoint == "token":
                self._send_json(200, self.emulator.token(tenant, form))
            elif endpoint == "devicecode":
                self._send_json(200, self.emulator.device_authorization(tenant, form))
            else:
                self._not_found()
        except _OAuthError as err:
            self._send_oauth_error(err)
        except Exception as exc:
            # An emulator bug: surface it as a server error and keep it for the test to see.
            self.emulator.internal_errors.append(exc)
            self._send_json(500, {"error": "server_error", "error_description": repr(exc)})


class RoutingSession(requests.Session):
    """A ``requests.Session`` that sends ``https://login.emulator.test`` to the emulator.

    Pass it to msal as ``http_client``; msal then makes no TLS connection. Any other URL is
    requested unchanged, so one session can serve msal and ordinary traffic.
    """

    def __init__(self, identity: IdentityEmulator) -> None:
        """Bind the session to a started :class:`IdentityEmulator`."""
        super().__init__()
        self._identity = identity

    def rewrite(self, url: str) -> str:
        """Map an ``authority_host`` URL onto the emulator's ``http://127.0.0.1:PORT``."""
        prefix = self._identity.authority_host
        if url.startswith(prefix + "/") or url == prefix:
            return self._identity.base_url + url[len(prefix) :]
        return url

    def request(
        self, method: str | bytes, url: str | bytes, *args: Any, **kwargs: Any
    ) -> requests.Response:
        """Send the request after rewriting the emulator's https host to its local address."""
        verb = method.decode() if isinstance(method, bytes) else method
        target = url.decode() if isinstance(url, bytes) else url
        return super().request(verb, self.rewrite(target), *args, **kwargs)
