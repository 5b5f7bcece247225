"""docs/failure-modes.md stays true: every test it names exists, every entry has a row.

The page maps the reference's failure modes 1-29, security points 3.1-3.8 and tests
T1-T15 to syncd's guards and the tests that hold them. A renamed or deleted test, or a
failure mode that lost its last row, fails here rather than leaving the page to rot.
Tests are found by parsing the files (no import, no collection), following a test
class's bases into the modules it imports them from.
"""

from __future__ import annotations

import ast
import re
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "failure-modes.md"
REFERENCE = re.compile(r"`(tests/[\w/]+\.py)((?:::\w+)+)`")
ROW_ID = re.compile(r"^(\d+|3\.\d|T\d+)$")

MODES = [str(n) for n in range(1, 30)]
SECURITY = [f"3.{n}" for n in range(1, 9)]
PLAN = [f"T{n}" for n in range(1, 16)]


def rows() -> list[tuple[str, list[str]]]:
    """(id, cells after the id) of every table row whose first cell is an entry id."""
    found = []
    for line in DOC.read_text(encoding="utf-8").splitlines():
        if not line.startswith("|"):
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if ROW_ID.match(cells[0]):
            found.append((cells[0], cells[1:]))
    return found


def references(cells: list[str]) -> list[str]:
    return [path + parts for path, parts in REFERENCE.findall(" ".join(cells))]


@cache
def _module(path: str) -> ast.Module:
    return ast.parse((ROOT / path).read_text(encoding="utf-8"))


def _top_level(tree: ast.Module) -> dict[str, ast.stmt]:
    names: dict[str, ast.stmt] = {}
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names[node.name] = node
        elif isinstance(node, ast.Assign):
            names.update({t.id: node for t in node.targets if isinstance(t, ast.Name)})
    return names


def _imported_from(tree: ast.Module, name: str) -> str | None:
    """The file of ``tests.x.y`` that ``from tests.x.y import name`` names, if any."""
    for node in tree.body:
        if (isinstance(node, ast.ImportFrom) and node.module
                and node.module.startswith("tests")
                and any((a.asname or a.name) == name for a in node.names)):
            return node.module.replace(".", "/") + ".py"
    return None


def _has_method(path: str, cls: str, method: str, depth: int = 0) -> bool:
    """Whether class ``cls`` of ``path`` defines ``method``, itself or through a base."""
    tree = _module(path)
    node = _top_level(tree).get(cls)
    if not isinstance(node, ast.ClassDef) or depth > 5:
        return False
    if any(isinstance(item, ast.FunctionDef | ast.AsyncFunctionDef) and item.name == method
           for item in node.body):
        return True
    for base in node.bases:
        if not isinstance(base, ast.Name):
            continue
        home = path if base.id in _top_level(tree) else _imported_from(tree, base.id)
        if home is not None and _has_method(home, base.id, method, depth + 1):
            return True
    return False


def exists(reference: str) -> bool:
    """Whether a pytest node id (``file::test`` or ``file::Class::test``) names a test."""
    path, *parts = reference.split("::")
    if not (ROOT / path).is_file() or not 1 <= len(parts) <= 2:
        return False
    top = _top_level(_module(path))
    if len(parts) == 1:
        node = top.get(parts[0])
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            return node.name.startswith("test_")
        return isinstance(node, ast.ClassDef | ast.Assign) and parts[0].startswith("Test")
    cls, method = parts
    return method.startswith("test_") and _has_method(path, cls, method)


def test_every_test_the_page_names_exists() -> None:
    named = [ref for _, cells in rows() for ref in references(cells)]
    assert len(named) > 100  # the page was read, not an empty table
    missing = sorted({ref for ref in named if not exists(ref)})
    assert missing == [], "docs/failure-modes.md names tests that do not exist"


@pytest.mark.parametrize(("wanted", "what"), [(MODES, "failure mode"),
                                              (SECURITY, "security point"),
                                              (PLAN, "test of the plan")])
def test_every_entry_of_the_reference_has_a_row(wanted: list[str], what: str) -> None:
    present = {row_id for row_id, _ in rows()}
    assert [w for w in wanted if w not in present] == [], f"a {what} has no row"


def test_every_failure_mode_names_at_least_one_test_and_a_guard() -> None:
    tested = {row_id for row_id, cells in rows() if references(cells)}
    assert [m for m in MODES if m not in tested] == []
    guards = {row_id for row_id, cells in rows() if len(cells) >= 2 and cells[1]}
    assert [m for m in MODES if m not in guards] == []


def test_the_checker_tells_a_real_test_from_a_missing_one() -> None:
    # Guards the guard: each form of node id is resolved, and a typo is not.
    assert exists("tests/engine/test_guards.py::test_crm_side_deletions_count_too")
    assert exists("tests/google/test_contract.py::TestGoogleContract"
                  "::test_update_with_a_stale_etag_is_refused")  # inherited from tests/contract.py
    assert exists("tests/engine/test_sync_machine.py::TestSyncMachine")  # a module-level alias
    assert not exists("tests/engine/test_guards.py::test_crm_side_deletions_count_two")
    assert not exists("tests/google/test_contract.py::TestGoogleContract::test_no_such_test")
    assert not exists("tests/engine/test_guards.py::deletes")  # a helper, not a test
    assert not exists("tests/no_such_file.py::test_x")
