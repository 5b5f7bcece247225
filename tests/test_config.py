"""The configuration schema: the example loads, and every mistake is named precisely."""

from __future__ import annotations

from pathlib import Path

import pytest

from connectors import provider_options
from syncd.cli import main
from syncd.config import SecretRef, load_config, parse_config
from syncd.errors import ConfigError, SecretUnavailable

ROOT = Path(__file__).resolve().parents[1]
PROVIDERS = provider_options()


def problems(text: str, tmp_path: Path) -> list[str]:
    path = tmp_path / "syncd.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_config(path, PROVIDERS)
    return [f"{p.key}: {p.problem}" for p in info.value.problems]


def test_the_example_config_loads_completely() -> None:
    config = load_config(ROOT / "config" / "syncd.example.toml", PROVIDERS)
    assert [a.provider for a in config.accounts] == ["caldav", "google", "outlook"]
    alice = config.account("alice-nextcloud")
    assert alice.auth["password"] == SecretRef("env:ALICE_CALDAV_PASSWORD")
    assert config.account("carol-outlook").done_style == "prefix"


def test_no_config_means_the_embedded_default() -> None:
    config = load_config(None, PROVIDERS)
    assert config.accounts == () and config.embedded_port == 5232
    assert config.database_url.startswith("sqlite:///")


def test_unknown_keys_are_errors_that_name_the_key(tmp_path: Path) -> None:
    found = problems('[syncd]\nintervall_seconds = 5\n[[account]]\nname="a"\nprovider="caldav"\n'
                     'owner="a@example.com"\ncolour="red"\n[account.auth]\nurl="http://x/"\n',
                     tmp_path)
    assert "syncd.intervall_seconds: is not a known option" in found
    assert "account[0] (a).colour: is not a known option" in found


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    found = problems(
        '[syncd]\ninterval_seconds = "soon"\n'
        '[[account]]\nname = "a"\nprovider = "exchange"\nowner = "not-an-email"\n'
        '[[account]]\nname = "a"\nprovider = "caldav"\nowner = "b@example.com"\n'
        'conflict_policy = "loudest_wins"\n[account.auth]\npassword = "hunter22"\n',
        tmp_path)
    assert len(found) >= 6, found
    joined = "\n".join(found)
    for expected in ("interval_seconds: has the wrong type", "provider: has the value 'exchange'",
                     "owner: is not an e-mail address", "name: repeats the account name 'a'",
                     "conflict_policy: has the value 'loudest_wins'",
                     "auth.url: is missing", "auth.password: holds a secret inline"):
        assert expected in joined, (expected, found)


def test_broken_toml_names_the_file_and_the_place(tmp_path: Path) -> None:
    path = tmp_path / "broken.toml"
    path.write_text("[syncd\ninterval_seconds = 5\n")
    with pytest.raises(ConfigError) as info:
        load_config(path, PROVIDERS)
    [problem] = info.value.problems
    assert problem.file == str(path) and "line 1" in problem.problem


def test_config_check_exits_2_with_a_clear_message_and_no_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "bad.toml"
    path.write_text('[[account]]\nname = "x"\nprovider = "caldav"\nowner = "x@example.com"\n'
                    'secret = 1\n')
    assert main(["--config", str(path), "config", "check"]) == 2
    err = capsys.readouterr().err
    assert str(path) in err and "account[0] (x).secret is not a known option" in err
    assert "auth.url is missing" in err
    assert "Traceback" not in err


def test_secrets_resolve_from_env_or_file_and_never_show_in_repr(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SYNCD_TEST_SECRET", "s3cret-value")
    ref = SecretRef("env:SYNCD_TEST_SECRET")
    assert ref.resolve() == "s3cret-value" and "s3cret" not in repr(ref)
    secret_file = tmp_path / "pw"
    secret_file.write_text("from-file\n")
    assert SecretRef(f"file:{secret_file}").resolve() == "from-file"
    with pytest.raises(SecretUnavailable):
        SecretRef("env:SYNCD_NOT_SET_ANYWHERE").resolve()


def test_resolved_secrets_are_redacted_from_logs(monkeypatch: pytest.MonkeyPatch) -> None:
    from syncd.redact import redact

    monkeypatch.setenv("SYNCD_TEST_SECRET2", "very-secret-token-123")
    SecretRef("env:SYNCD_TEST_SECRET2").resolve()
    line = redact("calling with very-secret-token-123 and Authorization: Bearer abc.def")
    assert "very-secret-token-123" not in line and "abc.def" not in line


def test_parse_config_rejects_unknown_sections() -> None:
    with pytest.raises(ConfigError) as info:
        parse_config({"acount": []}, "x.toml", PROVIDERS)
    assert info.value.problems[0].key == "acount"


def test_the_crm_source_is_builtin_by_default_and_an_unknown_kind_is_refused() -> None:
    assert parse_config({}, "x.toml", PROVIDERS).crm_kind == "builtin"
    assert parse_config({"crm": {"kind": "builtin"}}, "x.toml", PROVIDERS).crm_kind == "builtin"
    with pytest.raises(ConfigError) as info:
        parse_config({"crm": {"kind": "salesforce"}}, "x.toml", PROVIDERS)
    assert info.value.problems[0].key == "crm.kind"


def test_crm_pipedrive_takes_its_declared_options_and_needs_credentials() -> None:
    from syncd.crm import source_options

    sources = source_options()
    config = parse_config({"crm": {"kind": "pipedrive", "company_domain": "acme",
                                   "api_token": "env:PD_TOKEN"}}, "x.toml", PROVIDERS,
                          crm_sources=sources)
    assert config.crm_kind == "pipedrive" and config.crm_options["company_domain"] == "acme"
    assert config.crm_options["api_token"] == SecretRef("env:PD_TOKEN")
    with pytest.raises(ConfigError) as info:
        parse_config({"crm": {"kind": "pipedrive", "company_domain": "acme",
                              "api_token": "inline-token", "oauth_client_id": "x",
                              "api_url": "http://pipedrive.example.com"}},
                     "x.toml", PROVIDERS, crm_sources=sources)
    keys = {p.key for p in info.value.problems}
    assert {"crm.api_token", "crm.api_url"} <= keys  # inline secret; a token over http
    with pytest.raises(ConfigError) as info:
        parse_config({"crm": {"kind": "pipedrive", "oauth_client_id": "x"}}, "x.toml",
                     PROVIDERS, crm_sources=sources)
    keys = {p.key for p in info.value.problems}
    assert {"crm.company_domain", "crm.oauth_client_secret"} <= keys
    with pytest.raises(ConfigError) as info:  # builtin has no such option
        parse_config({"crm": {"company_domain": "acme"}}, "x.toml", PROVIDERS,
                     crm_sources=sources)
    assert info.value.problems[0].key == "crm.company_domain"


def test_crm_pipedrive_may_use_http_to_a_loopback_test_server() -> None:
    from syncd.crm import source_options

    config = parse_config({"crm": {"kind": "pipedrive", "company_domain": "acme",
                                   "api_token": "file:/run/pd", "allow_insecure_http": True,
                                   "api_url": "http://127.0.0.1:8080"}},
                          "x.toml", PROVIDERS, crm_sources=source_options())
    assert config.crm_options["api_url"] == "http://127.0.0.1:8080"


def test_the_lease_lasts_ten_minutes_unless_set_and_between_a_minute_and_a_day(
        tmp_path: Path) -> None:
    assert parse_config({}, "x.toml", PROVIDERS).lease_seconds == 600
    assert parse_config({"syncd": {"lease_seconds": 90}}, "x.toml",
                        PROVIDERS).lease_seconds == 90
    found = problems("[syncd]\nlease_seconds = 5\n", tmp_path)
    assert found == ["syncd.lease_seconds: is shorter than 60 seconds, so a replica would "
                     "lose its accounts in the middle of a long read"]
    # Hostile: a number no lease can last (it would overflow a timedelta), or a string.
    found = problems("[syncd]\nlease_seconds = 9223372036854775807\n", tmp_path)
    assert found == ["syncd.lease_seconds: is longer than a day (86400 seconds), so a "
                     "killed replica's accounts would wait that long for another"]
    assert problems('[syncd]\nlease_seconds = "10 min"\n', tmp_path) == [
        "syncd.lease_seconds: has the wrong type (str)"]
