"""Every request the connector sends fits the discovery document bundled with the client.

The validator walks ``schemas.Event`` of ``calendar.v3.json``: no unknown field at any depth,
the right JSON types, valid enum values (from ``enum`` or, where the document only lists
them in prose, from its "Possible values are" list), valid dates. Query parameters are
checked against the method's parameters the same way.
"""

from __future__ import annotations

import json
import re
from datetime import date, datetime, time
from functools import cache
from pathlib import Path
from typing import Any

import googleapiclient
import pytest

from connectors.base import CreateOp
from syncd.model import Guest
from syncd_testkit.emulators.google import GoogleEmulator, RecordedRequest
from tests.contract import timed
from tests.google.helpers import WRITE_METHODS
from tests.google.world import GoogleWorld, make_world

DOC_PATH = (Path(googleapiclient.__file__).parent / "discovery_cache" / "documents"
            / "calendar.v3.json")
_POSSIBLE = re.compile(r'- "([A-Za-z]+)"')


@cache
def discovery() -> dict[str, Any]:
    return dict(json.loads(DOC_PATH.read_text(encoding="utf-8")))


def enum_of(schema: dict[str, Any]) -> list[str] | None:
    if "enum" in schema:
        return list(schema["enum"])
    description = schema.get("description", "")
    if "Possible values are" in description:
        return _POSSIBLE.findall(description.split("Possible values are", 1)[1])
    return None


def validate(value: Any, schema: dict[str, Any], path: str, *, patch: bool) -> list[str]:
    """Problems of ``value`` against ``schema``; ``patch`` allows null (delete this key)."""
    if "$ref" in schema:
        schema = discovery()["schemas"][schema["$ref"]]
    if value is None:
        return [] if patch else [f"{path}: null outside a patch"]
    kind = schema.get("type")
    problems: list[str] = []
    if kind == "object":
        if not isinstance(value, dict):
            return [f"{path}: expected an object"]
        props, extra = schema.get("properties", {}), schema.get("additionalProperties")
        for key, item in value.items():
            if key in props:
                problems += validate(item, props[key], f"{path}.{key}", patch=patch)
            elif extra is not None:
                problems += validate(item, extra, f"{path}.{key}", patch=patch)
            else:
                problems.append(f"{path}.{key}: not in the schema")
    elif kind == "array":
        if not isinstance(value, list):
            return [f"{path}: expected an array"]
        for i, item in enumerate(value):
            problems += validate(item, schema["items"], f"{path}[{i}]", patch=False)
    elif kind == "string":
        if not isinstance(value, str):
            return [f"{path}: expected a string"]
        allowed = enum_of(schema)
        if allowed and value not in allowed:
            problems.append(f"{path}: {value!r} is not one of {allowed}")
        if schema.get("format") == "date":
            date.fromisoformat(value)
        if schema.get("format") == "date-time" and datetime.fromisoformat(value).tzinfo is None:
            problems.append(f"{path}: a date-time without an offset")
    elif kind == "integer":
        if not isinstance(value, int) or isinstance(value, bool):
            problems.append(f"{path}: expected an integer")
    elif kind == "boolean" and not isinstance(value, bool):
        problems.append(f"{path}: expected a boolean")
    return problems


def method_of(request: RecordedRequest) -> str:
    tail = request.path.split("/calendar/v3/calendars/", 1)[1].split("/")
    if len(tail) == 2:
        return {"GET": "list", "POST": "insert"}[request.method]
    return {"GET": "get", "PATCH": "patch", "DELETE": "delete", "PUT": "update"}[request.method]


def check_request(request: RecordedRequest) -> list[str]:
    doc = discovery()
    method = method_of(request)
    spec = doc["resources"]["events"]["methods"][method]
    known = {**doc["parameters"], **spec["parameters"]}
    problems = []
    for name, values in request.query.items():
        if name not in known:
            problems.append(f"{method}: unknown parameter {name}")
            continue
        for value in values:
            param = known[name]
            allowed = enum_of(param) if param.get("type") == "string" else None
            if allowed and value not in allowed:
                problems.append(f"{method}: {name}={value!r} is not one of {allowed}")
    if method in ("insert", "patch"):
        problems += validate(request.json(), {"$ref": "Event"}, method, patch=method == "patch")
    return problems


def api_requests(emu: GoogleEmulator) -> list[RecordedRequest]:
    return [r for r in emu.requests if r.path.startswith("/calendar/v3/calendars/")]


# --- the validator itself ------------------------------------------------------------------------


@pytest.mark.parametrize(("body", "problem"), [
    ({"summary": "x", "colour": "red"}, "not in the schema"),
    ({"transparency": "busy"}, "is not one of"),
    ({"status": "deleted"}, "is not one of"),
    ({"start": {"dateTime": "2026-12-03T10:00:00"}}, "without an offset"),
    ({"attendees": [{"email": "a@b.c", "rsvp": True}]}, "not in the schema"),
    ({"extendedProperties": {"private": {"syncd": 5}}}, "expected a string"),
    ({"summary": None}, "null outside a patch"),
])
def test_validator_catches(body: dict[str, Any], problem: str) -> None:
    problems = validate(body, {"$ref": "Event"}, "insert", patch=False)
    assert any(problem in p for p in problems), problems


# --- what the connector sends --------------------------------------------------------------------


def exercise(world: GoogleWorld) -> None:
    """Creates, every kind of field edit, timed <-> all-day, deletes and a restore."""
    guests = (Guest("ada@example.org", "Ada"), Guest("bob@example.net"))
    a = world.add("Timed", guests=guests, description="Notes for guests", location="Room 1")
    b = world.add("Whole day", hour=None, duration_minutes=1440, busy=True)
    c = world.add("To delete")
    world.converge()
    world.store.edit_activity(a.id, subject="Timed v2", due_time=None, busy=True,
                              description="", location="", guests=(Guest("new@example.com"),))
    world.store.edit_activity(b.id, due_time=time(13), duration_minutes=45)
    world.store.delete_activity(c.id)
    assert world.sync().outcome == "ok"
    ops = [CreateOp("r", "m0000001", 0, timed("Restore me"))]
    [created] = world.calendar.write(ops)
    assert created.event is not None
    world.emu.delete_event_as_user(world.calendar_id(), created.event.event_id)
    [restored] = world.calendar.write(ops)
    assert restored.error is None


def test_every_request_fits_the_discovery_document(tmp_path: Path,
                                                   google_emulator: GoogleEmulator) -> None:
    world = make_world(tmp_path, google_emulator, invite_guests=True)
    exercise(world)
    requests = api_requests(google_emulator)
    methods = {method_of(r) for r in requests}
    assert methods == {"list", "get", "insert", "patch", "delete"}
    problems = [p for r in requests for p in check_request(r)]
    assert problems == []
    writes = [r for r in requests if r.method in WRITE_METHODS]
    assert writes and all(r.param("sendUpdates") in ("all", "none") for r in writes)
