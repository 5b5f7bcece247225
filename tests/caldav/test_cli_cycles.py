"""A ``syncd sync`` from cron costs what a daemon cycle costs (issue 16 item 5).

Three idle calendars on a real Radicale that asks for a password, synced by separate CLI
runs (each a new process's worth of state: new service, new connectors, new sessions),
counted through a recording proxy.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from connectors.caldav import may_send_first
from syncd.cli import main
from syncd.config import AccountConfig, SecretRef
from syncd.store.db import Database
from syncd.store.discovery import DiscoveryStore
from syncd_testkit.dav_responder import MisbehavingDav
from syncd_testkit.loopback import QuietHandler
from syncd_testkit.servers import RadicaleServer, RecordingProxy

PASSWORD = "dav-pass-canary"  # a test server's
USERS = ("ann@example.com", "ben@example.com", "cid@example.com")
OTHER = "dan@example.com"  # whose calendar the tests below move and delete


class PasswordRadicale(RadicaleServer):
    """Radicale with htpasswd logins (plain text, a test's), so every request is checked."""

    kind = "radicale-auth"

    def command(self) -> list[str]:
        users = self.folder / "users"
        self.folder.mkdir(parents=True, exist_ok=True)
        users.write_text("".join(f"{u}:{PASSWORD}\n" for u in (*USERS, OTHER)))
        return [sys.executable, "-m", "radicale", "--server-hosts", f"127.0.0.1:{self.port}",
                "--storage-filesystem-folder", str(self.folder / "collections"),
                "--auth-type", "htpasswd", "--auth-htpasswd-filename", str(users),
                "--auth-htpasswd-encryption", "plain", "--logging-level", "warning"]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PasswordRadicale]:
    import caldav

    server = PasswordRadicale(tmp_path_factory.mktemp("radicale-auth")).start()
    for user in (*USERS, OTHER):
        client = caldav.DAVClient(url=server.url, username=user, password=PASSWORD)
        client.principal().make_calendar(name="crm", cal_id="crm")
    yield server
    server.stop()


@pytest.fixture
def proxy(server: PasswordRadicale) -> Iterator[RecordingProxy]:
    with RecordingProxy(server.port) as proxy:
        yield proxy


def write_config(folder: Path, url: str, *, by_url: bool = False) -> Path:
    """Three CalDAV accounts on ``url``; the calendar named (found by discovery) or, with
    ``by_url``, given as its URL."""
    blocks = []
    for n, user in enumerate(USERS):
        calendar = f"{url}{user}/crm/" if by_url else "crm"
        blocks.append(f'[[account]]\nname = "dav{n}"\nprovider = "caldav"\nowner = "{user}"\n'
                      f'calendar = "{calendar}"\n[account.auth]\nurl = "{url}"\n'
                      f'username = "{user}"\npassword = "env:SYNCD_TEST_DAV_PASSWORD"\n'
                      'allow_insecure_http = true\n')
    path = folder / "syncd.toml"
    path.write_text(f'[syncd]\ndata_dir = "{folder / "data"}"\n' + "".join(blocks))
    path.chmod(0o600)
    return path


def cron_runs(config: Path, proxy: RecordingProxy, runs: int) -> list[list[str]]:
    """The requests of each of ``runs`` idle ``syncd sync`` runs, after a first one."""
    for user in USERS:
        assert main(["--config", str(config), "user", "add", user]) == 0
    assert main(["--config", str(config), "sync"]) == 0
    counted = []
    for _ in range(runs):
        proxy.requests.clear()
        assert main(["--config", str(config), "sync"]) == 0
        counted.append([r.method for r in proxy.requests])
    return counted


@pytest.mark.parametrize("by_url", [False, True], ids=["named", "by-url"])
def test_idle_cron_runs_of_three_calendars_cost_one_request_each(
        tmp_path: Path, proxy: RecordingProxy, by_url: bool,
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("SYNCD_TEST_DAV_PASSWORD", PASSWORD)
    config = write_config(tmp_path, proxy.url, by_url=by_url)
    for requests in cron_runs(config, proxy, runs=2):
        print(requests, file=sys.stderr)
        assert requests == ["REPORT"] * 3  # one sync-collection per calendar, nothing else
    assert PASSWORD not in capsys.readouterr().out


def one_account(folder: Path, url: str, user: str = OTHER, calendar: str = "crm") -> Path:
    path = folder / "one.toml"
    path.write_text(f'[syncd]\ndata_dir = "{folder / "data"}"\n[[account]]\nname = "dav"\n'
                    f'provider = "caldav"\nowner = "{user}"\ncalendar = "{calendar}"\n'
                    f'[account.auth]\nurl = "{url}"\nusername = "{user}"\n'
                    'password = "env:SYNCD_TEST_DAV_PASSWORD"\nallow_insecure_http = true\n')
    path.chmod(0o600)
    assert main(["--config", str(path), "user", "add", user]) in (0, 2)  # 2: already there
    return path


def kept_row(folder: Path) -> dict[str, str] | None:
    """What is kept for the account "dav", whatever its identity."""
    from syncd.store.state_tables import CalendarDiscovery

    with Database(f"sqlite:///{folder / 'data' / 'syncd.db'}").session() as s:
        row = s.get(CalendarDiscovery, "dav")
        return None if row is None else dict(row.found)


def test_the_first_run_sends_the_password_unasked_to_a_loopback_server(
        tmp_path: Path, proxy: RecordingProxy, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SYNCD_TEST_DAV_PASSWORD", PASSWORD)
    config = one_account(tmp_path, proxy.url)
    proxy.requests.clear()
    assert main(["--config", str(config), "sync"]) == 0
    assert proxy.requests and all("Authorization: Basic" in r.headers for r in proxy.requests)
    # principal, home set, calendars, then the first full listing: no 401 round trip
    assert [r.method for r in proxy.requests][:4] == ["PROPFIND"] * 3 + ["REPORT"]


def test_credentials_go_unasked_only_over_tls_or_to_loopback() -> None:
    assert may_send_first("https://dav.example.com/")
    assert may_send_first("http://127.0.0.1:5232/") and may_send_first("http://[::1]:80/")
    assert may_send_first("http://localhost:5232/")
    assert not may_send_first("http://dav.example.com/")
    assert not may_send_first("http://127.0.0.1.example.com/")
    assert not may_send_first("http://localhost.evil.example/")
    assert not may_send_first("ftp://127.0.0.1/")


def test_a_calendar_gone_from_its_kept_url_is_found_again_and_kept_anew(
        tmp_path: Path, server: PasswordRadicale, proxy: RecordingProxy,
        monkeypatch: pytest.MonkeyPatch) -> None:
    import caldav

    monkeypatch.setenv("SYNCD_TEST_DAV_PASSWORD", PASSWORD)
    config = one_account(tmp_path, proxy.url, calendar="moving")
    client = caldav.DAVClient(url=server.url, username=OTHER, password=PASSWORD)
    old = client.principal().make_calendar(name="moving", cal_id="moving-1")
    assert main(["--config", str(config), "sync"]) == 0
    assert kept_row(tmp_path) == {"calendar": f"{proxy.url}{OTHER}/moving-1/",
                                  "home": f"{proxy.url}{OTHER}/", "auth": "basic",
                                  "principal": f"{proxy.url}{OTHER.replace('@', '%40')}/"}
    old.delete()
    client.principal().make_calendar(name="moving", cal_id="moving-2")
    proxy.requests.clear()
    assert main(["--config", str(config), "sync"]) == 0
    methods = [r.method for r in proxy.requests]
    # the kept URL's 404, one listing of the kept calendar home, the new calendar's listing
    assert methods[:3] == ["REPORT", "PROPFIND", "REPORT"]
    assert not any(r.method == "PROPFIND" and r.path.rstrip("/") == "" for r in proxy.requests)
    proxy.requests.clear()
    assert main(["--config", str(config), "sync"]) == 0
    assert [(r.method, r.path) for r in proxy.requests] == [("REPORT", f"/{OTHER}/moving-2/")]
    assert (kept_row(tmp_path) or {})["calendar"] == f"{proxy.url}{OTHER}/moving-2/"


def test_a_kept_url_on_another_origin_is_never_followed(
        tmp_path: Path, proxy: RecordingProxy, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SYNCD_TEST_DAV_PASSWORD", PASSWORD)
    config = one_account(tmp_path, proxy.url)
    assert main(["--config", str(config), "sync"]) == 0
    with RecordingProxy(proxy.upstream_port) as elsewhere:  # another origin, same server
        db = Database(f"sqlite:///{tmp_path / 'data' / 'syncd.db'}")
        from syncd.store.state_tables import CalendarDiscovery

        with db.session() as s:
            row = s.get(CalendarDiscovery, "dav")
            assert row is not None
            row.found = {**row.found, "calendar": f"{elsewhere.url}{OTHER}/crm/",
                         "home": f"{elsewhere.url}{OTHER}/"}
        proxy.requests.clear()
        assert main(["--config", str(config), "sync"]) == 0
        assert elsewhere.requests == []
    assert [r.method for r in proxy.requests][-1] == "REPORT"


def test_a_changed_user_name_or_url_finds_the_calendar_again(
        tmp_path: Path, proxy: RecordingProxy, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SYNCD_TEST_DAV_PASSWORD", PASSWORD)
    config = one_account(tmp_path, proxy.url)
    assert main(["--config", str(config), "sync"]) == 0
    config.write_text(config.read_text().replace(proxy.url, proxy.url.replace(
        "127.0.0.1", "localhost")))
    proxy.requests.clear()
    assert main(["--config", str(config), "sync"]) == 0
    assert [r.method for r in proxy.requests][:3] == ["PROPFIND"] * 3  # discovery again


@pytest.mark.parametrize("found", [
    ["not", "a", "mapping"], {"calendar": 5}, {"calendar": "x" * 5000},
    {f"k{i}": "v" for i in range(50)}, "text", None,
])
def test_kept_discovery_reads_back_only_small_mappings_of_strings(
        tmp_path: Path, found: object) -> None:
    from syncd.store.state_tables import CalendarDiscovery

    db = Database(f"sqlite:///{tmp_path / 'state.db'}")
    memo = DiscoveryStore(db).for_account("dav", "identity")
    memo.keep({"calendar": "https://dav.example.com/a/crm/"})
    assert memo.recall() == {"calendar": "https://dav.example.com/a/crm/"}
    assert DiscoveryStore(db).for_account("dav", "another identity").recall() is None
    with db.session() as s:
        row = s.get(CalendarDiscovery, "dav")
        assert row is not None
        row.found = found  # type: ignore[assignment]
    assert memo.recall() is None
    memo.keep(found)  # type: ignore[arg-type]
    assert memo.recall() is None
    memo.forget()
    assert memo.recall() is None


def test_a_refused_login_forgets_what_was_kept(
        tmp_path: Path, proxy: RecordingProxy, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SYNCD_TEST_DAV_PASSWORD", PASSWORD)
    config = one_account(tmp_path, proxy.url)
    assert main(["--config", str(config), "sync"]) == 0
    assert kept_row(tmp_path) is not None
    monkeypatch.setenv("SYNCD_TEST_DAV_PASSWORD", "not-the-password")
    assert main(["--config", str(config), "sync"]) != 0
    assert kept_row(tmp_path) is None


@pytest.mark.parametrize("url", ["ftp://127.0.0.1/x/", "not a url", "http:///x/",
                                 "http://127.0.0.1:99999/x/", "https://127.0.0.1/x/"])
def test_kept_urls_of_another_scheme_host_or_port_or_none_at_all_are_ignored(url: str) -> None:
    from connectors.caldav import CalDAVCalendar

    class Kept:
        def recall(self) -> dict[str, str]:
            return {"calendar": url, "home": url, "principal": url, "auth": "basic"}

    account = AccountConfig(name="dav", provider="caldav", owner=OTHER, calendar="crm",
                            auth={"url": "http://127.0.0.1:5232/", "username": OTHER})
    connector = CalDAVCalendar(account, owner_tz="UTC", discovery=Kept())  # type: ignore[arg-type]
    assert connector._recall() == {"auth": "basic"}


class DigestOnly(MisbehavingDav):
    """A responder that takes Digest credentials only (it does not check them: the test is
    about which scheme is sent, and when)."""

    def __init__(self) -> None:
        super().__init__()
        self.authorizations: list[str] = []

    def handler(self) -> type[QuietHandler]:
        responder = self
        base = super().handler()

        class Handler(base):  # type: ignore[valid-type,misc]
            def _digest(self) -> bool:
                said = self.headers.get("Authorization") or ""
                responder.authorizations.append(said.split(" ", 1)[0] or "none")
                if said.startswith("Digest "):
                    return True
                self.read_body()
                self.reply(401, b"", {"WWW-Authenticate":
                                      'Digest realm="dav", nonce="n0nce", qop="auth"'})
                return False

            def do_PROPFIND(self) -> None:
                if self._digest():
                    super().do_PROPFIND()

            def do_REPORT(self) -> None:
                if self._digest():
                    super().do_REPORT()

        return Handler


def test_a_server_that_takes_only_digest_gets_basic_once_then_never_again(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from connectors.caldav import CalDAVCalendar

    class Memo:
        found: dict[str, str] | None = None

        def recall(self) -> dict[str, str] | None:
            return self.found

        def keep(self, found: dict[str, str]) -> None:
            self.found = dict(found)

        def forget(self) -> None:
            self.found = None

    monkeypatch.setenv("SYNCD_TEST_DAV_PASSWORD", PASSWORD)
    memo = Memo()
    with DigestOnly() as server:
        account = AccountConfig(
            name="d", provider="caldav", owner=OTHER, calendar=server.url,
            auth={"url": f"{server.origin}/", "username": OTHER,
                  "password": SecretRef("env:SYNCD_TEST_DAV_PASSWORD")})
        first = CalDAVCalendar(account, owner_tz="UTC", discovery=memo)  # type: ignore[arg-type]
        first.changes(None)
        first.close()
        assert server.authorizations[0] == "Basic" and "Digest" in server.authorizations
        assert (memo.found or {})["auth"] == "digest"
        server.authorizations.clear()
        second = CalDAVCalendar(account, owner_tz="UTC", discovery=memo)  # type: ignore[arg-type]
        second.changes(None)
        second.close()
        # the kept calendar, and never Basic again: only the challenges Digest needs
        assert "Basic" not in server.authorizations and server.authorizations[-1] == "Digest"
        assert [m for m, _ in server.requests] == ["PROPFIND", "REPORT", "REPORT"]
