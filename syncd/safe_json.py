"""Limits on untrusted JSON from a provider or a remote CRM, before anything maps it.

Part of the base layer (ARCHITECTURE.md): the calendar connectors and the CRM sources
both screen what a server sends with it, so it imports nothing of syncd. One hostile or
broken item is set aside (quarantined with the reason returned) while the rest of a page
syncs:

* an item bigger than :data:`MAX_EVENT_CHARS` (a description of many megabytes) is not
  mapped: the same 1 MiB cap as an iCalendar object's (``connectors.ical``);
* nesting deeper than :data:`MAX_DEPTH` is refused before any recursive code (``str()``,
  ``repr()``, comparisons) can meet it; no event resource nests more than about six levels;
* identifiers (event id, etag, marker, iCalendar UID) become database keys, so they must be
  text without control characters or lone surrogates, which PostgreSQL and SQLite's UTF-8
  encoder refuse (:func:`usable_id`, :func:`stand_in_id`);
* :func:`loads` parses a page whose nesting would overflow the parser's stack.

The walk is iterative and stops as soon as a limit is passed, so screening costs at most
the cap, whatever the size of the item. Calendar events are screened one by one in
:mod:`connectors.json_limits`.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from typing import Any

#: Characters of JSON text one event may take (strings, keys and punctuation counted).
MAX_EVENT_CHARS = 1024 * 1024
#: Containers inside containers; an event resource needs about six.
MAX_DEPTH = 32
#: Longest identifier kept as a key: Google ids are at most 1024 characters, and the
#: state tables key events in columns of 1100 (links) and 1200 (quarantine, with a prefix).
MAX_ID_CHARS = 1024
#: Prefix of the stand-in id of an event whose own id is unusable.
STAND_IN_PREFIX = "unusable-id-"

_UNSAFE = re.compile(r"[\x00-\x1f\x7f-\x9f\ud800-\udfff]")


class WrongType(Exception):
    """A field holds a JSON value of the wrong type; the message is the quarantine reason."""


def text_field(data: Mapping[str, Any], key: str) -> str:
    """The text of field ``key``: "" when absent or null.

    Raises:
        WrongType: the field holds a number, a list, an object, ... A title read from
            ``str()`` of a list would be imported as if someone had typed it.
    """
    value = data.get(key)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise WrongType(f"{key} is {type(value).__name__}, not text")
    return value


def oversize(value: object, *, max_chars: int = MAX_EVENT_CHARS,
             max_depth: int = MAX_DEPTH) -> str | None:
    """Why ``value`` (one event as parsed JSON) is too big or too deep to map; None if not.

    Args:
        value: the event: dicts, lists, strings, numbers, booleans and None.
        max_chars: the most characters of JSON text the event may take.
        max_depth: the most containers nested in one another.

    Returns:
        The quarantine reason, or None when the event is within both limits.
    """
    total = 0
    stack: list[tuple[object, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, str):
            total += len(item) + 2
        elif isinstance(item, dict | list):
            if depth >= max_depth:
                return f"the event nests more than {max_depth} levels deep"
            # Each member costs at least a separator; counted before the members are
            # queued, so a list of millions is refused without queueing it.
            total += 2 + len(item)
            if total > max_chars:
                break
            if isinstance(item, dict):
                for key, member in item.items():
                    total += len(key) + 3 if isinstance(key, str) else 8
                    stack.append((member, depth + 1))
            else:
                stack.extend((member, depth + 1) for member in item)
        else:
            total += 8  # a number, true/false or null
        if total > max_chars:
            break
    if total > max_chars:
        return f"the event is larger than {max_chars} characters of JSON"
    return None


def usable_id(value: object) -> bool:
    """Whether ``value`` can be stored as an identifier: short text, no control characters."""
    return (isinstance(value, str) and 0 < len(value) <= MAX_ID_CHARS
            and _UNSAFE.search(value) is None)


def stand_in_id(value: object, what: str = "id") -> str:
    """A stable, storable id for an event whose own id is unusable (never a real id).

    Text ids are digested whole (the same hostile id always gets the same stand-in); any
    other value is named by ``what`` it is and its type only, so the events whose id is a
    number share one key, and the items of a listing that are not objects another.
    """
    if isinstance(value, str):
        raw = value.encode("utf-8", "surrogatepass")
    else:
        raw = f"{what}<{type(value).__name__}>".encode()
    return STAND_IN_PREFIX + hashlib.sha256(raw).hexdigest()[:32]


# --- JSON nested past the parser's stack -----------------------------------------------------

_STRING = r'"[^"\\]*(?:\\.[^"\\]*)*"'
_TOKEN = re.compile(r'\s*(?:(?P<str>' + _STRING + r')|(?P<num>-?(?:0|[1-9][0-9]*)'
                    r'(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?)|(?P<lit>true|false|null|NaN|-?Infinity)'
                    r'|(?P<punct>[\[\]{}:,]))', re.DOTALL)
_BRACKETS = re.compile(_STRING + r'|[\[\]{}]', re.DOTALL)
#: A container this many levels tall is opened by hand; shorter ones go to json's parser.
_TALL = 200
#: Python refuses to make an int of more digits than this (sys.int_info); json would then
#: fail the whole page for one such number.
_MAX_DIGITS = 4300


def _number(text: str) -> int | float:
    """An integer as JSON writes it; one too long for an int is read as a float (inf)."""
    return int(text) if len(text.lstrip("-")) <= _MAX_DIGITS else float(text)


_DECODER = json.JSONDecoder(parse_int=_number)


def loads(text: str | bytes) -> Any:
    """``json.loads``, except that nesting deeper than the interpreter's stack is parsed too.

    Python's parser recurses once per level and raises RecursionError a few hundred levels
    down, which would make one hostile event fail the whole page that carries it. The
    document is then parsed again: the containers on the way down to the deep part are
    opened by a loop, everything else by json's own parser, so the page's other events,
    links and tokens are read at C speed, and the deep event is refused by :func:`oversize`.

    An integer of more digits than Python converts (which fails ``json.loads`` outright)
    is read as a float, infinite if need be.

    Raises:
        ValueError: the text is not JSON.
    """
    try:
        return json.loads(text, parse_int=_number)
    except RecursionError:
        return _loads_flat(text.decode("utf-8") if isinstance(text, bytes) else text)


def _tall_containers(text: str) -> set[int]:
    """Where the containers at least :data:`_TALL` levels tall open (strings skipped)."""
    tall: set[int] = set()
    stack: list[list[int]] = []  # [open position, height of the tallest child so far]
    for match in _BRACKETS.finditer(text):
        char = match.group()
        if char in "[{":
            stack.append([match.start(), 0])
        elif char in "]}":
            if not stack:
                raise ValueError(f"unexpected {char!r} at character {match.start()}")
            position, height = stack.pop()
            if height + 1 >= _TALL:
                tall.add(position)
            if stack:
                stack[-1][1] = max(stack[-1][1], height + 1)
    return tall


def _loads_flat(text: str) -> Any:
    """A strict JSON parser with its own stack for the tall containers (see :func:`loads`)."""
    tall = _tall_containers(text)
    stack: list[Any] = []  # open containers, innermost last
    keys: list[Any] = []  # per open object: the key waiting for its value
    root: list[Any] = []
    want = "value"  # value | key | colon | next (a comma or the container's end) | done
    pos = 0
    while True:
        match = _TOKEN.match(text, pos)
        if match is None:
            if text[pos:].strip() or want != "done":
                raise ValueError(f"not JSON at character {pos}")
            return root[0]
        kind = match.lastgroup or ""
        start, pos, token = match.start(kind), match.end(), match.group(kind)
        if want == "done":
            raise ValueError(f"extra data at character {start}")
        if kind == "punct" and token in "]}":
            # Only a container opened just now may close without a value in it.
            closes_empty = bool(stack) and not stack[-1] and want == (
                "key" if isinstance(stack[-1], dict) else "value")
            if not stack or (want != "next" and not closes_empty) or (
                    (token == "]") != isinstance(stack[-1], list)):
                raise ValueError(f"unexpected {token!r} at character {start}")
            stack.pop()
            keys.pop()
            want = "next" if stack else "done"
            continue
        if want == "colon":
            if token != ":":
                raise ValueError(f"expected ':' at character {start}")
            want = "value"
            continue
        if want == "next":
            if token != ",":
                raise ValueError(f"expected ',' at character {start}")
            want = "key" if isinstance(stack[-1], dict) else "value"
            continue
        if want == "key":
            if kind != "str":
                raise ValueError(f"expected a key at character {start}")
            keys[-1] = json.loads(token)
            want = "colon"
            continue
        opened = kind == "punct" and token in "[{"
        if opened and start in tall:
            value: Any = [] if token == "[" else {}
        elif opened:
            value, pos = _DECODER.raw_decode(text, start)
            opened = False
        elif kind in ("str", "num", "lit"):
            value = _DECODER.decode(token)
        else:
            raise ValueError(f"unexpected {token!r} at character {start}")
        if not stack:
            root.append(value)
        elif isinstance(stack[-1], list):
            stack[-1].append(value)
        else:
            stack[-1][keys[-1]] = value
        if opened:
            stack.append(value)
            keys.append(None)
            want = "key" if isinstance(value, dict) else "value"
        else:
            want = "next" if stack else "done"
