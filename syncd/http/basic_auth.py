"""A generated Basic-auth secret for one provider's webhooks, in a private file.

Pipedrive signs nothing: the only proof a delivery is genuine is the user name and
password syncd gave it when the webhook was installed (``syncd pipedrive webhooks
install``). The password is random (256 bits), lives in ``data_dir/webhooks/<provider>
.secret`` (0600, in a 0700 folder) and nowhere else in syncd: it is registered with the
log redactor when read, never printed, and compared in constant time.

A new install writes a new password; a running daemon notices the file changed and checks
against the new one from its next request.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import os
import secrets
import threading
from pathlib import Path

from syncd.redact import register_secret

USER = "syncd"  # the user name providers send; the password is the secret
PASSWORD_BYTES = 32


class BasicAuthSecret:
    """The webhook secret of one provider under ``data_dir`` (``folder``: another
    listener's secret, such as ``http/metrics.secret``)."""

    def __init__(self, data_dir: Path, provider: str, *, folder: str = "webhooks") -> None:
        self.path = data_dir / folder / f"{provider}.secret"
        self._lock = threading.Lock()
        self._seen: tuple[int, int] | None = None  # (mtime_ns, inode) of the file read
        self._expected: bytes | None = None

    def create(self) -> tuple[str, str]:
        """A new password, written atomically (0600); returns (user, password)."""
        user, password = self.new()
        self.write(password)
        return user, password

    @staticmethod
    def new() -> tuple[str, str]:
        """A new (user, password), not written yet (see :meth:`write`)."""
        password = secrets.token_urlsafe(PASSWORD_BYTES)
        register_secret(password)
        return USER, password

    def delete(self) -> None:
        """Forget the secret: every delivery is refused from then on."""
        self.path.unlink(missing_ok=True)

    def write(self, password: str) -> None:
        """Make ``password`` the one deliveries must carry (atomically, 0600)."""
        folder = self.path.parent
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        folder.chmod(0o700)  # made earlier, or by someone else, with a wider mode
        temporary = self.path.with_name(self.path.name + ".new")
        # A leftover temporary (a crash before the rename) keeps its mode when truncated,
        # and may be a link: start from a new file of our own.
        temporary.unlink(missing_ok=True)
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(password + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, self.path)

    def read(self) -> tuple[str, str] | None:
        """(user, password), or None when no secret was created yet."""
        try:
            password = self.path.read_text(encoding="utf-8").strip()
        except FileNotFoundError:
            return None
        if not password:
            return None
        register_secret(password)
        return USER, password

    def accepts(self, authorization: str | None) -> bool:
        """Whether an ``Authorization`` header carries this secret (constant time)."""
        expected = self._current()
        if expected is None or not authorization:
            return False
        scheme, _, encoded = authorization.strip().partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            given = base64.b64decode(encoded.strip(), validate=True)
        except (binascii.Error, ValueError):
            return False
        return hmac.compare_digest(given, expected)

    def _current(self) -> bytes | None:
        try:
            info = self.path.stat()
        except FileNotFoundError:
            return None
        stamp = (info.st_mtime_ns, info.st_ino)
        with self._lock:
            if stamp != self._seen:
                found = self.read()
                self._expected = f"{found[0]}:{found[1]}".encode() if found else None
                self._seen = stamp
            return self._expected
