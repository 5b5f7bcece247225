"""Each ``syncd verify`` finding reads as a sentence naming the command that repairs it,
where one exists (issue 18: ``syncd sync``, ``syncd quarantine retry``, ``--repair``), and
says so where none does."""

from __future__ import annotations

import pytest

from syncd.engine.audit import KINDS, Finding
from syncd.report import describe_finding

REPAIR = "'syncd verify --repair --account acc'"
SYNC = "'syncd sync --account acc'"

#: finding -> a command (or advice) its sentence must carry
CASES = [
    (Finding("duplicate", 4, ("ev1", "ev2"), remove=("ev2",)),
     f"{REPAIR} keeps one and deletes ev2"),
    (Finding("paired_twice", 4, ("ev1",), reason="4,5", unpair=(5,)),
     f"{REPAIR} keeps it with activity 4 and unpairs 5"),
    (Finding("orphan", 4, ("ev1",), reason="moved_away", remove=("ev1",)),
     f"{REPAIR} deletes it from this one"),
    (Finding("orphan", 4, ("ev1",), reason="deleted", remove=("ev1",)),
     f"whose activity was deleted; {REPAIR} deletes it"),
    (Finding("orphan", 4, ("ev1",), reason="other_owner", remove=("ev1",)),
     f"belongs to another owner now; {REPAIR} deletes it"),
    (Finding("orphan", None, ("ev1",), reason="unknown_marker", remove=("ev1",)),
     f"the CRM does not know; {REPAIR} deletes it"),
    (Finding("drift", 4, ("ev1",), ("title",)), f"{REPAIR} makes the next cycle write"),
    (Finding("missing", 4, reason="not_synced_yet"), f"not synced yet: {SYNC}"),
    (Finding("missing", 4, reason="event_missing"), f"{SYNC} applies on_calendar_delete"),
    (Finding("missing", 4, reason="quarantined"), "'syncd quarantine retry ID' tries again"),
    (Finding("privacy", 4, ("ev1",), ("description",)), "remove it there"),
    (Finding("foreign_touched", None, ("ev1",), reason="unchanged"),
     "it still holds what syncd wrote; no command restores it"),
    (Finding("foreign_touched", None, ("ev1",), reason="changed"),
     "it has been edited since; no command restores it"),
]


@pytest.mark.parametrize(("finding", "says"), CASES, ids=lambda c: getattr(c, "kind", ""))
def test_a_finding_names_the_command_that_repairs_it(finding: Finding, says: str) -> None:
    text = describe_finding(finding, "acc")
    assert text.startswith(finding.kind.replace("_", " ").replace("foreign touched",
                                                                  "foreign event touched"))
    assert says in text, text


def test_the_table_covers_every_kind_of_finding() -> None:
    assert {f.kind for f, _ in CASES} == set(KINDS)
