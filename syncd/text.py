"""Text hygiene at the boundary between syncd and the outside world.

Text coming back from a calendar is untrusted (failure modes 25 and 26): it may carry
control characters that inject iCalendar properties, or HTML that a server wrapped around
plain text. Everything is reduced to plain text *before* it is compared with the merge
base, so a server's rewrite never reads as a user's edit (failure mode 8).
"""

from __future__ import annotations

import html
import re
from html.parser import HTMLParser

# C0 controls except TAB and LF, DEL, C1 controls, the Unicode line/paragraph separators,
# which some parsers treat as line breaks, and lone surrogates (a JSON "\ud800" escape),
# which no UTF-8 encoder (SQLite's, PostgreSQL's) accepts.
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff]")
# Only document and line-structure tags count as "this is HTML": calendar apps that send
# HTML always use them, while a plain text that merely mentions <b> must stay as typed.
_LOOKS_LIKE_HTML = re.compile(r"<\s*(!doctype|html|body|div|p|br)\b[^>]*>", re.IGNORECASE)
_BLOCK_TAGS = frozenset({"p", "div", "li", "tr", "ul", "ol", "table", "h1", "h2", "h3", "h4"})
_SKIP_TAGS = frozenset({"script", "style", "head", "title"})


def printable(text: str) -> str:
    """``text`` without the control characters a terminal would act on (escape sequences
    that retitle, clear or rewrite it); line breaks and tabs stay. For whatever syncd
    prints or logs, since errors and reasons may carry a server's words."""
    return _CONTROL.sub("", text)


def clean_text(value: str | None, *, single_line: bool = False) -> str:
    """Plain, safe text: unified line endings, no control characters, trimmed.

    ``single_line`` folds line breaks into spaces (titles and locations).
    """
    if not value:
        return ""
    text = value.replace("\r\n", "\n").replace("\r", "\n")
    text = _CONTROL.sub("", text)
    if single_line:
        text = " ".join(text.split())
    else:
        text = "\n".join(line.rstrip() for line in text.split("\n")).strip("\n")
    return text.strip()


class _TextExtractor(HTMLParser):
    """Collects the text of an HTML fragment; scripts, styles and heads are dropped."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skip_depth = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _SKIP_TAGS:
            self._skip_depth += 1
        elif tag == "br" or tag in _BLOCK_TAGS:
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in _SKIP_TAGS:
            self._skip_depth = max(0, self._skip_depth - 1)
        elif tag in _BLOCK_TAGS:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if not self._skip_depth:
            # Source formatting white space inside HTML is not content.
            self.parts.append(re.sub(r"[ \t\r\n]+", " ", data))


def html_to_text(value: str) -> str:
    """Reduce an HTML fragment to its text; links keep their text, never their URL."""
    parser = _TextExtractor()
    parser.feed(value)
    parser.close()
    text = "".join(parser.parts)
    lines = [line.strip() for line in text.split("\n")]
    # Collapse the runs of blank lines that nested blocks produce.
    out: list[str] = []
    for line in lines:
        if line or (out and out[-1]):
            out.append(line)
    return clean_text("\n".join(out))


def looks_like_html(value: str) -> bool:
    """True when ``value`` contains markup a calendar would have added."""
    return _LOOKS_LIKE_HTML.search(value) is not None


def untrusted_text(value: str | None, *, single_line: bool = False) -> str:
    """Text from a calendar server: HTML reduced to text, then cleaned."""
    if not value:
        return ""
    if looks_like_html(value):
        value = html_to_text(value)
    return clean_text(value, single_line=single_line)


def text_to_html(value: str) -> str:
    """Plain text as a minimal HTML body (for providers that insist on HTML)."""
    return "<br>".join(html.escape(line) for line in value.split("\n"))
