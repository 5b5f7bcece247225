"""`syncd verify` from the command line on Radicale and Xandikos: clean after a sync,
findings with the command that repairs them, and --repair deleting only what it names."""

from __future__ import annotations

import json
import stat
import uuid
from dataclasses import replace
from pathlib import Path

import pytest

from connectors.base import CreateOp
from syncd.cli import main
from syncd.config import AccountConfig, Config
from syncd.crm.builtin.views import ActivityFilter
from syncd.model import project_activity
from syncd.service import Service
from syncd_testkit.servers import DavServer
from tests.conftest import fresh_calendar


def configured(tmp_path: Path, dav_server: DavServer) -> tuple[list[str], AccountConfig]:
    """A config with one CalDAV account on a fresh calendar, and its owner in the CRM."""
    user, calendar = fresh_calendar(dav_server)
    config = tmp_path / "syncd.toml"
    config.write_text(f'[syncd]\ndata_dir = "{tmp_path}"\n[[account]]\nname = "mine"\n'
                      f'provider = "caldav"\nowner = "{user}"\ncalendar = "{calendar}"\n'
                      f'[account.auth]\nurl = "{dav_server.url}"\nusername = "{user}"\n')
    base = ["--config", str(config)]
    assert main([*base, "user", "add", user, "--time-zone", "Europe/Oslo"]) == 0
    return base, AccountConfig(name="mine", provider="caldav", owner=user, calendar=calendar,
                               auth={"url": dav_server.url, "username": user})


def test_verify_reports_findings_and_repair_removes_only_duplicates_and_orphans(
        tmp_path: Path, dav_server: DavServer, capsys: pytest.CaptureFixture[str]) -> None:
    base, account = configured(tmp_path, dav_server)
    user = account.owner
    for title, note in (("Demo", "Budget is 40k, never say it"),
                        ("Lunch", "Allergic to shellfish, remember")):
        assert main([*base, "activity", "add", title, "--owner", user, "--due", "2027-01-10",
                     "--time", "10:00", "--duration", "60", "--note", note]) == 0
    assert main([*base, "sync"]) == 0
    capsys.readouterr()
    assert main([*base, "verify"]) == 0
    assert "mine: clean (2 events, 2 pairs, 2 activities)" in capsys.readouterr().out

    service = Service(Config(data_dir=str(tmp_path), accounts=(account,)))
    demo_id = next(a for a in service.store.list_activities(ActivityFilter())
                   if a.subject == "Demo").id
    link = service.state.links("mine")[demo_id]
    projection = project_activity(service.store.get(demo_id))
    assert projection is not None
    connector = service.open_connector(account, read_only=False)
    results = connector.write([
        CreateOp("copy", link.sync_uid, link.generation + 3, projection),
        CreateOp("stray", uuid.uuid4().hex, 0,
                 projection.replace({"description": "BUDGET IS 40K, never   say it"}))])
    connector.close()
    service.close()
    assert all(r.error is None for r in results)

    assert main([*base, "--json", "verify"]) == 1
    (report,) = json.loads(capsys.readouterr().out)
    found = {(f["kind"], f["activity_id"]) for f in report["findings"]}
    assert found == {("duplicate", demo_id), ("orphan", None), ("privacy", demo_id)}
    assert "40k" not in json.dumps(report).lower()  # a note is named, never shown
    texts = " ".join(f["text"] for f in report["findings"])
    assert "'syncd verify --repair --account mine'" in texts

    assert main([*base, "verify", "--repair"]) == 0
    out = capsys.readouterr().out
    assert "mine: clean" in out and "repaired: 2 event(s) deleted" in out
    log = tmp_path / "repairs.jsonl"
    assert stat.S_IMODE(log.stat().st_mode) == 0o600
    removed = [json.loads(line) for line in log.read_text().splitlines()]
    assert len(removed) == 2 and {r["account"] for r in removed} == {"mine"}
    assert main([*base, "verify"]) == 0
    assert main([*base, "verify", "--account", "nope"]) == 2


def test_verify_repair_realigns_a_drifted_pair_and_the_next_sync_writes_the_activity(
        tmp_path: Path, dav_server: DavServer, capsys: pytest.CaptureFixture[str]) -> None:
    base, account = configured(tmp_path, dav_server)
    assert main([*base, "activity", "add", "Review", "--owner", account.owner, "--due",
                 "2027-01-11", "--time", "09:00", "--duration", "30"]) == 0
    assert main([*base, "sync"]) == 0
    # A pair that recorded a CRM edit as written although the event never got it.
    service = Service(Config(data_dir=str(tmp_path), accounts=(account,)))
    (review,) = service.store.list_activities(ActivityFilter())
    service.store.edit_activity(review.id, subject="Review (moved)")
    link = service.state.links("mine")[review.id]
    service.state.save_link("mine", replace(link, crm_base=project_activity(
        service.store.get(review.id))))
    service.close()
    capsys.readouterr()

    assert main([*base, "verify"]) == 1
    assert "'syncd verify --repair --account mine' makes the next cycle write" in \
        capsys.readouterr().out
    assert main([*base, "verify", "--repair"]) == 0
    assert "realigned: 1 drifted pair(s)" in capsys.readouterr().out
    (logged,) = [json.loads(line) for line in (tmp_path / "repairs.jsonl").read_text()
                 .splitlines()]
    assert (logged["realigned"], logged["fields"], logged["overwritten"]["title"]) == (
        review.id, ["title"], "Review")

    assert main([*base, "sync"]) == 0
    assert main([*base, "--json", "verify"]) == 0
    service = Service(Config(data_dir=str(tmp_path), accounts=(account,)))
    connector = service.open_connector(account, read_only=True)
    try:
        assert [e.projection.title for e in connector.changes(None).events
                if e.projection is not None] == ["Review (moved)"]
    finally:
        connector.close()
        service.close()


FOREIGN = ("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//someone else//EN\r\nBEGIN:VEVENT\r\n"
           "UID:{uid}\r\nDTSTAMP:20261201T080000Z\r\nDTSTART:20270112T090000Z\r\n"
           "DTEND:20270112T100000Z\r\nSUMMARY:{title}\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n")


def test_a_foreign_event_syncd_wrote_is_reported_and_never_repaired(
        tmp_path: Path, dav_server: DavServer, capsys: pytest.CaptureFixture[str]) -> None:
    import caldav

    base, account = configured(tmp_path, dav_server)
    assert main([*base, "sync"]) == 0
    calendar = caldav.DAVClient(url=dav_server.url, username=account.owner,
                                password="x").calendar(url=account.calendar)
    uid = uuid.uuid4().hex
    planted = calendar.save_event(FOREIGN.format(uid=uid, title="Their meeting"))
    service = Service(Config(data_dir=str(tmp_path), accounts=(account,)))
    connector = service.open_connector(account, read_only=True)
    try:
        (theirs,) = connector.changes(None).events
    finally:
        connector.close()
    assert theirs.marker is None
    # The write log says a cycle of ours updated it, and left the etag it has now.
    service.state.record("mine", writes=[(theirs.event_id, theirs.etag, "update")])
    service.close()
    capsys.readouterr()

    def finding() -> dict[str, object]:
        assert main([*base, "--json", "verify"]) == 1
        (report,) = json.loads(capsys.readouterr().out)
        (found,) = report["findings"]
        assert (found["kind"], found["event_ids"]) == ("foreign_touched", [theirs.event_id])
        return dict(found)

    found = finding()
    assert found["reason"] == "unchanged"
    assert "still holds what syncd wrote; no command restores it" in str(found["text"])
    assert main([*base, "verify", "--repair"]) == 1  # nothing to repair: it stays as it is
    capsys.readouterr()
    assert calendar.event_by_uid(uid).data == planted.data

    planted.data = FOREIGN.format(uid=uid, title="Their meeting, moved")
    planted.save()  # its organizer edits it after our write
    found = finding()
    assert found["reason"] == "changed" and "edited since" in str(found["text"])


def test_verify_finds_a_meeting_left_behind_by_a_handover_and_repair_deletes_it(
        tmp_path: Path, dav_server: DavServer, capsys: pytest.CaptureFixture[str]) -> None:
    base, account = configured(tmp_path, dav_server)
    assert main([*base, "activity", "add", "Handover", "--owner", account.owner, "--due",
                 "2027-01-12", "--time", "11:00", "--duration", "30"]) == 0
    assert main([*base, "sync"]) == 0
    # Handed to a colleague, and no cycle of this account heard of it (as when a CRM's
    # feed lost the move): the event is still paired here.
    service = Service(Config(data_dir=str(tmp_path), accounts=(account,)))
    colleague = service.store.add_user("colleague@example.com", "Colleague", "Europe/Oslo")
    (handover,) = service.store.list_activities(ActivityFilter())
    service.store.edit_activity(handover.id, owner_id=colleague)
    service.close()
    capsys.readouterr()

    assert main([*base, "--json", "verify"]) == 1
    (report,) = json.loads(capsys.readouterr().out)
    [finding] = report["findings"]
    assert (finding["kind"], finding["activity_id"], finding["reason"]) == (
        "orphan", handover.id, "moved_away")
    assert "belongs to another owner now" in finding["text"]
    assert main([*base, "verify", "--repair"]) == 0
    assert "repaired: 1 event(s) deleted" in capsys.readouterr().out
    assert main([*base, "sync"]) == 0
    assert main([*base, "verify"]) == 0
    service = Service(Config(data_dir=str(tmp_path), accounts=(account,)))
    try:
        assert handover.id not in service.state.links("mine")
    finally:
        service.close()
