"""A [[team]] block's placeholders never let one CRM user reach another's calendar or
secret: the address's domain is as checked as its local part, and two members whose
placeholders fill in the same value (one calendar, one secret) are both left out.

User e-mails come from the CRM, and a remote CRM's (Pipedrive's ``/v1/users``) are
outside input: nothing here trusts their shape.
"""

from __future__ import annotations

import tomllib

import pytest

from connectors import provider_options
from syncd.config import parse_config
from syncd.team import TeamConfig, team_accounts

TEAM = '''
[[team]]
name = "sales"
owners = "*"
provider = "caldav"
calendar = "https://dav.example.com/calendars/{email}/crm/"
[team.auth]
url = "https://dav.example.com/"
username = "{email}"
password = "file:/run/secrets/caldav/{email}"
'''

#: Addresses whose local part is plain but whose domain is not a host name: in `{email}`
#: they would walk out of the member's calendar URL or secret file.
HOSTILE_DOMAINS = [
    "alice@x.com/../../bob@x.com", "alice@../../../etc/shadow", "alice@x.com/..",
    "alice@x.com%2f..%2fbob", "alice@x.com?calendar=bob", "alice@x.com#frag",
    "alice@x.com\\..\\bob", "alice@x.com}{user", "alice@x.com:8443", "alice@[::1]",
    "alice@x..com", "alice@-x.com", "alice@x.com\x00", "alice@x.com\nx.org", "alice@",
    "alice@x", "alice@x.com/", "alice@x.com;y", "alice@ x.com",
]


def team(text: str = TEAM) -> TeamConfig:
    (only,) = parse_config(tomllib.loads(text), "syncd.toml", provider_options()).teams
    return only


@pytest.mark.parametrize("email", HOSTILE_DOMAINS)
def test_an_address_whose_domain_could_leave_its_calendar_or_secret_is_left_out(
        email: str) -> None:
    accounts, refused = team_accounts([team()], [email, "ok@x.com"])
    assert [a.owner for a in accounts] == ["ok@x.com"]
    assert list(refused) == [email.strip().lower()]


@pytest.mark.parametrize(("first", "second"), [
    ("alice@x.com", "alice@y.com"),  # one {user}, one {USER}
    ("a.b@x.com", "a-b@x.com"),  # one {USER}: A_B
    ("a+b@x.com", "a_b@x.com"),
])
def test_members_whose_placeholders_fill_in_one_secret_are_both_left_out(
        first: str, second: str) -> None:
    block = (TEAM.replace("{email}/crm/", "{user}/crm/")
             .replace('"file:/run/secrets/caldav/{email}"', '"env:CALDAV_PASSWORD_{USER}"'))
    accounts, refused = team_accounts([team(block)], [first, second, "ok@x.com"])
    # Neither is served: whichever came first, the other would get its calendar or its
    # password (a newcomer to the CRM chooses their address, not the old member).
    assert [a.owner for a in accounts] == ["ok@x.com"]
    assert sorted(refused) == sorted([first, second])
    assert second in refused[first] and first in refused[second]  # each told whom


def test_members_with_distinct_addresses_keep_distinct_calendars_and_secrets() -> None:
    accounts, refused = team_accounts([team()], ["alice@x.com", "alice@y.com"])
    assert not refused
    assert len({a.calendar for a in accounts}) == 2
    assert len({a.auth["password"].ref for a in accounts}) == 2


def test_a_fixed_service_login_shared_by_every_member_is_not_a_collision() -> None:
    block = TEAM.replace('username = "{email}"', 'username = "syncd"').replace(
        '"file:/run/secrets/caldav/{email}"', '"env:CALDAV_SERVICE_PASSWORD"')
    accounts, refused = team_accounts([team(block)], ["a@x.com", "b@x.com"])
    assert not refused and len(accounts) == 2
