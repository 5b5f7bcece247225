"""``[http]``: what ``syncd config check`` refuses, each with file, key and fix, all at once."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from syncd.cli import main
from syncd.config import HttpConfig, parse_config
from syncd.config_checks import parse_listen

# (case id, [http] table, key, words of the problem, words of the fix)
CASES: list[tuple[str, str, str, str, str]] = [
    ("listen on every address without TLS", 'listen = "0.0.0.0:8765"', "http.listen",
     "beyond this machine without TLS", "TLS reverse proxy"),
    ("listen on a LAN address without TLS", 'listen = "192.168.1.20:8765"', "http.listen",
     "beyond this machine without TLS", "certificate and private_key"),
    ("listen by host name", 'listen = "syncd.example.com:8765"', "http.listen",
     "is not host:port with an address", "127.0.0.1:8765"),
    ("listen without a port", 'listen = "127.0.0.1"', "http.listen", "is not host:port",
     "127.0.0.1:8765"),
    ("listen on port 0", 'listen = "127.0.0.1:0"', "http.listen", "is not host:port",
     "127.0.0.1:8765"),
    ("IPv6 without brackets", 'listen = "::1:8765"', "http.listen", "is not host:port",
     "[::1]:8765"),
    ("plain http public URL", 'listen = "127.0.0.1:8765"\npublic_url = "http://syncd.example.com"',
     "http.public_url", "is plain http://", "https:// address of your TLS reverse proxy"),
    ("plain http public URL even when allowed, off loopback",
     'listen = "127.0.0.1:8765"\npublic_url = "http://syncd.example.com"\n'
     'allow_insecure_http = true', "http.public_url", "is plain http://", "loopback"),
    ("public URL with a password in it",
     'listen = "127.0.0.1:8765"\npublic_url = "https://u:pw@syncd.example.com"',
     "http.public_url", "carries a user name or password", "the URL without them"),
    ("certificate without its key", 'listen = "0.0.0.0:8443"\ncertificate = "{dir}/cert.pem"',
     "http.certificate", "is set without private_key", "both, or neither"),
    ("private key others may read",
     'listen = "0.0.0.0:8443"\ncertificate = "{dir}/cert.pem"\nprivate_key = "{dir}/open.pem"',
     "http.private_key", "other users may open (mode 0644)", "chmod 600"),
    ("body cap of zero", 'listen = "127.0.0.1:8765"\nmax_body_bytes = 0', "http.max_body_bytes",
     "must be greater than zero", "largest request body"),
    ("unknown option", 'listen = "127.0.0.1:8765"\nport = 8765', "http.port",
     "is not a known option", "listen"),
]


@pytest.fixture
def pems(tmp_path: Path) -> Path:
    folder = tmp_path / "pems"
    folder.mkdir()
    for name, mode in (("cert.pem", 0o644), ("key.pem", 0o600), ("open.pem", 0o644)):
        (folder / name).write_text("-----BEGIN X-----\n")
        os.chmod(folder / name, mode)
    return folder


@pytest.mark.parametrize(("case", "table", "key", "problem", "fix"), CASES,
                         ids=[c[0] for c in CASES])
def test_config_check_refuses_each_unsafe_http_setting_with_key_and_fix(
        case: str, table: str, key: str, problem: str, fix: str, tmp_path: Path, pems: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "syncd.toml"
    path.write_text("[http]\n" + table.replace("{dir}", str(pems)) + "\n")
    assert main(["--config", str(path), "--data-dir", str(tmp_path), "config", "check"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and "pw@" not in err
    [line] = [line for line in err.splitlines() if f"{path}: {key} " in line]
    assert problem in line, line
    assert fix in line.split("; expected ", 1)[1], line


def test_every_http_problem_is_reported_at_once(tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "syncd.toml"
    path.write_text('[http]\nlisten = "0.0.0.0:8765"\npublic_url = "http://example.com"\n'
                    "max_body_bytes = -1\n")
    assert main(["--config", str(path), "--data-dir", str(tmp_path), "config", "check"]) == 2
    err = capsys.readouterr().err
    for key in ("http.listen", "http.public_url", "http.max_body_bytes"):
        assert f": {key} " in err, (key, err)


def test_the_listener_is_off_unless_listen_is_set() -> None:
    assert parse_config({}, "t.toml", {}).http == HttpConfig()
    assert HttpConfig().listen is None


def test_loopback_listens_as_it_is_and_any_address_with_tls(tmp_path: Path, pems: Path) -> None:
    for listen in ("127.0.0.1:8765", "[::1]:8765", "localhost:8765", "127.0.0.5:1"):
        assert parse_config({"http": {"listen": listen}}, "t.toml", {}).http.listen == listen
    tls = {"listen": "0.0.0.0:8443", "certificate": str(pems / "cert.pem"),
           "private_key": str(pems / "key.pem"), "public_url": "https://syncd.example.com/"}
    http = parse_config({"http": tls}, "t.toml", {}, resolve=True).http
    assert http.hook_url("pipedrive") == "https://syncd.example.com/hooks/pipedrive"
    test = {"listen": "127.0.0.1:8765", "public_url": "http://127.0.0.1:8765",
            "allow_insecure_http": True}
    assert parse_config({"http": test}, "t.toml", {}).http.public_url == test["public_url"]


def test_listen_addresses_are_parsed_with_brackets_for_ipv6() -> None:
    assert parse_listen("[::1]:8765") == ("::1", 8765)
    assert parse_listen("127.0.0.1:65535") == ("127.0.0.1", 65535)
    assert parse_listen("127.0.0.1:65536") is None
    assert parse_listen("[::1]") is None
