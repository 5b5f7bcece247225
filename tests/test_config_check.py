"""``syncd config check`` catches what the runtime would refuse, every problem at once.

Each bad config goes through the command line: exit code 2, no traceback, and one line
naming the file, the key, the problem and the fix. The secret value never appears, even
when it was written where it must not be (inline, or inside a URL).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from syncd.cli import main

ROOT = Path(__file__).resolve().parents[1]
SECRET = "s3cret-Canary-91f2"
PW = "env:SYNCD_CHECK_PW"


def dav(auth: str = f'url = "https://dav.example.com/"\nusername = "a"\npassword = "{PW}"',
        *, name: str = "a", calendar: str | None = None) -> str:
    line = f'calendar = "{calendar}"\n' if calendar else ""
    return (f'[[account]]\nname = "{name}"\nprovider = "caldav"\nowner = "{name}@example.com"\n'
            f'{line}[account.auth]\n{auth}\n')


def google(auth: str, *, name: str = "g", owner: str = "g@example.com",
           calendar: str | None = None) -> str:
    line = f'calendar = "{calendar}"\n' if calendar else ""
    return (f'[[account]]\nname = "{name}"\nprovider = "google"\nowner = "{owner}"\n'
            f'{line}[account.auth]\n{auth}\n')


def outlook(auth: str = "") -> str:
    return ('[[account]]\nname = "o"\nprovider = "outlook"\nowner = "o@example.com"\n'
            '[account.auth]\ntenant = "contoso.onmicrosoft.com"\nclient_id = "abc"\n'
            f'client_secret = "{PW}"\n{auth}\n')


# (case id, config, key, words of the problem, words of the fix). "{dir}" is a folder
# holding secret files: ok (0600), open (0644), group (0640), empty, notjson, key.json.
CASES: list[tuple[str, str, str, str, str]] = [
    ("env secret not set", dav('url = "https://d.example.com/"\nusername = "a"\n'
                               'password = "env:SYNCD_CHECK_UNSET"'),
     "account[0] (a).auth.password", "SYNCD_CHECK_UNSET, which is not set",
     "set in syncd's environment"),
    ("secret file missing", dav('url = "https://d.example.com/"\nusername = "a"\n'
                                'password = "file:{dir}/missing"'),
     "account[0] (a).auth.password", "cannot be read (No such file", "an existing file"),
    ("secret file readable by all", dav('url = "https://d.example.com/"\nusername = "a"\n'
                                        'password = "file:{dir}/open"'),
     "account[0] (a).auth.password", "other users may open (mode 0644)", "chmod 600"),
    ("secret file readable by group", dav('url = "https://d.example.com/"\nusername = "a"\n'
                                          'password = "file:{dir}/group"'),
     "account[0] (a).auth.password", "other users may open (mode 0640)", "chmod 600"),
    ("secret file empty", dav('url = "https://d.example.com/"\nusername = "a"\n'
                              'password = "file:{dir}/empty"'),
     "account[0] (a).auth.password", "which is empty", "the secret in that file"),
    ("secret inline", dav(f'url = "https://d.example.com/"\nusername = "a"\n'
                          f'password = "{SECRET}"'),
     "account[0] (a).auth.password", "holds a secret inline", "env:NAME or file:PATH"),
    ("password inside the URL", dav(f'url = "https://a:{SECRET}@d.example.com/"'),
     "account[0] (a).auth.url", "user:password@", "`password` as env:NAME"),
    ("space in a URL", dav(f'url = "https://dav example.com/"\nusername = "a"\n'
                           f'password = "{PW}"'),
     "account[0] (a).auth.url", "contains a space", "without spaces"),
    ("URL port 99999", dav(f'url = "https://d.example.com:99999/"\nusername = "a"\n'
                           f'password = "{PW}"'),
     "account[0] (a).auth.url", "port that is not a number within 1-65535", "https://host:"),
    ("URL port not a number", dav('url = "https://d.example.com:http/"'),
     "account[0] (a).auth.url", "port that is not a number", "https://host:"),
    ("URL scheme", dav('url = "ftp://d.example.com/"'),
     "account[0] (a).auth.url", "must start with http:// or https://", "https:// URL"),
    ("URL without a host", dav('url = "https:///dav/"'),
     "account[0] (a).auth.url", "has no host name", "https://host/path"),
    ("embedded port 70000", '[embedded]\nport = 70000\n',
     "embedded.port", "is not a port number (1-65535)", "within 1-65535"),
    ("embedded port 0", '[embedded]\nport = 0\n',
     "embedded.port", "is not a port number", "within 1-65535"),
    ("embedded on every interface", '[embedded]\nhost = "0.0.0.0"\n',
     "embedded.host", "is not a loopback address", "127.0.0.1 or ::1"),
    ("embedded on a LAN address", '[embedded]\nhost = "192.168.1.10"\n',
     "embedded.host", "is not a loopback address", "reverse proxy"),
    # The daemon accepts only a loopback address written out or "localhost": a name is
    # resolved by whatever DNS says, and brackets are URL syntax, not an address to bind.
    ("embedded on a name under .localhost", '[embedded]\nhost = "dav.localhost"\n',
     "embedded.host", "is not a loopback address", "127.0.0.1 or ::1"),
    ("embedded on a bracketed IPv6 address", '[embedded]\nhost = "[::1]"\n',
     "embedded.host", "is not a loopback address", "127.0.0.1 or ::1"),
    ("basic auth over http", dav(f'url = "http://dav.example.com/"\nusername = "a"\n'
                                 f'password = "{PW}"'),
     "account[0] (a).auth.url", "password or token over plain http://",
     "allow_insecure_http = true"),
    ("insecure flag to a remote host",
     dav(f'url = "http://dav.example.com/"\nusername = "a"\npassword = "{PW}"\n'
         'allow_insecure_http = true'),
     "account[0] (a).auth.url", "to a host that is not loopback", "https:// URL"),
    # A name under .localhost is loopback only where the resolver says so; elsewhere the
    # query goes to DNS, whose answer (an ISP's page for unknown names) gets the password.
    ("insecure flag to a name under .localhost",
     dav(f'url = "http://dav.localhost:5232/"\nusername = "a"\npassword = "{PW}"\n'
         'allow_insecure_http = true'),
     "account[0] (a).auth.url", "to a host that is not loopback", "https:// URL"),
    ("loopback http needs the flag", dav(f'url = "http://127.0.0.1:5232/"\nusername = "a"\n'
                                         f'password = "{PW}"'),
     "account[0] (a).auth.url", "over plain http://", "loopback test server only"),
    ("calendar URL over http", dav(calendar="http://dav.example.com/a/crm/"),
     "account[0] (a).calendar", "over plain http://", "https:// URL"),
    ("outlook authority over http",
     outlook('authority = "http://127.0.0.1:9/tenant"\nallow_insecure_http = true'),
     "account[0] (o).auth.authority", "only accepted over https", "https:// URL"),
    ("outlook graph over http", outlook('graph_url = "http://graph.example.com/v1.0"'),
     "account[0] (o).auth.graph_url", "over plain http://", "https:// URL"),
    ("outlook app without its secret",
     '[[account]]\nname = "o"\nprovider = "outlook"\nowner = "o@example.com"\n'
     '[account.auth]\ntenant = "t"\nclient_id = "abc"\n',
     "account[0] (o).auth.client_secret", "is missing", "client_secret = \"env:NAME\""),
    ("outlook delegated without a state key", outlook('mode = "delegated"'),
     "account[0] (o).auth.mode", "state_key is not set", "state_key = \"env:NAME\""),
    ("google endpoint over http",
     google('service_account_file = "file:{dir}/key.json"\n'
            'api_endpoint = "http://calendar.example.com/calendar/v3/"'),
     "account[0] (g).auth.api_endpoint", "over plain http://", "https:// URL"),
    ("google token endpoint over http",
     '[syncd]\nstate_key = "env:SYNCD_CHECK_FERNET"\n' + google(
         'mode = "oauth"\nclient_secrets_file = "file:{dir}/client.json"\n'
         'token_uri = "http://oauth.example.com/token"'),
     "account[0] (g).auth.token_uri", "over plain http://", "https:// URL"),
    ("google service account key is not JSON",
     google('service_account_file = "file:{dir}/ok"'),
     "account[0] (g).auth.service_account_file", "names a secret that is not JSON",
     "file:PATH of the service account key JSON"),
    ("google project budget not above zero",
     google('service_account_file = "file:{dir}/key.json"\n'
            'project_requests_per_minute = 0'),
     "account[0] (g).auth.project_requests_per_minute", "must be greater than zero",
     "under the project's quota"),
    ("google without any credentials", google('subject = "g@example.com"'),
     "account[0] (g).auth.service_account_file", "is missing", "mode = \"oauth\""),
    ("google oauth without its client", '[syncd]\nstate_key = "env:SYNCD_CHECK_FERNET"\n'
     + google('mode = "oauth"'),
     "account[0] (g).auth.client_secrets_file", "is missing", "file:PATH"),
    ("two accounts on one calendar",
     dav(calendar="https://dav.example.com/a/crm/")
     + dav(name="b", calendar="https://dav.example.com/a/crm/"),
     "account[1] (b).calendar", "is the calendar account[0] (a) syncs too",
     "one account per calendar"),
    ("two accounts on one calendar written two ways",
     dav(calendar="https://dav.example.com/a%40example.com/crm/")
     + dav(name="b", calendar="https://DAV.example.com:443/a@example.com/crm"),
     "account[1] (b).calendar", "is the calendar account[0] (a) syncs too",
     "one account per calendar"),
    ("two google accounts on one primary calendar",
     google('service_account_file = "file:{dir}/key.json"')
     + google('service_account_file = "file:{dir}/key.json"', name="h",
              calendar="g@example.com"),
     "account[1] (h).calendar", "is the calendar account[0] (g) syncs too",
     "one account per calendar"),
    ("database password in the file",
     f'[syncd]\ndatabase = "postgresql+psycopg://syncd:{SECRET}@db.example.com/syncd"\n',
     "syncd.database", "holds a database password in the file", "database = \"env:NAME\""),
    ("database password in the URL's query",
     f'[syncd]\ndatabase = "postgresql+psycopg://syncd@db.example.com/syncd?password={SECRET}"\n',
     "syncd.database", "holds a database password in the file", "database = \"env:NAME\""),
    ("database reference not set", '[syncd]\ndatabase = "env:SYNCD_CHECK_UNSET"\n',
     "syncd.database", "SYNCD_CHECK_UNSET, which is not set", "syncd's environment"),
    ("database reference holds no URL", f'[syncd]\ndatabase = "{PW}"\n',
     "syncd.database", "names a value that is not a database URL", "an SQLAlchemy URL"),
    ("database not a URL", '[syncd]\ndatabase = "the big one"\n',
     "syncd.database", "is not a database URL", "postgresql+psycopg://"),
    ("verify hours negative", '[syncd]\nverify_hours = -24\n',
     "syncd.verify_hours", "is negative", "1 to 720, or 0 for none"),
    ("verify hours over a month", '[syncd]\nverify_hours = 8760\n',
     "syncd.verify_hours", "so a duplicate or an orphan could go unseen", "1 to 720"),
    ("verify hours not a number", '[syncd]\nverify_hours = "daily"\n',
     "syncd.verify_hours", "has the wrong type (str)", "a whole number"),
    ("state key not a Fernet key", f'[syncd]\nstate_key = "{PW}"\n',
     "syncd.state_key", "names a secret that is not a Fernet key", "a Fernet key"),
    ("state key list with an inline key",
     f'[syncd]\nstate_key = ["env:SYNCD_CHECK_FERNET", "{SECRET}"]\n',
     "syncd.state_key[1]", "holds a secret inline", "env:NAME"),
    ("state key list with a second key that is not one",
     f'[syncd]\nstate_key = ["env:SYNCD_CHECK_FERNET", "{PW}"]\n',
     "syncd.state_key[1]", "names a secret that is not a Fernet key", "the first encrypts"),
    ("daily deletion budget of no percent",
     dav('url = "https://d.example.com/"').replace(
         "[account.auth]", "max_daily_deletion_percent = 0\n[account.auth]"),
     "account[0] (a).max_daily_deletion_percent", "is not a percent from 1 to 100",
     "1 to 100"),
    ("state key list empty", '[syncd]\nstate_key = []\n',
     "syncd.state_key", "is an empty list", "a list of them"),
    ("state key list repeating a key",
     '[syncd]\nstate_key = ["env:SYNCD_CHECK_FERNET", "env:SYNCD_CHECK_FERNET"]\n',
     "syncd.state_key[1]", "repeats env:SYNCD_CHECK_FERNET", "each key once"),
    ("password without a user name", dav(f'url = "https://d.example.com/"\npassword = "{PW}"'),
     "account[0] (a).auth.password", "without a username", "username = "),
    ("an option of another provider", dav('url = "https://d.example.com/"\ntenant = "x"'),
     "account[0] (a).auth.tenant", "is not a known option", "create_calendar"),
    ("CA bundle missing", dav('url = "https://d.example.com/"\nca_bundle = "{dir}/none.pem"'),
     "account[0] (a).auth.ca_bundle", "is not a readable file", "a readable file"),
]


@pytest.fixture
def secrets_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Secret files in every state, and the environment the good references need."""
    folder = tmp_path / "secrets"
    folder.mkdir()
    files = {
        "ok": (SECRET, 0o600), "open": (SECRET, 0o644), "group": (SECRET, 0o640),
        "empty": ("", 0o600),
        "key.json": (json.dumps({"type": "service_account", "client_email": "s@x.iam",
                                 "private_key": SECRET}), 0o600),
        "client.json": (json.dumps({"installed": {"client_id": "c",
                                                  "client_secret": SECRET}}), 0o600),
    }
    for name, (text, mode) in files.items():
        (folder / name).write_text(text)
        os.chmod(folder / name, mode)
    monkeypatch.setenv("SYNCD_CHECK_PW", SECRET)
    monkeypatch.setenv("SYNCD_CHECK_FERNET", Fernet.generate_key().decode())
    monkeypatch.delenv("SYNCD_CHECK_UNSET", raising=False)
    return folder


@pytest.mark.parametrize(("case", "config", "key", "problem", "fix"), CASES,
                         ids=[c[0] for c in CASES])
def test_config_check_catches_each_bad_config_with_file_key_and_fix(
        case: str, config: str, key: str, problem: str, fix: str, tmp_path: Path,
        secrets_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "syncd.toml"
    path.write_text(config.replace("{dir}", str(secrets_dir)))
    assert main(["--config", str(path), "--data-dir", str(tmp_path), "config", "check"]) == 2
    out, err = capsys.readouterr()
    assert "Traceback" not in err and SECRET not in out + err
    lines = [line for line in err.splitlines() if f"{path}: {key} " in line]
    assert lines, err
    [line] = lines
    assert problem in line and "; expected " in line, line
    assert fix in line.split("; expected ", 1)[1], line


def test_there_are_at_least_25_bad_configs() -> None:
    assert len(CASES) >= 25 and len({c[0] for c in CASES}) == len(CASES)


def test_every_problem_of_a_file_is_reported_at_once(
        tmp_path: Path, secrets_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "syncd.toml"
    path.write_text('[embedded]\nport = 70000\nhost = "0.0.0.0"\n'
                    + dav('url = "http://dav.example.com/"\nusername = "a"\n'
                          f'password = "file:{secrets_dir}/open"')
                    + outlook('authority = "http://127.0.0.1/t"'))
    assert main(["--config", str(path), "--data-dir", str(tmp_path), "config", "check"]) == 2
    err = capsys.readouterr().err
    for key in ("embedded.port", "embedded.host", "account[0] (a).auth.url",
                "account[0] (a).auth.password", "account[1] (o).auth.authority"):
        assert f": {key} " in err, (key, err)
    assert "The configuration has 5 problem(s)" in err and SECRET not in err


def test_a_good_config_passes_with_loopback_http_only_when_allowed(
        tmp_path: Path, secrets_dir: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "syncd.toml"
    path.write_text(
        f'[syncd]\nstate_key = "file:{secrets_dir}/fernet"\ndatabase = "env:SYNCD_CHECK_DB"\n'
        + dav(f'url = "http://127.0.0.1:5232/"\nusername = "a"\n'
              f'password = "file:{secrets_dir}/ok"\nallow_insecure_http = true\n'
              'create_calendar = true')
        + dav(name="b", calendar="crm")
        + google(f'mode = "oauth"\nclient_secrets_file = "file:{secrets_dir}/client.json"\n'
                 'token_uri = "http://[::1]:8080/token"\nallow_insecure_http = true')
        + outlook('mode = "delegated"\ngraph_url = "http://localhost:8081/v1.0"\n'
                  'allow_insecure_http = true'))
    fernet = secrets_dir / "fernet"
    fernet.write_text(Fernet.generate_key().decode())
    fernet.chmod(0o600)
    monkeypatch.setenv("SYNCD_CHECK_DB", "postgresql+psycopg://syncd:pw@db.example.com/syncd")
    check = ["--config", str(path), "--data-dir", str(tmp_path), "config", "check"]
    assert main(check) == 0, capsys.readouterr().err
    assert "OK" in capsys.readouterr().out


def test_the_example_config_passes_once_its_secrets_exist(
        tmp_path: Path, secrets_dir: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    example = (ROOT / "config" / "syncd.example.toml").read_text()
    path = tmp_path / "syncd.toml"
    path.write_text(example.replace("/run/secrets/google-service-account.json",
                                    str(secrets_dir / "key.json")))
    base = ["--config", str(path), "--data-dir", str(tmp_path), "config", "check"]
    assert main(base) == 2  # the referenced environment is not there yet
    err = capsys.readouterr().err
    for variable in ("SYNCD_STATE_KEY", "ALICE_CALDAV_PASSWORD", "SYNCD_GRAPH_CLIENT_SECRET"):
        assert f"the environment variable {variable}, which is not set" in err
    monkeypatch.setenv("SYNCD_STATE_KEY", Fernet.generate_key().decode())
    monkeypatch.setenv("ALICE_CALDAV_PASSWORD", SECRET)
    monkeypatch.setenv("SYNCD_GRAPH_CLIENT_SECRET", SECRET)
    assert main(base) == 0, capsys.readouterr().err
    assert "OK" in capsys.readouterr().out


def test_the_database_url_can_come_from_the_environment(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    database = tmp_path / "elsewhere" / "crm.db"
    monkeypatch.setenv("SYNCD_CHECK_DB", f"sqlite:///{database}")
    path = tmp_path / "syncd.toml"
    path.write_text(f'[syncd]\ndata_dir = "{tmp_path}"\ndatabase = "env:SYNCD_CHECK_DB"\n')
    base = ["--config", str(path)]
    assert main([*base, "config", "check"]) == 0
    assert main([*base, "user", "add", "ann@example.com"]) == 0
    assert database.is_file() and not (tmp_path / "syncd.db").exists()
    monkeypatch.delenv("SYNCD_CHECK_DB")
    capsys.readouterr()
    assert main([*base, "user", "list"]) == 1  # the runtime cannot resolve it either
    err = capsys.readouterr().err
    assert "The secret env:SYNCD_CHECK_DB cannot be read" in err and "Traceback" not in err


def test_each_connector_declares_its_options_with_help_and_config_options_lists_them(
        capsys: pytest.CaptureFixture[str]) -> None:
    import subprocess
    import sys

    from connectors import provider_options

    declared = provider_options()
    assert set(declared) == {"caldav", "google", "outlook"}
    for provider, schema in declared.items():
        assert all(opt.help for opt in schema.options.values()), provider
        assert "allow_insecure_http" in schema.options, provider
    # Declarations are cheap: validating a config loads no client library.
    loaded = subprocess.run(
        [sys.executable, "-c", "import sys, connectors; connectors.provider_options(); "
         "print(' '.join(sorted({m.split('.')[0] for m in sys.modules})))"],
        cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    assert "connectors" in loaded
    assert not {"caldav", "googleapiclient", "msal", "requests", "sqlalchemy"} & set(loaded)
    assert main(["config", "options", "outlook"]) == 0
    out = capsys.readouterr().out
    assert "client_secret (env:NAME or file:PATH; optional): the app's client secret" in out
    assert "\n  url (" not in out and "\n  graph_url (" in out  # CalDAV's options are not Outlook's
    assert main(["--json", "config", "options"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert {r["provider"] for r in rows} == {"caldav", "google", "outlook"}


def test_files_the_runtime_would_find_open_to_others_are_named_with_their_chmod(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data, elsewhere = tmp_path / "data", tmp_path / "db"
    data.mkdir()
    elsewhere.mkdir()
    database = elsewhere / "syncd.db"
    database.write_text("")
    data.chmod(0o755)
    database.chmod(0o644)
    path = tmp_path / "syncd.toml"
    path.write_text(f'[syncd]\ndata_dir = "{data}"\ndatabase = "sqlite:///{database}"\n')
    assert main(["--config", str(path), "config", "check"]) == 2
    err = capsys.readouterr().err
    assert f"{path}: syncd.data_dir places {data} where other users can open it (mode 0755); " \
           f"expected chmod 700 {data}" in err
    assert f"{path}: syncd.database places {database} where other users can open it " \
           f"(mode 0644); expected chmod 600 {database}" in err
    data.chmod(0o700)
    database.chmod(0o600)
    assert main(["--config", str(path), "config", "check"]) == 0
