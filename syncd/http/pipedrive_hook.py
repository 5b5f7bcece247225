"""``/hooks/pipedrive``: Pipedrive's webhooks v2 for activities, as hints.

A delivery must carry the Basic-auth secret ``syncd pipedrive webhooks install`` gave the
webhook (:mod:`syncd.http.basic_auth`); anything else is refused with 401 and counted, so
a forged notification makes no cycle. The body (``{meta, data, previous}``, read within
the listener's cap) is parsed without trusting its depth; a ``meta.id`` already seen is a
retry or a duplicate and is answered 200 without a second hint (Pipedrive retries with
the same id after 3, 30 and 150 s). Otherwise the activity's owner before and after the
change (``previous.owner_id``, ``data.owner_id``), and for a ``delete`` the activity's id,
are handed to :class:`syncd.push.Hints` and the answer is 200 at once: no sync work on
the request thread.

The ids seen are kept in memory (the last :data:`SEEN` of them): after a restart a
retried delivery makes at most one extra incremental cycle, which reads nothing new.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter, OrderedDict
from typing import Any

from syncd.http.basic_auth import BasicAuthSecret
from syncd.http.router import Request, Response, Route
from syncd.push import Hints
from syncd.safe_json import loads

log = logging.getLogger("syncd.http")

PATH = "/hooks/pipedrive"
SEEN = 10_000  # event ids remembered for deduplication
MAX_ID_CHARS = 200


class PipedriveHook:
    """The endpoint; ``counts`` has ``accepted``, ``duplicate``, ``refused`` (bad or no
    credentials), ``malformed`` (not a v2 delivery) and ``ignored`` (not an activity, or
    no owner in it)."""

    def __init__(self, secret: BasicAuthSecret, hints: Hints) -> None:
        self.secret, self.hints = secret, hints
        self.counts: Counter[str] = Counter()
        self._seen: OrderedDict[str, None] = OrderedDict()
        self._lock = threading.Lock()

    def route(self) -> Route:
        return Route(PATH, self.handle, methods=("POST",))

    def handle(self, request: Request) -> Response:
        if not self.secret.accepts(request.headers.get("authorization")):
            with self._lock:
                self.counts["refused"] += 1
                first = self.counts["refused"] == 1
            # Said once at warning level: a flood of forgeries must not flood the log.
            log.log(logging.WARNING if first else logging.DEBUG,
                    "refused a %s delivery without the webhook secret (from %s)", PATH,
                    request.remote or "?")
            return Response.text(401, WWW_Authenticate='Basic realm="syncd"')
        meta, owners, deleted = _read(request.body)
        if meta is None:
            return self._count("malformed", Response.text(400, "not a Pipedrive v2 webhook"))
        event_id = meta["id"]
        with self._lock:
            if event_id in self._seen:
                self._seen.move_to_end(event_id)
                self.counts["duplicate"] += 1
                return Response.text(200)
            self._seen[event_id] = None
            if len(self._seen) > SEEN:
                self._seen.popitem(last=False)
        if meta.get("entity") != "activity" or not owners:
            return self._count("ignored", Response.text(200))
        self.hints.crm_users_changed(owners, deleted=deleted)
        return self._count("accepted", Response.text(200))

    def _count(self, what: str, response: Response) -> Response:
        with self._lock:
            self.counts[what] += 1
        return response


def _read(body: bytes) -> tuple[dict[str, Any] | None, set[int], set[int]]:
    """(meta, owner ids, deleted activity ids) of a v2 delivery; meta None when the body
    is not one."""
    try:
        payload = loads(body)
    except (ValueError, UnicodeDecodeError):
        return None, set(), set()
    meta = payload.get("meta") if isinstance(payload, dict) else None
    if not isinstance(meta, dict):
        return None, set(), set()
    event_id = meta.get("id")
    if not isinstance(event_id, str) or not 0 < len(event_id) <= MAX_ID_CHARS:
        return None, set(), set()
    owners = {owner for part in (payload.get("data"), payload.get("previous"))
              if isinstance(part, dict) and (owner := _id(part.get("owner_id"))) is not None}
    deleted = set()
    if meta.get("action") == "delete" and (entity := _id(meta.get("entity_id"))) is not None:
        deleted.add(entity)
    return meta, owners, deleted


def _id(value: Any) -> int | None:
    """A Pipedrive id, given as a number or (v2 meta) as a string of digits."""
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    if isinstance(value, str) and value.isdigit() and len(value) <= 18:
        return int(value)
    return None
