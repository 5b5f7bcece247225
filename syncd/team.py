"""Team accounts: one ``[[team]]`` block serves every CRM user it names.

A team block is an ``[[account]]`` block written once for many owners. Its text options
(the calendar, the auth options, secret references) may hold placeholders, filled in per
member:

* ``{email}``: the member's e-mail, lower-cased (``alice@example.com``);
* ``{user}``: its local part (``alice``);
* ``{USER}``: the local part upper-cased with every character outside A-Z and 0-9 made
  ``_``, for environment variable names (``env:CALDAV_PASSWORD_{USER}``).

Members are the CRM's users that ``owners`` names: ``"*"`` (all), a list of e-mails and
``@domain`` entries. A member is an account named ``<team>:<email>``; it comes and goes
with the CRM user, without a restart. A user who already has an ``[[account]]`` block of
the same provider is served by that block, not by the team.

A local part is filled in only when it is plain (letters, digits, ``.``, ``_``, ``+``,
``-``, starting with a letter or digit): e-mail allows ``/``, quotes and more, which in a
URL or a ``file:`` path would reach outside the member's own calendar or secret. Such a
user is left out and named by :func:`team_accounts`.

Pure: no I/O. The config loader (:mod:`syncd.config`) checks a block with sample members;
the service expands it over the CRM's users.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from syncd.config_types import AccountConfig, SecretRef

PLACEHOLDER = re.compile(r"\{([^{}]*)\}")
KNOWN = ("email", "user", "USER")
PLAIN_LOCAL_PART = re.compile(r"[a-z0-9][a-z0-9._+-]{0,63}")
SEPARATOR = ":"  # between the team's name and the member's e-mail in an account name


@dataclass(frozen=True)
class TeamConfig:
    """One ``[[team]]`` block, validated: ``template`` is an account whose text options
    may hold placeholders (its ``name`` is the team's, its ``owner`` unused)."""

    name: str
    owners: tuple[str, ...]
    template: AccountConfig

    def includes(self, email: str) -> bool:
        """Whether ``owners`` names this user."""
        email = email.strip().lower()
        for entry in self.owners:
            if entry == "*" or entry == email:
                return True
            if entry.startswith("@") and email.endswith(entry):
                return True
        return False

    def account_name(self, email: str) -> str:
        return f"{self.name}{SEPARATOR}{email.strip().lower()}"


def unknown_placeholders(text: str) -> list[str]:
    """The placeholders in ``text`` that :func:`fill` does not know."""
    return [name for name in PLACEHOLDER.findall(text) if name not in KNOWN]


def has_placeholder(text: str) -> bool:
    return any(name in KNOWN for name in PLACEHOLDER.findall(text))


def plain_local_part(email: str) -> str | None:
    """The e-mail's local part when it is safe to put in a URL or a path, else None."""
    local, at, _domain = email.strip().lower().rpartition("@")
    if not at or PLAIN_LOCAL_PART.fullmatch(local) is None or ".." in local:
        return None
    return local


def fill(text: str, email: str) -> str:
    """``text`` with the member's placeholders filled in (``email`` must be plain)."""
    address = email.strip().lower()
    local = plain_local_part(address)
    if local is None:
        raise ValueError("not a plain e-mail address")  # callers check first
    values = {"email": address, "user": local, "USER": re.sub(r"[^A-Z0-9]", "_", local.upper())}
    return PLACEHOLDER.sub(lambda m: values.get(m.group(1), m.group(0)), text)


def _filled(value: Any, email: str) -> Any:
    if isinstance(value, SecretRef):
        return SecretRef(fill(value.ref, email))
    if isinstance(value, str):
        return fill(value, email)
    return value


def member_account(team: TeamConfig, email: str) -> AccountConfig:
    """The account of one member (a plain e-mail the team includes)."""
    t = team.template
    auth: Mapping[str, Any] = {key: _filled(value, email) for key, value in t.auth.items()}
    return replace(t, name=team.account_name(email), owner=email.strip().lower(),
                   calendar=_filled(t.calendar, email), auth=auth)


def team_accounts(teams: Iterable[TeamConfig], emails: Iterable[str],
                  taken: Iterable[tuple[str, str]] = ()) -> tuple[list[AccountConfig], list[str]]:
    """Every team's members among ``emails``, and the e-mails left out because they are
    not plain. ``taken``: (owner, provider) pairs an ``[[account]]`` block serves already.
    A user two teams of one provider include is served by the first."""
    served = {(owner.strip().lower(), provider) for owner, provider in taken}
    accounts: list[AccountConfig] = []
    refused: list[str] = []
    users = sorted({e.strip().lower() for e in emails if e and e.strip()})
    for team in teams:
        for email in users:
            if not team.includes(email) or (email, team.template.provider) in served:
                continue
            if plain_local_part(email) is None:
                if email not in refused:
                    refused.append(email)
                continue
            accounts.append(member_account(team, email))
            served.add((email, team.template.provider))
    return accounts, refused
