"""Provider tokens obtained at run time, encrypted at rest with Fernet.

The key never lives in the database: it comes from ``[syncd] state_key`` (``env:`` or
``file:``), so a copy of the database alone reveals no token. ``MultiFernet`` would let a
key be rotated later; one key is enough to start.
"""

from __future__ import annotations

from cryptography.fernet import Fernet, InvalidToken
from sqlalchemy import select

from syncd.config_types import SecretRef
from syncd.errors import SecretUnavailable
from syncd.redact import register_secret
from syncd.store.base import utcnow
from syncd.store.db import Database
from syncd.store.state_tables import SyncCredential


class CredentialStore:
    """get/put of one secret string per (account, kind), e.g. ("alice", "refresh_token")."""

    def __init__(self, db: Database, key: SecretRef | None) -> None:
        self.db = db
        self.key = key
        self._fernet: Fernet | None = None

    @property
    def can_encrypt(self) -> bool:
        """Whether a key is configured: without one nothing is stored (callers that
        only cache, like the Outlook token cache, then keep tokens in memory)."""
        return self.key is not None

    def _cipher(self) -> Fernet:
        if self._fernet is None:
            if self.key is None:
                raise SecretUnavailable(ref="[syncd] state_key",
                                        reason="no key is configured for stored tokens")
            try:
                self._fernet = Fernet(self.key.resolve().encode())
            except ValueError:
                raise SecretUnavailable(
                    ref=self.key.ref, reason="not a Fernet key (32 url-safe base64 bytes)"
                ) from None
        return self._fernet

    def get(self, account: str, kind: str) -> str | None:
        with self.db.session() as s:
            row = s.get(SyncCredential, (account, kind))
            if row is None:
                return None
            try:
                value = self._cipher().decrypt(row.ciphertext.encode()).decode()
            except InvalidToken:
                raise SecretUnavailable(ref=f"stored {kind} of {account}",
                                        reason="it was encrypted with another key") from None
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
