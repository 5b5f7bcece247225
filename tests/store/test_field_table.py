"""Every field declared in ``syncd.model.ACTIVITY_FIELDS`` is handled everywhere it must be.

The declaration is the one list of an activity's fields; the built-in store's checks,
reader and writer, the ``syncd activity`` options and ``syncd import`` derive from it.
These tests walk the declaration, so a field added there (or to ``Activity``) that one of
them does not handle fails here, naming the field: see syncd/model.py for what adding a
field touches.
"""

from __future__ import annotations

import csv
import dataclasses
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from pathlib import Path
from typing import Any

import pytest

from syncd.cli import main, to_jsonable
from syncd.crm.builtin.activities import ActivityStore
from syncd.crm.builtin.tables import Lead, Project
from syncd.errors import InvalidInput
from syncd.model import (
    ACTIVITY_FIELDS,
    FIELDS,
    PROJECTED,
    VIEW_ONLY,
    Activity,
    ActivityField,
    Guest,
    Kind,
    Projection,
    activity_changes,
    project_activity,
)

DAY = date(2026, 3, 2)
NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


@dataclass(frozen=True)
class Sample:
    """One value of a field: as the store takes it, as a user types it, as a view has it."""

    value: Any
    text: str
    seen: Any


def _same(value: Any, text: str) -> Sample:
    return Sample(value, text, value)


#: Two different values per kind, neither of them a default. The ids name what the
#: worlds below create: users 1 and 2, and two of every linked item.
SAMPLES: dict[Kind, tuple[Sample, Sample]] = {
    Kind.LINE: (_same("Room 4", "Room 4"), _same("Room 5", "Room 5")),
    Kind.TEXT: (_same("Line one\nline two", "Line one\nline two"), _same("Other", "Other")),
    Kind.NOTE: (_same("private words", "private words"), _same("other words", "other words")),
    Kind.DATE: (_same(date(2026, 3, 3), "2026-03-03"), _same(date(2026, 3, 4), "2026-03-04")),
    Kind.TIME: (_same(time(14, 30), "14:30"), _same(time(9, 0), "09:00")),
    Kind.MINUTES: (_same(45, "45"), _same(90, "90")),
    Kind.GUESTS: (Sample(("g@example.com",), "g@example.com", (Guest("g@example.com"),)),
                  Sample(("h@example.com",), "h@example.com", (Guest("h@example.com"),))),
    Kind.TYPE: (_same("call", "call"), _same("meeting", "meeting")),
    Kind.USER: (_same(2, "bob@example.com"), _same(1, "ann@example.com")),
    Kind.ITEM: (_same(1, "1"), _same(2, "2")),
    Kind.LEAD: (_same("lead-1", "lead-1"), _same("lead-2", "lead-2")),
}


def samples(spec: ActivityField) -> tuple[Sample, Sample]:
    """A first value and a second one for ``spec`` (a flag: its opposite, then back)."""
    if spec.kind is Kind.FLAG:
        return (_same(not spec.default, ""), _same(bool(spec.default), ""))
    assert spec.kind in SAMPLES, f"add samples of kind {spec.kind} to this test"
    return SAMPLES[spec.kind]


def _ids(specs: tuple[ActivityField, ...]) -> list[Any]:
    return [pytest.param(s, id=s.name) for s in specs]


def _base(spec: ActivityField) -> dict[str, Any]:
    """The fields every test activity has, but the one under test."""
    base: dict[str, Any] = {"owner_id": 1, "subject": "Base", "due_date": DAY}
    base.pop(spec.name, None)
    return base


def _seen(store: ActivityStore, activity: Activity, spec: ActivityField) -> Any:
    return getattr(activity, spec.name) if spec.on_view else store.get_note(activity.id)


@pytest.fixture
def world(store: ActivityStore) -> ActivityStore:
    """Users 1 and 2 and two of every kind of linked item."""
    store.add_user("ann@example.com", "Ann", "Europe/Oslo")
    store.add_user("bob@example.com", "Bob", "Europe/Oslo")
    for n in (1, 2):
        org = store.add_org(f"Org {n}")
        person = store.add_person(f"Person {n}", f"p{n}@example.com", org)
        store.add_deal(f"Deal {n}", person, org)
        with store.db.session() as session:
            session.add(Lead(id=f"lead-{n}", title=f"Lead {n}", update_time=NOW))
            session.add(Project(id=n, title=f"Project {n}", update_time=NOW))
    return store


# --- the declaration and the model ------------------------------------------------------


def test_every_activity_attribute_is_a_declared_field_or_its_identity() -> None:
    attributes = {f.name for f in dataclasses.fields(Activity)}
    declared = {f.name for f in ACTIVITY_FIELDS if f.on_view}
    assert attributes - VIEW_ONLY == declared
    assert not declared & VIEW_ONLY


def test_every_projection_field_is_synced_and_every_plain_one_comes_from_a_field() -> None:
    compared = {f.name for f in dataclasses.fields(Projection) if f.compare}
    assert compared == set(FIELDS)
    names = {f.name for f in ACTIVITY_FIELDS}
    assert set(PROJECTED) <= names and set(PROJECTED.values()) <= compared


# --- the built-in store -----------------------------------------------------------------


@pytest.mark.parametrize("spec", _ids(ACTIVITY_FIELDS))
def test_the_builtin_store_adds_and_edits_every_declared_field(
        world: ActivityStore, spec: ActivityField) -> None:
    first, second = samples(spec)
    added = world.add_activity(**{**_base(spec), spec.name: first.value})
    assert _seen(world, added, spec) == first.seen
    edited = world.edit_activity(added.id, **{spec.name: second.value})
    assert _seen(world, edited, spec) == second.seen


@pytest.mark.parametrize("spec", _ids(ACTIVITY_FIELDS))
def test_a_calendar_changes_exactly_the_fields_declared_as_calendar_fields(
        world: ActivityStore, spec: ActivityField) -> None:
    first, second = samples(spec)
    added = world.add_activity(**{**_base(spec), spec.name: first.value})
    if not spec.calendar:
        with pytest.raises(InvalidInput):
            world.apply_calendar_changes(added.id, {spec.name: second.value})
        return
    changed = world.apply_calendar_changes(added.id, {spec.name: second.value})
    assert _seen(world, changed, spec) == second.seen


@pytest.mark.parametrize("spec", _ids(tuple(f for f in ACTIVITY_FIELDS if f.projection)))
def test_every_projected_field_reaches_the_projection_and_comes_back(
        world: ActivityStore, spec: ActivityField) -> None:
    first, _ = samples(spec)
    activity = world.add_activity(**{**_base(spec), spec.name: first.value})
    projection = project_activity(activity)
    assert projection is not None and spec.projection is not None
    assert projection.get(spec.projection) == first.seen
    assert Projection.from_json(projection.to_json()) == projection
    assert activity_changes(projection, [spec.projection], activity.owner_tz, "keep") == {
        spec.name: first.seen}


# --- the command line and the import ----------------------------------------------------


Run = Callable[..., str]


@pytest.fixture
def cli(tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> Run:
    """``syncd --data-dir TMP ARGS...`` with the same world as the store tests."""
    monkeypatch.delenv("SYNCD_CONFIG", raising=False)
    monkeypatch.delenv("SYNCD_DATA_DIR", raising=False)

    def run(*args: str) -> str:
        capsys.readouterr()
        code = main(["--data-dir", str(tmp_path / "data"), *args])
        out, err = capsys.readouterr()
        assert code == 0, err
        return out

    for email in ("ann@example.com", "bob@example.com"):
        run("user", "add", email, "--time-zone", "Europe/Oslo")
    for n in (1, 2):
        run("org", "add", f"Org {n}")
        run("person", "add", f"Person {n}", "--email", f"p{n}@example.com", "--org", str(n))
        run("deal", "add", f"Deal {n}", "--person", str(n), "--org", str(n))
    return run


def _shown(run: Run, spec: ActivityField) -> Any:
    return json.loads(run("--json", "activity", "show", "1"))[spec.name]


def _option(spec: ActivityField, sample: Sample, *, on: bool = True) -> list[str]:
    """The command-line words that set ``spec`` to ``sample``."""
    assert spec.flag is not None
    if spec.kind is Kind.FLAG:
        flag = spec.flag if on else spec.off_flag
        assert flag is not None
        return [flag]
    return [spec.flag, sample.text]


@pytest.mark.parametrize("spec", _ids(tuple(f for f in ACTIVITY_FIELDS if f.flag)))
def test_activity_add_and_edit_set_every_field_that_has_an_option(
        cli: Run, spec: ActivityField) -> None:
    first, second = samples(spec)
    subject = first.text if spec.required and spec.kind is Kind.LINE else "Base"
    words = [] if spec.required and spec.kind is Kind.LINE else _option(spec, first)
    due = [] if spec.kind is Kind.DATE else ["--due", DAY.isoformat()]
    owner = [] if spec.kind is Kind.USER else ["--owner", "ann@example.com"]
    cli("activity", "add", subject, *owner, *due, *words)
    assert _shown(cli, spec) == to_jsonable(first.seen)
    if spec.kind is Kind.FLAG and spec.off_flag is None:
        return  # only set when adding (done has commands of its own)
    cli("activity", "edit", "1", *_option(spec, second, on=False))
    assert _shown(cli, spec) == to_jsonable(second.seen)


@pytest.mark.parametrize("fmt", ["json", "csv"])
@pytest.mark.parametrize("spec", _ids(tuple(f for f in ACTIVITY_FIELDS if f.column)))
def test_the_import_sets_every_field_that_has_a_column(
        cli: Run, tmp_path: Path, spec: ActivityField, fmt: str) -> None:
    first, _ = samples(spec)
    row = {"subject": "Base", "owner": "ann@example.com", "due": DAY.isoformat()}
    if spec.kind is Kind.DATE:
        del row["due"]
    assert spec.column is not None
    row[spec.column] = "true" if spec.kind is Kind.FLAG else first.text
    path = tmp_path / f"rows.{fmt}"
    if fmt == "json":
        path.write_text(json.dumps([row]))
    else:
        with path.open("w", newline="") as out:
            writer = csv.writer(out)
            writer.writerows([list(row), list(row.values())])
    cli("import", str(path))
    assert _shown(cli, spec) == to_jsonable(first.seen)
