"""Who may use the embedded calendar server: users' passwords, syncd's own secret, rights.

Everything lives in ``data_dir/embedded`` (0700, files 0600):

- ``users``: Radicale's htpasswd file. Each CRM user has a line ``e-mail:bcrypt hash``;
  the password itself is generated here, handed back once to be shown, and never stored.
- ``syncd.secret``: the password of syncd's own service user (:data:`SERVICE_USER`), which
  the embedded accounts sync with; its bcrypt hash is in ``users`` like any other.
- ``rights``: Radicale's ``from_file`` rights. A CRM user reads the root and has their own
  principal and calendars only (what Radicale's ``owner_only`` gives); the service user
  reaches every principal and calendar, because it syncs all of them. The service user's
  name has no ``@``, so no CRM user (an e-mail address) can be given its rights.

Logins are lower case (the server is told to lower-case what a client sends), as CRM
addresses compare case-insensitively. Writers take an exclusive lock on ``users.lock`` and
replace the file atomically, so ``syncd user password`` and a running daemon never lose
each other's lines and Radicale never reads half a file.
"""

from __future__ import annotations

import fcntl
import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from syncd.config_types import SecretRef

#: syncd's own login on the embedded server; not an e-mail, so never a CRM user's.
SERVICE_USER = "syncd"
#: 24 URL-safe characters, 144 random bits: beyond guessing, and short of bcrypt's 72 bytes.
PASSWORD_BYTES = 18
#: bcrypt's cost. The passwords are random, not chosen by people, so the hash has no weak
#: password to protect; 2^10 rounds keeps each check Radicale makes near 50 ms.
BCRYPT_ROUNDS = 10

RIGHTS = f"""\
# Written by syncd; rewritten at every start. First matching section wins.
# syncd's service user syncs every user's calendars.
[syncd-root]
user: {SERVICE_USER}
collection:
permissions: R

[syncd-principals]
user: {SERVICE_USER}
collection: [^/]+
permissions: RW

[syncd-calendars]
user: {SERVICE_USER}
collection: [^/]+/[^/]+
permissions: rw

# Everyone else: their own principal and calendars only (Radicale's owner_only).
[owner-root]
user: .+
collection:
permissions: R

[owner-principal]
user: .+
collection: {{user}}
permissions: RW

[owner-calendars]
user: .+
collection: {{user}}/[^/]+
permissions: rw
"""


def login_name(email: str) -> str:
    """The login (and principal name) of a CRM user on the embedded server."""
    return email.strip().lower()


#: Characters the server refuses in a login or a path: ``/`` would make the login a path,
#: and Radicale's own check ("minimal") answers 400 to a name or path holding the others.
#: E-mail addresses may hold ``'``, ``*`` and ``?`` (o'brien@example.com).
REFUSED_CHARACTERS = "/:'\"*?,"


def can_log_in(email: str) -> bool:
    """Whether the server can have this login (see :data:`REFUSED_CHARACTERS`)."""
    name = login_name(email)
    return bool(name) and not any(c in name for c in REFUSED_CHARACTERS) \
        and name != SERVICE_USER


def refused_because(email: str) -> str:
    """Why :func:`can_log_in` is false for ``email``, as a phrase."""
    name = login_name(email)
    found = "".join(dict.fromkeys(c for c in name if c in REFUSED_CHARACTERS))
    if found:
        return f"the calendar server refuses {' and '.join(repr(c) for c in found)} in a login"
    return "the name is syncd's own login" if name == SERVICE_USER else "the address is empty"


class EmbeddedCredentials:
    """The htpasswd, rights and service-secret files of one data directory."""

    def __init__(self, data_path: Path) -> None:
        self.folder = data_path / "embedded"
        self.users_file = self.folder / "users"
        self.rights_file = self.folder / "rights"
        self.secret_file = self.folder / "syncd.secret"

    @property
    def service_secret(self) -> SecretRef:
        """The service user's password, as the embedded accounts' ``auth.password``."""
        return SecretRef(f"file:{self.secret_file}")

    def prepare(self) -> None:
        """Make the folder, the rights file and the service user (once); idempotent."""
        _private_folder(self.folder)
        _write_private(self.rights_file, RIGHTS)
        with self._locked() as lines:
            if SERVICE_USER in lines and self.secret_file.exists():
                return
            secret = _new_password()
            _write_private(self.secret_file, secret + "\n")
            lines[SERVICE_USER] = _hash(secret)

    def has_password(self, email: str) -> bool:
        return login_name(email) in self._read()

    def new_password(self, email: str) -> str:
        """Give ``email`` a fresh random password (replacing any old one) and return it.

        The caller shows it once; only its bcrypt hash is kept.
        """
        if not can_log_in(email):
            raise ValueError(f"{email!r} cannot be a login name on the calendar server")
        password = _new_password()
        _private_folder(self.folder)
        with self._locked() as lines:
            lines[login_name(email)] = _hash(password)
        return password

    def _read(self) -> dict[str, str]:
        try:
            text = self.users_file.read_text(encoding="utf-8")
        except FileNotFoundError:
            return {}
        lines: dict[str, str] = {}
        for line in text.splitlines():
            login, sep, digest = line.partition(":")
            if sep and login and digest and not line.startswith("#"):
                lines[login] = digest
        return lines

    @contextmanager
    def _locked(self) -> Iterator[dict[str, str]]:
        """The htpasswd lines, under an exclusive lock; written back when the block ends."""
        lock_path = self.folder / "users.lock"
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            lines = self._read()
            before = dict(lines)
            yield lines
            if lines != before:
                _write_private(self.users_file,
                               "".join(f"{login}:{digest}\n" for login, digest in lines.items()))
        finally:
            os.close(fd)


def _private_folder(folder: Path) -> None:
    """``folder`` and its parent (the data directory), made 0700 if missing."""
    folder.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    folder.mkdir(mode=0o700, exist_ok=True)


def _new_password() -> str:
    return secrets.token_urlsafe(PASSWORD_BYTES)


def _hash(password: str) -> str:
    import bcrypt  # only when a password is set: most commands never hash one

    return bcrypt.hashpw(password.encode(), bcrypt.gensalt(BCRYPT_ROUNDS)).decode("ascii")


def _write_private(path: Path, text: str) -> None:
    """Replace ``path`` atomically with a file only its owner can read."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
