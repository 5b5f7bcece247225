"""The Pipedrive source's cursor: a high-water ``update_time`` that neither misses nor repeats.

Pipedrive lists changes by ``updated_since`` (inclusive) with ``update_time`` in whole
seconds, so many changes can share the second a page ends on, and more can land in that
second after the page was read. The cursor therefore holds:

* ``since``: the newest ``update_time`` delivered (the next listing starts there,
  inclusive, so a change later in the same second is not missed);
* ``seen``: the activities delivered at exactly that second, each with the digest of the
  version delivered, so the next listing skips those versions but not a newer version
  made within the same second (which a bare id would hide);
* ``page``/``query``: Pipedrive's own cursor and the ``updated_since`` it belongs to, while
  a listing has more pages (keyset paging keeps an item edited meanwhile from being
  skipped: it moves behind the cursor and is met again);
* ``moved``/``gone``: what the feed's reconciliation showed (activities handed to another
  owner, deletions it found by asking): the marker rows are told only when this cursor
  comes back, that is once the engine kept it, so a cycle killed in between shows them
  again instead of never.

It is opaque to the engine: ``pd1.`` and base64 of compact JSON, the same text for the
same position, so reading again from a cursor with nothing new hands back that cursor.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from syncd.errors import InvalidInput

PREFIX = "pd1."


def _refuse(cursor: str) -> InvalidInput:
    return InvalidInput(field="cursor", value=cursor[:80],
                        reason="is not a cursor of the Pipedrive source")


@dataclass(frozen=True)
class Cursor:
    """A position in one owner's changes (see the module docstring)."""

    since: str | None = None
    seen: Mapping[str, str] = field(default_factory=dict)
    page: str | None = None
    query: str | None = None
    moved: tuple[int, ...] = ()
    gone: tuple[int, ...] = ()

    def encode(self) -> str:
        data: dict[str, object] = {"s": self.since, "k": dict(sorted(self.seen.items())),
                                   "p": self.page, "q": self.query}
        if self.moved:
            data["m"] = sorted(self.moved)
        if self.gone:
            data["g"] = sorted(self.gone)
        raw = json.dumps(data, sort_keys=True, separators=(",", ":"))
        return PREFIX + base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")

    @classmethod
    def decode(cls, cursor: str | None) -> Cursor:
        """The position ``cursor`` stands for (the beginning for None).

        Raises:
            InvalidInput: (``field="cursor"``) it is not one this source handed out.
        """
        if cursor is None:
            return cls()
        if not cursor.startswith(PREFIX):
            raise _refuse(cursor)
        text = cursor[len(PREFIX):]
        try:
            data = json.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
        except (ValueError, binascii.Error) as exc:
            raise _refuse(cursor) from exc
        if not isinstance(data, dict) or not isinstance(data.get("k"), dict):
            raise _refuse(cursor)
        since, page, query = data.get("s"), data.get("p"), data.get("q")
        moved, gone = data.get("m", []), data.get("g", [])
        if not all(v is None or isinstance(v, str) for v in (since, page, query)) or not all(
                isinstance(k, str) and isinstance(v, str) for k, v in data["k"].items()) or (
                not _ids(moved) or not _ids(gone)):
            raise _refuse(cursor)
        return cls(since, data["k"], page, query, tuple(moved), tuple(gone))

    def updated_since(self) -> str | None:
        """The ``updated_since`` of the next request."""
        return self.query if self.page else self.since


def _ids(value: object) -> bool:
    return isinstance(value, list) and all(type(i) is int for i in value)


@dataclass(frozen=True)
class Row:
    """What the cursor needs of one listed activity."""

    activity_id: int
    update_time: str  # normalised RFC 3339 UTC, whole seconds (sorts as text)
    digest: str


def advance(cursor: Cursor, rows: Iterable[Row], next_page: str | None
            ) -> tuple[list[int], Cursor]:
    """Which listed activities are new to the holder of ``cursor``, and the cursor after.

    ``rows`` are one page in ``update_time`` order; ``next_page`` is Pipedrive's cursor for
    the next page of the same listing (None on the last page).
    """
    since = cursor.since
    seen = dict(cursor.seen)
    fresh: list[int] = []
    for row in rows:
        key = str(row.activity_id)
        if row.update_time == cursor.since and cursor.seen.get(key) == row.digest:
            continue  # this very version was delivered already
        fresh.append(row.activity_id)
        if since is None or row.update_time > since:
            since, seen = row.update_time, {}
        if row.update_time == since:
            seen[key] = row.digest
    query = cursor.updated_since() if next_page else None
    return fresh, Cursor(since, seen, next_page or None, query)

