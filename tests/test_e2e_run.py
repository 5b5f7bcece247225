"""End to end, as a user would: ``syncd run`` on its embedded calendar, driven by the CLI.

The daemon runs in a subprocess on a temporary data directory with the embedded Radicale
on a free loopback port. An activity added with the CLI must appear in the calendar; an
edit made as a calendar app makes it (a PUT with a changed SUMMARY and DTSTART) must come
back to the activity; SIGTERM must stop it cleanly.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import caldav
import pytest

from syncd_testkit.loopback import free_port

T = TypeVar("T")
USER = "alice@example.com"
NOTE = "private: budget 40k"  # never leaves the CRM: not in the event, not in the log


def wait_for(check: Callable[[], T | None], timeout: float = 45.0, what: str = "") -> T:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        time.sleep(0.3)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[dict[str, Any]]:
    port = free_port()
    config = tmp_path / "syncd.toml"
    config.write_text(f'[syncd]\ndata_dir = "{tmp_path / "data"}"\ninterval_seconds = 1\n'
                      f'jitter_seconds = 0\n[embedded]\nport = {port}\n')
    env = {k: v for k, v in os.environ.items() if not k.startswith("SYNCD_")}
    env["SYNCD_CONFIG"] = str(config)
    log = (tmp_path / "daemon.log").open("w+")
    process = subprocess.Popen([sys.executable, "-m", "syncd", "run"], env=env, stdout=log,
                               stderr=subprocess.STDOUT, text=True)
    try:
        wait_for(lambda: "calendar server on" in (tmp_path / "daemon.log").read_text(),
                 what="the daemon to start")
        yield {"process": process, "env": env, "port": port, "log": tmp_path / "daemon.log"}
    finally:
        if process.poll() is None:
            process.terminate()  # lets the daemon stop its embedded calendar server
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def cli(env: dict[str, str], *args: str) -> Any:
    done = subprocess.run([sys.executable, "-m", "syncd", "--json", *args], env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout) if done.stdout.strip() else None


def test_activity_appears_in_the_embedded_calendar_and_calendar_edits_come_back(
    daemon: dict[str, Any],
) -> None:
    env = daemon["env"]
    user = cli(env, "user", "add", USER, "--name", "Alice", "--time-zone", "Europe/Oslo")
    password = user["calendar_login"]["password"]  # shown once, by `syncd user add`
    added = cli(env, "activity", "add", "Call Ada", "--owner", USER, "--due", "2026-12-10",
                "--time", "10:00", "--duration", "30", "--note", NOTE)
    activity_id = added["id"] if isinstance(added, dict) else added[0]["id"]

    url = f"http://127.0.0.1:{daemon['port']}/{USER}/crm/"
    client = caldav.DAVClient(url=f"http://127.0.0.1:{daemon['port']}/", username=USER,
                              password=password)

    def the_event() -> Any:
        try:
            objects = client.calendar(url=url).get_objects_by_sync_token(load_objects=True)
        except Exception:
            return None
        return objects.objects[0] if objects.objects else None

    event = wait_for(the_event, what="the event in the embedded calendar")
    vevent = event.icalendar_component
    assert str(vevent["SUMMARY"]) == "Call Ada"
    assert b"budget 40k" not in event.data.encode()

    # Edit it as a calendar app would: a PUT with a changed SUMMARY and DTSTART/DTEND.
    vevent.pop("SUMMARY")
    vevent.add("SUMMARY", "Call Ada (moved)")
    start = vevent.decoded("DTSTART").replace(hour=15)
    vevent.pop("DTSTART")
    vevent.pop("DTEND")
    vevent.add("DTSTART", start)
    vevent.add("DTEND", start.replace(minute=45))
    event.save(increase_seqno=False)

    def moved() -> Any:
        shown = cli(env, "activity", "show", str(activity_id))
        return shown if shown["subject"] == "Call Ada (moved)" else None

    shown = wait_for(moved, what="the calendar edit to reach the activity")
    assert shown["due_time"].startswith("15:00") and shown["duration_minutes"] == 45

    daemon["process"].send_signal(signal.SIGTERM)
    assert daemon["process"].wait(timeout=30) == 0
    log = daemon["log"].read_text()
    # The note's own words: "budget" alone is in a migration's name the log shows.
    assert "budget 40k" not in log and "Traceback" not in log and password not in log
    # The fresh data directory, its database and the calendar files are the owner's alone.
    data = daemon["log"].parent / "data"
    assert any(p.suffix == ".ics" for p in data.rglob("*"))
    assert [p for p in [data, *data.rglob("*")] if p.stat().st_mode & 0o077] == []


def test_a_killed_daemon_leaves_no_calendar_server_behind(daemon: dict[str, Any]) -> None:
    import socket

    daemon["process"].kill()
    daemon["process"].wait()

    def port_closed() -> bool:
        with socket.socket() as sock:
            sock.settimeout(0.3)
            return sock.connect_ex(("127.0.0.1", daemon["port"])) != 0

    wait_for(port_closed, timeout=20, what="the embedded server to stop with the daemon")


def test_a_calendar_server_that_dies_stops_the_daemon_before_its_port_gets_a_password(
    daemon: dict[str, Any],
) -> None:
    # Once the embedded server is gone, any local program may listen on its port; a cycle
    # would then send it syncd's service password. The daemon stops instead (exit 1, a
    # sentence), so its supervisor restarts it and the start refuses a taken port.
    import socket
    import threading

    cli(daemon["env"], "user", "add", USER)
    pid = daemon["process"].pid
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    [child] = [int(c) for c in children
               if b"syncd.embedded_server" in Path(f"/proc/{c}/cmdline").read_bytes()]
    squatter = socket.socket()
    squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    heard: list[bytes] = []

    def listen() -> None:
        squatter.settimeout(20)
        try:
            while True:
                conn, _ = squatter.accept()
                with conn:
                    conn.settimeout(5)
                    heard.append(conn.recv(65536))
                    conn.sendall(b"HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Basic "
                                 b"realm=\"x\"\r\nContent-Length: 0\r\n\r\n")
        except OSError:
            return

    os.kill(child, signal.SIGKILL)
    wait_for(lambda: _bound(squatter, daemon["port"]), what="the port to be free")
    squatter.listen()
    thread = threading.Thread(target=listen)
    thread.start()
    try:
        assert daemon["process"].wait(timeout=90) == 1  # generous: a loaded machine
    finally:
        squatter.close()
        thread.join()
    assert not any(b"authorization:" in h.lower() for h in heard), heard
    assert "embedded calendar server stopped" in daemon["log"].read_text()


def _bound(sock: Any, port: int) -> bool:
    try:
        sock.bind(("127.0.0.1", port))
    except OSError:
        return False
    return True
