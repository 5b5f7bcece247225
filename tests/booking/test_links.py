"""Booking links: made, listed and revoked with the CLI; the token kept only as a hash;
the CRM's check-and-book in one transaction."""

from __future__ import annotations

import threading
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path

import pytest

from syncd.crm.builtin.activities import ActivityStore
from syncd.crm.builtin.views import ActivityFilter
from syncd.errors import SecretUnavailable, SlotTaken
from syncd.store.booking_links import BookingLinkStore, token_hash
from syncd.store.db import Database
from tests.test_cli_crm import Cli, cli  # noqa: F401  (the fixture)

SLOT = datetime(2026, 12, 8, 9, 0, tzinfo=UTC)


@pytest.fixture
def booking_cli(cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Cli:  # noqa: F811
    config = tmp_path / "syncd.toml"
    config.write_text(f'[syncd]\ndata_dir = "{cli.data_dir}"\n[http]\n'
                      'listen = "127.0.0.1:8765"\npublic_url = "https://book.example.com"\n')
    monkeypatch.setenv("SYNCD_CONFIG", str(config))
    cli.ok("user", "add", "ann@example.com", "--name", "Ann")
    return cli


def test_a_link_is_made_listed_and_revoked_and_its_token_is_stored_only_hashed(
        booking_cli: Cli) -> None:
    out = booking_cli.ok("booking", "link", "create", "Ann@Example.com", "--type", "meeting",
                         "--duration", "45", "--days", "21")
    url = out.splitlines()[1]
    assert url.startswith("https://book.example.com/book/")
    token = url.rsplit("/", 1)[1]
    assert len(token) == 43  # 256 bits
    database = b"".join(path.read_bytes() for path in  # the WAL holds the last writes
                        booking_cli.data_dir.glob("syncd.db*"))
    assert token.encode() not in database and token_hash(token).encode() in database
    [row] = booking_cli.json("booking", "link", "list")
    assert (row["id"], row["owner"], row["type"], row["duration"], row["days"],
            row["revoked_at"]) == (1, "ann@example.com", "meeting", 45, 21, None)
    assert token not in booking_cli.ok("booking", "link", "list")

    links = BookingLinkStore(Database(f"sqlite:///{booking_cli.data_dir / 'syncd.db'}"))
    assert links.resolve(token) is not None
    assert "revoked" in booking_cli.ok("booking", "link", "revoke", "1")
    assert links.resolve(token) is None
    assert booking_cli.json("booking", "link", "list")[0]["revoked_at"] is not None


def test_bad_link_requests_are_refused_with_a_sentence(booking_cli: Cli) -> None:
    for args, words in (((("nobody@example.com", "--type", "meeting")), "not a CRM user"),
                        (("ann@example.com", "--type", "party"), "not an activity type"),
                        (("ann@example.com", "--type", "call", "--duration", "0"), "minutes"),
                        (("ann@example.com", "--type", "call", "--days", "400"), "days")):
        code, _, err = booking_cli("booking", "link", "create", *args)
        assert code == 2 and words in err and "Traceback" not in err
    code, _, err = booking_cli("booking", "link", "revoke", "7")
    assert code == 1 and "No booking link 7 exists" in err
    assert booking_cli.json("booking", "link", "list") == []


def test_a_link_needs_a_public_url(cli: Cli) -> None:  # noqa: F811
    cli.ok("user", "add", "ann@example.com")
    code, _, err = cli("booking", "link", "create", "ann@example.com", "--type", "call")
    assert code == 2 and "[http] public_url" in err


def test_unknown_and_malformed_tokens_resolve_to_nothing(tmp_path: Path) -> None:
    links = BookingLinkStore(Database(f"sqlite:///{tmp_path / 'd.db'}"))
    _, token = links.create("ann@example.com", "meeting")
    for bad in ("", "A" * 43, token[:-1], token + "A", token.upper(), "../" + token[3:],
                "é" * 43, token[:-1] + "\x00"):
        assert links.resolve(bad) is None, bad
    assert links.resolve(token) is not None


@pytest.fixture
def store(tmp_path: Path) -> ActivityStore:
    return ActivityStore(Database(f"sqlite:///{tmp_path / 'crm.db'}"))


def book(store: ActivityStore, owner: int, uid: str, start: datetime = SLOT,
         minutes: int = 30) -> tuple[object, bool]:
    return store.book_slot(uid, owner_id=owner, type="meeting", start=start,
                           end=start + timedelta(minutes=minutes), subject="Booked")


def test_a_busy_activity_blocks_the_slot_and_a_free_one_does_not(store: ActivityStore) -> None:
    owner = store.add_user("ann@example.com", "Ann", "Europe/Oslo")
    store.add_activity(owner_id=owner, subject="Free", due_date=date(2026, 12, 8),
                       due_time=time(10, 0), duration_minutes=60, busy=False)  # 09:00 UTC
    store.add_activity(owner_id=owner, subject="Busy", due_date=date(2026, 12, 8),
                       due_time=time(10, 45), duration_minutes=60, busy=True)
    activity, created = book(store, owner, "a" * 32)  # 10:00-10:30 Oslo: free blocks nothing
    assert created
    with pytest.raises(SlotTaken):
        book(store, owner, "b" * 32, SLOT + timedelta(minutes=30))  # 10:30-11:00 meets Busy
    with pytest.raises(SlotTaken):
        book(store, owner, "c" * 32)  # the slot just booked is busy now
    assert book(store, owner, "a" * 32) == (activity, False)  # the same booking again
    store.add_activity(owner_id=owner, subject="Away", due_date=date(2026, 12, 9),
                       busy=True)  # a whole busy day
    with pytest.raises(SlotTaken):
        book(store, owner, "d" * 32, SLOT + timedelta(days=1, hours=5))
    assert [a.subject for a in store.list_activities(ActivityFilter(owner_id=owner))] == \
        ["Free", "Booked", "Busy", "Away"]


def test_two_visitors_racing_for_one_slot_make_one_activity(store: ActivityStore) -> None:
    owner = store.add_user("ann@example.com", "Ann")
    outcomes: list[str] = []
    start = threading.Barrier(8)

    def visitor(n: int) -> None:
        start.wait()
        try:
            book(store, owner, f"{n:032x}")
            outcomes.append("booked")
        except SlotTaken:
            outcomes.append("taken")

    threads = [threading.Thread(target=visitor, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == ["booked"] + ["taken"] * 7
    assert len(store.list_activities(ActivityFilter(owner_id=owner))) == 1


def test_the_signing_key_is_private_and_kept_across_starts(tmp_path: Path) -> None:
    from syncd.http.booking_guard import load_key

    key = load_key(tmp_path)
    assert len(key) == 32 and load_key(tmp_path) == key
    assert (tmp_path / "http" / "booking.key").stat().st_mode & 0o777 == 0o600
    assert (tmp_path / "http").stat().st_mode & 0o777 == 0o700
    assert [p.name for p in (tmp_path / "http").iterdir()] == ["booking.key"]
    (tmp_path / "http" / "booking.key").write_text("short\n")
    with pytest.raises(SecretUnavailable, match="delete it"):
        load_key(tmp_path)


def test_a_crm_that_cannot_book_gets_no_link(booking_cli: Cli,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    import syncd.crm

    class Remote:  # a CRM source without SlotBooker.book, as Pipedrive's is today
        def user(self, email: str) -> object:
            return object()

    monkeypatch.setattr(syncd.crm, "open_source", lambda *a, **k: Remote())
    code, _, err = booking_cli("booking", "link", "create", "ann@example.com", "--type",
                               "meeting")
    assert code == 2 and "cannot book yet" in err
    assert booking_cli.json("booking", "link", "list") == []


def test_json_may_follow_the_command_as_the_docs_write_it(booking_cli: Cli) -> None:
    import json

    made = json.loads(booking_cli.ok("booking", "link", "create", "ann@example.com",
                                     "--type", "meeting", "--json"))
    assert made["url"].startswith("https://book.example.com/book/")
    assert [row["id"] for row in json.loads(booking_cli.ok("booking", "link", "list",
                                                           "--json"))] == [made["id"]]
    free = json.loads(booking_cli.ok("availability", "ann@example.com", "--from",
                                     "2030-01-07", "--to", "2030-01-07", "--duration",
                                     "8h", "--step", "1h", "--json"))
    assert free["slots"] == [{"start": "2030-01-07T09:00:00+00:00",  # a Monday, 9-17 UTC
                              "end": "2030-01-07T17:00:00+00:00"}]
    day = json.loads(booking_cli.ok("agenda", "ann@example.com", "--date", "2030-01-07",
                                    "--json"))
    assert day["owner"] == "ann@example.com"
