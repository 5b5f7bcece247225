"""A tiny OAuth 2.0 token endpoint on 127.0.0.1 for the credential tests.

It answers the three grants syncd uses: the service account's JWT bearer assertion, the
refresh-token grant and the authorisation-code grant (with PKCE). Everything it receives
is recorded, so tests can check what was asked for. The code grant answers with an
unsigned id_token for ``signed_in_as`` (None: no id_token at all).
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

from connectors.google_auth import SCOPE
from syncd_testkit.loopback import QuietHandler, ThreadedHTTPServer
from tests.google.helpers import OWNER

JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"


def _b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")


def unsigned_id_token(email: str, **claims: Any) -> str:
    """An OpenID Connect id_token with ``alg: none`` (the connector does not check it)."""
    payload = {"iss": "https://accounts.google.com", "aud": "cid.apps.googleusercontent.com",
               "sub": "1234567890", "email": email, "email_verified": True, **claims}
    return f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{_b64(payload)}."


@dataclass
class TokenStub(ThreadedHTTPServer):
    """Token endpoint state: which refresh tokens are revoked, what a code grants."""

    revoked: set[str] = field(default_factory=lambda: {"rt-revoked"})
    rotate_to: str | None = None
    code_scope: str = f"openid https://www.googleapis.com/auth/userinfo.email {SCOPE}"
    signed_in_as: str | None = OWNER
    forms: list[dict[str, str]] = field(default_factory=list)
    issued: int = 0
    pad_bytes: int = 0  # > 0: every answer carries this many bytes of padding (hostile)

    def handler(self) -> type[QuietHandler]:
        stub = self

        class Handler(QuietHandler):
            def do_POST(self) -> None:
                form = {k: v[0] for k, v in parse_qs(self.read_body().decode()).items()}
                status, payload = stub.answer(form)
                if stub.pad_bytes:
                    payload["padding"] = "x" * stub.pad_bytes
                self.reply(status, json.dumps(payload).encode(), content_type="application/json")

        return Handler

    @property
    def url(self) -> str:
        return f"{self.origin}/token"

    def claims(self) -> list[dict[str, Any]]:
        """The decoded payloads of every JWT assertion received."""
        out = []
        for form in self.forms:
            if form.get("grant_type") == JWT_BEARER:
                payload = form["assertion"].split(".")[1]
                padded = payload + "=" * (-len(payload) % 4)
                out.append(json.loads(base64.urlsafe_b64decode(padded)))
        return out

    def answer(self, form: dict[str, str]) -> tuple[int, dict[str, Any]]:
        self.forms.append(form)
        self.issued += 1
        grant = form.get("grant_type")
        token = {"access_token": f"access-{self.issued}", "expires_in": 3600,
                 "token_type": "Bearer"}
        if grant == JWT_BEARER:
            return 200, token
        if grant == "refresh_token":
            if form.get("refresh_token") in self.revoked:
                return 400, {"error": "invalid_grant",
                             "error_description": "Token has been expired or revoked."}
            extra = {"refresh_token": self.rotate_to} if self.rotate_to else {}
            return 200, {**token, "scope": SCOPE, **extra}
        if grant == "authorization_code":
            if form.get("code") != "good-code":
                return 400, {"error": "invalid_grant", "error_description": "Bad code."}
            identity = ({"id_token": unsigned_id_token(self.signed_in_as)}
                        if self.signed_in_as else {})
            return 200, {**token, "refresh_token": "rt-from-code", "scope": self.code_scope,
                         **identity}
        return 400, {"error": "unsupported_grant_type"}
