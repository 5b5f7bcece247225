"""A failing account never stops ``syncd verify`` (nor ``--repair``) for the others.

Three accounts, each with two orphans (events carrying syncd's marker that no activity
owns: what a repair deletes); the middle one's connector fails: its sign-in is refused,
its server answers 500 to the deletions after the retries, or answers something that is
not an answer. The other two are audited and repaired all the same; the failing one's
line names it, says what failed in the report's sentence and what to do, the JSON
carries it, the exit code is 1 (README: an account failed), and its lease is given
back. An interrupt (Ctrl-C) is no account's failure: it stops the command at once, and
the lease still goes back.
"""

from __future__ import annotations

import argparse
import json
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from connectors.base import CalendarConnector, WriteOp, WriteResult
from connectors.memory import MemoryCalendar
from syncd.cli_verify import _verify
from syncd.config import AccountConfig, Config
from syncd.errors import AuthFailed, Transient
from syncd.service import Service
from syncd.store.db import Database
from syncd.store.queue import WorkQueue
from tests.verify.test_repair_lease import plant

NAMES = ("acc-a", "acc-b", "acc-c")


class Failing(MemoryCalendar):
    """A memory calendar whose listing or writes raise ``error`` (a connector's failure
    after its own retries), counting the calls that reached it."""

    def __init__(self, *, listing: BaseException | None = None,
                 writes: BaseException | None = None) -> None:
        super().__init__()
        self.listing, self.failing_writes = listing, writes
        self.calls = 0

    def changes(self, cursor: str | None) -> Any:
        self.calls += 1
        if self.listing is not None:
            raise self.listing
        return super().changes(cursor)

    def write(self, ops: Sequence[WriteOp]) -> list[WriteResult]:
        self.calls += 1
        if self.failing_writes is not None:
            raise self.failing_writes
        return super().write(ops)


@dataclass
class World:
    """Three memory accounts on one SQLite database, two orphans in each calendar; the
    middle account's connector is ``opener`` (which may raise at sign-in)."""

    service: Service
    calendars: dict[str, Failing]
    orphans: dict[str, list[str]]
    opens: list[str]

    def live(self, name: str) -> set[str]:
        return {e.event_id for e in MemoryCalendar.changes(self.calendars[name], None).events}

    def lease(self, name: str) -> tuple[str | None, Any]:
        row = self.service.state.account(name)
        return row.lease_owner, row.lease_until


def world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, middle: Failing,
          sign_in: BaseException | None = None, *, google: bool = False) -> World:
    owner = f"ann-{uuid.uuid4().hex[:8]}@example.com"
    accounts = tuple(AccountConfig(name=n, provider="memory", owner=owner) for n in NAMES)
    if google:  # (its connector is the memory calendar all the same)
        accounts = (accounts[0], AccountConfig(name="acc-b", provider="google", owner=owner,
                                               auth={"mode": "oauth"}), accounts[2])
    db = Database(f"sqlite:///{tmp_path / 'state.db'}")
    service = Service(Config(data_dir=str(tmp_path), accounts=accounts), db=db)
    service.store.add_user(owner, "Ann", "UTC")
    WorkQueue(db, "enrol").enrol(list(NAMES))
    calendars = {"acc-a": Failing(), "acc-b": middle, "acc-c": Failing()}
    orphans = {n: plant(c, 2) for n, c in calendars.items()}
    opens: list[str] = []

    def open_(_self: Service, account: AccountConfig, _now: datetime,
              read_only: bool = False) -> CalendarConnector:
        opens.append(account.name)
        if account.name == "acc-b" and sign_in is not None:
            raise sign_in
        return calendars[account.name]

    # (the command opens a service of its own: it gets these calendars too)
    monkeypatch.setattr(Service, "_open", open_)
    return World(service, calendars, orphans, opens)


class App:
    def __init__(self, config: Config, db: Database) -> None:
        self.config, self.db, self.json = config, db, False
        self.data: Any = None

    def emit(self, data: Any, text: str) -> None:
        print(text)
        self.data = data


def run(w: World, *, repair: bool) -> tuple[int, list[dict[str, Any]]]:
    app = App(w.service.config, w.service.db)
    code = _verify(argparse.Namespace(account=None, repair=repair, wait=0.0),
                   app)  # type: ignore[arg-type]
    json.dumps(app.data)  # plain data
    return code, app.data


REFUSED = AuthFailed(reason="HTTP 401 invalid_grant")
FAILURES: dict[str, Callable[[], tuple[Failing, BaseException | None]]] = {
    "sign-in refused": lambda: (Failing(), REFUSED),
    "listing answers 500": lambda: (Failing(listing=Transient(reason="HTTP 500", status=500)),
                                    None),
    "listing answers garbage": lambda: (Failing(listing=ValueError("Expecting value")), None),
}


@pytest.fixture(params=sorted(FAILURES))
def failing_read(request: pytest.FixtureRequest, tmp_path: Path,
                 monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    middle, sign_in = FAILURES[request.param]()
    w = world(tmp_path, monkeypatch, middle, sign_in)
    yield w
    w.service.close()


@pytest.mark.parametrize("repair", [False, True])
def test_an_account_that_cannot_be_read_is_its_line_and_the_others_are_audited_and_repaired(
        failing_read: World, repair: bool, capsys: pytest.CaptureFixture[str]) -> None:
    w = failing_read
    code, data = run(w, repair=repair)
    out, err = capsys.readouterr()

    assert code == 1  # README: an account failed
    assert [d["account"] for d in data] == list(NAMES)
    a, b, c = data
    again = f"'syncd verify{' --repair' if repair else ''} --account acc-b' again"
    (line,) = [x for x in out.splitlines() if x.startswith("acc-b")]
    assert line.startswith("acc-b: could not be verified: ") and line.endswith(again)
    assert b["error"] and b["error"] in line.replace(f"; then run {again}", ".")
    assert not b["clean"] and b["removed"] == [] and b["lease_holder"] is None
    for d, name in ((a, "acc-a"), (c, "acc-c")):
        assert d["error"] is None and d["repair_error"] is None
        if repair:
            assert d["clean"] and d["removed"] == w.orphans[name] and not w.live(name)
            assert f"{name}: clean (0 events" in out
        else:
            assert len(d["findings"]) == 2 and w.live(name) == set(w.orphans[name])
    assert w.live("acc-b") == set(w.orphans["acc-b"])  # nothing of it touched
    for name in NAMES:  # every lease given back
        assert w.lease(name) == (None, None)
    assert "Traceback" not in out + err


def test_a_refused_sign_in_says_which_provider_refused_and_how_to_sign_in_again(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    w = world(tmp_path, monkeypatch, Failing(), REFUSED, google=True)
    code, data = run(w, repair=True)
    out = capsys.readouterr().out
    assert code == 1
    assert data[1]["error"] == ("Google of account acc-b refused the credentials (HTTP 401 "
                                "invalid_grant); run 'syncd auth google acc-b' to sign in "
                                "again.")
    assert ("acc-b: could not be verified: Google of account acc-b refused the credentials "
            "(HTTP 401 invalid_grant); run 'syncd auth google acc-b' to sign in again; then "
            "run 'syncd verify --repair --account acc-b' again") in out.splitlines()
    w.service.close()


@pytest.mark.parametrize("error", [
    Transient(reason="HTTP 500", status=500), AuthFailed(reason="HTTP 401 invalid_token"),
    ValueError("not JSON")], ids=["500s", "token revoked", "garbage"])
def test_a_repair_whose_deletions_fail_is_its_line_and_the_others_are_repaired(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, error: Exception,
        capsys: pytest.CaptureFixture[str]) -> None:
    """The middle account is read, but its server refuses the deletions (after the
    connector's retries): its line lists its findings and says the repair stopped, why,
    and what to do; the others' orphans are deleted."""
    w = world(tmp_path, monkeypatch, Failing(writes=error))
    code, data = run(w, repair=True)
    out, err = capsys.readouterr()

    assert code == 1
    a, b, c = data
    assert a["removed"] == w.orphans["acc-a"] and c["removed"] == w.orphans["acc-c"]
    assert a["clean"] and c["clean"] and not w.live("acc-a") and not w.live("acc-c")
    assert b["error"] is None and b["repair_error"] and not b["clean"]
    assert b["removed"] == [] and len(b["findings"]) == 2
    assert w.live("acc-b") == set(w.orphans["acc-b"])
    (line,) = [x for x in out.splitlines() if x.startswith("acc-b")]
    assert line.startswith("acc-b: 2 finding(s) (2 events, 0 pairs, 0 activities); "
                           "repair of acc-b stopped: ")
    assert b["repair_error"].rstrip(".") in line
    assert line.endswith("; the rest is not done, so run 'syncd verify --repair --account "
                         "acc-b' again once that is fixed")
    for name in NAMES:
        assert w.lease(name) == (None, None)
    assert "Traceback" not in out + err


@pytest.mark.parametrize("where", ["writing", "reading"])
def test_an_interrupt_stops_the_repair_at_once_and_gives_the_lease_back(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, where: str) -> None:
    """Ctrl-C in the middle account's deletions (or its listing) is no account's failure:
    nothing is printed as if the command ended, the third account is never opened, and
    the middle account's lease goes back."""
    middle = Failing(writes=KeyboardInterrupt()) if where == "writing" \
        else Failing(listing=KeyboardInterrupt())
    w = world(tmp_path, monkeypatch, middle)
    app = App(w.service.config, w.service.db)
    with pytest.raises(KeyboardInterrupt):
        _verify(argparse.Namespace(account=None, repair=True, wait=0.0),
                app)  # type: ignore[arg-type]
    assert app.data is None
    assert not w.live("acc-a")  # repaired before the interrupt
    assert w.live("acc-b") == set(w.orphans["acc-b"])
    assert w.live("acc-c") == set(w.orphans["acc-c"]) and w.calendars["acc-c"].calls == 0
    assert "acc-c" not in w.opens
    for name in NAMES:
        assert w.lease(name) == (None, None)
    w.service.close()
