"""Recognising changed credentials without keeping them.

When a provider refuses an account's credentials the account waits in ``needs_reauth``
instead of knocking with them every cycle (a server may lock the user out). Fixing the
secret must be enough to bring it back, with no hidden ``resume`` step: so the state
keeps a fingerprint of the credentials that were refused, and a cycle whose credentials
no longer match it tries again.

The fingerprint is a salted scrypt hash of the account's provider, its auth options
and every secret they reference, resolved. Never the secret itself: the database holds
notes and tokens, but a CalDAV password is often a person's real password, and scrypt
makes guessing it from a stolen database slow. Costs one scrypt (~16 MiB, tens of
milliseconds) per cycle of an account that is waiting, none for the others.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
from typing import TYPE_CHECKING

from syncd.errors import SecretUnavailable

if TYPE_CHECKING:
    from syncd.config import AccountConfig

_N, _R, _P = 2**14, 8, 1  # scrypt cost: 16 MiB of memory per hash
_SCHEME = "scrypt1"


def _credentials(account: AccountConfig) -> bytes | None:
    """What the provider checks, secrets resolved; None while a secret cannot be read."""
    values: dict[str, str] = {"provider": account.provider}
    for key, value in account.auth.items():
        resolve = getattr(value, "resolve", None)
        try:
            values[key] = resolve() if callable(resolve) else str(value)
        except SecretUnavailable:
            return None
    return json.dumps(values, sort_keys=True).encode()


def _hash(secret: bytes, salt: bytes) -> bytes:
    return hashlib.scrypt(secret, salt=salt, n=_N, r=_R, p=_P, dklen=32)


def fingerprint(account: AccountConfig) -> str | None:
    """A fresh fingerprint of ``account``'s credentials (None if a secret is unreadable)."""
    secret = _credentials(account)
    if secret is None:
        return None
    salt = os.urandom(16)
    return f"{_SCHEME}${salt.hex()}${_hash(secret, salt).hex()}"


def changed_since(stored: str | None, account: AccountConfig) -> bool:
    """True when ``account``'s credentials are not the ones ``stored`` was made from.

    No fingerprint at all (an account waiting since before they were kept, or refused
    while a secret could not be read) is one more try: its failure stores one, so the
    same credentials are not tried again. Credentials that cannot be read now, or a
    fingerprint of an unknown scheme, mean "not changed".
    """
    if not stored:
        return _credentials(account) is not None
    scheme, _, rest = stored.partition("$")
    salt_hex, _, digest_hex = rest.partition("$")
    secret = _credentials(account)
    if scheme != _SCHEME or secret is None:
        return False
    try:
        salt, digest = bytes.fromhex(salt_hex), bytes.fromhex(digest_hex)
    except ValueError:
        return False
    return not hmac.compare_digest(_hash(secret, salt), digest)
