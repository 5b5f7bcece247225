"""The chaos soak, short (issue 18): Radicale and the Google emulator (the latter also
with the Pipedrive emulator as the CRM), a few hundred activities, a few dozen
``syncd sync`` children of which many are SIGKILLed (at named
failpoints and at random moments), faults between syncd and the servers, random edits,
deletes, guests, done flags, owner moves and conflicting edits on both sides (and, in
two cases, events made in the calendar for accounts that import them). It ends with
fault-free cycles until one writes nothing, then ``syncd verify`` must be clean and the
oracle (built from the driver's own writes, never from syncd's state) must find no
duplicate, lost edit, unexpected deletion, orphan, leaked note or guest e-mail.

The long run is ``python -m bench.soak`` (see bench/README.md).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.soak import Options, Soak, markdown

pytestmark = pytest.mark.slow


@pytest.mark.parametrize(("provider", "crm", "n", "cycles", "imports"), [
    ("google", "builtin", 200, 16, False),
    # imports too: events made in the calendar, kills between an import and its link
    ("caldav", "builtin", 100, 10, True),
    # Pipedrive (the emulator, behind its own fault proxy) as the CRM; kills at its PATCH,
    # and with imports around its POST too
    ("google", "pipedrive", 100, 10, True)])
def test_a_soak_under_faults_and_kills_ends_with_both_sides_as_the_driver_left_them(
        tmp_path: Path, provider: str, crm: str, n: int, cycles: int, imports: bool) -> None:
    result = Soak(Options(provider, n=n, crm=crm, owners=4, cycles=cycles, seed=18, ops=10,
                          failpoint_kills=0.4, random_kills=0.4, imports=imports),
                  tmp_path).run()
    table = markdown([result], f"soak {provider}")
    # A kill is counted only when the child died of it (a cycle may end before its
    # failpoint's N-th pass or its timer): 80 % of the cycles are armed, about half die.
    assert result.kills_failpoint + result.kills_random >= 1, table
    assert sum(result.ops.values()) - result.ops["skipped"] >= cycles * 5, table
    assert result.quiet, table
    assert result.verify_clean, table
    assert result.findings.clean, table
    if imports:
        assert result.ops["cal_create"] >= 1, table
