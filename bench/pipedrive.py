"""Pipedrive's token cost of syncing: a first sync, an idle cycle, and a change, by polling
alone and with webhooks (issue 14's bench rows).

One process: the Pipedrive emulator (real HTTP, its own token counting) with ``--owners``
users and ``--n`` activities, the Google Calendar emulator as the calendars, and syncd's
engine with one Pipedrive source shared by every account (as the daemon keeps it), its
budget counting in the database. Tokens are what the emulator counted (Pipedrive's costs:
list 10, get 1, write 10, users 20); the ledger's own count is reported beside it::

    .venv/bin/python -m bench.pipedrive --n 10000 --owners 50 --out bench/results/pipedrive.json

Phases, each measured on its own:

* **first sync**: every account's first cycle (the backfill), tokens and requests;
* **idle poll**: one cycle of every account with nothing changed: what each poll costs
  without webhooks, and what each backstop poll costs with them;
* **idle with webhooks**: no webhook came, so no account is dirty and no cycle runs;
* **1 % edits, polling**: ``--percent`` of the activities edited in Pipedrive, then one
  cycle of every account;
* **1 % edits, webhooks**: as many other edits, then one cycle of only the accounts a
  webhook flagged (the owners of the edited activities), as the daemon's dirty flags do;
* **one edit**, polling every account, and with webhooks (its owner's account only);
* **idle poll 6 h later**: a backstop poll once ``reconcile_hours`` (6) passed, when each
  owner's feed also asks by id about linked activities no read has shown since.

Nothing here is timed against a target; times are reported for information only.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import httplib2

from connectors.google import GoogleCalendar
from connectors.google_http import RetryPolicy
from syncd.config import AccountConfig
from syncd.crm.pipedrive import PipedriveSource, Settings
from syncd.crm.pipedrive_auth import ApiToken
from syncd.crm.pipedrive_budget import Limits, PipedriveBudget, token_key_of
from syncd.crm.pipedrive_http import PipedriveHttp
from syncd.crm.pipedrive_markers import MarkerStore
from syncd.service import account_policy, sync_account
from syncd.store.budgets import BudgetLedger
from syncd.store.db import Database
from syncd.store.state import StateStore
from syncd_testkit.emulators.google import GoogleEmulator
from syncd_testkit.emulators.pipedrive import PipedriveClock, PipedriveEmulator
from syncd_testkit.emulators.pipedrive_model import User

START = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)
ZONE = "Europe/Berlin"
RECONCILE = timedelta(hours=6, minutes=1)  # the source's default reconcile_hours, passed


class Bench:
    """The two emulators, syncd's database and the accounts."""

    def __init__(self, n: int, owners: int, folder: Path) -> None:
        self.pipedrive = PipedriveEmulator(clock=PipedriveClock(START, frozen=True),
                                           plan="growth", seats=owners).start()
        self.google = GoogleEmulator().start()
        self.db = Database(f"sqlite:///{folder / 'syncd.db'}")
        self.now = START
        self.admin = self.pipedrive.add_user("Admin", "admin@acme.test", timezone_name=ZONE,
                                             is_admin=True)
        self.users: list[User] = [self.admin] + [
            self.pipedrive.add_user(f"Owner {i}", f"owner{i}@acme.test", timezone_name=ZONE)
            for i in range(1, owners)]
        for user in self.users[1:]:
            self.pipedrive.let_see(self.admin, user)
        self.activities: list[tuple[User, int]] = []
        self._seed(n)
        self.accounts = [self._account(user) for user in self.users]
        token = self.pipedrive.api_token(self.admin)
        clock = self.pipedrive.clock
        budget = PipedriveBudget(BudgetLedger(self.db), "acme",
                                 Limits.for_plan("growth", owners), token_key_of(token),
                                 clock=clock.now, sleep=clock.advance)
        self.budget = budget
        self.source = PipedriveSource(
            PipedriveHttp(self.pipedrive.base_url, ApiToken(token), budget=budget,
                          sleep=clock.advance),
            MarkerStore(self.db, "acme", clock=clock.now_dt),
            Settings("acme", "https://acme.pipedrive.com"))
        self.state = StateStore(self.db)

    def _seed(self, n: int) -> None:
        """``n`` activities over the owners, a few a second (bulk imports share seconds),
        dated over the next 300 days, one in ten all day."""
        first = START.date() + timedelta(days=1)
        for i in range(n):
            user = self.users[i % len(self.users)]
            day = first + timedelta(days=(i * 7) % 300)
            fields: dict[str, Any] = {"subject": f"Visit {i}", "type": "meeting",
                                      "due_date": day.isoformat()}
            if i % 10:
                fields.update(due_time=f"{7 + i % 10:02d}:{(i * 5) % 60:02d}", duration="00:30")
            if i % 4 == 0:
                fields["public_description"] = f"Agenda {i}"
            if i % 6 == 0:
                fields["note"] = f"private {i}"
            created = self.pipedrive.create_as_user(user, **fields)
            self.activities.append((user, int(created["id"])))
            if i % 5 == 4:
                self.pipedrive.clock.advance(1)

    def _account(self, user: User) -> AccountConfig:
        self.google.add_calendar(user.email, time_zone=ZONE)
        return AccountConfig(name=f"pd-{user.id}", provider="google", owner=user.email,
                             calendar=user.email,
                             auth={"api_endpoint": self.google.api_endpoint})

    def cycle(self, accounts: Sequence[AccountConfig]) -> dict[str, Any]:
        """One cycle of each of ``accounts``; what they cost in Pipedrive."""
        self.pipedrive.clear_requests()
        spent_before = self.budget.today()
        started = time.perf_counter()
        outcomes: Counter[str] = Counter()
        for account in accounts:
            connector = GoogleCalendar(account, owner_tz=ZONE,
                                       window=account_policy(account).window(self.now),
                                       http=httplib2.Http(timeout=30),
                                       retry=RetryPolicy(attempts=3))
            try:
                report = sync_account(account, connector, self.source, self.state, now=self.now)
            finally:
                connector.close()
            outcomes[report.outcome] += 1
        seconds = time.perf_counter() - started
        self.now += timedelta(minutes=5)
        self.pipedrive.clock.advance(300)
        requests = self.pipedrive.requests
        by_call: Counter[str] = Counter()
        for r in requests:
            route = "/".join("{id}" if p.isdigit() else p for p in r.path.split("/"))
            extra = " ids=" if r.param("ids") else ""
            by_call[f"{r.method} {route}{extra}"] += r.cost
        ledger_after = self.budget.today()
        used = ((ledger_after.used if ledger_after else 0)
                - (spent_before.used if spent_before and ledger_after
                   and spent_before.day == ledger_after.day else 0))
        return {"accounts": len(accounts), "outcomes": dict(outcomes),
                "requests": len(requests), "tokens": sum(r.cost for r in requests),
                "ledger_tokens": used, "tokens_by_call": dict(by_call),
                "refused": sum(1 for r in requests if r.status in (403, 429)),
                "seconds": round(seconds, 1)}

    def edit(self, count: int, offset: int) -> list[AccountConfig]:
        """Edit ``count`` activities in Pipedrive's app, spread over the owners; the
        accounts of their owners (those a webhook would flag)."""
        step = max(1, len(self.activities) // max(1, count)) + 1
        touched = {}
        for k in range(count):
            user, activity_id = self.activities[(offset + k * step) % len(self.activities)]
            self.pipedrive.edit_as_user(user, activity_id, subject=f"Visit {activity_id} (moved)")
            touched[user.id] = user
        self.pipedrive.clock.advance(1)
        return [a for a in self.accounts if int(a.name.split("-")[1]) in touched]

    def close(self) -> None:
        self.pipedrive.stop()
        self.google.stop()
        self.db.close()


def run(n: int, owners: int, percent: float) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as folder:
        bench = Bench(n, owners, Path(folder))
        try:
            changes = max(1, round(n * percent / 100))
            first = bench.cycle(bench.accounts)
            idle = bench.cycle(bench.accounts)
            polled = bench.edit(changes, offset=0)
            poll_edits = bench.cycle(bench.accounts)
            flagged = bench.edit(changes, offset=1)
            hook_edits = bench.cycle(flagged)
            bench.edit(1, offset=2)
            poll_one = bench.cycle(bench.accounts)
            hook_one = bench.cycle(bench.edit(1, offset=3))
            # The backstop after the reconciliation's age (6 h): each owner's feed also
            # asks by id about the linked activities no read has shown since.
            bench.pipedrive.clock.advance(RECONCILE.total_seconds())
            bench.now += RECONCILE
            reconciling = bench.cycle(bench.accounts)
            events = sum(len(bench.google.events(a.calendar or "")) for a in bench.accounts)
            return {
                "n": n, "owners": owners, "percent": percent, "edits": changes,
                "plan": "growth", "daily_tokens": bench.budget.limits.daily_tokens,
                "events_in_calendars": events,
                "phases": {
                    "first sync": first,
                    "idle poll (no webhooks; one backstop poll with them)": idle,
                    "idle with webhooks (no account dirty, no cycle)": {
                        "accounts": 0, "requests": 0, "tokens": 0},
                    f"{percent:g} % edits, polling every account": {
                        **poll_edits, "owners_touched": len(polled)},
                    f"{percent:g} % edits, webhooks (dirty accounts only)": {
                        **hook_edits, "owners_touched": len(flagged)},
                    "one edit, polling every account": poll_one,
                    "one edit, webhooks (its owner's account only)": hook_one,
                    "idle poll 6 h later (with the deletion reconciliation)": reconciling,
                },
                "date": date.today().isoformat(), "run": uuid.uuid4().hex[:8],
            }
        finally:
            bench.close()


def markdown(result: dict[str, Any]) -> str:
    lines = [f"# Pipedrive token cost: N={result['n']:,} activities over {result['owners']} "
             f"owners ({result['plan']} plan, {result['daily_tokens']:,} tokens a day)", "",
             "| phase | cycles | requests | tokens | ledger | refused | seconds |",
             "|---|---|---|---|---|---|---|"]
    for name, phase in result["phases"].items():
        lines.append(f"| {name} | {phase['accounts']} | {phase['requests']} | "
                     f"{phase['tokens']:,} | {phase.get('ledger_tokens', 0):,} | "
                     f"{phase.get('refused', 0)} | {phase.get('seconds', 0)} |")
    lines += ["", "Tokens by call:", ""]
    for name, phase in result["phases"].items():
        if phase.get("tokens_by_call"):
            calls = ", ".join(f"{k}: {v:,}" for k, v in sorted(phase["tokens_by_call"].items()))
            lines.append(f"- {name}: {calls}")
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--owners", type=int, default=50)
    parser.add_argument("--percent", type=float, default=1.0)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    result = run(args.n, args.owners, args.percent)
    text = markdown(result)
    if args.out:
        args.out.write_text(json.dumps(result, indent=2, sort_keys=True) + "\n")
        args.out.with_suffix(".md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
