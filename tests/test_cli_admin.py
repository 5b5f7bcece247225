"""Undo and visibility through the CLI, against a real Radicale: restore, purge,
conflicts list/resolve and quarantine list/retry, each followed by real sync cycles."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import caldav
import pytest
from sqlalchemy import func, select

from syncd.cli import main
from syncd.crm.builtin.tables import ActivityNote
from syncd.crm.builtin.views import ActivityFilter
from syncd.store.db import Database
from syncd.store.state_tables import SyncConflict, SyncLink
from syncd_testkit.servers import DavServer, RecordingProxy
from tests.conftest import fresh_calendar

DUE = (date.today() + timedelta(days=10)).isoformat()


@dataclass
class Admin:
    """``syncd --config FILE ...`` in-process, with one CalDAV account on Radicale."""

    config: Path
    data_dir: Path
    server: DavServer
    user: str
    calendar_url: str
    capsys: pytest.CaptureFixture[str]

    def __call__(self, *args: str) -> tuple[int, str, str]:
        self.capsys.readouterr()
        code = main(["--config", str(self.config), *args])
        out, err = self.capsys.readouterr()
        return code, out, err

    def ok(self, *args: str) -> str:
        code, out, err = self(*args)
        assert code == 0, (out, err)
        return out

    def json(self, *args: str) -> Any:
        return json.loads(self.ok("--json", *args))

    def sync(self) -> dict[str, int]:
        """One cycle; what it did, leaving out how many changes it read."""
        [report] = self.json("sync")
        assert report["outcome"] == "ok", report
        return {k: v for k, v in report["counts"].items()
                if v and k not in ("crm_changes", "calendar_changes")}

    def calendar(self) -> Any:
        client = caldav.DAVClient(url=self.server.url, username=self.user, password="x")
        return client.calendar(url=self.calendar_url)

    def events(self) -> list[Any]:
        found = self.calendar().events()
        for event in found:
            event.load()
        return found

    def summaries(self) -> list[str]:
        return sorted(str(e.icalendar_component["SUMMARY"]) for e in self.events())

    def db_count(self, table: Any, *where: Any) -> int:
        db = Database(f"sqlite:///{self.data_dir / 'syncd.db'}")
        try:
            with db.session() as s:
                return int(s.scalar(select(func.count()).select_from(table).where(*where)) or 0)
        finally:
            db.close()


def make_admin(tmp_path: Path, server: DavServer, capsys: pytest.CaptureFixture[str],
               via: RecordingProxy | None = None, **account: str | bool) -> Admin:
    """``via``: syncd reaches the server through this proxy (the test goes direct)."""
    user, calendar_url = fresh_calendar(server)
    extra = "".join(f"{k} = {json.dumps(v)}\n" for k, v in account.items())
    url, synced = server.url, calendar_url
    if via is not None:
        url, synced = via.url, calendar_url.replace(server.url, via.url)
    config = tmp_path / "syncd.toml"
    config.write_text(f'[syncd]\ndata_dir = "{tmp_path}"\n[[account]]\nname = "dav"\n'
                      f'provider = "caldav"\nowner = "{user}"\ncalendar = "{synced}"\n'
                      f'{extra}[account.auth]\nurl = "{url}"\nusername = "{user}"\n')
    admin = Admin(config, tmp_path, server, user, calendar_url, capsys)
    admin.ok("user", "add", user, "--time-zone", "Europe/Oslo")
    return admin


@pytest.fixture
def admin(tmp_path: Path, radicale: DavServer, capsys: pytest.CaptureFixture[str]) -> Admin:
    return make_admin(tmp_path, radicale, capsys)


def _add(admin: Admin, subject: str, *extra: str) -> int:
    added = admin.json("activity", "add", subject, "--due", DUE, "--time", "10:00",
                       "--duration", "30", *extra)
    return int(added["id"])


# --- restore ------------------------------------------------------------------------------


def _identity(admin: Admin) -> tuple[str, str, str]:
    """(href, UID, marker) of the calendar's only event."""
    [event] = admin.events()
    component = event.icalendar_component
    return str(event.url), str(component["UID"]), str(component["X-SYNCD-ID"])


def test_a_restored_activity_syncs_back_as_one_event_after_a_crm_delete(admin: Admin) -> None:
    activity = _add(admin, "Call Ada")
    assert admin.sync() == {"events_created": 1}
    first = _identity(admin)
    admin.ok("activity", "delete", str(activity))
    assert admin.sync() == {"events_deleted": 1}
    assert admin.events() == []

    out = admin.ok("activity", "restore", str(activity))
    assert out == f"Activity {activity} is restored: Call Ada.\n"
    assert admin.json("activity", "show", str(activity))["deleted"] is False
    assert admin.sync() == {"events_created": 1}
    assert admin.summaries() == ["Call Ada"]
    # A new identity throughout: a server keeping the deleted event in a trash bin
    # cannot refuse the new one (failure mode 2).
    second = _identity(admin)
    assert all(new != old for new, old in zip(second, first, strict=True))
    assert admin.json("activity", "show", str(activity))["sync_uid"] == second[2]
    # Converged: the next cycle reads the echo of its write and writes nothing.
    assert admin.sync() == {}
    assert admin.summaries() == ["Call Ada"]


def test_a_restored_activity_whose_event_was_deleted_in_the_calendar_gets_one_new_event(
        admin: Admin) -> None:
    activity = _add(admin, "Lunch", "--note", "private words")
    admin.sync()
    [event] = admin.events()
    event.delete()
    assert admin.sync() == {"activities_deleted": 1}  # followed
    assert admin.json("activity", "show", str(activity))["deleted"] is True

    admin.ok("activity", "restore", str(activity))
    shown = admin.json("activity", "show", str(activity))
    assert shown["deleted"] is False and shown["note"] == "private words"
    assert admin.sync() == {"events_created": 1}
    assert admin.summaries() == ["Lunch"]
    assert admin.db_count(SyncLink) == 1
    assert admin.sync() == {}


def test_restoring_before_any_cycle_saw_the_delete_keeps_the_event_as_it_is(
        admin: Admin) -> None:
    activity = _add(admin, "Call")
    admin.sync()
    before = _identity(admin)
    admin.ok("activity", "delete", str(activity))
    admin.ok("activity", "restore", str(activity))
    assert admin.sync() == {}  # the pair carries on: nothing deleted, nothing made
    assert _identity(admin) == before


def test_restoring_a_live_activity_changes_nothing_and_an_unknown_one_is_an_error(
        admin: Admin) -> None:
    activity = _add(admin, "Call")
    admin.sync()
    admin.ok("activity", "restore", str(activity))
    assert admin.sync() == {}  # no change row, nothing to plan
    code, _, err = admin("activity", "restore", str(activity), "99")
    assert code == 1 and err == "syncd: No activity 99 exists.\n"


# --- purge --------------------------------------------------------------------------------


def test_purge_removes_old_deletions_with_their_notes_and_keeps_sync_state_consistent(
        admin: Admin) -> None:
    seen = _add(admin, "Seen", "--note", "secret one")
    unseen = _add(admin, "Unseen", "--note", "secret two")
    kept = _add(admin, "Kept", "--note", "secret three")
    assert admin.sync()["events_created"] == 3
    admin.ok("activity", "delete", str(seen))
    admin.sync()  # its event goes, its link is dropped
    admin.ok("activity", "delete", str(unseen))  # purged before any cycle saw the delete
    assert admin.db_count(ActivityNote) == 3

    # The default retention keeps both: they were deleted moments ago.
    assert admin.json("purge") == {"dry_run": False, "older_than_days": 30, "purged": []}
    dry = admin.ok("purge", "--older-than", "0", "--dry-run")
    assert dry == f"Would purge 2 activities deleted at least 0 day(s) ago: {seen}, {unseen}.\n"
    assert admin.db_count(ActivityNote) == 3

    assert admin.json("purge", "--older-than", "0")["purged"] == [seen, unseen]
    assert admin.db_count(ActivityNote) == 1  # the notes went with them
    for gone in (seen, unseen):
        code, _, err = admin("activity", "show", str(gone))
        assert code == 1 and err == f"syncd: No activity {gone} exists.\n"
        code, _, _ = admin("activity", "restore", str(gone))
        assert code == 1
    assert admin.json("activity", "show", str(kept))["note"] == "secret three"

    # The purged activity's tombstone reaches the account: the event whose delete no
    # cycle had seen is deleted now, and its link goes with it.
    assert admin.db_count(SyncLink) == 2
    assert admin.sync() == {"events_deleted": 1}
    assert admin.summaries() == ["Kept"]
    assert admin.db_count(SyncLink) == 1
    assert admin.sync() == {}
    assert admin.sync() == {}


def test_retention_days_comes_from_the_config(tmp_path: Path, radicale: DavServer,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    admin = make_admin(tmp_path, radicale, capsys)
    text = admin.config.read_text().replace("[syncd]\n", "[syncd]\nretention_days = 0\n")
    admin.config.write_text(text)
    activity = _add(admin, "Gone soon")
    admin.ok("activity", "delete", str(activity))
    assert admin.json("purge")["purged"] == [activity]
    admin.config.write_text(text.replace("retention_days = 0", "retention_days = -1"))
    code, _, err = admin("purge")
    assert code == 2 and "syncd.retention_days must not be negative" in err


# --- conflicts ----------------------------------------------------------------------------


def _edit_event(admin: Admin, **props: str) -> None:
    [event] = admin.events()
    component = event.icalendar_component
    for name, value in props.items():
        component[name.upper()] = value
    event.save()


def _conflict(admin: Admin, activity: int, crm_title: str, calendar_title: str
              ) -> dict[str, Any]:
    admin.ok("activity", "edit", str(activity), "--subject", crm_title)
    _edit_event(admin, summary=calendar_title)
    counts = admin.sync()
    assert counts["conflicts"] == 1 and counts["events_updated"] == 1  # crm_wins
    return [c for c in admin.json("conflicts", "--open") if c["activity_id"] == activity][-1]


def test_a_conflict_is_listed_then_resolved_for_the_calendar_and_synced(admin: Admin) -> None:
    activity = _add(admin, "Demo")
    admin.sync()
    conflict = _conflict(admin, activity, "Demo (CRM)", "Demo (calendar)")
    assert {k: conflict[k] for k in ("account", "field", "crm_value", "calendar_value",
                                     "winner", "policy", "resolved")} == {
        "account": "dav", "field": "title", "crm_value": "Demo (CRM)",
        "calendar_value": "Demo (calendar)", "winner": "crm", "policy": "crm_wins",
        "resolved": False}
    assert conflict["at"]
    assert admin.summaries() == ["Demo (CRM)"]  # the winner is on both sides
    listed = admin.ok("conflicts", "--account", "dav")
    assert (f"#{conflict['id']} dav activity {activity} title: crm Demo (CRM) | "
            "calendar Demo (calendar) -> crm won (crm_wins, ") in listed
    [status] = admin.json("status")
    assert status["open_conflicts"] == 1

    out = admin.ok("conflicts", "resolve", str(conflict["id"]), "--take", "calendar")
    assert out.startswith(f"Conflict {conflict['id']} resolved: activity {activity} takes "
                          "the calendar value of title")
    assert admin.json("activity", "show", str(activity))["subject"] == "Demo (calendar)"
    assert admin.sync() == {"events_updated": 1}
    assert admin.summaries() == ["Demo (calendar)"]
    assert admin.sync() == {}  # converged, no new conflict
    [status] = admin.json("status")
    assert status["open_conflicts"] == 0
    assert admin.json("conflicts", "--open") == []
    [closed] = admin.json("conflicts")
    assert closed["resolved"] is True
    again = admin.ok("conflicts", "resolve", str(conflict["id"]), "--take", "crm")
    assert again == f"Conflict {conflict['id']} was already resolved; nothing changed.\n"


def test_taking_the_winner_only_closes_and_a_stale_or_deleted_conflict_is_refused(
        admin: Admin) -> None:
    activity = _add(admin, "Demo")
    admin.sync()
    first = _conflict(admin, activity, "A crm", "A cal")
    assert admin.json("conflicts", "resolve", str(first["id"]), "--take", "crm",
                      )["applied"] is False
    assert admin.sync() == {}  # nothing was written anywhere
    assert admin.summaries() == ["A crm"]

    stale = _conflict(admin, activity, "B crm", "B cal")
    admin.ok("activity", "edit", str(activity), "--subject", "C newer")
    code, _, err = admin("conflicts", "resolve", str(stale["id"]), "--take", "calendar")
    assert code == 1 and "title changed since the conflict" in err and "Traceback" not in err
    assert admin.json("activity", "show", str(activity))["subject"] == "C newer"
    assert admin.json("conflicts", "--open")[0]["id"] == stale["id"]  # still open

    admin.ok("activity", "delete", str(activity))
    code, _, err = admin("conflicts", "resolve", str(stale["id"]), "--take", "calendar")
    assert code == 1 and f"syncd activity restore {activity}" in err
    code, _, err = admin("conflicts", "resolve", "999", "--take", "crm")
    assert (code, err) == (1, "syncd: No conflict 999 exists.\n")
    code, _, err = admin("conflicts", "--account", "nope")
    assert code == 2 and "unknown account: nope" in err

    # Purging the activity takes its conflicts with it.
    admin.ok("purge", "--older-than", "0")
    assert admin.db_count(SyncConflict) == 0
    assert admin.json("status")[0]["open_conflicts"] == 0


# --- quarantine ---------------------------------------------------------------------------


BACKWARDS = ("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:x\r\nBEGIN:VEVENT\r\nUID:backwards\r\n"
             "DTSTAMP:20260101T000000Z\r\nDTSTART:{day}T100000Z\r\nDTEND:{prev}T110000Z\r\n"
             "SUMMARY:backwards\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n")
PLAIN = ("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:x\r\nBEGIN:VEVENT\r\nUID:visit\r\n"
         "DTSTAMP:20260101T000000Z\r\nDTSTART:{day}T100000Z\r\nDTEND:{day}T110000Z\r\n"
         "SUMMARY:Site visit\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n")


def test_quarantine_lists_reasons_and_retry_makes_the_next_cycle_try_again(
        tmp_path: Path, radicale: DavServer, capsys: pytest.CaptureFixture[str]) -> None:
    # Imported events become activities of type "visit", which does not exist yet: the
    # import fails each cycle until it is quarantined; an unreadable event is at once.
    admin = make_admin(tmp_path, radicale, capsys, import_events=True,
                       import_type="visit")
    day = date.today() + timedelta(days=5)
    admin.calendar().save_event(PLAIN.format(day=day.strftime("%Y%m%d")))
    admin.calendar().save_event(BACKWARDS.format(day=day.strftime("%Y%m%d"),
                                                 prev=(day - timedelta(days=1)).strftime("%Y%m%d")))
    for attempt in range(1, 6):
        code, out, _ = admin("--json", "sync")
        [report] = json.loads(out)
        assert (code, report["outcome"]) == ((1, "partial") if attempt < 5 else (0, "ok"))
    items = {q["item"].split("/")[-1]: q for q in admin.json("quarantine")}
    assert set(items) == {"visit.ics", "backwards.ics"}
    visit, backwards = items["visit.ics"], items["backwards.ics"]
    assert (visit["state"], visit["attempts"]) == ("quarantined", 5)
    assert "visit" in visit["reason"] and visit["version"] is None
    assert (backwards["state"], backwards["attempts"]) == ("quarantined", 1)
    assert "DTEND is before DTSTART" in backwards["reason"] and backwards["version"]
    # --json also works after the command, where scripts tend to put it.
    trailing = json.loads(admin.ok("quarantine", "--account", "dav", "--json"))
    assert sorted(q["id"] for q in trailing) == sorted(q["id"] for q in items.values())
    text = admin.ok("quarantine", "--account", "dav")
    assert f"#{backwards['id']} dav " in text and "DTEND is before DTSTART" in text

    status = admin.ok("status")
    assert "2 quarantined" in status and "DTEND is before DTSTART" in status
    assert "details and retry: syncd quarantine --account dav" in status
    [row] = admin.json("status")
    assert {q["item"] for q in row["failed_items"]} == {visit["item"], backwards["item"]}

    # Set aside: later cycles leave both alone.
    assert admin.sync() == {}
    admin.ok("type", "add", "visit", "Site visit")
    out = admin.ok("quarantine", "retry", str(visit["id"]))
    assert "will be tried again by the next sync of dav" in out
    admin.ok("quarantine", "retry", str(backwards["id"]))
    counts = admin.sync()
    assert counts["retried"] == 2 and counts["activities_imported"] == 1
    assert counts["quarantined"] == 1  # still unreadable: set aside again
    [left] = admin.json("quarantine")
    assert left["item"] == backwards["item"] and left["attempts"] == 2
    assert [a["subject"] for a in admin.json("activity", "list")] == ["Site visit"]
    assert admin.sync() == {}  # our marker's echo; nothing retried
    code, _, err = admin("quarantine", "retry", "999")
    assert (code, err) == (1, "syncd: No quarantined item 999 exists.\n")


def test_a_retry_costs_one_read_of_the_released_event_and_writes_nothing(
        tmp_path: Path, radicale: DavServer, capsys: pytest.CaptureFixture[str]) -> None:
    proxy = RecordingProxy(radicale.port).start()
    try:
        admin = make_admin(tmp_path, radicale, capsys, via=proxy, import_events=True)
        day = date.today() + timedelta(days=5)
        admin.calendar().save_event(BACKWARDS.format(
            day=day.strftime("%Y%m%d"), prev=(day - timedelta(days=1)).strftime("%Y%m%d")))
        assert admin.sync() == {"quarantined": 1}
        proxy.requests.clear()
        assert admin.sync() == {}
        idle = sorted(r.method for r in proxy.requests)
        [item] = admin.json("quarantine")
        admin.ok("quarantine", "retry", str(item["id"]))
        proxy.requests.clear()
        assert admin.sync() == {"retried": 1, "quarantined": 1}
        retry = sorted(r.method for r in proxy.requests)
        assert len(retry) == len(idle) + 1
        assert not {"PUT", "DELETE", "PROPPATCH", "MKCALENDAR"} & set(retry)
    finally:
        proxy.stop()


def test_the_daemon_purges_expired_deletions_and_survives_a_failing_purge(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    from syncd.config import Config
    from syncd.daemon import Daemon

    daemon = Daemon(Config(data_dir=str(tmp_path), retention_days=0))
    store = daemon.service.store
    owner = store.add_user("ann@example.com", "Ann", "UTC")
    gone = store.add_activity(owner_id=owner, subject="Old", note="private")
    kept = store.add_activity(owner_id=owner, subject="Live")
    store.delete_activity(gone.id)
    daemon.purge()
    assert [a.id for a in store.list_activities(ActivityFilter(include_deleted=True))] == [
        kept.id]
    daemon.service.db.close()  # the next purge cannot reach the database
    daemon.service.store = None  # type: ignore[assignment]
    daemon.purge()  # logged, not raised: the scheduler and the syncs go on
    assert "purging deleted activities failed" in caplog.text


def test_a_cycle_whose_job_started_as_the_daemon_stopped_is_not_run_after_shutdown(
        tmp_path: Path) -> None:
    from syncd.config import AccountConfig, Config
    from syncd.daemon import Daemon

    account = AccountConfig(name="a", provider="memory", owner="ann@example.com")
    daemon = Daemon(Config(data_dir=str(tmp_path), accounts=(account,)))
    ran: list[str] = []

    def accounts_as_the_signal_arrives() -> list[AccountConfig]:
        # The job passed its first look at the flag; shutdown begins while it finds
        # its account, and finds no cycle in flight to wait for.
        daemon.stopping.set()
        assert daemon._wait_for_cycles(0)
        return [account]

    daemon.service.accounts = accounts_as_the_signal_arrives  # type: ignore[method-assign]

    def sync_one(acct: AccountConfig, **_: object) -> object:
        ran.append(acct.name)
        raise AssertionError("a cycle started after shutdown found none in flight")

    daemon.service.sync_one = sync_one  # type: ignore[method-assign,assignment]
    try:
        daemon._run_account("a")
    finally:
        daemon.service.close()
    assert ran == []  # shutdown has already said that nothing was running
