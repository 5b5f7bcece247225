"""The value checks behind the config schema: URLs, transport security, secrets, databases.

Every check returns ``None`` when the value is fine, else a :class:`Finding` without the key
(the validator knows where the value came from). No finding ever quotes a value that may
hold a secret: a URL with ``user:password@`` or a database URL is described, never shown,
and a secret is read only to be judged.

Rules (``syncd config check`` and every command that loads the config apply them):

* A URL is ``http://`` or ``https://`` with a host, a port within 1-65535 if any, no
  spaces or control characters, and no ``user:password@`` part (credentials are options of
  their own, the password a secret reference).
* Where a password or token travels, the URL must be ``https://``. Plain ``http://`` is
  accepted only with ``allow_insecure_http = true`` and a loopback host (a test server on
  the same machine); some endpoints (an msal authority) are ``https://`` without exception.
* A secret reference names a set, non-empty environment variable, or a readable, non-empty
  regular file that no other user may open (mode ``600`` or stricter).
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import os
import re
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import SplitResult, urlsplit

if TYPE_CHECKING:
    from sqlalchemy.engine import URL

INSECURE_HTTP_KEY = "allow_insecure_http"
REFERENCE_FIX = "a reference: env:NAME or file:PATH (secrets never go in the file)"


@dataclass(frozen=True)
class Finding:
    """A problem with a value and how to fix it; ``key`` is relative to its table, if set."""

    problem: str
    fix: str
    key: str = ""


def is_loopback(host: str) -> bool:
    """Whether ``host`` (``localhost`` or an address, IPv6 with or without brackets) is
    loopback. Not a name under ``.localhost``: where the resolver does not answer those
    itself, they go to DNS, and its answer would get the password."""
    return is_loopback_address(host.strip("[]").lower())


def is_loopback_address(host: str) -> bool:
    """Whether a server may listen on ``host``: ``localhost`` or a loopback address written
    out. Not a bracketed address (URL syntax) nor any other name, which the resolver may
    answer from DNS with an address that is not loopback."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _split(value: str) -> tuple[SplitResult | None, Finding | None]:
    if any(c.isspace() or ord(c) < 32 or ord(c) == 127 for c in value):
        return None, Finding("contains a space or a control character",
                             "a URL without spaces (write a space in a path as %20)")
    try:
        parts = urlsplit(value)
        port = parts.port  # raises for a non-numeric or out-of-range port
    except ValueError:
        return None, Finding("has a port that is not a number within 1-65535",
                             "a URL such as https://host:8443/path")
    if parts.scheme not in ("http", "https"):
        return None, Finding("must start with http:// or https://", "an https:// URL")
    if not parts.hostname:
        return None, Finding("has no host name", "a URL such as https://host/path")
    if port == 0:
        return None, Finding("has port 0", "a port within 1-65535, or none for the default")
    return parts, None


def url_problem(value: str) -> Finding | None:
    """A full parse of ``value`` as an http(s) URL (see the module docstring)."""
    parts, finding = _split(value)
    if finding is not None:
        return finding
    assert parts is not None
    if parts.username is not None or parts.password is not None:
        return Finding("carries a user name or password (user:password@ in the URL)",
                       "the URL without them (the user name in `username`, the password "
                       "in `password` as env:NAME or file:PATH)")
    return None


def transport_problem(value: str, *, credentials: bool, allow_insecure: bool,
                      https_only: bool = False) -> Finding | None:
    """Whether a URL over which ``credentials`` may travel is protected by TLS.

    ``value`` must already have passed :func:`url_problem`.
    """
    parts = urlsplit(value)
    if parts.scheme == "https":
        return None
    if https_only:
        return Finding("is plain http://; this endpoint is only accepted over https",
                       "an https:// URL")
    if not credentials:
        return None
    if not allow_insecure:
        return Finding("would send a password or token over plain http://",
                       f"an https:// URL ({INSECURE_HTTP_KEY} = true in [account.auth] "
                       "admits http:// to a loopback test server only)")
    if not is_loopback(parts.hostname or ""):
        return Finding(f"is plain http:// to a host that is not loopback ({INSECURE_HTTP_KEY} "
                       "covers test servers on this machine only)", "an https:// URL")
    return None


def secret_problem(ref: str) -> Finding | None:
    """Whether the reference ``ref`` (``env:NAME`` or ``file:PATH``) gives a usable secret.

    The secret is read only to know that it is not empty; it never leaves this function.
    """
    kind, _, name = ref.partition(":")
    if kind == "env":
        value = os.environ.get(name)
        if value is None:
            return Finding(f"names the environment variable {name}, which is not set",
                           f"{name} set in syncd's environment (or a file:PATH reference)")
        if not value.strip():
            return Finding(f"names the environment variable {name}, which is empty",
                           f"the secret in {name}")
        return None
    path = Path(name).expanduser()
    try:
        info = path.stat()
    except OSError as exc:
        return Finding(f"names the file {path}, which cannot be read ({exc.strerror})",
                       "the path of an existing file holding only the secret")
    if not stat.S_ISREG(info.st_mode):
        return Finding(f"names {path}, which is not a regular file",
                       "the path of a file holding only the secret")
    if info.st_mode & 0o077:
        return Finding(f"names the file {path}, which other users may open "
                       f"(mode {stat.S_IMODE(info.st_mode):04o})",
                       f"a file only syncd's user can open (chmod 600 {path})")
    try:
        empty = not path.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        reason = getattr(exc, "strerror", None) or "not UTF-8 text"
        return Finding(f"names the file {path}, which cannot be read ({reason})",
                       "a readable UTF-8 file holding only the secret")
    if empty:
        return Finding(f"names the file {path}, which is empty", "the secret in that file")
    return None


def readable_file_problem(value: str) -> Finding | None:
    """Whether ``value`` is the path of a readable regular file (a CA bundle, say)."""
    path = Path(value).expanduser()
    if not path.is_file() or not os.access(path, os.R_OK):
        return Finding(f"names {path}, which is not a readable file",
                       "the path of a readable file")
    return None


#: A database URL SQLAlchemy parses with no password and no query (``sqlite:///path``,
#: ``postgresql+psycopg://user@host:5432/db``): a subset of what its ``make_url`` takes,
#: judged without importing SQLAlchemy (over half of a short command's instructions
#: otherwise).
_PLAIN_DATABASE_URL = re.compile(r"[\w+]+://(?:[^:/@?\[\]]*@)?[^:/@?\[\]]*(?::[0-9]+)?(?:/[^?]*)?")


def database_url_problem(value: str, *, inline: bool = True) -> Finding | None:
    """Whether ``value`` is an SQLAlchemy database URL; ``inline`` (written in the file):
    one without a password in it.

    SQLAlchemy is imported only here, only when a database is configured and its URL is
    not a plain one (:data:`_PLAIN_DATABASE_URL`).
    """
    if _PLAIN_DATABASE_URL.fullmatch(value):
        return None
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        url = make_url(value)
    except (ArgumentError, ValueError):
        return Finding("is not a database URL",
                       "an SQLAlchemy URL such as postgresql+psycopg://syncd@host/syncd")
    if inline and (url.password or secret_parameters(url)):
        return Finding("holds a database password in the file",
                       "database = \"env:NAME\" (or file:PATH) naming the whole URL, so the "
                       "password stays out of the config")
    return None


def secret_parameters(url: URL) -> list[str]:
    """The query parameters of ``url`` that hold a password (libpq takes ``?password=``
    and ``?sslpassword=`` beside ``user:password@``)."""
    return [key for key in url.query if is_password_option(key)]


def is_password_option(key: str) -> bool:
    """Whether a database URL's query option ``key`` holds a password."""
    return "password" in key.lower()


def fernet_key_problem(value: str) -> str | None:
    """Whether ``value`` is a Fernet key: 32 bytes in URL-safe base64 (never shown)."""
    try:
        raw = base64.urlsafe_b64decode(value.strip().encode("ascii"))
    except (binascii.Error, ValueError, UnicodeEncodeError):
        return "is not a Fernet key (URL-safe base64)"
    return None if len(raw) == 32 else "is not a Fernet key (32 bytes in URL-safe base64)"


def parse_listen(value: str) -> tuple[str, int] | None:
    """``host:port`` (``[::1]:8765`` for IPv6) as (host, port), or None when it is not one.

    The host must be an address written out or ``localhost``: a name would be resolved, and
    the resolver may answer from DNS with an address that is not the one meant.
    """
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not 1 <= int(port) <= 65535:
        return None
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    elif ":" in host:
        return None  # an IPv6 address needs its brackets, or the port is ambiguous
    if host != "localhost":
        try:
            ipaddress.ip_address(host)
        except ValueError:
            return None
    return host, int(port)


def listen_problem(value: str, *, tls: bool) -> Finding | None:
    """Whether the HTTP receiver may listen on ``value``: loopback as it is (the admin's
    TLS reverse proxy in front), any other address only with TLS of its own, because
    webhook passwords and provider tokens would otherwise cross the network in clear."""
    parsed = parse_listen(value)
    if parsed is None:
        return Finding("is not host:port with an address or localhost",
                       "e.g. 127.0.0.1:8765 or [::1]:8765")
    if not tls and not is_loopback_address(parsed[0]):
        return Finding("listens beyond this machine without TLS",
                       "a loopback address behind a TLS reverse proxy (127.0.0.1:8765), or "
                       "certificate and private_key in [http]")
    return None


def public_url_problem(value: str, *, allow_insecure: bool) -> Finding | None:
    """Whether providers may be told to call ``value``: they send their webhook passwords
    and channel tokens there, so it must be https://, except a loopback test receiver
    with ``allow_insecure_http``."""
    found = url_problem(value)
    if found is not None:
        return found
    host = urlsplit(value).hostname or ""
    if value.startswith("https://") or (allow_insecure and is_loopback(host)):
        return None
    return Finding("is plain http://; providers would send their webhook passwords and "
                   "tokens in clear", "the https:// address of your TLS reverse proxy "
                   f"({INSECURE_HTTP_KEY} = true admits http:// to a loopback test receiver)")
