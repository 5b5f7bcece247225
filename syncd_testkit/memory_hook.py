"""``/hooks/memory``: the hook of :class:`connectors.memory.MemoryCalendar`'s channels.

Not mounted by syncd: the tests mount it (:func:`mount`) on a receiver, so the push
machinery (keeper, hook contract, hints, scheduler) can be exercised end to end without a
provider. It reads what the memory calendar sends, the way a provider's hook reads its
provider's headers, and leaves the rest to
:class:`syncd_testkit.channel_hook.ChannelNotices`.
"""

from __future__ import annotations

from connectors.memory import CHANNEL_HEADER, NUMBER_HEADER, TOKEN_HEADER
from syncd.http.receiver import Receiver
from syncd.http.router import Request, Response, Route
from syncd_testkit.channel_hook import ChannelNotices, Notice, message_number

MAX_BODY = 1024  # a memory notification has no body


class MemoryHook:
    """Answers a memory channel's notifications: 401 when forged, 202 otherwise."""

    def __init__(self, notices: ChannelNotices) -> None:
        self.notices = notices

    @property
    def counts(self) -> dict[str, int]:
        return dict(self.notices.counts)

    def route(self) -> Route:
        return Route("/hooks/memory", self.handle, max_body=MAX_BODY)

    def handle(self, request: Request) -> Response:
        found = self.notices.notice(
            request.headers.get(CHANNEL_HEADER.lower()),
            request.headers.get(TOKEN_HEADER.lower()),
            number=message_number(request.headers.get(NUMBER_HEADER.lower())))
        return Response.text(401 if found == Notice.FORGED else 202)


def mount(receiver: Receiver) -> MemoryHook:
    """Mount ``/hooks/memory`` on a receiver (before or after it started)."""
    hook = MemoryHook(ChannelNotices(receiver.channels, receiver.hints))
    receiver.router.add(hook.route())
    return hook
