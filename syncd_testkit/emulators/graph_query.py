"""OData query options the Graph emulator understands: ``$filter``, ``$expand``, ``Prefer``.

``$filter`` supports what a sync daemon needs to find its own events (providers.md B.6)::

    singleValueExtendedProperties/any(ep: ep/id eq '<id>' and ep/value eq '<v>')

with ``eq``/``ne``/``contains``/``startswith`` on ``ep/value`` (case-insensitive) and ``and``/
``or``/parentheses, plus ``iCalUId``, ``subject`` and ``transactionId`` comparisons at the top
level. Anything else is answered 400 so that an unsupported query fails loudly instead of
silently matching everything.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from .graph_model import GraphError, StoredEvent, ext_prop_key

__all__ = ["EventPredicate", "parse_expand", "parse_filter", "parse_prefer"]

EventPredicate = Callable[[StoredEvent], bool]
_Pred = Callable[[StoredEvent, "dict[str, str] | None"], bool]
_Getter = Callable[[StoredEvent, "dict[str, str] | None"], str]

_TOKEN = re.compile(
    r"\s*(?:(?P<str>'(?:[^']|'')*')|(?P<punct>[(),:])|(?P<word>[A-Za-z_$][\w/.$]*))"
)
_TOP_FIELDS = {"icaluid": "ical_uid", "subject": "subject", "transactionid": "transaction_id"}


def _unsupported(text: str) -> GraphError:
    return GraphError(
        400,
        "ErrorInvalidUrlQueryFilter",
        f"The query filter '{text}' is not supported by the Graph emulator.",
    )


@dataclass
class _Tok:
    kind: str
    text: str


class _FilterParser:
    """Recursive descent over: or := and ('or' and)*; and := atom ('and' atom)*."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.toks: list[_Tok] = []
        pos = 0
        while pos < len(text):
            m = _TOKEN.match(text, pos)
            if m is None or m.end() == pos:
                if text[pos:].strip() == "":
                    break
                raise _unsupported(text)
            kind = m.lastgroup or ""
            self.toks.append(_Tok(kind, m.group(kind)))
            pos = m.end()
        self.i = 0
        self.var: str | None = None

    def peek(self) -> _Tok | None:
        return self.toks[self.i] if self.i < len(self.toks) else None

    def take(self, text: str | None = None) -> _Tok:
        tok = self.peek()
        if tok is None or (text is not None and tok.text.lower() != text):
            raise _unsupported(self.text)
        self.i += 1
        return tok

    def string(self) -> str:
        tok = self.take()
        if tok.kind != "str":
            raise _unsupported(self.text)
        return tok.text[1:-1].replace("''", "'")

    def parse(self) -> _Pred:
        pred = self.or_expr()
        if self.peek() is not None:
            raise _unsupported(self.text)
        return pred

    def or_expr(self) -> _Pred:
        parts = [self.and_expr()]
        while (tok := self.peek()) is not None and tok.text.lower() == "or":
            self.take()
            parts.append(self.and_expr())
        return parts[0] if len(parts) == 1 else (lambda ev, p: any(f(ev, p) for f in parts))

    def and_expr(self) -> _Pred:
        parts = [self.atom()]
        while (tok := self.peek()) is not None and tok.text.lower() == "and":
            self.take()
            parts.append(self.atom())
        return parts[0] if len(parts) == 1 else (lambda ev, p: all(f(ev, p) for f in parts))

    def atom(self) -> _Pred:
        tok = self.take()
        low = tok.text.lower()
        if tok.text == "(":
            inner = self.or_expr()
            self.take(")")
            return inner
        if low == "singlevalueextendedproperties/any" and self.var is None:
            return self.any_expr()
        if low in ("contains", "startswith"):
            self.take("(")
            operand = self.take().text
            self.take(",")
            needle = self.string()
            self.take(")")
            return self.compare(operand, low, needle)
        if tok.kind == "word":
            op = self.take().text.lower()
            if op not in ("eq", "ne"):
                raise _unsupported(self.text)
            return self.compare(tok.text, op, self.string())
        raise _unsupported(self.text)

    def any_expr(self) -> _Pred:
        self.take("(")
        self.var = self.take().text.lower()
        self.take(":")
        inner = self.or_expr()
        self.take(")")
        self.var = None
        return lambda ev, _p: any(inner(ev, prop) for prop in ev.ext_props.values())

    def compare(self, operand: str, op: str, literal: str) -> _Pred:
        low = operand.lower()
        if self.var is not None and low == f"{self.var}/id" and op == "eq":
            key = ext_prop_key(literal)
            return lambda _ev, p: p is not None and ext_prop_key(p["id"]) == key
        if self.var is not None and low == f"{self.var}/value":
            # Extended-property string values compare case-insensitively (B.6).
            return _string_test(
                op, literal.lower(), lambda _ev, p: (p or {}).get("value", "").lower()
            )
        if self.var is None and low in _TOP_FIELDS:
            attr = _TOP_FIELDS[low]

            def field_value(ev: StoredEvent, _p: dict[str, str] | None) -> str:
                if attr == "subject":
                    return str(ev.props.get("subject", "")).lower()
                return str(getattr(ev, attr) or "")

            needle = literal.lower() if attr == "subject" else literal
            return _string_test(op, needle, field_value)
        raise _unsupported(self.text)


def _string_test(op: str, needle: str, get: _Getter) -> _Pred:
    if op == "eq":
        return lambda ev, p: get(ev, p) == needle
    if op == "ne":
        return lambda ev, p: get(ev, p) != needle
    if op == "contains":
        return lambda ev, p: needle in get(ev, p)
    return lambda ev, p: get(ev, p).startswith(needle)


def parse_filter(text: str) -> EventPredicate:
    """Compile an event ``$filter`` into a predicate; 400 for anything unsupported."""
    pred = _FilterParser(text).parse()
    return lambda ev: bool(pred(ev, None))


_EXPAND_ITEM = re.compile(r"singleValueExtendedProperties(?:\((?P<opts>.*)\))?$", re.IGNORECASE)
_ID_EQ = re.compile(r"id\s+eq\s+'((?:[^']|'')*)'", re.IGNORECASE)


def parse_expand(text: str | None) -> tuple[str, ...] | None:
    """Parse ``$expand``; returns the extended-property ids asked for.

    ``None``: extended properties were not expanded (they are then not returned at all);
    ``()``: expanded without a filter (all of them). Other navigation properties are ignored.
    """
    if not text:
        return None
    for item in _split_top_level(text):
        m = _EXPAND_ITEM.match(item.strip())
        if m is None:
            continue
        opts = m.group("opts") or ""
        return tuple(v.replace("''", "'") for v in _ID_EQ.findall(opts))
    return None


def _split_top_level(text: str) -> list[str]:
    parts, depth, start = [], 0, 0
    for i, ch in enumerate(text):
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        elif ch == "," and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    parts.append(text[start:])
    return parts


def parse_prefer(values: list[str]) -> dict[str, str]:
    """Parse ``Prefer`` header values into ``{lower-case name: unquoted value}``.

    Several preferences may share one header (comma-separated) or come in several headers.
    """
    result: dict[str, str] = {}
    for value in values:
        for item in re.findall(r'(?:[^,"]|"[^"]*")+', value):
            name, _, raw = item.strip().partition("=")
            if name:
                result[name.strip().lower()] = raw.strip().strip('"')
    return result
