"""``syncd status`` shows each Pipedrive company's tokens used and left today, as counted by
every replica, and warns from 75 %."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from syncd.cli import main
from syncd.crm.pipedrive_budget import Limits, PipedriveBudget
from syncd.store.budgets import BudgetLedger
from syncd.store.db import Database


def _status(tmp_path: Path, capsys: pytest.CaptureFixture[str], *args: str) -> str:
    config = tmp_path / "syncd.toml"
    config.write_text(f'[syncd]\ndata_dir = "{tmp_path}"\n[[account]]\nname = "alice"\n'
                      'provider = "caldav"\nowner = "alice@acme.test"\n'
                      'calendar = "http://127.0.0.1:9/alice/work/"\n'
                      '[account.auth]\nurl = "http://127.0.0.1:9/"\nusername = "alice"\n')
    capsys.readouterr()
    assert main(["--config", str(config), *args, "status"]) == 0
    return capsys.readouterr().out


def _spend(tmp_path: Path, tokens: int) -> BudgetLedger:
    db = Database(f"sqlite:///{tmp_path / 'syncd.db'}")
    budget = PipedriveBudget(BudgetLedger(db), "acme", Limits(1000, 40), "k", sleep=lambda s: None)
    for _ in range(tokens // 10):
        budget.reserve(10)
    return budget.ledger


def test_status_shows_the_companys_tokens_used_and_left_today(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _spend(tmp_path, 500).db.close()
    out = _status(tmp_path, capsys)
    assert "Pipedrive company acme: 500 of 1,000 tokens used today (50%), 500 left until " in out
    assert "warning" not in out
    [row] = json.loads(_status(tmp_path, capsys, "--json"))
    [budget] = row["crm_budgets"]
    assert (budget["scope"], budget["used"], budget["left"], budget["warning"]) == (
        "pipedrive:acme", 500, 500, False)


def test_status_warns_from_three_quarters_of_the_budget(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _spend(tmp_path, 750).db.close()
    out = _status(tmp_path, capsys)
    assert "750 of 1,000 tokens used today (75%), 250 left" in out
    assert "warning: over 75 % of the daily budget is used" in out


def test_status_says_until_when_calls_are_stopped_and_why(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ledger = _spend(tmp_path, 10)
    [day] = ledger.current(datetime.now(UTC))
    ledger.halt(day.scope, day.day, day.resets_at, "Pipedrive's rate-limit block page "
                "(403) was seen")
    ledger.db.close()
    out = _status(tmp_path, capsys)
    assert ("calls stopped until " + day.resets_at.strftime("%Y-%m-%d %H:%M UTC")
            + ": Pipedrive's rate-limit block page (403) was seen") in out


def test_a_day_that_has_reset_is_no_longer_current(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ledger = _spend(tmp_path, 10)
    assert ledger.current(datetime.now(UTC) + timedelta(days=1, minutes=1)) == []
    ledger.db.close()
    assert "Pipedrive company" in _status(tmp_path, capsys)
