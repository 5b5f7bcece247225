"""Every documented runtime failure, through the CLI: its exit code, one sentence with a
next step, and never a traceback (issue 11 item 5).

The peers are real: Radicale with htpasswd authentication, a closed port, a web server
that is not CalDAV, PostgreSQL's port with nothing behind it, and a tiny tmpfs for the
full disk.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import caldav
import pytest

from syncd.cli import main
from syncd_testkit.loopback import HandlerServer, QuietHandler, free_port
from syncd_testkit.servers import RadicaleServer

GOOD_PASSWORD = "good-password-canary"
BAD_PASSWORD = "stale-password-canary"


class LockedRadicale(RadicaleServer):
    """Radicale asking for a password (htpasswd, plain: fine for a test)."""

    def __init__(self, folder: Path, users: dict[str, str]) -> None:
        super().__init__(folder)
        self.users = users

    def command(self) -> list[str]:
        htpasswd = self.folder / "users"
        htpasswd.write_text("".join(f"{u}:{p}\n" for u, p in self.users.items()))
        command = super().command()
        auth = command.index("--auth-type")
        return [*command[:auth], "--auth-type", "htpasswd",
                "--auth-htpasswd-filename", str(htpasswd),
                "--auth-htpasswd-encryption", "plain", *command[auth + 2:]]


class NotCalDAV(QuietHandler):
    """What answers on a wrong port: a web server that knows no WebDAV."""

    def do_GET(self) -> None:
        self.reply(200, b"hi")


USER = "owner@example.com"


@pytest.fixture(scope="module")
def locked(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LockedRadicale]:
    server = LockedRadicale(tmp_path_factory.mktemp("locked"), {USER: GOOD_PASSWORD})
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def web() -> Iterator[str]:
    with HandlerServer(NotCalDAV) as server:
        yield f"{server.origin}/"


def make_calendar(server: LockedRadicale) -> str:
    client = caldav.DAVClient(url=server.url, username=USER, password=GOOD_PASSWORD)
    name = f"c{uuid.uuid4().hex[:10]}"
    return str(client.principal().make_calendar(name=name, cal_id=name).url)


@dataclass
class Setup:
    """A config with one account, its owner and one activity to sync."""

    folder: Path
    url: str
    calendar: str
    password: str | None = "env:SYNCD_TEST_PW"
    database: str | None = None
    data: Path | None = None  # default: the folder itself

    @property
    def base(self) -> list[str]:
        config = self.folder / "syncd.toml"
        database = f'database = "{self.database}"\n' if self.database else ""
        password = (f'password = "{self.password}"\nallow_insecure_http = true\n'
                    if self.password else "")
        config.write_text(
            f'[syncd]\ndata_dir = "{self.data or self.folder}"\n{database}'
            f'[[account]]\nname = "work"\nprovider = "caldav"\nowner = "{USER}"\n'
            f'calendar = "{self.calendar}"\n[account.auth]\nurl = "{self.url}"\n'
            f'username = "{USER}"\n{password}')
        return ["--config", str(config)]

    def seed(self) -> list[str]:
        base = self.base
        assert main([*base, "user", "add", USER, "--time-zone", "Europe/Oslo"]) == 0
        assert main([*base, "activity", "add", "Demo", "--owner", USER, "--due",
                     "2026-12-10", "--time", "10:00", "--duration", "60"]) == 0
        return base


def one_sentence(text: str) -> str:
    """``text`` is one line holding one sentence; returns it."""
    assert "Traceback" not in text and "File \"" not in text, text
    assert text.count("\n") == 0, text
    assert text.endswith("."), text
    assert not re.search(r"[.!?] [A-Z]", text), f"more than one sentence: {text}"
    return text


def failed_line(out: str) -> str:
    """The sentence of ``work: failed (<sentence>)``, the only line of the output."""
    match = re.fullmatch(r"work: failed \((.*)\)\n", out)
    assert match, out
    return one_sentence(match.group(1))


def test_a_server_that_is_down_is_named_with_its_address(
        tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SYNCD_TEST_PW", GOOD_PASSWORD)
    dead = f"http://127.0.0.1:{free_port()}/"
    base = Setup(tmp_path, dead, dead + "owner/cal/").seed()
    capsys.readouterr()
    assert main([*base, "sync"]) == 1
    captured = capsys.readouterr()
    sentence = failed_line(captured.out)
    assert f"Nothing answers at {dead} (connection refused)" in sentence
    assert "host and port" in sentence and captured.err == ""
    # The traceback is there for whoever asks for it.
    main([*base, "--debug", "resume", "work"])
    main([*base, "--debug", "sync"])
    assert "Traceback (most recent call last)" in capsys.readouterr().err


def test_a_library_logging_an_exception_leaves_a_sentence_not_a_traceback(
        capsys: pytest.CaptureFixture[str]) -> None:
    import logging

    from syncd.errors import Unreachable
    from syncd.logs import setup_logging

    for level in ("warning", "debug"):
        setup_logging(level)
        try:
            raise Unreachable(url="http://127.0.0.1:9/", reason="connection refused")
        except Unreachable:
            logging.getLogger("apscheduler.executors.default").exception("Job raised")
        err = capsys.readouterr().err
        assert "Job raised: Nothing answers at http://127.0.0.1:9/ (connection refused)" in err \
            or level == "debug"
        assert ("Traceback" in err) == (level == "debug"), err
    setup_logging("warning")


def test_a_wrong_port_with_another_web_server_behind_it_says_no_calendar_is_there(
        tmp_path: Path, web: str, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SYNCD_TEST_PW", GOOD_PASSWORD)
    base = Setup(tmp_path, web, web + "owner/cal/").seed()
    capsys.readouterr()
    assert main([*base, "sync"]) == 1
    captured = capsys.readouterr()
    sentence = failed_line(captured.out)
    assert sentence.startswith(f"The calendar '{web}owner/cal/' does not exist on the server "
                               "and nothing was created; correct calendar and url of account "
                               "work in the config, the port included")
    assert captured.err == ""


def test_an_unknown_collection_names_the_url_and_the_key_to_correct(
        tmp_path: Path, locked: LockedRadicale, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SYNCD_TEST_PW", GOOD_PASSWORD)
    missing = f"{locked.url}{USER}/no-such-calendar/"
    base = Setup(tmp_path, locked.url, missing).seed()
    capsys.readouterr()
    assert main([*base, "sync"]) == 1
    captured = capsys.readouterr()
    sentence = failed_line(captured.out)
    assert sentence.startswith(f"The calendar '{missing}' does not exist on the server")
    assert "correct calendar and url of account work" in sentence and captured.err == ""


def test_a_wrong_caldav_password_points_at_the_secret_not_at_syncd_auth(
        tmp_path: Path, locked: LockedRadicale, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SYNCD_TEST_PW", BAD_PASSWORD)
    base = Setup(tmp_path, locked.url, make_calendar(locked)).seed()
    capsys.readouterr()
    assert main([*base, "sync"]) == 1
    captured = capsys.readouterr()
    sentence = failed_line(captured.out)
    assert "refused the credentials (HTTP 401" in sentence
    assert "put the right password in env:SYNCD_TEST_PW" in sentence
    assert "syncd auth" not in sentence and BAD_PASSWORD not in captured.out + captured.err
    assert captured.err == ""


def test_a_missing_secret_is_named_by_its_reference(
        tmp_path: Path, locked: LockedRadicale, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SYNCD_TEST_PW", raising=False)
    base = Setup(tmp_path, locked.url, make_calendar(locked)).seed()
    capsys.readouterr()
    assert main([*base, "sync"]) == 1
    captured = capsys.readouterr()
    sentence = failed_line(captured.out)
    assert sentence == ("The secret env:SYNCD_TEST_PW cannot be read (the environment "
                        "variable is not set); set it, or point the config at the right place.")
    assert captured.err == ""


def test_a_database_server_that_is_down_is_one_sentence_without_its_password(
        tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    port = free_port()
    monkeypatch.setenv("SYNCD_TEST_PW", GOOD_PASSWORD)
    monkeypatch.setenv("SYNCD_TEST_DB",
                       f"postgresql+psycopg://syncd:db-password-canary@127.0.0.1:{port}/x")
    setup = Setup(tmp_path, "http://127.0.0.1:1/", "http://127.0.0.1:1/c/",
                  database="env:SYNCD_TEST_DB")
    assert main([*setup.base, "sync"]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    sentence = one_sentence(captured.err.removeprefix("syncd: ").rstrip("\n"))
    assert sentence.startswith(f"The database postgresql+psycopg://syncd:***@127.0.0.1:{port}/x "
                               "cannot be used (connection refused)")
    assert "db-password-canary" not in captured.err


def test_a_database_password_given_as_a_url_parameter_is_hidden_too(
        tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    # libpq takes the password as ?password=..., beside the user:password@ form.
    port = free_port()
    monkeypatch.setenv("SYNCD_TEST_PW", GOOD_PASSWORD)
    monkeypatch.setenv("SYNCD_TEST_DB", f"postgresql+psycopg://syncd@127.0.0.1:{port}/x"
                                        "?connect_timeout=5&password=db-password-canary")
    setup = Setup(tmp_path, "http://127.0.0.1:1/", "http://127.0.0.1:1/c/",
                  database="env:SYNCD_TEST_DB")
    assert main([*setup.base, "sync"]) == 1
    captured = capsys.readouterr()
    assert "cannot be used (connection refused)" in captured.err
    assert "db-password-canary" not in captured.out + captured.err
    assert "password=***" in captured.err


def test_a_database_that_does_not_exist_is_named_in_the_servers_words(
        tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.store.conftest import PG_HOST, PG_PORT, PG_USER

    try:
        socket.create_connection((PG_HOST, int(PG_PORT)), timeout=2).close()
    except OSError:
        pytest.skip(f"no PostgreSQL at {PG_HOST}:{PG_PORT}")
    missing = f"syncd_missing_{uuid.uuid4().hex[:8]}"
    monkeypatch.setenv("SYNCD_TEST_DB", f"postgresql+psycopg://{PG_USER}@{PG_HOST}:{PG_PORT}/"
                                        f"{missing}")
    setup = Setup(tmp_path, "http://127.0.0.1:1/", "http://127.0.0.1:1/c/", password=None,
                  database="env:SYNCD_TEST_DB")
    assert main([*setup.base, "status"]) == 1
    sentence = one_sentence(capsys.readouterr().err.removeprefix("syncd: ").rstrip("\n"))
    assert f'cannot be used (database "{missing}" does not exist); start it' in sentence


def test_a_port_in_use_gets_its_own_sentence(tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        config = tmp_path / "syncd.toml"
        # The daemon logs at the config's level (info: migrations); warnings are kept.
        config.write_text(f'[syncd]\ndata_dir = "{tmp_path}"\n[logging]\nlevel = "warning"\n'
                          f'[embedded]\nport = {port}\n')
        assert main(["--config", str(config), "run", "--once"]) == 1
    captured = capsys.readouterr()
    sentence = one_sentence(captured.err.removeprefix("syncd: ").rstrip("\n"))
    assert sentence == (f"Port {port} on 127.0.0.1 is already in use, so the embedded calendar "
                        "server cannot start; stop what holds it or set [embedded] port in the "
                        "config.")


def _can_mount_tmpfs() -> bool:
    if shutil.which("unshare") is None or os.geteuid() != 0:
        return False
    probe = subprocess.run(["unshare", "-m", "sh", "-c", "mount -t tmpfs none /mnt"],
                           capture_output=True)
    return probe.returncode == 0


@pytest.mark.skipif(not _can_mount_tmpfs(), reason="needs a private mount namespace (root)")
def test_a_full_disk_under_sqlite_is_one_sentence_naming_the_database(
        tmp_path: Path, locked: LockedRadicale) -> None:
    data = tmp_path / "data"
    data.mkdir()
    setup = Setup(tmp_path, locked.url, make_calendar(locked), data=data)
    base = " ".join(setup.base)
    syncd = f"{sys.executable} -m syncd {base}"
    # A 1 MiB tmpfs over the data directory, in a mount namespace of its own, so nothing
    # outside this script ever sees it: the database is made, the disk is filled, then
    # the sync has nowhere to write.
    script = f"""
        set -e
        mount -t tmpfs -o size=1m,mode=0700 tmpfs {data}
        {syncd} user add {USER} --time-zone Europe/Oslo >/dev/null
        {syncd} activity add Demo --owner {USER} --due 2026-12-10 >/dev/null
        dd if=/dev/zero of={data}/filler bs=4k 2>/dev/null || true
        set +e
        {syncd} sync
        echo "exit=$?"
    """
    env = dict(os.environ, SYNCD_TEST_PW=GOOD_PASSWORD)
    done = subprocess.run(["unshare", "-m", "sh", "-c", script], capture_output=True,
                          text=True, env=env, cwd=Path(__file__).parent.parent, timeout=300)
    assert done.stdout.endswith("exit=1\n"), done.stdout + done.stderr
    sentence = one_sentence(done.stderr.removeprefix("syncd: ").rstrip("\n"))
    assert sentence.startswith(f"The disk holding {data}/syncd.db is full; free some space")


def test_status_shows_an_account_that_failed_before_its_cycle(
        tmp_path: Path, locked: LockedRadicale, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SYNCD_TEST_PW", GOOD_PASSWORD)
    base = Setup(tmp_path, locked.url, make_calendar(locked)).seed()
    assert main([*base, "sync"]) == 0
    monkeypatch.delenv("SYNCD_TEST_PW")  # the secret disappears: no request can be made
    assert main([*base, "sync"]) == 1
    capsys.readouterr()
    assert main([*base, "status"]) == 0
    first, second = capsys.readouterr().out.splitlines()
    assert first.startswith("work: failing; last run ") and ": failed;" in first
    assert one_sentence(second.strip()).startswith("The secret env:SYNCD_TEST_PW cannot be read")


def test_a_skipped_account_makes_sync_exit_3_with_its_next_step(
        tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SYNCD_TEST_PW", GOOD_PASSWORD)
    dead = f"http://127.0.0.1:{free_port()}/"
    base = Setup(tmp_path, dead, dead + "owner/cal/").seed()
    assert main([*base, "sync"]) == 1  # the failure itself
    capsys.readouterr()
    assert main([*base, "sync"]) == 3  # the next run skips the account while it rests
    out = capsys.readouterr().out
    assert re.fullmatch(r"work: skipped \(The account rests until .* UTC after "
                        r"failing; it syncs again by itself then, or run 'syncd resume work' "
                        r"once the cause is fixed\.\)\n", out), out
    assert main([*base, "resume", "work"]) == 0
    from syncd.store.db import Database
    from syncd.store.state import StateStore

    state = StateStore(Database(f"sqlite:///{tmp_path / 'syncd.db'}"))
    state.update_account("work", status="paused", status_reason="guest-updates: 9 planned")
    capsys.readouterr()
    assert main([*base, "sync"]) == 3
    assert ("The account is paused (guest-updates: 9 planned); check why, then run "
            "'syncd resume work'.") in capsys.readouterr().out
    state.db.close()


def test_fixing_a_refused_caldav_password_is_enough_for_the_next_cycle(
        tmp_path: Path, locked: LockedRadicale, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SYNCD_TEST_PW", BAD_PASSWORD)
    calendar = make_calendar(locked)
    base = Setup(tmp_path, locked.url, calendar).seed()
    assert main([*base, "sync"]) == 1  # 401: the account waits for new credentials
    capsys.readouterr()
    assert main([*base, "sync"]) == 3  # the same password is not tried again
    assert "work: skipped (The credentials were refused (HTTP 401" in capsys.readouterr().out
    main([*base, "status"])
    assert capsys.readouterr().out.startswith("work: needs_reauth (HTTP 401")
    assert BAD_PASSWORD.encode() not in _database_bytes(tmp_path)

    monkeypatch.setenv("SYNCD_TEST_PW", GOOD_PASSWORD)  # the admin fixes the secret
    assert main([*base, "sync"]) == 0  # no 'syncd resume' in between
    assert capsys.readouterr().out == "work: ok: crm_changes 1, events_created 1\n"
    client = caldav.DAVClient(url=locked.url, username=USER, password=GOOD_PASSWORD)
    assert len(client.calendar(url=calendar).events()) == 1
    main([*base, "status"])
    assert capsys.readouterr().out.startswith("work: ok; last run")
    assert GOOD_PASSWORD.encode() not in _database_bytes(tmp_path)


def test_an_account_refused_without_a_fingerprint_tries_once_more_after_the_fix(
        tmp_path: Path, locked: LockedRadicale, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    # Waiting since before fingerprints were kept (migration 0003), or refused while its
    # secret could not be read: nothing says which credentials were refused. The sentence
    # still promises that fixing the secret is enough, so one more try is due.
    from syncd.store.db import Database
    from syncd.store.state import StateStore

    monkeypatch.setenv("SYNCD_TEST_PW", BAD_PASSWORD)
    calendar = make_calendar(locked)
    base = Setup(tmp_path, locked.url, calendar).seed()
    assert main([*base, "sync"]) == 1
    db = Database(f"sqlite:///{tmp_path / 'syncd.db'}")
    StateStore(db).update_account("work", auth_fingerprint=None)
    db.close()
    capsys.readouterr()
    assert main([*base, "sync"]) == 1  # tried once more: refused, and now remembered
    assert main([*base, "sync"]) == 3  # not again with the same password
    monkeypatch.setenv("SYNCD_TEST_PW", GOOD_PASSWORD)
    capsys.readouterr()
    assert main([*base, "sync"]) == 0, capsys.readouterr().out


def _database_bytes(folder: Path) -> bytes:
    """The SQLite database with its write-ahead log."""
    return b"".join(p.read_bytes() for p in sorted(folder.glob("syncd.db*")))


def test_a_providers_words_reach_the_terminal_and_the_log_without_control_characters(
        tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    # A provider's reason code is its own JSON; printed raw, an escape sequence in it
    # would retitle, clear or rewrite the admin's terminal (status, sync, the log).
    import json
    import logging

    import httplib2
    from googleapiclient.errors import HttpError

    from connectors.google_http import error_for, reply_from_http_error
    from syncd.logs import setup_logging
    from syncd.report import describe
    from syncd.store.db import Database
    from syncd.store.state import StateStore

    body = json.dumps({"error": {"code": 401, "errors": [
        {"reason": "authError\u001b]0;owned\u0007\u001b[2J\u009b1m"}]}}).encode()
    error = error_for(reply_from_http_error(HttpError(httplib2.Response({"status": 401}),
                                                      body)))
    assert "\x1b" in describe(error)  # the provider's words, as they came

    monkeypatch.setenv("SYNCD_TEST_PW", GOOD_PASSWORD)
    url = f"sqlite:///{tmp_path / 'state.db'}"
    base = Setup(tmp_path, "https://dav.example.com/", "https://dav.example.com/c/",
                 database=url).seed()
    db = Database(url)
    state = StateStore(db)
    state.account("work")  # made on first sight
    state.update_account("work", status="needs_reauth", status_reason=str(error.reason),
                         last_outcome="failed", last_message=describe(error))
    db.close()
    capsys.readouterr()
    main([*base, "status"])
    out = capsys.readouterr().out
    assert "authError" in out and not re.search(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]", out), out

    log = tmp_path / "syncd.log"
    setup_logging("warning", file=str(log))
    try:
        logging.getLogger("syncd.test").warning("work: failed (%s)", describe(error))
    finally:
        setup_logging("warning")
    written = log.read_text()
    assert "authError" in written and not re.search(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]",
                                                    written.rstrip("\n")), written


def test_a_guard_refusal_reaches_sync_with_the_force_delete_step(
        tmp_path: Path, locked: LockedRadicale, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SYNCD_TEST_PW", GOOD_PASSWORD)
    calendar = make_calendar(locked)
    base = Setup(tmp_path, locked.url, calendar).seed()
    for day in range(11, 17):
        assert main([*base, "activity", "add", f"Call {day}", "--owner", USER, "--due",
                     f"2026-12-{day}", "--time", "09:00", "--duration", "30"]) == 0
    assert main([*base, "sync"]) == 0
    client = caldav.DAVClient(url=locked.url, username=USER, password=GOOD_PASSWORD)
    for event in client.calendar(url=calendar).events()[:6]:
        event.delete()  # six of seven: more than the five deletions one cycle may make
    capsys.readouterr()

    assert main([*base, "sync"]) == 1
    out = capsys.readouterr().out
    match = re.fullmatch(r"work: refused: [^(]*\((.*)\)\n", out)
    assert match, out
    assert one_sentence(match.group(1)) == (
        "The mass-deletion guard refused this cycle (6 deletions planned, more than the 5 "
        "allowed per cycle); nothing was changed; check the calendar, then run 'syncd sync "
        "--account work --force-delete' to proceed.")
    assert main([*base, "sync"]) == 3  # flagged: skipped until someone looks
    assert ("The account is flagged (mass-deletion: 6 deletions planned, more than the 5 "
            "allowed per cycle); check the calendar, then run 'syncd sync --account work "
            "--force-delete'.") in capsys.readouterr().out
    assert main([*base, "sync", "--force-delete"]) == 0
    assert "activities_deleted 6" in capsys.readouterr().out
