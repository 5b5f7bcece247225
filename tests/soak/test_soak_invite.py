"""The chaos soak with guests invited (``--invite``), short, on the Google emulator: every
e-mail Google would send is judged by the e-mail oracle (:mod:`bench.soak_mail`) from the
driver's own record: no duplicate invitation across kills and lost answers, nobody mailed
who was never a guest, nothing about a past meeting, nothing for a calendar-side edit, and
every invitation and cancellation owed sent by the end."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.soak import Options, Soak, markdown

pytestmark = pytest.mark.slow


def test_a_soak_that_invites_guests_sends_each_guest_what_the_policy_table_says(
        tmp_path: Path) -> None:
    result = Soak(Options("google", n=60, owners=3, cycles=10, seed=18, ops=8,
                          failpoint_kills=0.4, random_kills=0.3, invite=True), tmp_path).run()
    table = markdown([result], "soak google --invite")
    assert result.mail is not None, table
    assert result.kills_failpoint + result.kills_random >= 1, table
    assert result.mail.sent >= 1 and result.mail.expected >= 1, table  # mail was exercised
    assert result.mail.clean, table
    assert result.quiet and result.verify_clean, table
    assert result.findings.clean, table
