"""What keeps a public booking page safe to serve: signed forms and rate limits.

* :class:`Signer` -- an HMAC-SHA256 key of 256 bits in ``data_dir/http/booking.key``
  (made 0600 in a 0700 folder on first use). It signs each form the page hands out
  (:meth:`Signer.form_token`: bound to the link, with an expiry and a random nonce; the
  nonce is also the booking's identity, so a form sent twice books once) and the
  booking ids of confirmation and ``.ics`` URLs (:meth:`Signer.booking_ref`), so only
  the visitor who booked can open them; the reference also names, signed, which guest
  booked, so the confirmation shows that visitor's address and never another guest's
  the owner put there later. Checks are constant-time.
* :class:`RateLimiter` -- a token bucket per client address (an IPv6 address counts by
  its /64, which one client usually holds whole), in a bounded table: when it is full
  the longest-idle client is forgotten, so memory stays fixed whatever the callers send.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import os
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from syncd.errors import SecretUnavailable

FORM_SECONDS = 3600  # how long a booking form may stay open
KEY_BYTES = 32


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _same(given: str, expected: str) -> bool:
    """Whether a signature a visitor sent is the expected one, in constant time. Compared
    as UTF-8 bytes: ``hmac.compare_digest`` raises TypeError on a str that is not ASCII,
    and a visitor chooses what this str holds."""
    return hmac.compare_digest(given.encode("utf-8", "surrogatepass"), expected.encode())


def load_key(data_dir: Path) -> bytes:
    """The signing key in ``data_dir/http/booking.key``, made (0600, folder 0700) when
    missing. A new key voids the forms and confirmation links handed out before.

    Raises:
        SecretUnavailable: the file holds something else than a key.
    """
    path = data_dir / "http" / "booking.key"
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    path.parent.chmod(0o700)  # made earlier, or by someone else, with a wider mode
    if not path.exists():
        # Written whole under another name, then linked: two daemons starting at once
        # (replicas on one data_dir) end up with one key, and a crash leaves no half key.
        temporary = path.with_name(f"booking.key.{os.getpid()}.{secrets.token_hex(4)}")
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        with os.fdopen(fd, "w", encoding="ascii") as handle:
            handle.write(secrets.token_bytes(KEY_BYTES).hex() + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        try:
            os.link(temporary, path)
        except FileExistsError:
            pass  # another process made it first: use theirs
        finally:
            temporary.unlink()
    try:
        key = bytes.fromhex(path.read_text(encoding="ascii").strip())
    except ValueError:
        key = b""
    if len(key) < KEY_BYTES:
        raise SecretUnavailable(ref=str(path), reason=f"not a key of {KEY_BYTES} bytes in "
                                "hex; delete it and syncd makes a new one")
    return key


@dataclass(frozen=True)
class BookingRef:
    """A booking reference that checked out: the activity, and the booker's signature."""

    activity_id: int
    guest_mac: str


@dataclass(frozen=True)
class Form:
    """A form token that checked out: its nonce (the booking's identity)."""

    nonce: str


class Signer:
    """Signs and checks booking forms and booking references with one key."""

    def __init__(self, key: bytes, clock: Callable[[], float] = time.time) -> None:
        self._key, self.clock = key, clock

    def _mac(self, *parts: str) -> str:
        data = "|".join(parts).encode("utf-8", "surrogatepass")
        return _b64(hmac.new(self._key, data, hashlib.sha256).digest())

    def form_token(self, link_id: int) -> str:
        """A new form's token: link, expiry, nonce and their signature."""
        expires = str(int(self.clock()) + FORM_SECONDS)
        nonce = _b64(secrets.token_bytes(16))
        return ".".join((expires, nonce, self._mac("form", str(link_id), expires, nonce)))

    def check_form(self, token: str, link_id: int) -> Form | None:
        """The form, when ``token`` was signed for this link and has not expired."""
        parts = token.split(".") if isinstance(token, str) and len(token) <= 200 else []
        if len(parts) != 3 or not (parts[0].isascii() and parts[0].isdigit()):
            return None
        expires, nonce, mac = parts
        good = _same(mac, self._mac("form", str(link_id), expires, nonce))
        if not good or int(expires) < self.clock():
            return None
        return Form(nonce)

    def booking_ref(self, link_id: int, activity_id: int, email: str) -> str:
        """The booking's id as the confirmation and ``.ics`` URLs carry it, signed, with
        the signature of the booker's address (``.`` is not in the base64url alphabet)."""
        head = str(activity_id)
        return (f"{head}-{self._mac('booking', str(link_id), head)}"
                f".{self._mac('guest', str(link_id), head, email)}")

    def check_booking_ref(self, ref: str, link_id: int) -> BookingRef | None:
        """The booking ``ref`` names, when it was signed for this link."""
        head, _, macs = ref.partition("-")
        mac, _, guest_mac = macs.partition(".")
        if not head.isascii() or not head.isdigit() or len(head) > 18:
            return None
        if not _same(mac, self._mac("booking", str(link_id), head)):
            return None
        return BookingRef(int(head), guest_mac)

    def booker(self, ref: BookingRef, link_id: int, emails: Iterable[str]) -> str:
        """Which of ``emails`` (the activity's guests now) booked, or "" when none did."""
        for email in emails:
            expected = self._mac("guest", str(link_id), str(ref.activity_id), email)
            if _same(ref.guest_mac, expected):
                return email
        return ""


def client_key(address: str) -> str:
    """Who a rate limit counts: the address, or an IPv6 address's /64."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address[:64]
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.ip_network(f"{ip}/64", strict=False))
    return str(ip)


class RateLimiter:
    """``per_minute`` requests a minute per client, bursts up to ``burst``; at most
    ``max_clients`` clients remembered (the longest idle forgotten first)."""

    def __init__(self, per_minute: float, burst: int, *, max_clients: int = 10_000,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.rate, self.burst, self.max_clients = per_minute / 60.0, burst, max_clients
        self.clock = clock
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()
        self._lock = threading.Lock()

    def allow(self, address: str) -> bool:
        """Take one request from the client's bucket; False when it is empty."""
        key, now = client_key(address), self.clock()
        with self._lock:
            tokens, at = self._buckets.pop(key, (float(self.burst), now))
            tokens = min(float(self.burst), tokens + (now - at) * self.rate)
            allowed = tokens >= 1.0
            self._buckets[key] = (tokens - 1.0 if allowed else tokens, now)
            while len(self._buckets) > self.max_clients:
                self._buckets.popitem(last=False)
            return allowed

    def __len__(self) -> int:
        return len(self._buckets)
