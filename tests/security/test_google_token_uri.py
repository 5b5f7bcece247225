"""A Google key or OAuth client file names the token endpoint its grants go to (a signed
assertion, or the refresh token with the client secret). The config's own ``token_uri``
passes the TLS check; the file's is held to it too: https://, or http:// to loopback (a
test server)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from connectors.google_auth import client_config, service_account_credentials
from syncd.config_types import SecretRef
from syncd.errors import AuthFailed

HOSTILE = ["http://evil.example/token", "http://oauth2.googleapis.com/token",
           "ftp://oauth2.googleapis.com/token", "file:///etc/passwd", "//evil.example/token",
           "https://user:pw@evil.example/token", "http://localhost.evil.example/token"]


def _key(token_uri: str) -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption()).decode()
    return json.dumps({"type": "service_account", "project_id": "p", "private_key": pem,
                       "client_email": "syncd@p.iam.gserviceaccount.com",
                       "token_uri": token_uri})


@pytest.mark.parametrize("token_uri", HOSTILE)
def test_a_service_account_key_naming_a_token_endpoint_in_clear_is_refused(
        token_uri: str) -> None:
    with pytest.raises(AuthFailed):
        service_account_credentials(_key(token_uri), subject="a@x.com")


@pytest.mark.parametrize("token_uri", ["https://oauth2.googleapis.com/token",
                                       "http://127.0.0.1:8080/token"])
def test_https_or_a_loopback_test_endpoint_is_taken(token_uri: str) -> None:
    assert service_account_credentials(_key(token_uri), subject="a@x.com")


def test_the_configs_checked_token_uri_replaces_the_files(tmp_path: Path) -> None:
    creds = service_account_credentials(_key("http://evil.example/token"), subject="a@x.com",
                                        token_uri="https://oauth2.googleapis.com/token")
    assert creds._token_uri == "https://oauth2.googleapis.com/token"  # type: ignore[attr-defined]


@pytest.mark.parametrize("token_uri", HOSTILE)
def test_an_oauth_client_file_naming_a_token_endpoint_in_clear_is_refused(
        tmp_path: Path, token_uri: str) -> None:
    path = tmp_path / "client.json"
    path.write_text(json.dumps({"installed": {"client_id": "id", "client_secret": "s3cr3t",
                                              "token_uri": token_uri}}))
    with pytest.raises(AuthFailed):
        client_config(SecretRef(f"file:{path}"))
