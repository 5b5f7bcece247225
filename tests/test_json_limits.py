"""The screen of one provider event and the stack-free JSON parser (syncd.safe_json)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from connectors.json_limits import event_key
from syncd.safe_json import MAX_DEPTH, _loads_flat, loads, oversize, stand_in_id, usable_id

JSON: st.SearchStrategy[Any] = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text()
    | st.floats(allow_nan=False),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(), inner, max_size=5),
    max_leaves=30)


@given(JSON)
def test_the_flat_parser_reads_what_json_writes(value: Any) -> None:
    text = json.dumps(value)
    assert _loads_flat(text) == json.loads(text)


@pytest.mark.parametrize("text", ["", "[1,]", '{"a"}', '{"a":1,}', "[1 2]", "[", "]",
                                  "{1:2}", "[1]]", '{"a":1}x', "[,1]", "{,}", '{"a":}', "[}",
                                  '{"a" 1}', "'a'", "[01]", "tru"])
def test_the_flat_parser_refuses_what_is_not_json(text: str) -> None:
    with pytest.raises(ValueError):
        _loads_flat(text)
    with pytest.raises(ValueError):
        json.loads(text)


def test_nesting_past_the_interpreters_stack_is_read_with_the_rest_of_the_page() -> None:
    page = '{"items": [{"id": "a"}, {"id": "b", "x": ' + "[" * 50_000 + "]" * 50_000 \
        + '}], "nextPageToken": "t"}'
    data = loads(page.encode())
    assert [i["id"] for i in data["items"]] == ["a", "b"] and data["nextPageToken"] == "t"
    assert oversize(data["items"][1]) == f"the event nests more than {MAX_DEPTH} levels deep"
    assert oversize(data["items"][0]) is None


def test_size_is_counted_without_walking_past_the_cap() -> None:
    assert oversize({"d": "x" * 100}, max_chars=50) is not None
    assert oversize({"d": ["x"] * 10_000_000}) is not None  # refused before queueing them
    assert oversize({"d": "x" * 100}, max_chars=200) is None


@pytest.mark.parametrize("value", [None, 1, 1.5, True, [], {}, "", "a\x00b", "a\ud800",
                                   "x" * 1025, "a\x85b"])
def test_unusable_ids_get_a_stable_stand_in(value: Any) -> None:
    assert not usable_id(value)
    event_id, problem = event_key(value)
    assert usable_id(event_id) and problem
    assert event_id == stand_in_id(value)
    assert event_key(value)[0] == event_id  # the same every time, so one quarantine row


def test_a_number_too_long_for_an_int_does_not_fail_the_page() -> None:
    page = '{"items": [{"id": "a", "n": ' + "9" * 5000 + '}, {"id": "b"}], "t": -' \
        + "1" * 5000 + "}"
    data = loads(page)
    assert [i["id"] for i in data["items"]] == ["a", "b"]
    assert data["items"][0]["n"] == float("inf") and data["t"] == float("-inf")
    assert loads("[" * 30_000 + "9" * 5000 + "]" * 30_000) is not None
