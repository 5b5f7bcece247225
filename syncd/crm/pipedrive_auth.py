"""Credentials for Pipedrive: an API token, or OAuth 2 with a refresh token.

* **API token** (a user's personal token): sent in the ``x-api-token`` header, never in
  the query string, so it cannot end up in a URL that is logged.
* **OAuth 2**: the app's client id and secret and an installed app's refresh token. An
  access token is fetched from the token endpoint (``https://oauth.pipedrive.com/oauth/token``
  by default) with ``grant_type=refresh_token`` and HTTP Basic client authentication, and
  fetched again shortly before it expires or after a 401. The answer's ``api_domain`` is
  the company's API base. A refresh token the endpoint rotates is kept for the process.

Secrets arrive resolved (from ``env:``/``file:`` references, registered with the log
redactor by :class:`syncd.config.SecretRef`); nothing here logs them.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import requests

from syncd.config_checks import is_loopback
from syncd.crm.pipedrive_http import _read_capped, pipedrive_session
from syncd.errors import AnswerTooLarge, AuthFailed, Unreachable
from syncd.network import network_reason
from syncd.redact import register_secret
from syncd.safe_json import loads

TOKEN_URL = "https://oauth.pipedrive.com/oauth/token"
#: Bytes a token answer may take (it is a few hundred); past it the refresh fails.
MAX_TOKEN_BYTES = 1024 * 1024
#: Refresh this many seconds before the access token's end.
EARLY_SECONDS = 120.0


class ApiToken:
    """A personal API token in the ``x-api-token`` header."""

    def __init__(self, token: str) -> None:
        self._token = token

    def __repr__(self) -> str:
        return "ApiToken(<secret>)"

    def headers(self) -> dict[str, str]:
        return {"x-api-token": self._token}

    def refresh(self) -> bool:
        return False  # a refused API token stays refused: the admin must replace it


class OAuthTokens:
    """OAuth 2 access tokens from a refresh token (thread-safe)."""

    def __init__(self, client_id: str, client_secret: str, refresh_token: str, *,
                 token_url: str = TOKEN_URL, session: requests.Session | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._client = (client_id, client_secret)
        self._refresh_token = refresh_token
        self.token_url = token_url
        self.session = pipedrive_session(session)
        self.clock = clock
        self.api_domain: str | None = None
        self._access: str | None = None
        self._expires = 0.0
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return "OAuthTokens(<secret>)"

    def _trusted_base(self, api_domain: str) -> bool:
        """Whether every request's bearer token may go to ``api_domain``: an https://
        origin with no user part; plain http:// only to a loopback host, and only when
        the token endpoint itself is a loopback test server on http://."""
        try:
            parts = urlsplit(api_domain)
            parts.port  # noqa: B018 -- raises for a port that is not one
        except ValueError:
            return False
        if not parts.hostname or parts.username is not None or parts.query or parts.fragment:
            return False
        if parts.scheme == "https":
            return True
        token = urlsplit(self.token_url)
        return (parts.scheme == "http" and is_loopback(parts.hostname)
                and token.scheme == "http" and is_loopback(token.hostname or ""))

    def headers(self) -> dict[str, str]:
        with self._lock:
            if self._access is None or self.clock() >= self._expires - EARLY_SECONDS:
                self._fetch()
            return {"Authorization": f"Bearer {self._access}"}

    def refresh(self) -> bool:
        with self._lock:
            self._fetch()
        return True

    def _fetch(self) -> None:
        try:
            with self.session.post(
                    self.token_url, auth=self._client, timeout=30, stream=True,
                    data={"grant_type": "refresh_token",
                          "refresh_token": self._refresh_token}) as response:
                raw = _read_capped(response, MAX_TOKEN_BYTES)
        except requests.RequestException as exc:
            raise Unreachable(reason=network_reason(exc), url=self.token_url, status=0) from None
        if raw is None:
            raise AnswerTooLarge(url=self.token_url, limit=MAX_TOKEN_BYTES,
                                 reason=f"it sent more than {MAX_TOKEN_BYTES:,} bytes")
        body: Any = None
        try:
            body = loads(raw)
        except ValueError:
            body = None
        if response.status_code != 200 or not isinstance(body, dict) or not isinstance(
                body.get("access_token"), str):
            code = body.get("error") if isinstance(body, dict) else None
            raise AuthFailed(reason=f"Pipedrive's token endpoint answered HTTP "
                                    f"{response.status_code}"
                                    + (f" {code}" if isinstance(code, str) else ""))
        self._access = body["access_token"]
        register_secret(body["access_token"])
        if isinstance(body.get("refresh_token"), str) and body["refresh_token"]:
            self._refresh_token = body["refresh_token"]
            register_secret(body["refresh_token"])
        if isinstance(body.get("api_domain"), str) and body["api_domain"]:
            if not self._trusted_base(body["api_domain"]):
                self._access = None
                raise AuthFailed(reason="Pipedrive's token answer named an api_domain that "
                                        "is not an https:// address; the token is not sent "
                                        "there")
            self.api_domain = body["api_domain"].rstrip("/")
        expires_in = body.get("expires_in")
        ttl = float(expires_in) if isinstance(expires_in, int | float) else 3600.0
        self._expires = self.clock() + ttl
