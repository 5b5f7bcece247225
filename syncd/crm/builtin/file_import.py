"""Reading activities from a JSON or CSV file for ``syncd import``.

The file is checked completely before anything is written: every row is parsed here and
then checked by the store (``ActivityStore.check_activities``), and all problems are
reported together with their row numbers. Only a file without problems is imported, in
one transaction.

Columns (CSV header) or keys (JSON objects): the ``column`` of every field in
:data:`syncd.model.ACTIVITY_FIELDS` (``syncd import --help`` lists them); all optional
except ``subject``. ``owner`` is the owner's e-mail (default: the only user); ``guests``
are e-mails or person ids, a JSON list or separated by ``;`` in CSV; empty CSV cells are
"not given".
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date, time
from typing import Any

from syncd.model import ACTIVITY_FIELDS, ActivityField, Kind

#: Column -> the field it sets, from the declaration.
BY_COLUMN: dict[str, ActivityField] = {f.column: f for f in ACTIVITY_FIELDS if f.column}
COLUMNS = tuple(BY_COLUMN)

#: Store field -> the column a user wrote, for messages in the user's own words.
STORE_TO_COLUMN = {f.name: f.column for f in ACTIVITY_FIELDS
                   if f.column and f.column != f.name}

_DURATION = re.compile(r"^(?:(\d+)d)?\s*(?:(\d+)h)?\s*(?:(\d+)m(?:in)?)?$")
_TRUE = {"true", "yes", "y", "1"}
_FALSE = {"false", "no", "n", "0", ""}


class ValueProblem(ValueError):
    """A value that cannot be read; the message says what was expected."""


def parse_date(text: str) -> date:
    """``YYYY-MM-DD``."""
    try:
        return date.fromisoformat(text.strip())
    except ValueError:
        raise ValueProblem(f"{text!r} is not a date (YYYY-MM-DD)") from None


def parse_time(text: str) -> time:
    """``HH:MM`` (24-hour clock)."""
    try:
        value = time.fromisoformat(text.strip())
    except ValueError:
        raise ValueProblem(f"{text!r} is not a time (HH:MM, 24-hour)") from None
    if value.tzinfo is not None:
        raise ValueProblem(f"{text!r}: give the time without an offset, in the owner's zone")
    return value


def parse_duration(text: str) -> int:
    """Minutes: ``90``, ``1h30m``, ``45m``, ``2h`` or ``1d`` (a day is 1440 minutes)."""
    value = text.strip().lower()
    if value.isdigit():
        return int(value)
    match = _DURATION.match(value)
    if not value or match is None:
        raise ValueProblem(f"{text!r} is not a duration (minutes, or e.g. 1h30m)")
    days, hours, minutes = (int(g or 0) for g in match.groups())
    return days * 1440 + hours * 60 + minutes


def parse_bool(text: str) -> bool:
    """true/false, yes/no, 1/0 (an empty cell is false)."""
    value = text.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ValueProblem(f"{text!r} is not true or false")


def parse_item_id(text: str) -> int:
    """A positive item id."""
    value = text.strip()
    if not value.isdigit() or int(value) == 0:
        raise ValueProblem(f"{text!r} is not an id")
    return int(value)


def parse_guest(text: str) -> int | str:
    """A person id (digits) or an e-mail address (checked by the store)."""
    value = text.strip()
    return int(value) if value.isdigit() else value


@dataclass(frozen=True)
class Problem:
    """One problem in one row (rows count data rows from 1; 0 is the file or header)."""

    row: int
    column: str
    message: str
    line: int | None = None  # the CSV line, which an editor shows

    def __str__(self) -> str:
        where = "file" if not self.row else f"row {self.row}"
        if self.line is not None:
            where += f" (line {self.line})"
        if self.column:
            return f"{where}, {self.column}: {self.message}"
        return f"{where}: {self.message}"


@dataclass(frozen=True)
class ParsedRow:
    """One row as ``add_activities`` input; ``complete`` is false when a value was unreadable
    (the rest is still checked, so that every problem is reported at once)."""

    row: int
    item: dict[str, Any]
    complete: bool


@dataclass(frozen=True)
class ParsedFile:
    """Every row that could be read, and the problems found while reading."""

    rows: list[ParsedRow]
    problems: list[Problem]


def read_records(text: str, fmt: str) -> tuple[list[Mapping[str, Any]], list[Problem]]:
    """The raw records of a JSON or CSV file, before any value is parsed."""
    if fmt == "json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            return [], [Problem(0, "", f"not valid JSON (line {exc.lineno}: {exc.msg})")]
        if not isinstance(data, list):
            return [], [Problem(0, "", "the file must hold a JSON list of activity objects")]
        records: list[Mapping[str, Any]] = []
        problems = []
        for n, item in enumerate(data, start=1):
            if isinstance(item, dict):
                records.append(item)
            else:
                problems.append(Problem(n, "", "is not a JSON object"))
                records.append({})
        return records, problems
    reader = csv.DictReader(io.StringIO(text))
    header = [h.strip() for h in reader.fieldnames or []]
    unknown = [h for h in header if h not in COLUMNS]
    if not header:
        return [], [Problem(0, "", "the CSV file has no header row")]
    if unknown:
        return [], [Problem(0, "", f"unknown column(s) {', '.join(unknown)}; "
                                   f"known: {', '.join(COLUMNS)}")]
    rows: list[Mapping[str, Any]] = []
    for raw in reader:
        rows.append({k.strip(): (v or "") for k, v in raw.items() if k is not None})
    return rows, []


_PARSERS: dict[Kind, Callable[[str], Any]] = {
    Kind.DATE: parse_date,
    Kind.TIME: parse_time,
    Kind.MINUTES: parse_duration,
    Kind.FLAG: parse_bool,
    Kind.ITEM: parse_item_id,
}


def _convert(spec: ActivityField, value: Any) -> Any:
    """The value of one column, as the store takes it; raises ValueProblem."""
    if spec.kind in _PARSERS:
        if spec.kind is Kind.FLAG and isinstance(value, bool):
            return value  # JSON may give flags and numbers typed
        if spec.kind in (Kind.MINUTES, Kind.ITEM) and isinstance(value, int) \
                and not isinstance(value, bool):
            return value
        if not isinstance(value, str):
            raise ValueProblem(f"{value!r} is not a valid {spec.column}")
        return _PARSERS[spec.kind](value)
    if spec.kind is Kind.GUESTS:
        if isinstance(value, str):
            return [parse_guest(g) for g in value.split(";") if g.strip()]
        if isinstance(value, list):
            return [g if isinstance(g, int) else parse_guest(str(g)) for g in value]
        raise ValueProblem("must be a list of e-mails or person ids")
    if not isinstance(value, str):
        raise ValueProblem(f"{value!r} must be text")
    return value


_OWNER = next(f.column for f in ACTIVITY_FIELDS if f.kind is Kind.USER and f.column)
_REQUIRED = tuple(f for f in ACTIVITY_FIELDS if f.required and f.kind is not Kind.USER)


def parse_rows(records: list[Mapping[str, Any]],
               owner_id_for: Callable[[str | None], int]) -> ParsedFile:
    """Turn raw records into ``add_activities`` items, collecting every problem.

    Args:
        records: raw rows (CSV cells are strings; JSON values may be typed).
        owner_id_for: the user id for an owner e-mail (None: the default owner); raises
            ValueProblem when there is none.
    """
    rows: list[ParsedRow] = []
    problems: list[Problem] = []
    for n, record in enumerate(records, start=1):
        item: dict[str, Any] = {}
        row_problems: list[Problem] = []
        for column, value in record.items():
            spec = BY_COLUMN.get(column)
            if spec is None:
                row_problems.append(Problem(n, column, "is not a known field"))
                continue
            if spec.kind is Kind.USER or (value == "" and not spec.required):
                continue  # an empty CSV cell means "not given"
            try:
                item[spec.name] = _convert(spec, value)
            except ValueProblem as exc:
                row_problems.append(Problem(n, column, str(exc)))
        owner = record.get(_OWNER) or None
        try:
            item["owner_id"] = owner_id_for(owner if isinstance(owner, str) else None)
        except ValueProblem as exc:
            row_problems.append(Problem(n, _OWNER, str(exc)))
        for spec in _REQUIRED:
            if spec.column not in record:
                row_problems.append(Problem(n, spec.column or spec.name, "is required"))
        problems.extend(row_problems)
        if "owner_id" in item:
            rows.append(ParsedRow(n, item, complete=not row_problems))
    return ParsedFile(rows, problems)
