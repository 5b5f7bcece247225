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

An address is filled in only when it is plain: its local part letters, digits, ``.``,
``_``, ``+``, ``-`` (starting with a letter or digit), its domain a host name (e-mail
allows ``/``, quotes and more, and a remote CRM's user list is outside input: in a URL or
a ``file:`` path either part would reach outside the member's own calendar or secret).
And members of one team whose placeholders fill in the same value of an option
(``alice@x.com`` and ``alice@y.com`` share ``{user}``; ``a.b@`` and ``a-b@`` share
``{USER}``) would share one calendar or one secret: all of them are left out, since
whichever came first, a newcomer chose their address. Such users are named, with the
reason, by :func:`team_accounts`.

Pure: no I/O. The config loader (:mod:`syncd.config`) checks a block with sample members;
the service expands it over the CRM's users.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from syncd.config_types import AccountConfig, SecretRef
from syncd.model import is_valid_email

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
    """The e-mail's local part when the address is safe to put in a URL or a path (its
    domain a host name too: ``{email}`` carries it), else None."""
    address = email.strip().lower()
    local, at, _domain = address.rpartition("@")
    if not at or PLAIN_LOCAL_PART.fullmatch(local) is None or ".." in local:
        return None
    return local if is_valid_email(address) else None


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


NOT_PLAIN = ("its address is not plain (a local part of letters, digits, . _ + -, and a "
             "host name), so it cannot name a calendar or a secret safely")


def _filled_values(account: AccountConfig, team: TeamConfig) -> list[tuple[str, str]]:
    """(option, filled value) of every option of ``team`` that holds a placeholder."""
    t = team.template
    found = [("calendar", account.calendar or "")] if has_placeholder(t.calendar or "") else []
    for key, value in t.auth.items():
        text = value.ref if isinstance(value, SecretRef) else value
        if isinstance(text, str) and has_placeholder(text):
            filled = account.auth[key]
            found.append((key, filled.ref if isinstance(filled, SecretRef) else filled))
    return found


def _sharing(team: TeamConfig, members: list[AccountConfig]) -> dict[str, str]:
    """The members of one team whose placeholders fill in an option's value that another
    member's fill in too (one calendar, one secret), each with the reason."""
    holders: dict[tuple[str, str], list[str]] = {}
    for account in members:
        for key, value in _filled_values(account, team):
            holders.setdefault((key, value), []).append(account.owner)
    shared: dict[str, str] = {}
    for (key, _value), owners in holders.items():
        for owner in owners if len(owners) > 1 else ():
            others = ", ".join(o for o in owners if o != owner)
            shared.setdefault(owner, f"team {team.name}'s {key} would be the same as "
                                     f"{others}'s, so they would share a calendar or a secret")
    return shared


def team_accounts(teams: Iterable[TeamConfig], emails: Iterable[str],
                  taken: Iterable[tuple[str, str]] = ()
                  ) -> tuple[list[AccountConfig], dict[str, str]]:
    """Every team's members among ``emails``, and the e-mails left out with the reason:
    not plain, or filling in another member's calendar or secret (see the module's
    docstring). ``taken``: (owner, provider) pairs an ``[[account]]`` block serves
    already. A user two teams of one provider include is served by the first."""
    served = {(owner.strip().lower(), provider) for owner, provider in taken}
    accounts: list[AccountConfig] = []
    refused: dict[str, str] = {}
    users = sorted({e.strip().lower() for e in emails if e and e.strip()})
    for team in teams:
        members: list[AccountConfig] = []
        for email in users:
            if not team.includes(email) or (email, team.template.provider) in served:
                continue
            if plain_local_part(email) is None:
                refused.setdefault(email, NOT_PLAIN)
                continue
            members.append(member_account(team, email))
        shared = _sharing(team, members)
        for account in members:
            if account.owner in shared:
                refused.setdefault(account.owner, shared[account.owner])
                continue
            accounts.append(account)
            served.add((account.owner, team.template.provider))
    return accounts, refused
