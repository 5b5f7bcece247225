"""Pipedrive's OAuth token endpoint (``https://oauth.pipedrive.com/oauth/token``), emulated at
``/oauth/token`` on the emulator's own port.

Facts: the client authenticates with HTTP Basic ``client_id:client_secret`` and posts a form
(``grant_type=authorization_code&code=...&redirect_uri=...`` or
``grant_type=refresh_token&refresh_token=...``); the answer carries ``access_token``,
``token_type`` ``Bearer``, ``refresh_token``, ``scope``, ``expires_in`` and ``api_domain``,
which becomes the API base. Access tokens last about an hour (``expires_in`` 3599).

[emulator choices]: error bodies follow RFC 6749 (``{"error": "invalid_grant", ...}``) with
401 for bad client credentials and 400 for a bad grant; a refresh returns the same refresh
token; the token endpoint costs no API tokens.
"""

from __future__ import annotations

import base64
import binascii
import secrets
import threading
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import parse_qs

from .pipedrive_model import JsonDict

ACCESS_TTL = 3599
# (user id, scopes, ttl seconds) -> a new access token
Issuer = Callable[[int, tuple[str, ...], float], str]


@dataclass(frozen=True)
class _Grant:
    client_id: str
    user_id: int
    scopes: tuple[str, ...]


class OAuthServer:
    """Registered apps, their grants, and the token endpoint."""

    def __init__(self, issue: Issuer) -> None:
        self._issue = issue
        self._clients: dict[str, str] = {}
        self._codes: dict[str, _Grant] = {}
        self._refresh: dict[str, _Grant] = {}
        self._lock = threading.Lock()
        self.api_domain = ""

    def register_app(self, client_id: str, client_secret: str) -> None:
        """Register a Marketplace app's credentials."""
        with self._lock:
            self._clients[client_id] = client_secret

    def authorize(self, client_id: str, user_id: int, scopes: tuple[str, ...]) -> str:
        """What the user's consent produces: an authorization code for ``client_id``."""
        code = secrets.token_urlsafe(16)
        with self._lock:
            self._codes[code] = _Grant(client_id, user_id, scopes)
        return code

    def refresh_token(self, client_id: str, user_id: int, scopes: tuple[str, ...]) -> str:
        """A refresh token as if the app had been installed (skips the code step)."""
        token = secrets.token_urlsafe(24)
        with self._lock:
            self._refresh[token] = _Grant(client_id, user_id, scopes)
        return token

    def revoke_refresh(self, token: str) -> None:
        """Make a refresh token invalid (the user uninstalled the app)."""
        with self._lock:
            self._refresh.pop(token, None)

    def token(self, headers: dict[str, str], body: bytes) -> tuple[int, JsonDict]:
        """Answer ``POST /oauth/token``: ``(status, JSON body)``."""
        client_id = self._client(headers.get("authorization", ""))
        if client_id is None:
            return 401, {"error": "invalid_client", "error_description": "Invalid client"}
        form = {k: v[-1] for k, v in parse_qs(body.decode("utf-8", "replace")).items()}
        kind = form.get("grant_type")
        with self._lock:
            if kind == "authorization_code":
                grant = self._codes.pop(form.get("code", ""), None)
                refresh = secrets.token_urlsafe(24)
                if grant is not None:
                    self._refresh[refresh] = grant
            elif kind == "refresh_token":
                refresh = form.get("refresh_token", "")
                grant = self._refresh.get(refresh)
            else:
                return 400, {"error": "unsupported_grant_type",
                             "error_description": "grant_type must be authorization_code or "
                                                  "refresh_token"}
        if grant is None or grant.client_id != client_id:
            return 400, {"error": "invalid_grant",
                         "error_description": "The code or refresh token is invalid"}
        access = self._issue(grant.user_id, grant.scopes, ACCESS_TTL)
        return 200, {"access_token": access, "token_type": "Bearer", "refresh_token": refresh,
                     "scope": ",".join(grant.scopes), "expires_in": ACCESS_TTL,
                     "api_domain": self.api_domain}

    def _client(self, authorization: str) -> str | None:
        if authorization[:6].lower() != "basic ":
            return None
        try:
            decoded = base64.b64decode(authorization[6:].strip(), validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            return None
        client_id, _, secret = decoded.partition(":")
        with self._lock:
            known = self._clients.get(client_id)
        return client_id if known is not None and secrets.compare_digest(known, secret) else None
