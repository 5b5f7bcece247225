"""/hooks/webdav/<channel>/<token> over real HTTP: the token and the VAPID signature are
checked, forgeries and strangers make no cycle, hostile input is bounded."""

from __future__ import annotations

import base64
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
import pytest
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from syncd.http.vapid import vapid_problem
from syncd.store.channels import ChannelStore
from tests.http.conftest import Running

TOKEN = "tok-" + "a" * 40
ENCRYPTED = bytes(range(256)) * 2  # what an aes128gcm message looks like: opaque bytes


def _key() -> tuple[ec.EllipticCurvePrivateKey, str]:
    private = ec.generate_private_key(ec.SECP256R1())
    point = private.public_key().public_bytes(serialization.Encoding.X962,
                                              serialization.PublicFormat.UncompressedPoint)
    return private, base64.urlsafe_b64encode(point).rstrip(b"=").decode()


SERVER_KEY, SERVER_PUBLIC = _key()
OTHER_KEY, OTHER_PUBLIC = _key()


def _vapid(audience: str, *, key: ec.EllipticCurvePrivateKey = SERVER_KEY,
           public: str = SERVER_PUBLIC, exp: float | None = None,
           scheme: str = "vapid") -> str:
    claims: dict[str, Any] = {"aud": audience, "sub": "mailto:admin@example.com",
                              "exp": int(exp if exp is not None else time.time() + 3600)}
    token = jwt.encode(claims, key, algorithm="ES256")
    return f"vapid t={token},k={public}" if scheme == "vapid" else f"WebPush {token}"


def _channel(running: Running, *, vapid: bool = True, account: str = "alice-cal",
             channel_id: str = "ch1") -> str:
    """Save a WebDAV-Push channel for ``account``; its push resource URL."""
    ChannelStore(running.dirty.db).save(
        account, "webdav", channel_id=channel_id, token=TOKEN,
        resource_id="http://dav.example/.subscriptions/s1",
        expires_at=datetime.now(UTC) + timedelta(days=1),
        details={"vapid_key": SERVER_PUBLIC if vapid else None,
                 "audience": running.receiver.url})
    return f"{running.receiver.url}/hooks/webdav/{channel_id}/{TOKEN}"


def _post(url: str, authorization: str | None = None, body: bytes = ENCRYPTED
          ) -> requests.Response:
    headers = {"Content-Encoding": "aes128gcm", "TTL": "60"}
    if authorization is not None:
        headers["Authorization"] = authorization
    return requests.post(url, data=body, headers=headers, timeout=10)


def test_a_signed_delivery_with_its_token_is_answered_201_and_flags_its_account(
        running: Running) -> None:
    url = _channel(running)
    answer = _post(url, _vapid(running.receiver.url))
    assert answer.status_code == 201
    assert running.receiver.hints.settle()
    assert running.dirty.flagged() == {"alice-cal"}
    assert running.woken == [{"alice-cal"}]
    assert running.receiver.webdav.counts == {"accepted": 1}
    row = ChannelStore(running.dirty.db).get("alice-cal")
    assert row is not None and row.last_message_at is not None


def test_the_older_webpush_scheme_is_checked_against_the_stored_key(running: Running) -> None:
    url = _channel(running)
    assert _post(url, _vapid(running.receiver.url, scheme="webpush")).status_code == 201
    forged = _vapid(running.receiver.url, key=OTHER_KEY, scheme="webpush")
    assert _post(url, forged).status_code == 401


def test_forged_deliveries_are_refused_counted_and_make_no_cycle(running: Running) -> None:
    url = _channel(running)
    audience = running.receiver.url
    base = url.rsplit("/", 1)[0]
    answers = [
        _post(f"{base}/{'b' * 44}", _vapid(audience)),  # wrong token
        _post(url),  # no signature although the server signs
        _post(url, _vapid(audience, key=OTHER_KEY, public=OTHER_PUBLIC)),  # another key
        _post(url, _vapid(audience, key=OTHER_KEY)),  # claims our key, signed by another
        _post(url, _vapid("https://elsewhere.example")),  # another audience
        _post(url, _vapid(audience, exp=time.time() - 3600)),  # expired
        _post(url, _vapid(audience, exp=time.time() + 7 * 86400)),  # too long a lifetime
        _post(url, "vapid t=not.a.jwt,k=" + SERVER_PUBLIC),
        _post(url, "Bearer " + "x" * 50),
        _post(url, "vapid " + "t=" * 3000),  # huge
    ]
    assert [a.status_code for a in answers] == [403] + [401] * 9
    assert running.receiver.webdav.counts == {"forged": 10}
    assert running.receiver.hints.settle()
    assert running.dirty.flagged() == set() and running.woken == []


def test_a_channel_whose_server_signs_nothing_is_verified_by_its_token_alone(
        running: Running) -> None:
    url = _channel(running, vapid=False)
    assert _post(url).status_code == 201
    assert _post(url.rsplit("/", 1)[0] + "/wrong").status_code == 403
    assert running.receiver.webdav.counts == {"accepted": 1, "forged": 1}


def test_an_unknown_channel_is_answered_202_counted_and_makes_no_cycle(
        running: Running) -> None:
    """202, not Web Push's 404/410: those make the server delete the subscription, and
    an id not saved yet (registered a moment ago) would lose a live channel."""
    _channel(running)
    answer = _post(f"{running.receiver.url}/hooks/webdav/nochannel/{TOKEN}",
                   _vapid(running.receiver.url))
    assert answer.status_code == 202
    assert running.receiver.webdav.counts == {"unknown_channel": 1}
    assert running.receiver.hints.settle()
    assert running.dirty.flagged() == set()


@pytest.mark.parametrize("tail", [
    "", "/", "/ch1", f"/ch1/{TOKEN}/extra", f"/../pipedrive/{TOKEN}", f"/ch1/..%2F{TOKEN}",
    f"/ch1/{TOKEN}%00", f"/{'c' * 200}/{TOKEN}", f"/ch1/{TOKEN};x", "/ch1//", "/%2e%2e/x",
    f"/ch%C3%A91/{TOKEN}",
])
def test_paths_that_are_no_channel_are_404_and_make_no_cycle(running: Running,
                                                              tail: str) -> None:
    _channel(running)
    answer = _post(f"{running.receiver.url}/hooks/webdav{tail}", _vapid(running.receiver.url))
    assert answer.status_code in (404, 400)
    assert running.receiver.webdav.counts["accepted"] == 0
    assert running.receiver.hints.settle()
    assert running.dirty.flagged() == set()


def test_a_body_over_the_hooks_cap_is_refused_with_413(running: Running) -> None:
    url = _channel(running)
    answer = _post(url, _vapid(running.receiver.url), body=b"x" * (8 * 1024 + 1))
    assert answer.status_code == 413
    assert running.receiver.webdav.counts["accepted"] == 0


def test_only_post_is_answered(running: Running) -> None:
    url = _channel(running)
    assert requests.get(url, timeout=10).status_code == 405


def test_the_signature_check_uses_the_injected_clock() -> None:
    audience = "https://syncd.example"
    now = 2_000_000_000.0
    header = _vapid(audience, exp=now + 600)
    assert vapid_problem(header, SERVER_PUBLIC, audience, clock=lambda: now) is None
    assert vapid_problem(header, SERVER_PUBLIC, audience,
                         clock=lambda: now + 3600) == "the signature has expired"
    assert vapid_problem(header, SERVER_PUBLIC, audience,
                         clock=lambda: now - 2 * 86400) == \
        "the signature claims too long a lifetime"
    assert vapid_problem(None, SERVER_PUBLIC, audience) == "no VAPID Authorization"
    assert vapid_problem(header, "!!", audience, clock=lambda: now) is not None
    unsigned = jwt.encode({"aud": audience, "exp": int(now + 60)}, "k" * 32, algorithm="HS256")
    assert vapid_problem(f"vapid t={unsigned},k={SERVER_PUBLIC}", SERVER_PUBLIC, audience,
                         clock=lambda: now) == "the signature does not verify"
    no_exp = jwt.encode({"aud": audience}, SERVER_KEY, algorithm="ES256")
    assert vapid_problem(f"vapid t={no_exp}", SERVER_PUBLIC, audience,
                         clock=lambda: now) == "the signature does not verify"
