"""Team blocks: one [[team]] serves many CRM users, each with their own calendar and
secret, checked like an [[account]] block and refusing what would cross between members."""

from __future__ import annotations

from pathlib import Path

import pytest

from connectors import provider_options
from syncd.config import Config, SecretRef, load_config, parse_config
from syncd.errors import ConfigError
from syncd.team import TeamConfig, fill, plain_local_part, team_accounts

PROVIDERS = provider_options()

CALDAV_TEAM = '''
[[team]]
name = "sales"
owners = "*"
provider = "caldav"
calendar = "https://dav.example.com/{user}/crm/"
conflict_policy = "calendar_wins"
[team.auth]
url = "https://dav.example.com/"
username = "{email}"
password = "env:CALDAV_PASSWORD_{USER}"
'''


def parse(text: str) -> Config:
    import tomllib
    return parse_config(tomllib.loads(text), "syncd.toml", PROVIDERS)


def problems(text: str) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse(text)
    return [f"{p.key}: {p.problem}" for p in info.value.problems]


def team(text: str = CALDAV_TEAM) -> TeamConfig:
    (only,) = parse(text).teams
    return only


def test_a_member_gets_the_blocks_options_with_their_own_calendar_and_secret() -> None:
    (alice,), refused = team_accounts([team()], ["Alice.Smith@Example.com"])
    assert not refused
    assert alice.name == "sales:alice.smith@example.com"
    assert alice.owner == "alice.smith@example.com"
    assert alice.calendar == "https://dav.example.com/alice.smith/crm/"
    assert alice.auth["username"] == "alice.smith@example.com"
    assert alice.auth["password"] == SecretRef("env:CALDAV_PASSWORD_ALICE_SMITH")
    assert alice.conflict_policy == "calendar_wins" and alice.provider == "caldav"


@pytest.mark.parametrize(("owners", "served"), [
    ('"*"', ["a@x.com", "b@y.com", "c@x.com"]),
    ('["b@y.com"]', ["b@y.com"]),
    ('["@x.com"]', ["a@x.com", "c@x.com"]),
    ('["@X.com", "B@y.com"]', ["a@x.com", "b@y.com", "c@x.com"]),
])
def test_owners_names_everyone_a_list_or_domains(owners: str, served: list[str]) -> None:
    block = CALDAV_TEAM.replace('owners = "*"', f"owners = {owners}")
    accounts, _ = team_accounts([team(block)], ["c@x.com", "a@x.com", "b@y.com"])
    assert [a.owner for a in accounts] == served


def test_a_user_with_an_account_block_of_that_provider_is_served_by_that_block() -> None:
    accounts, _ = team_accounts([team()], ["a@x.com", "b@x.com"], taken=[("A@x.com", "caldav")])
    assert [a.owner for a in accounts] == ["b@x.com"]
    accounts, _ = team_accounts([team()], ["a@x.com"], taken=[("a@x.com", "google")])
    assert [a.owner for a in accounts] == ["a@x.com"]


@pytest.mark.parametrize("email", [
    "../../etc/passwd@x.com", "a/b@x.com", '"quoted"@x.com', "a..b@x.com", ".a@x.com",
    "a%2f@x.com", "a?b@x.com", "a#b@x.com", "a b@x.com", "a{user}@x.com", "nobody",
])
def test_a_local_part_that_could_leave_its_calendar_or_secret_is_refused(email: str) -> None:
    assert plain_local_part(email) is None
    accounts, refused = team_accounts([team()], [email, "ok@x.com"])
    assert [a.owner for a in accounts] == ["ok@x.com"]
    assert list(refused) == ([email.strip().lower()] if "@" in email else [email])


def test_placeholders_are_filled_once_and_never_from_the_address_itself() -> None:
    # A filled value is not filled again: an address cannot smuggle a placeholder in.
    assert fill("{user}/{email}/{USER}", "o-k+tag@x.com") == "o-k+tag/o-k+tag@x.com/O_K_TAG"
    assert fill("{other}", "a@x.com") == "{other}"


def test_a_block_is_checked_like_an_account_block_for_sample_members() -> None:
    found = problems(CALDAV_TEAM.replace('password = "env:CALDAV_PASSWORD_{USER}"',
                                         'password = "hunter2"')
                     .replace('conflict_policy = "calendar_wins"', 'conflict_policy = "loudest"'))
    assert found == ["team[0] (sales).conflict_policy: has the value 'loudest'",
                     "team[0] (sales).auth.password: holds a secret inline"]
    plain = problems(CALDAV_TEAM.replace('url = "https://', 'url = "http://'))
    assert len(plain) == 1 and plain[0].startswith("team[0] (sales).auth.url: ")


def test_a_calendar_without_a_placeholder_would_put_every_member_in_one_calendar() -> None:
    found = problems(CALDAV_TEAM.replace("{user}/crm/", "shared/crm/"))
    assert found == ["team[0] (sales).calendar: names one calendar for every member"]


def test_unknown_placeholders_owners_and_names_are_named_with_the_fix() -> None:
    found = problems(CALDAV_TEAM.replace("{user}/crm/", "{login}/crm/")
                     .replace('owners = "*"', 'owners = ["not-an-email", 3]')
                     .replace('name = "sales"', 'name = "Sales Team"'))
    joined = "\n".join(found)
    assert "calendar: has the placeholder {login}" in joined
    assert "owners: holds 'not-an-email'" in joined and "owners: holds 3" in joined
    assert "name: is not a team name" in joined
    assert problems(CALDAV_TEAM.replace('owners = "*"\n', "")) == [
        "team[0] (sales).owners: is missing"]


def test_a_team_name_may_not_prefix_an_account_name() -> None:
    text = CALDAV_TEAM + '''
[[account]]
name = "sales:bob@example.com"
provider = "caldav"
owner = "bob@example.com"
calendar = "https://dav.example.com/bob/other/"
[account.auth]
url = "https://dav.example.com/"
username = "bob"
'''
    assert problems(text) == [
        "team (sales).name: is the prefix of the account name 'sales:bob@example.com'"]


def test_a_team_means_accounts_are_configured_so_no_embedded_server(tmp_path: Path) -> None:
    config = parse(CALDAV_TEAM)
    assert config.accounts == () and config.serves_accounts
    path = tmp_path / "syncd.toml"
    path.write_text(CALDAV_TEAM)
    assert load_config(path, PROVIDERS).teams[0].owners == ("*",)


def test_google_and_outlook_teams_pick_the_mailbox_by_placeholder() -> None:
    google = parse('''
[[team]]
name = "g"
owners = ["@example.com"]
provider = "google"
calendar = "primary"
[team.auth]
service_account_file = "file:/etc/syncd/sa.json"
subject = "{email}"
''').teams[0]
    (a, b), _ = team_accounts([google], ["a@example.com", "b@example.com"])
    assert (a.auth["subject"], b.auth["subject"]) == ("a@example.com", "b@example.com")
    outlook = parse('''
[[team]]
name = "o"
owners = "*"
provider = "outlook"
[team.auth]
mode = "app"
tenant = "contoso.onmicrosoft.com"
client_id = "00000000-0000-0000-0000-000000000000"
client_secret = "env:GRAPH_SECRET"
user = "{email}"
''').teams[0]
    (c,), _ = team_accounts([outlook], ["c@contoso.com"])
    assert c.auth["user"] == "c@contoso.com"
    assert c.auth["client_secret"] == SecretRef("env:GRAPH_SECRET")
