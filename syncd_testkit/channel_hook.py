"""The calendar hook contract, for the test hooks (``syncd_testkit.memory_hook``).

A test hook parses its connector's request and hands the channel id, the token and the
message number to :meth:`ChannelNotices.notice`, which applies the contract the
provider hooks (``syncd/http/google_hook.py``, ``graph_hook.py``, ``webdav_hook.py``)
each follow: the channel is looked up
(:meth:`~syncd.store.channels.ChannelStore.verify`); an unknown channel is counted
``unknown_channel`` and makes no cycle (a stopped channel's late notification, or a
stranger's guess); a known channel with a wrong or missing token is counted ``forged``
and makes no cycle; a valid one is recorded as heard (which meets any liveness deadline)
and, unless it is only a handshake, asks for one incremental cycle of its account.
"""

from __future__ import annotations

from collections import Counter
from enum import StrEnum

from syncd.push import Hints
from syncd.store.channels import ChannelStore

#: Longest channel id or token looked up; anything longer is no channel of ours.
MAX_FIELD = 512


class Notice(StrEnum):
    """What became of a notification (also the name it is counted under)."""

    ACCEPTED = "accepted"  # a cycle of its account is asked for
    HANDSHAKE = "handshake"  # valid, but announces the channel only (no cycle)
    REPLAYED = "replayed"  # valid, with a message number already heard (no cycle)
    UNKNOWN = "unknown_channel"  # no such channel: ignored
    FORGED = "forged"  # a known channel with a wrong or missing token: refused


class ChannelNotices:
    """Verifies notifications against the stored channels and turns them into hints."""

    def __init__(self, channels: ChannelStore, hints: Hints) -> None:
        self.channels, self.hints = channels, hints
        self.counts: Counter[str] = Counter()

    def notice(self, channel_id: str | None, token: str | None, *,
               number: int | None = None, handshake: bool = False) -> Notice:
        """Judge one notification and act on it (never slow: two small queries and a
        hint). The caller answers FORGED with 401 or 403, everything else with 2xx."""
        result = self._judge(channel_id, token, number, handshake)
        self.counts[result] += 1
        return result

    def _judge(self, channel_id: str | None, token: str | None, number: int | None,
               handshake: bool) -> Notice:
        if not channel_id or len(channel_id) > MAX_FIELD:
            return Notice.UNKNOWN
        if token is not None and len(token) > MAX_FIELD:
            token = None  # no token of ours is that long
        checked = self.channels.check(channel_id, token)
        row = checked.row
        if row is None:
            return Notice.FORGED if checked.known else Notice.UNKNOWN
        fresh = self.channels.heard(channel_id, number=number)
        if handshake:
            return Notice.HANDSHAKE
        if number is not None and not fresh:
            return Notice.REPLAYED
        self.hints.accounts_changed({row.account})
        return Notice.ACCEPTED


def message_number(value: str | None) -> int | None:
    """A message number header as an int; None when absent or not a small whole number
    (a garbage number must not make a notification count as a replay)."""
    if value is None or not value.isascii() or not value.isdigit() or len(value) > 18:
        return None
    return int(value)
