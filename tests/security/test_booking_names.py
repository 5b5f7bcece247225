"""A booking visitor's name lands in the owner's event (title "Meeting with <name>" and
description "Booked by <name> ..."), which Google Calendar shows as HTML and links
addresses in, and which an invitation e-mail may quote. Markup and web addresses are
refused there, so a visitor cannot put a link or markup in the owner's calendar; ordinary
names (apostrophes, accents, hyphens, non-Latin scripts) pass."""

from __future__ import annotations

import pytest

from syncd.booking import check_name
from syncd.errors import BookingRefused

HOSTILE = [
    "<a href=https://evil.example>Confirm here</a>", "<b>Ada</b>", "Ada <img src=x>",
    "Ada > Bob", "https://evil.example/pay", "Pay at http://evil.example",
    "javascript://%0aalert(1)", "Ada &lt;b&gt;", "Ada &#60;b&#62;",
]


@pytest.mark.parametrize("name", HOSTILE)
def test_a_name_holding_markup_or_a_web_address_is_refused(name: str) -> None:
    with pytest.raises(BookingRefused) as refused:
        check_name(name)
    assert refused.value.reason == "name" and refused.value.field == "name"


@pytest.mark.parametrize("name", ["Ada Lovelace", "Seán O'Brien", "Zoë Müller-Lüdenscheidt",
                                  "李小龙", "J. R. R. Tolkien", "Ana & Bob", "Dr. No (MI6)"])
def test_ordinary_names_are_taken(name: str) -> None:
    assert check_name(name) == name
