"""A soak knows what code it ran, and a checkout changed under it makes it no result."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from bench.soak import Result, markdown
from bench.soak_code import commit, source_stamp
from bench.soak_model import Findings


def checkout(root: Path) -> Path:
    """A git checkout with one module in each package a soak imports from."""
    for package in ("syncd", "connectors", "bench", "syncd_testkit"):
        (root / package).mkdir(parents=True)
        (root / package / "__init__.py").write_text(f"NAME = {package!r}\n")
    for args in (["init", "-q"], ["add", "."],
                 ["-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "-qm", "x"]):
        subprocess.run(["git", "-C", str(root), *args], check=True, capture_output=True)
    return root


def test_the_stamp_changes_when_a_module_is_edited_added_or_removed(tmp_path: Path) -> None:
    root = checkout(tmp_path)
    first = source_stamp(root)
    assert source_stamp(root) == first
    module = root / "syncd" / "__init__.py"
    module.write_text("NAME = 'syncd, rebased'\n")
    edited = source_stamp(root)
    assert edited != first
    (root / "connectors" / "new.py").write_text("")
    added = source_stamp(root)
    assert added != edited
    (root / "connectors" / "new.py").unlink()
    assert source_stamp(root) == edited
    os.utime(module, ns=(0, 0))  # same text, rewritten (a checkout of another commit)
    assert source_stamp(root) != edited


def test_the_commit_says_when_tracked_files_differ_from_it(tmp_path: Path) -> None:
    root = checkout(tmp_path)
    head = commit(root)
    assert len(head) >= 7 and "+" not in head
    (root / "bench" / "__init__.py").write_text("NAME = 'edited'\n")
    assert commit(root) == head + "+changes"
    assert commit(tmp_path / "nowhere") == "unknown"


def test_a_run_whose_source_changed_is_no_result_and_says_so() -> None:
    clean = Result("google", n=10, owners=1, quiet=True, verify_clean=True,
                   findings=Findings(), code="abc1234")
    assert clean.ok
    changed = Result("google", n=10, owners=1, quiet=True, verify_clean=True,
                     findings=Findings(), code="abc1234", code_changed=True)
    assert not changed.ok
    text = markdown([changed], "soak")
    assert "NO RESULT: the source changed under the run" in text and "code abc1234" in text
