"""Provider tokens obtained at run time, encrypted at rest with Fernet.

The keys never live in the database: they come from ``[syncd] state_key`` (``env:`` or
``file:`` references), so a copy of the database alone reveals no token. ``state_key``
may list several keys (failure-modes point 3.1, key rotation): the first encrypts, every
one decrypts (cryptography's ``MultiFernet``). Rotating is: put a new key first, restart,
run ``syncd admin rotate-key`` (:meth:`CredentialStore.rotate`, which re-encrypts every
stored token with the first key), then drop the old keys.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from sqlalchemy import select, update

from syncd.config_types import SecretRef
from syncd.errors import SecretUnavailable, StoredSecretUnreadable
from syncd.redact import register_secret
from syncd.store.base import utcnow
from syncd.store.db import Database
from syncd.store.state_tables import SyncCredential

#: Where the keys are configured, as error sentences name it.
KEY_OPTION = "[syncd] state_key"

Keys = SecretRef | Sequence[SecretRef] | None


@dataclass(frozen=True)
class Rotation:
    """What :meth:`CredentialStore.rotate` did: tokens re-encrypted with the first key,
    and those no configured key opens ((account, kind), left as they were)."""

    rotated: int
    unreadable: tuple[tuple[str, str], ...]


def _key_list(keys: Keys) -> tuple[SecretRef, ...]:
    if keys is None:
        return ()
    return (keys,) if isinstance(keys, SecretRef) else tuple(keys)


class CredentialStore:
    """get/put of one secret string per (account, kind), e.g. ("alice", "refresh_token").

    ``keys``: the configured ``state_key`` (one reference, or several: the first
    encrypts, all decrypt); None: nothing can be stored.
    """

    def __init__(self, db: Database, keys: Keys) -> None:
        self.db = db
        self.keys = _key_list(keys)
        self._fernet: MultiFernet | None = None

    @property
    def can_encrypt(self) -> bool:
        """Whether a key is configured: without one nothing is stored (callers that
        only cache, like the Outlook token cache, then keep tokens in memory)."""
        return bool(self.keys)

    def _cipher(self) -> MultiFernet:
        if self._fernet is None:
            if not self.keys:
                raise SecretUnavailable(ref=KEY_OPTION,
                                        reason="no key is configured for stored tokens")
            fernets = []
            for key in self.keys:
                try:
                    fernets.append(Fernet(key.resolve().encode()))
                except ValueError:
                    raise SecretUnavailable(
                        ref=key.ref, reason=f"it is not a Fernet key (32 url-safe base64 "
                                            f"bytes), which {KEY_OPTION} needs") from None
            self._fernet = MultiFernet(fernets)
        return self._fernet

    def get(self, account: str, kind: str) -> str | None:
        with self.db.session() as s:
            row = s.get(SyncCredential, (account, kind))
            if row is None:
                return None
            try:
                value = self._cipher().decrypt(row.ciphertext.encode()).decode()
            except InvalidToken:
                raise StoredSecretUnreadable(account=account, kind=kind,
                                             option=KEY_OPTION) from None
        register_secret(value)
        return value

    def put(self, account: str, kind: str, value: str) -> None:
        """Store (replace) a secret; commits before returning, so a rotated token is kept."""
        register_secret(value)
        token = self._cipher().encrypt(value.encode()).decode()
        with self.db.session() as s:
            row = s.get(SyncCredential, (account, kind))
            if row is None:
                s.add(SyncCredential(account=account, kind=kind, ciphertext=token,
                                     updated_at=utcnow()))
            else:
                row.ciphertext, row.updated_at = token, utcnow()

    def delete(self, account: str, kind: str | None = None) -> None:
        with self.db.session() as s:
            stmt = select(SyncCredential).where(SyncCredential.account == account)
            if kind:
                stmt = stmt.where(SyncCredential.kind == kind)
            for row in s.scalars(stmt):
                s.delete(row)

    def rotate(self) -> Rotation:
        """Re-encrypt every stored token with the first key, so the others can be removed.

        Each token is rewritten only if it is still the one read (a daemon that stored a
        refreshed token meanwhile keeps its own, already under a configured key). A token
        no configured key opens is left as it is and named in the result: it is no more
        readable than before, and nothing is lost.
        """
        cipher = self._cipher()
        with self.db.session() as s:
            rows = s.execute(select(SyncCredential.account, SyncCredential.kind,
                                    SyncCredential.ciphertext)
                             .order_by(SyncCredential.account, SyncCredential.kind)).all()
        rotated, unreadable = 0, []
        for account, kind, ciphertext in rows:
            try:
                fresh = cipher.rotate(ciphertext.encode()).decode()
            except InvalidToken:
                unreadable.append((account, kind))
                continue
            with self.db.session() as s:
                done = s.execute(update(SyncCredential).where(
                    SyncCredential.account == account, SyncCredential.kind == kind,
                    SyncCredential.ciphertext == ciphertext,
                ).values(ciphertext=fresh, updated_at=utcnow()))
                rotated += int(done.rowcount or 0)  # type: ignore[attr-defined]
        return Rotation(rotated, tuple(unreadable))
