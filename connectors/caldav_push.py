"""WebDAV-Push (draft-bitfire-webdav-push-00) for one CalDAV collection: discovery,
registration and removal of a Web Push subscription.

A server that offers it lists a ``web-push`` transport in the collection's
``transports`` property (with its VAPID public key) and a ``topic``. syncd registers a
subscription by POSTing ``push-register`` to the collection: its push resource is the
receiver's ``{address}/{channel_id}/{token}`` (the token is the channel's secret: the
hook verifies it against the stored hash), with an ECDH P-256 public key and an auth
secret as RFC 8291 requires, the ``content-update`` trigger and the expiry syncd wants.
The server answers with the subscription's URL (``Location``, which removes it with a
DELETE) and its own ``Expires``. syncd never decrypts a message (a notification is only
a hint that the collection changed), so the key pair's private half is not kept.

Every reply is untrusted: bounded, parsed without entities, and a URL the server names
outside the collection's origin is never followed (a subscription there is refused).
Writes of ours carry ``Push-Dont-Notify`` naming our subscription, so the server does
not wake syncd for its own changes (:func:`dont_notify`).
"""

from __future__ import annotations

import base64
import email.utils
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urljoin, urlsplit
from xml.sax.saxutils import escape

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from lxml import etree

from connectors.base import Channel
from connectors.caldav_http import DAV, BadReply, DavTransport, ReplyTooLarge, parse_xml
from syncd.errors import AuthFailed, PushRefused, Transient

NS = "https://bitfire.at/webdav-push"
PUSH = "{" + NS + "}"
#: The hook the server posts to: ``{public_url}/hooks/webdav``.
PUSH_KIND = "webdav"
PROVIDER = "caldav"
NO_PUSH = "server offers no WebDAV-Push"
#: A discovery or registration reply larger than this is not read.
MAX_PUSH_REPLY = 64 * 1024
#: Longest topic kept from the server (the draft asks for 32 characters at most).
MAX_TOPIC = 64
VAPID_KEY_BYTES = 65  # an uncompressed P-256 point


@dataclass(frozen=True)
class PushOffer:
    """What the collection's properties say about WebDAV-Push: the server's VAPID public
    key (base64url, None when it signs nothing) and the collection's topic."""

    vapid_key: str | None
    topic: str | None


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_bytes(text: str) -> bytes | None:
    """The bytes of base64url ``text``; None when it is not base64url."""
    if not text or len(text) > 1024 or not all(c.isalnum() or c in "-_" for c in text):
        return None
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except ValueError:
        return None


def same_origin(url: str, base: str) -> bool:
    """Whether ``url`` has the scheme, host and port of ``base``."""
    a, b = urlsplit(url), urlsplit(base)
    try:
        return (a.scheme.lower(), a.hostname, a.port) == (b.scheme.lower(), b.hostname, b.port)
    except ValueError:  # a port that is no number
        return False


def push_resource(address: str, channel_id: str, token: str) -> str:
    """Where the server must deliver this channel's messages; the hook reads the id and
    the token back from the path."""
    return f"{address.rstrip('/')}/{channel_id}/{token}"


def subscription_keys() -> tuple[str, str]:
    """(ECDH P-256 public key, 16-byte auth secret), both base64url, for a registration.
    Fresh per subscription; the private key is dropped: syncd reads no message content."""
    public = ec.generate_private_key(ec.SECP256R1()).public_key()
    point = public.public_bytes(serialization.Encoding.X962,
                                serialization.PublicFormat.UncompressedPoint)
    return b64url(point), b64url(secrets.token_bytes(16))


def dont_notify(subscription: str) -> dict[str, str]:
    """The header that keeps a write of ours from notifying our own subscription (other
    subscribers, such as the owner's phone, are still notified)."""
    return {"Push-Dont-Notify": f'"{subscription}"'}


# --- discovery ----------------------------------------------------------------------------


DISCOVERY = ('<?xml version="1.0" encoding="utf-8"?>'
             f'<D:propfind xmlns:D="DAV:" xmlns:P="{NS}"><D:prop>'
             "<P:transports/><P:topic/><P:supported-triggers/></D:prop></D:propfind>")


def discover(transport: DavTransport, collection: str) -> PushOffer:
    """The collection's WebDAV-Push offer (one PROPFIND, depth 0).

    Raises:
        PushRefused: the server offers no Web Push transport for it.
        AuthFailed: the server refused the credentials.
        Transient: the server could not be asked, or its reply is unusable.
    """
    reply = _send(transport, "PROPFIND", collection, DISCOVERY.encode(),
                  {"Depth": "0", "Content-Type": "application/xml; charset=utf-8"})
    if reply.status in (403, 405, 501):  # not even PROPFIND: no push here
        raise PushRefused(provider=PROVIDER, reason=NO_PUSH, status=reply.status)
    if reply.status != 207:
        raise Transient(reason=f"WebDAV-Push discovery failed (HTTP {reply.status})",
                        status=reply.status)
    try:
        root = parse_xml(reply.body)
    except BadReply as exc:
        raise Transient(reason=f"WebDAV-Push discovery: {exc.args[0]}") from None
    offer = read_offer(root)
    if offer is None:
        raise PushRefused(provider=PROVIDER, reason=NO_PUSH)
    return offer


def read_offer(root: Any) -> PushOffer | None:
    """The offer in a PROPFIND multistatus; None without a ``web-push`` transport, or
    with a VAPID key that is no P-256 point (a key syncd could not check with is no
    better than none, and a server that garbles it is not trusted to sign)."""
    if root.tag != f"{DAV}multistatus":
        return None
    for prop in root.iterfind(f"{DAV}response/{DAV}propstat/{DAV}prop"):
        web_push = prop.find(f"{PUSH}transports/{PUSH}web-push")
        if web_push is None:
            continue
        key = None
        key_el = web_push.find(f"{PUSH}vapid-public-key")
        if key_el is not None:
            key = (key_el.text or "").strip()
            raw = b64url_bytes(key)
            if (key_el.get("type", "p256ecdsa") != "p256ecdsa" or raw is None
                    or len(raw) != VAPID_KEY_BYTES or raw[0] != 4):
                return None
        topic = (prop.findtext(f"{PUSH}topic") or "").strip()
        if not topic:  # the topic may be in another propstat of the same response
            topic = (root.findtext(f".//{PUSH}topic") or "").strip()
        return PushOffer(key, topic[:MAX_TOPIC] or None)
    return None


# --- registration ---------------------------------------------------------------------------


def register_body(resource: str, public_key: str, auth_secret: str, expires: datetime) -> bytes:
    return ('<?xml version="1.0" encoding="utf-8"?>'
            f'<P:push-register xmlns:P="{NS}" xmlns:D="DAV:">'
            "<P:subscription><P:web-push-subscription>"
            f"<P:push-resource>{escape(resource)}</P:push-resource>"
            "<P:content-encoding>aes128gcm</P:content-encoding>"
            f'<P:subscription-public-key type="p256dh">{public_key}'
            "</P:subscription-public-key>"
            f"<P:auth-secret>{auth_secret}</P:auth-secret>"
            "</P:web-push-subscription></P:subscription>"
            "<P:trigger><P:content-update><D:depth>1</D:depth></P:content-update></P:trigger>"
            f"<P:expires>{email.utils.format_datetime(expires.astimezone(UTC), usegmt=True)}"
            "</P:expires></P:push-register>").encode()


def register(transport: DavTransport, collection: str, address: str, channel_id: str,
             token: str, expires_at: datetime) -> Channel:
    """Subscribe ``{address}/{channel_id}/{token}`` to the collection's content updates.

    The channel's ``resource_id`` is the subscription URL, ``expires_at`` the server's
    ``Expires`` (the asked expiry when it names none), and ``details`` keep the server's
    VAPID key and the audience its signatures must name (the hook checks both).

    Raises:
        PushRefused: no WebDAV-Push, or the server refused this subscription.
        AuthFailed, Transient: as for any request.
    """
    offer = discover(transport, collection)
    resource = push_resource(address, channel_id, token)
    public_key, auth_secret = subscription_keys()
    reply = _send(transport, "POST", collection,
                  register_body(resource, public_key, auth_secret, expires_at),
                  {"Content-Type": "application/xml; charset=utf-8"})
    if reply.status not in (200, 201):
        raise _refusal(reply.status, reply.body)
    location = reply.headers.get("Location", "").strip()
    subscription = urljoin(collection, location) if location else ""
    if not subscription:
        raise PushRefused(provider=PROVIDER, reason="the server named no subscription URL")
    if not same_origin(subscription, collection):
        raise PushRefused(provider=PROVIDER,
                          reason="the server named a subscription URL outside its origin")
    parts = urlsplit(resource)
    details = {"vapid_key": offer.vapid_key, "topic": offer.topic,
               "audience": f"{parts.scheme}://{parts.netloc}"}
    return Channel(id=channel_id, expires_at=read_expires(reply.headers.get("Expires"),
                                                          expires_at),
                   resource_id=subscription, details=details)


def read_expires(value: str | None, asked: datetime) -> datetime:
    """The server's ``Expires`` (IMF-fixdate) in UTC; ``asked`` when it gives none or
    none that can be read."""
    if not value or len(value) > 100:
        return asked
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return asked
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)


def _refusal(status: int, body: bytes) -> Exception:
    """What a failed registration means: the server's DAV:error names why it refused."""
    if status == 429 or status >= 500:
        return Transient(reason=f"push-register failed (HTTP {status})", status=status)
    why = None
    try:
        root = parse_xml(body) if body.strip() else None
    except BadReply:
        root = None
    if root is not None and root.tag == f"{DAV}error":
        why = next((etree.QName(child).localname for child in root
                    if isinstance(child.tag, str) and child.tag.startswith(PUSH)), None)
    if why == "push-not-available":
        return PushRefused(provider=PROVIDER, reason=NO_PUSH, status=status)
    reason = f"the server refused the subscription ({why or f'HTTP {status}'})"
    return PushRefused(provider=PROVIDER, reason=reason, status=status)


# --- removal --------------------------------------------------------------------------------


def unregister(transport: DavTransport, collection: str, subscription: str) -> None:
    """DELETE the subscription; one the server no longer knows (404, 410) is gone already.
    A URL outside the collection's origin is never sent anything (it expires instead).

    Raises:
        AuthFailed, Transient: the server could not be asked; the keeper tries again.
    """
    if not subscription or not same_origin(subscription, collection):
        return
    reply = _send(transport, "DELETE", subscription, b"", {})
    if reply.status in (200, 202, 204, 404, 410):
        return
    raise Transient(reason=f"removing the push subscription failed (HTTP {reply.status})",
                    status=reply.status)


def _send(transport: DavTransport, method: str, url: str, body: bytes,
          headers: dict[str, str]) -> Any:
    try:
        reply = transport.send(method, url, body, headers, max_bytes=MAX_PUSH_REPLY)
    except ReplyTooLarge:
        raise Transient(reason=f"the server's {method} reply is too large") from None
    if reply.status == 401:
        raise AuthFailed(reason=f"HTTP 401 to WebDAV-Push {method}")
    return reply
