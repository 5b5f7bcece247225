"""The embedded calendar server asks for each user's password, shows each user only their
own calendars and answers only to its own address.

The server is the real child process ``syncd run`` starts (:class:`EmbeddedCalendarServer`)
on a free loopback port; requests are real HTTP, and the owner's side is the ``caldav``
library, as a calendar app would use it.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import caldav
import pytest
import requests

from syncd.crm.builtin.views import UserView
from syncd.daemon import EmbeddedCalendarServer
from syncd.embedded_auth import SERVICE_USER, EmbeddedCredentials
from syncd.embedded_server import ACCEPT_QUEUE, _Server, allowed_hosts
from syncd.errors import PortInUse, ServerFailed
from syncd.report import EXIT_USAGE
from syncd_testkit.loopback import free_port

ALICE, BOB = "alice@example.com", "bob@example.com"
PROPFIND = '<?xml version="1.0"?><propfind xmlns="DAV:"><prop><displayname/></prop></propfind>'


@dataclass
class Embedded:
    server: EmbeddedCalendarServer
    passwords: dict[str, str]

    def calendar(self, email: str) -> str:
        return f"{self.server.url}{email}/crm/"

    def propfind(self, url: str, auth: tuple[str, str] | None = None,
                 host: str | None = None) -> int:
        headers = {"Depth": "0", "Content-Type": "application/xml"}
        if host is not None:
            headers["Host"] = host
        return requests.request("PROPFIND", url, data=PROPFIND, headers=headers, auth=auth,
                                timeout=30).status_code


def start_server(data: Path) -> EmbeddedCalendarServer:
    """The embedded server on a free port; another free port if the first was taken
    meanwhile by some other process on this shared machine."""
    for attempt in range(3):
        server = EmbeddedCalendarServer("127.0.0.1", free_port(), data)
        try:
            server.start()
            return server
        except (OSError, PortInUse, ServerFailed):  # the port was taken meanwhile
            server.stop()
            if attempt == 2:
                raise
    raise AssertionError("unreachable")


@pytest.fixture(scope="module")
def embedded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Embedded]:
    data = tmp_path_factory.mktemp("embedded") / "data"
    server = start_server(data)
    try:
        credentials = EmbeddedCredentials(data)
        passwords = {email: credentials.new_password(email) for email in (ALICE, BOB)}
        for email in passwords:
            server.ensure_calendar(email)
        yield Embedded(server, passwords)
    finally:
        server.stop()


def test_the_owner_reads_and_writes_their_calendar_with_the_generated_password(
    embedded: Embedded,
) -> None:
    client = caldav.DAVClient(url=embedded.server.url, username=ALICE,
                              password=embedded.passwords[ALICE])
    calendars = client.principal().calendars()
    assert [str(c.url).rstrip("/").rsplit("/", 1)[-1] for c in calendars] == ["crm"]
    assert calendars[0].get_display_name() == "CRM activities"
    calendars[0].save_event(dtstart=datetime(2026, 12, 10, 10),
                            dtend=datetime(2026, 12, 10, 11),
                            uid="owner-check", summary="Call Ada")
    read_back = client.calendar(url=embedded.calendar(ALICE)).event_by_uid("owner-check")
    assert str(read_back.icalendar_component["SUMMARY"]) == "Call Ada"


@pytest.mark.parametrize(
    ("who", "auth", "status"),
    [
        ("nobody", None, 401),
        ("a wrong password", (ALICE, "not-the-password"), 401),
        ("another user's password under the owner's name", (ALICE, "<bob>"), 401),
        ("another user, logged in as themselves", (BOB, "<bob>"), 403),
        ("an empty password", (ALICE, ""), 401),
    ],
)
def test_anyone_but_the_owner_is_refused(embedded: Embedded, who: str,
                                         auth: tuple[str, str] | None, status: int) -> None:
    if auth is not None and auth[1] == "<bob>":
        auth = (auth[0], embedded.passwords[BOB])
    assert embedded.propfind(embedded.calendar(ALICE), auth) == status, who


@pytest.mark.parametrize("host", ["evil.example:{port}", "127.0.0.1.evil.example:{port}",
                                  "127.0.0.1:1", "localhost", ""])
def test_a_request_for_another_host_is_refused_even_with_the_right_password(
    embedded: Embedded, host: str,
) -> None:
    auth = (ALICE, embedded.passwords[ALICE])
    assert embedded.propfind(embedded.calendar(ALICE), auth,
                             host=host.format(port=embedded.server.port)) == 403
    # the same request under the server's own names is answered
    for name in ("127.0.0.1", "localhost"):
        assert embedded.propfind(embedded.calendar(ALICE), auth,
                                 host=f"{name}:{embedded.server.port}") == 207


def test_syncd_reaches_every_users_calendar_with_its_own_secret(embedded: Embedded) -> None:
    secret = EmbeddedCredentials(embedded.server.data_path).service_secret.resolve()
    for email in (ALICE, BOB):
        assert embedded.propfind(embedded.calendar(email), (SERVICE_USER, secret)) == 207
    assert embedded.propfind(embedded.calendar(ALICE), (SERVICE_USER, "guess")) == 401


def test_allowed_hosts_are_the_configured_address_and_localhost_with_the_port() -> None:
    assert allowed_hosts("127.0.0.1", 5232) == {"127.0.0.1:5232", "localhost:5232"}
    assert allowed_hosts("::1", 5232) == {"[::1]:5232", "localhost:5232"}


# --- `syncd user add` and `syncd user password` ----------------------------------------------


def syncd(data: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SYNCD_")}
    return subprocess.run([sys.executable, "-m", "syncd", "--data-dir", str(data), *args],
                          env=env, capture_output=True, text=True, timeout=60)


def test_user_add_shows_a_password_once_and_user_password_replaces_it(tmp_path: Path) -> None:
    data = tmp_path / "data"
    added = syncd(data, "--json", "user", "add", ALICE, "--name", "Alice")
    assert added.returncode == 0, added.stderr
    first = json.loads(added.stdout)["calendar_login"]
    assert first["username"] == ALICE and first["calendar_url"].endswith(f"/{ALICE}/crm/")
    assert len(first["password"]) >= 24

    reset = syncd(data, "user", "password", ALICE)
    assert reset.returncode == 0, reset.stderr
    second = reset.stdout.split("password: ", 1)[1].split()[0]
    assert second != first["password"]
    users = (data / "embedded" / "users").read_text()
    assert first["password"] not in users and second not in users  # only hashes are kept

    server = start_server(data)
    try:
        server.ensure_calendar(ALICE)
        calendar = f"{server.url}{ALICE}/crm/"
        probe = Embedded(server, {})
        assert probe.propfind(calendar, (ALICE, first["password"])) == 401
        assert probe.propfind(calendar, (ALICE, second)) == 207
    finally:
        server.stop()

    unknown = syncd(data, "user", "password", BOB)
    assert unknown.returncode == EXIT_USAGE and "Traceback" not in unknown.stderr
    assert "no user has the address" in unknown.stderr


# --- `syncd run` welcoming a user who has no password yet ---------------------------------------


def test_the_daemon_shows_a_new_users_password_once_and_only_on_a_terminal(
    embedded: Embedded, capsys: pytest.CaptureFixture[str],
) -> None:
    carol = UserView(id=3, email="Carol@Example.com", name="Carol", time_zone="UTC")
    dave = UserView(id=4, email="dave@example.com", name="Dave", time_zone="UTC")
    credentials = EmbeddedCredentials(embedded.server.data_path)
    capsys.readouterr()

    embedded.server.welcome([dave], show_passwords=False)  # e.g. under systemd or Docker
    hint = capsys.readouterr().out
    assert "syncd user password dave@example.com" in hint and "password " not in \
        hint.replace("user password", "")
    assert not credentials.has_password("dave@example.com")

    embedded.server.welcome([carol], show_passwords=True)
    shown = capsys.readouterr().out
    password = shown.split("password ", 1)[1].split(";", 1)[0]
    assert "http://127.0.0.1:" in shown and "/carol@example.com/crm/" in shown
    embedded.server.welcome([carol, dave], show_passwords=True)  # the next refresh
    assert capsys.readouterr().out == ""

    # The password works for the lower-cased login, on the calendar the daemon made.
    client = caldav.DAVClient(url=embedded.server.url, username="carol@example.com",
                              password=password)
    assert [c.get_display_name() for c in client.principal().calendars()] == ["CRM activities"]
    assert embedded.propfind(embedded.calendar("carol@example.com"),
                             ("carol@example.com", password)) == 207


# --- addresses the calendar server refuses as logins ---------------------------------------------


@pytest.mark.parametrize("email", ["o'brien@example.com", "what?now@example.com",
                                   "star*@example.com", "a,b@example.com"])
def test_an_address_the_server_refuses_gets_no_password_and_says_why(
    embedded: Embedded, email: str, capsys: pytest.CaptureFixture[str],
) -> None:
    # Valid e-mail addresses that Radicale refuses (400) in a login and a path: a password
    # and calendar address shown for one would never work.
    credentials = EmbeddedCredentials(embedded.server.data_path)
    with pytest.raises(ValueError):
        credentials.new_password(email)
    capsys.readouterr()
    embedded.server.welcome([UserView(id=9, email=email, name="", time_zone="UTC")],
                            show_passwords=True)
    said = capsys.readouterr().out
    assert "cannot log in" in said and "refuses" in said and "password " not in said
    assert not credentials.has_password(email)


def test_a_calendar_the_server_refuses_to_look_up_is_not_taken_for_an_existing_one(
    embedded: Embedded,
) -> None:
    with pytest.raises(ServerFailed, match="HTTP 400"):
        embedded.server.ensure_calendar("o'brien@example.com")


def test_user_add_says_when_the_embedded_server_cannot_serve_the_address(tmp_path: Path) -> None:
    added = syncd(tmp_path / "data", "user", "add", "o'brien@example.com")
    assert added.returncode == 0, added.stderr
    assert "cannot serve this address" in added.stdout and "password" not in added.stdout


def test_a_port_taken_by_another_process_while_the_server_starts_is_not_taken_for_it(
    tmp_path: Path,
) -> None:
    # Another local user's program binds the port after syncd found it free and listens
    # there while the server is still starting. Taking its answer for the server's would
    # send syncd's service password (and users' passwords) to that program.
    import socket
    import threading
    import time

    squatter = socket.socket()
    squatter.bind(("127.0.0.1", 0))  # bound, not listening: the port looks free
    port = squatter.getsockname()[1]
    server = EmbeddedCalendarServer("127.0.0.1", port, tmp_path / "data")

    def listen_once_the_server_runs() -> None:
        deadline = time.monotonic() + 30
        while server.process is None and time.monotonic() < deadline:
            time.sleep(0.005)
        squatter.listen()

    thread = threading.Thread(target=listen_once_the_server_runs)
    thread.start()
    try:
        with pytest.raises(ServerFailed):
            server.start()
        assert server.process is not None and server.process.poll() is not None
    finally:
        thread.join()
        server.stop()
        squatter.close()


def test_a_server_that_stopped_is_sent_no_request_when_a_new_user_is_welcomed(
    tmp_path: Path,
) -> None:
    # The child is gone and another local program listens on its port: making a new
    # user's calendar there would send it the service password (the library answers its
    # 401 challenge with it). The daemon notices the death only on its next check.
    import socket

    squatter = socket.socket()
    squatter.bind(("127.0.0.1", 0))
    squatter.listen()
    squatter.settimeout(0.5)
    port = squatter.getsockname()[1]
    server = EmbeddedCalendarServer("127.0.0.1", port, tmp_path / "data")
    server.credentials.prepare()
    server.process = subprocess.Popen([sys.executable, "-c", "pass"])
    server.process.wait()
    try:
        server.welcome([UserView(id=1, email=ALICE, name="", time_zone="UTC")],
                       show_passwords=False)
        with pytest.raises(ServerFailed, match="stopped"):
            server.ensure_calendar(ALICE)
        with pytest.raises(TimeoutError):
            squatter.accept()[0].close()  # nobody connected
    finally:
        server.stop()
        squatter.close()


def test_a_cycle_in_flight_sends_nothing_once_the_embedded_server_stopped(
    tmp_path: Path,
) -> None:
    # The daemon notices the death between cycles; a cycle already running would
    # reconnect to the port, now maybe another program's, with the service password.
    import socket

    from connectors import ConnectorContext, open_connector
    from connectors.base import Window
    from syncd.config_types import AccountConfig, SecretRef
    from syncd.errors import SyncdError

    squatter = socket.socket()
    squatter.bind(("127.0.0.1", 0))
    squatter.listen()
    squatter.settimeout(0.5)
    port = squatter.getsockname()[1]
    server = EmbeddedCalendarServer("127.0.0.1", port, tmp_path / "data")
    server.process = subprocess.Popen([sys.executable, "-c", "pass"])
    server.process.wait()
    os.environ["SYNCD_TEST_EMBEDDED_PW"] = "service-secret"
    account = AccountConfig(
        name=f"embedded:{ALICE}", provider="caldav", owner=ALICE,
        calendar=f"http://127.0.0.1:{port}/{ALICE}/crm/",
        auth={"url": f"http://127.0.0.1:{port}/", "username": SERVICE_USER,
              "password": SecretRef("env:SYNCD_TEST_EMBEDDED_PW")})
    now = datetime(2026, 1, 1, tzinfo=UTC)
    connector = open_connector(account, ConnectorContext(
        "UTC", Window(now, now), before_request=server.check_running))
    try:
        with pytest.raises(SyncdError):
            connector.changes(None)
        with pytest.raises(TimeoutError):
            squatter.accept()[0].close()  # nobody connected
    finally:
        del os.environ["SYNCD_TEST_EMBEDDED_PW"]
        connector.close()
        squatter.close()


def test_a_burst_of_connections_waits_in_the_queue_while_the_server_is_busy() -> None:
    """The daemon's workers open connections at once; with socketserver's queue of 5 the
    kernel dropped those past it while the loop was busy (cycles failed on resets)."""
    from radicale.server import RequestHandler

    server = _Server(("127.0.0.1", 0), RequestHandler)  # listening, accepting nothing
    host, port = server.server_address[:2]
    burst = 64
    assert burst < ACCEPT_QUEUE
    opened: list[socket.socket] = []
    try:
        for _ in range(burst):
            # a dropped SYN would leave connect waiting: 3 s fails it (queue of 5: the 7th)
            opened.append(socket.create_connection((host, port), timeout=3))
        assert len(opened) == burst
    finally:
        for sock in opened:
            sock.close()
        server.server_close()
