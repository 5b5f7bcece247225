"""``syncd auth outlook ACCOUNT``: sign a delegated Outlook account in with a device code.

The command shows Microsoft's "go to this page and enter this code" message, waits while
the user signs in (in any browser, on any device), checks that the user who signed in
owns the account's mailbox, and stores the refresh token encrypted with the configured state_key.
An account that was marked as needing re-authorisation is released for syncing again.
App-only accounts (client credentials) have nobody to sign in and are refused.
"""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, Any

from syncd.errors import UsageError

if TYPE_CHECKING:
    import requests

    from syncd.cli import App


def register_outlook(auth_sub: argparse._SubParsersAction) -> None:
    """Add ``outlook ACCOUNT`` to an existing ``syncd auth`` subparser.

    Args:
        auth_sub: what ``add_subparsers()`` of the ``auth`` command returned.
    """
    parser = auth_sub.add_parser(
        "outlook", help="sign a delegated Outlook account in with a device code",
        description=__doc__.split("\n\n")[1] if __doc__ else None)
    parser.add_argument("account", help="the account's name in the configuration")
    parser.set_defaults(handler=auth_outlook)


def _session() -> requests.Session:
    """The HTTP session msal uses (tests route it to an identity emulator)."""
    import requests

    from syncd.network import same_origin_redirects

    return same_origin_redirects(requests.Session())


def _announce(message: str) -> None:
    """Show the device-code instructions; stderr keeps ``--json`` output clean."""
    print(message, file=sys.stderr, flush=True)


def auth_outlook(args: argparse.Namespace, app: App) -> int:
    """Handler of ``syncd auth outlook ACCOUNT``; returns the exit code."""
    from connectors.outlook_auth import device_code_login
    from syncd.store.credentials import CredentialStore
    from syncd.store.state import StateStore

    try:
        account = app.config.account(args.account)
    except KeyError:
        raise UsageError(message=f"no account named {args.account!r} in "
                                 f"{app.config.source}") from None
    if account.provider != "outlook":
        raise UsageError(message=f"account {account.name} is a {account.provider} account, "
                                 "not outlook")
    if account.auth.get("mode", "app") != "delegated":
        raise UsageError(message=f"account {account.name} signs in as an app (client "
                                 "credentials); set auth.mode = \"delegated\" to sign a user in")
    credentials = CredentialStore(app.db, app.config.state_key)
    with _session() as session:
        user = device_code_login(account, credentials, session=session, announce=_announce)
    StateStore(app.db).signed_in(account.name)
    result: dict[str, Any] = {"account": account.name, "user": user, "signed_in": True}
    app.emit(result, f"{account.name}: signed in as {user}; the refresh token is stored "
                     "encrypted.")
    return 0
