"""Logins on the embedded calendar server: the password ``syncd user add`` shows once, and
``syncd user password USER``, which sets a new one.

Only when no account is configured (the embedded default): with accounts, users' calendars
are elsewhere and the embedded server does not run. The password is printed on standard
output (it is the command's result, as with ``--json``) and never logged; only its bcrypt
hash is kept (:mod:`syncd.embedded_auth`).
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from syncd.errors import UsageError

if TYPE_CHECKING:
    from syncd.cli import App


def register(users: Any) -> None:
    """Add ``password`` to the ``syncd user`` actions."""
    password = users.add_parser(
        "password", help="give a user a new password for the embedded calendar server",
        description="Generates a new password for the user's calendar on the embedded "
                    "server, prints it once and keeps only its hash. The old one stops "
                    "working within 15 seconds.")
    password.add_argument("email", help="the user's e-mail address")
    password.set_defaults(handler=_user_password)


def new_login(app: App, email: str) -> dict[str, str] | None:
    """A fresh password for ``email`` with what a calendar app needs, or None when the
    embedded server is not in use (accounts are configured) or cannot serve the address."""
    from syncd.embedded_accounts import embedded_calendar_url
    from syncd.embedded_auth import EmbeddedCredentials, can_log_in, login_name

    config = app.config
    if config.serves_accounts or not can_log_in(email):
        return None
    password = EmbeddedCredentials(config.data_path).new_password(email)
    url = embedded_calendar_url(config.embedded_host, config.embedded_port, email, readable=True)
    return {"calendar_url": url, "username": login_name(email), "password": password}


def login_text(login: dict[str, str]) -> str:
    return (f"Calendar: {login['calendar_url']}  user name: {login['username']}  "
            f"password: {login['password']}\n(shown once; 'syncd user password "
            f"{login['username']}' sets a new one)")


def _user_password(args: argparse.Namespace, app: App) -> int:
    if app.config.serves_accounts:
        raise UsageError(message="the embedded calendar server is not used: the config has "
                                 "accounts, so users' calendars are with their providers")
    user = app.store.get_user_by_email(args.email)
    if user is None:
        raise UsageError(message=f"no user has the address {args.email} "
                                 "(see 'syncd user list')")
    login = new_login(app, user.email)
    if login is None:
        from syncd.embedded_auth import refused_because

        raise UsageError(message=f"{user.email} cannot log in to the embedded calendar server "
                                 f"({refused_because(user.email)})")
    app.emit({"email": user.email, **login}, login_text(login))
    return 0
