"""Text from a calendar is untrusted (failure mode 26): what syncd keeps of it is plain.

``syncd.text.untrusted_text`` is the one door for descriptions, titles, locations and
names read from Google, Graph and CalDAV. HTML becomes its text: scripts, styles and
other non-content elements leave nothing, a link keeps its words and never its URL.
Whatever comes out holds no control character, whatever went in.
"""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from syncd.text import untrusted_text

CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff]")


@pytest.mark.parametrize(("html", "text"), [
    ("<div>Hi<script>alert(1)</script> there</div>", "Hi there"),
    ("<p>a<style>p{color:red}</style>b</p>", "ab"),
    ("<p><a href='javascript:alert(1)'>click</a></p>", "click"),
    ("<p><a href='https://evil.test/x?token=1'>agenda</a></p>", "agenda"),
    ("<p><img src=x onerror=alert(1)>after</p>", "after"),
    ("<div><iframe src='https://evil.test'></iframe>ok</div>", "ok"),
    ("<br><SCRIPT>x</SCRIPT>y", "y"),
    ("<p>x<script>never closed", "x"),
    ("<html><head><title>t</title><meta http-equiv=refresh content='0;url=https://evil.test'>"
     "</head><body>z</body></html>", "z"),
    ("<div>Agenda<br>1. pricing</div><div>2. terms</div>", "Agenda\n1. pricing\n\n2. terms"),
])
def test_html_from_a_calendar_becomes_text_without_markup_scripts_or_urls(
        html: str, text: str) -> None:
    assert untrusted_text(html) == text


def test_plain_text_that_mentions_a_tag_stays_as_typed() -> None:
    # Not markup a calendar added: kept as text, for whatever shows it to escape.
    assert untrusted_text("use <b> for bold") == "use <b> for bold"
    assert untrusted_text("<p>1 &lt; 2 &amp; 3</p>") == "1 < 2 & 3"


@given(st.text(max_size=200), st.booleans())
def test_nothing_read_from_a_calendar_keeps_a_control_character(
        value: str, single_line: bool) -> None:
    for raw in (value, f"<div>{value}</div>"):
        out = untrusted_text(raw, single_line=single_line)
        assert not CONTROL.search(out) and "\r" not in out
        assert out == out.strip()
        if single_line:
            assert "\n" not in out and "\t" not in out
