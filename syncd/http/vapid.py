"""Checking a Web Push sender's VAPID signature (RFC 8292).

A WebDAV-Push server that advertises a VAPID public key signs every delivery: its
``Authorization`` is ``vapid t=<JWT>, k=<public key>`` (or the older ``WebPush <JWT>``),
the JWT signed with ES256, naming the push resource's origin as ``aud`` and an ``exp``
at most 24 hours ahead. :func:`vapid_problem` says what is wrong with one, or None.
"""

from __future__ import annotations

import base64
import time
from collections.abc import Callable

import jwt
from cryptography.hazmat.primitives.asymmetric import ec

MAX_HEADER = 2048  # a VAPID Authorization is some 400 characters
MAX_LIFETIME = 24 * 3600  # RFC 8292 section 2: exp no more than 24 hours ahead
LEEWAY = 60  # seconds of clock difference tolerated


def vapid_problem(header: str | None, key: str, audience: str, *,
                  clock: Callable[[], float] = time.time) -> str | None:
    """Why ``header`` is not a valid signature by ``key`` (base64url P-256 point) for
    ``audience`` (our origin); None when it is."""
    if not header:
        return "no VAPID Authorization"
    if len(header) > MAX_HEADER:
        return "the Authorization is too long"
    scheme, _, rest = header.strip().partition(" ")
    if scheme.lower() == "vapid":
        params = dict(part.strip().partition("=")[::2] for part in rest.split(","))
        token, named = params.get("t", ""), params.get("k")
        if named is not None and named.strip() != key:
            return "signed with another key"
    elif scheme.lower() == "webpush":
        token = rest.strip()
    else:
        return "not a VAPID Authorization"
    try:
        public = ec.EllipticCurvePublicKey.from_encoded_point(
            ec.SECP256R1(), base64.urlsafe_b64decode(key + "=" * (-len(key) % 4)))
    except ValueError:
        return "the stored VAPID key is unusable"
    try:  # the expiry is checked below, against ``clock``
        claims = jwt.decode(token, public, algorithms=["ES256"], audience=audience,
                            options={"require": ["exp", "aud"], "verify_exp": False,
                                     "verify_iat": False, "verify_nbf": False})
    except jwt.InvalidAudienceError:
        return "the signature names another audience"
    except (jwt.InvalidTokenError, ValueError):
        return "the signature does not verify"
    exp, now = claims.get("exp"), clock()
    if not isinstance(exp, int | float) or isinstance(exp, bool):
        return "the signature does not verify"
    if exp < now - LEEWAY:
        return "the signature has expired"
    if exp > now + MAX_LIFETIME + LEEWAY:
        return "the signature claims too long a lifetime"
    return None
