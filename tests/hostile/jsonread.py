"""The hostile JSON corpus for the Google and Graph connectors, and what each item must do.

Every item starts from a real event as the emulator renders it and changes one thing: a
field of many megabytes, nesting hundreds deep, a value of the wrong JSON type, a date at
the end of time, an identifier no database accepts, text carrying injection or lone
surrogates. The result is planted as JSON *text* (``syncd_testkit.emulators.raw_json``), so the
connector meets it exactly as a broken or malicious server would send it.

Two kinds of item:

* :class:`Hostile` items must be quarantined with a reason (``reason`` is a fragment the
  recorded reason must contain), under the event's id or, when the id itself is unusable,
  under its stand-in id (:func:`connectors.json_limits.event_key`);
* :class:`Dirty` items are events that stay readable once their text is cleaned: they must
  sync, and the activity must hold no control character or lone surrogate.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select

from connectors.json_limits import event_key
from syncd.model import Activity
from syncd.safe_json import loads, stand_in_id
from syncd.store.db import Database
from syncd.store.state_tables import SyncQuarantine

JsonDict = dict[str, Any]
Path = tuple[str, ...]
MIB = 1024 * 1024


def nested(depth: int, leaf: Any = "x", *, kind: str = "list") -> Any:
    """``depth`` containers inside one another around ``leaf`` (built without recursion)."""
    value = leaf
    for _ in range(depth):
        value = [value] if kind == "list" else {"a": value}
    return value


def with_value(event: JsonDict, path: Path, value: Any) -> JsonDict:
    """A copy of ``event`` with the field at ``path`` set (parents made as needed)."""
    out = copy.deepcopy(event)
    node = out
    for key in path[:-1]:
        if not isinstance(node.get(key), dict):
            node[key] = {}
        node = node[key]
    node[path[-1]] = value
    return out


def raw(text: str) -> Callable[[JsonDict], str]:
    """A mutation that replaces the event with ``text`` verbatim."""
    return lambda _event: text


@dataclass(frozen=True)
class Fields:
    """Where one provider keeps what the corpus changes."""

    title: Path
    description: Path
    location: Path
    start: Path
    end: Path
    start_time: Path
    end_time: Path
    uid: Path
    set_marker: Callable[[JsonDict, Any], JsonDict]


GOOGLE = Fields(
    title=("summary",), description=("description",), location=("location",),
    start=("start",), end=("end",), start_time=("start", "dateTime"),
    end_time=("end", "dateTime"), uid=("iCalUID",),
    set_marker=lambda e, v: with_value(e, ("extendedProperties", "private", "syncd"), v))


def _graph_marker(event: JsonDict, value: Any) -> JsonDict:
    from connectors.outlook_map import MARKER_PROP
    return {**event, "singleValueExtendedProperties": [{"id": MARKER_PROP, "value": value}]}


GRAPH = Fields(
    title=("subject",), description=("body", "content"), location=("location", "displayName"),
    start=("start",), end=("end",), start_time=("start", "dateTime"),
    end_time=("end", "dateTime"), uid=("iCalUId",), set_marker=_graph_marker)


@dataclass(frozen=True)
class Hostile:
    """An event that must be quarantined; ``reason`` is a fragment of the recorded reason."""

    name: str
    mutate: Callable[[JsonDict], JsonDict | str]
    reason: str = ""

    def text(self, event: JsonDict) -> str:
        """The planted JSON text for ``event`` (the emulator's rendering of a real event)."""
        out = self.mutate(copy.deepcopy(event))
        return out if isinstance(out, str) else json.dumps(out)

    def key_id(self, event: JsonDict) -> str:
        """The id the quarantine is recorded under."""
        out = self.mutate(copy.deepcopy(event))
        value = loads(out) if isinstance(out, str) else out
        if not isinstance(value, dict):
            return stand_in_id(value, "item")
        return event_key(value.get("id"))[0]


@dataclass(frozen=True)
class Dirty:
    """An event that must sync once cleaned; ``title`` is the subject the CRM must hold."""

    name: str
    mutate: Callable[[JsonDict], JsonDict | str]
    title: str

    def text(self, event: JsonDict) -> str:
        out = self.mutate(copy.deepcopy(event))
        return out if isinstance(out, str) else json.dumps(out)


def common(f: Fields) -> list[Hostile]:
    """The classes both providers share, aimed at the provider's own field names."""
    set_ = with_value
    return [
        # Oversized: screened before any mapping code reads them.
        Hostile("description_of_3_mib", lambda e: set_(e, f.description, "d" * (3 * MIB)),
                "larger than"),
        Hostile("title_of_1_5_mib", lambda e: set_(e, f.title, "t" * (3 * MIB // 2)),
                "larger than"),
        Hostile("three_hundred_thousand_attendees",
                lambda e: {**e, "attendees": [{"x": 1}] * 300_000}, "larger than"),
        Hostile("location_of_two_million_small_strings",
                lambda e: set_(e, f.location, ["l"] * 2_000_000), "larger than"),
        # Within the event cap, over what an activity may hold: refused by the CRM side.
        Hostile("title_of_300_characters", lambda e: set_(e, f.title, "T" * 300),
                "longer than 255"),
        Hostile("description_of_200_000_characters",
                lambda e: set_(e, f.description, "D" * 200_000), "longer than 100000"),
        # Deeply nested.
        Hostile("description_nested_200_lists", lambda e: set_(e, f.description, nested(200)),
                "nests more than"),
        Hostile("start_nested_100_objects",
                lambda e: set_(e, f.start, nested(100, kind="object")), "nests more than"),
        Hostile("unknown_field_nested_500", lambda e: {**e, "x-extra": nested(500)},
                "nests more than"),
        # Past the stack of Python's own JSON parser: the page must still be read.
        Hostile("description_nested_20_000_lists_deep",
                lambda e: json.dumps(set_(e, f.description, "@deep@")).replace(
                    '"@deep@"', "[" * 20_000 + "]" * 20_000), "nests more than"),
        # Wrong JSON types in the text fields.
        Hostile("title_is_a_list", lambda e: set_(e, f.title, ["Call"]), "not text"),
        Hostile("title_is_an_object", lambda e: set_(e, f.title, {"text": "Call"}), "not text"),
        Hostile("title_is_a_number", lambda e: set_(e, f.title, 42), "not text"),
        Hostile("description_is_true", lambda e: set_(e, f.description, True), "not text"),
        Hostile("location_is_a_list", lambda e: set_(e, f.location, ["Oslo"]), "not text"),
        # Broken times.
        Hostile("start_is_a_list", lambda e: set_(e, f.start, [2026, 12, 10])),
        Hostile("start_is_a_string", lambda e: set_(e, f.start, "2026-12-10T10:00:00Z")),
        Hostile("start_is_null", lambda e: set_(e, f.start, None)),
        Hostile("end_is_missing", lambda e: {k: v for k, v in e.items() if k != f.end[0]}),
        Hostile("start_time_is_a_number", lambda e: set_(e, f.start_time, 1e308)),
        Hostile("start_time_is_an_object", lambda e: set_(e, f.start_time, {"y": 2026})),
        Hostile("start_time_is_words", lambda e: set_(e, f.start_time, "yesterday at noon")),
        Hostile("start_time_with_half_a_mib_of_digits",
                lambda e: set_(e, f.start_time, "2026-12-10T10:00:00" + "0" * (MIB // 2))),
        Hostile("start_time_year_0", lambda e: set_(e, f.start_time, "0000-12-10T10:00:00Z")),
        Hostile("start_time_month_13", lambda e: set_(e, f.start_time, "2026-13-10T10:00:00Z")),
        # Identifiers no database key may hold.
        Hostile("id_is_a_number", lambda e: {**e, "id": 12345}, "not a usable identifier"),
        Hostile("id_is_an_object", lambda e: {**e, "id": {"id": "x"}},
                "not a usable identifier"),
        Hostile("id_holds_a_nul", lambda e: {**e, "id": "evt\u0000id"},
                "not a usable identifier"),
        Hostile("id_holds_a_lone_surrogate", lambda e: {**e, "id": "evt\ud800id"},
                "not a usable identifier"),
        Hostile("id_of_5000_characters", lambda e: {**e, "id": "i" * 5000},
                "not a usable identifier"),
        Hostile("marker_holds_a_nul", lambda e: f.set_marker(e, "0123\u0000abcd"),
                "marker is not a usable identifier"),
        Hostile("ical_uid_holds_a_lone_surrogate", lambda e: set_(e, f.uid, "uid\udfff@x"),
                "iCalendar UID is not a usable identifier"),
    ]


def dirty(f: Fields) -> list[Dirty]:
    """Readable events with hostile text: they sync, with the text made safe."""
    return [
        Dirty("ical_injection_in_the_title",
              lambda e: with_value(e, f.title, "Call\r\nBEGIN:VEVENT\r\nUID:evil\r\nEND:VEVENT"),
              "Call BEGIN:VEVENT UID:evil END:VEVENT"),
        Dirty("control_characters_in_the_title",
              lambda e: with_value(e, f.title, "Ca\u0000ll\u0085 \u2028Ada\u001b[31m"),
              "Call Ada[31m"),
        Dirty("lone_surrogates_in_the_title_and_description",
              lambda e: with_value(with_value(e, f.title, "Lunch \ud83d"), f.description,
                                   "menu \udc00 here"), "Lunch"),
        Dirty("a_number_of_5000_digits",
              lambda e: json.dumps({**with_value(e, f.title, "Big number"), "x-n": "@n@"})
              .replace('"@n@"', "9" * 5000), "Big number"),
        Dirty("sql_in_the_title",
              lambda e: with_value(e, f.title, "x'); DROP TABLE activities;--"),
              "x'); DROP TABLE activities;--"),
        Dirty("script_in_the_location",
              lambda e: with_value(with_value(e, f.title, "Script"), f.location,
                                   "<script>alert(1)</script>"), "Script"),
    ]


def clean(values: Iterable[str]) -> bool:
    """No control character (but TAB/LF) and no lone surrogate in any of ``values``."""
    for text in values:
        for ch in text:
            code = ord(ch)
            if (code < 0x20 and ch not in "\t\n") or 0x7F <= code <= 0x9F \
                    or 0xD800 <= code <= 0xDFFF:
                return False
    return True


def quarantine_reasons(db: Database, account: str) -> dict[str, str]:
    """Every item key of ``account`` on the quarantine table, with its recorded reason."""
    with db.session() as s:
        rows = s.scalars(select(SyncQuarantine).where(SyncQuarantine.account == account))
        return {r.item_key: r.reason for r in rows}


def check_quarantined(reasons: dict[str, str], expected: dict[str, Hostile]) -> None:
    """Each expected key is on the table with its reason fragment, and nothing else is."""
    for key, item in expected.items():
        assert key in reasons, f"{item.name} was not quarantined"
        assert item.reason in reasons[key], (item.name, reasons[key])
    assert set(reasons) == set(expected)


def check_imported(activities: Iterable[Activity], titles: Iterable[str]) -> None:
    """The activities are exactly ``titles`` (no hostile event among them), all clean."""
    activities = list(activities)
    got = sorted(a.subject for a in activities)
    assert not any(t.startswith("Hostile") for t in got), got
    assert got == sorted(titles)
    assert clean(a.subject for a in activities)
    assert clean(a.description for a in activities)
    assert clean(a.location for a in activities)
