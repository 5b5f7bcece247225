"""Planted JSON: an event that an emulator serves exactly as a test wrote it.

Hostile-input tests need events no emulator would ever make: a description of many
megabytes, a ``start`` that is a list, a year-9999 ``dateTime``, nesting hundreds deep,
escapes of lone surrogates. A test plants the JSON *text* of such an event under the id of
a real stored event (so it is listed, paged, delta-tracked and windowed like any other);
wherever the emulator would render that event (a listing page, a GET, a ``$batch`` or
batch part) it renders a placeholder, and the encoded reply has each placeholder replaced
by the planted text, byte for byte. The surrounding reply stays what the real API sends:
the same envelope, paging links, headers and content type.
"""

from __future__ import annotations

import re
import threading
import uuid

_PREFIX = "@@planted-json-"
_TOKEN = re.compile(r'"(@@planted-json-[0-9a-f]{32}@@)"')
_texts: dict[str, str] = {}
_lock = threading.Lock()


class PlantedEvents:
    """One emulator's planted events: event id -> placeholder of the planted text."""

    def __init__(self) -> None:
        self._by_id: dict[str, str] = {}

    def plant(self, event_id: str, text: str) -> None:
        """Serve ``text`` (any text; JSON in every faithful case) for event ``event_id``."""
        self._by_id[event_id] = verbatim(text)

    def clear(self) -> None:
        """Serve every event as the emulator renders it again."""
        self._by_id.clear()

    def placeholder(self, event_id: object) -> str | None:
        """The placeholder to render instead of event ``event_id``, if one is planted."""
        return self._by_id.get(event_id) if isinstance(event_id, str) else None


def verbatim(text: str) -> str:
    """A placeholder that :func:`splice` replaces by ``text``, byte for byte."""
    token = f"{_PREFIX}{uuid.uuid4().hex}@@"
    with _lock:
        _texts[token] = text
    return token


def splice(encoded: str) -> str:
    """``encoded`` JSON text with every placeholder replaced by its planted text."""
    if _PREFIX not in encoded:
        return encoded
    with _lock:
        return _TOKEN.sub(lambda m: _texts[m.group(1)], encoded)
