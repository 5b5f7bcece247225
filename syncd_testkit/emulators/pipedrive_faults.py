"""Fault rules and request recording for the Pipedrive emulator's API side.

Delivery-side faults (dropped, duplicated, delayed webhook messages) live in
``pipedrive_webhooks.DeliveryFaults``.
"""

from __future__ import annotations

from dataclasses import dataclass

from .recording import FaultBook, MatchRule
from .recording import RecordedRequest as BaseRecord


@dataclass
class RecordedRequest(BaseRecord):
    """One API request (see :class:`.recording.RecordedRequest`) and the tokens it cost."""

    cost: int = 0


@dataclass
class FaultRule(MatchRule):
    """A scripted failure matched on ``method`` and ``path`` (see :class:`.recording.MatchRule`).

    The effect: ``status`` answers that error with Pipedrive's JSON body (5xx, 401, 403...);
    ``delay_seconds`` waits (real seconds) first, long enough for a client timeout;
    ``drop`` closes the connection without an answer; ``after=True`` runs the call first and
    then fails (the write happened, the client does not know)."""

    status: int | None = None
    message: str = "Internal server error"
    delay_seconds: float = 0.0
    drop: bool = False
    after: bool = False


FaultInjector = FaultBook[FaultRule]
