"""Guests described in the event text, for guests who hold no invitation.

Writing real attendees makes Google and Graph e-mail them (Graph always, Google despite
``sendUpdates=none`` at times; failure modes 6 and 7). Only guests who hold an invitation
are attendees (docs/guest-mail.md): the others, and every guest of an account that
invites nobody, are written as a trailing ``Guests:`` paragraph of the description
instead and stripped again on the way in, so it never reads as a description edit. One
format for every provider.
"""

from __future__ import annotations

import re

from syncd.model import Projection, is_valid_email, normalize_email

GUESTS_LABEL = "Guests: "


def _guest_item(email: str, name: str | None) -> str:
    # Commas and angle brackets would break the list when it is read back.
    clean = re.sub(r"[,<>]", " ", name or "").strip()
    return f"{' '.join(clean.split())} <{email}>" if clean else email


def guests_block(projection: Projection, described: frozenset[str] | None = None) -> str:
    """The ``Guests:`` paragraph that describes guests (all, or ``described``) without
    inviting them."""
    emails = projection.guests if described is None else projection.guests & described
    items = [_guest_item(e, projection.guest_names.get(e)) for e in sorted(emails)]
    return GUESTS_LABEL + ", ".join(items)


def body_text(projection: Projection, *, invited: frozenset[str] = frozenset()) -> str:
    """The event body: the description, plus a paragraph describing the guests who are
    not ``invited`` (the attendees)."""
    described = projection.guests - invited
    if not described:
        return projection.description
    block = guests_block(projection, described)
    return f"{projection.description}\n\n{block}" if projection.description else block


def split_guests(text: str) -> tuple[str, frozenset[str], dict[str, str]]:
    """Strip a trailing ``Guests:`` paragraph; returns (description, guests, names).

    The paragraph counts only if every item in it is an address (``Name <a@b>`` or
    ``a@b``), so a description that merely mentions guests is left alone.
    """
    head, sep, last = text.rpartition("\n\n")
    candidate = last if sep else text
    if not candidate.startswith(GUESTS_LABEL) or "\n" in candidate:
        return text, frozenset(), {}
    guests: set[str] = set()
    names: dict[str, str] = {}
    for item in candidate[len(GUESTS_LABEL):].split(","):
        match = re.fullmatch(r"\s*(?:(.*?)\s*<([^<>]+)>|([^<>\s]+))\s*", item)
        email = normalize_email((match.group(2) or match.group(3)) if match else "")
        if not is_valid_email(email):
            return text, frozenset(), {}
        guests.add(email)
        if match and match.group(1):
            names[email] = match.group(1)
    return (head if sep else ""), frozenset(guests), names
