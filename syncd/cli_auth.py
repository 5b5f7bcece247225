"""``syncd auth PROVIDER ACCOUNT``: authorise syncd at a provider, once per account.

Each provider has its own sub-command, registered by its own function (Google here,
Outlook in :mod:`syncd.cli_auth_outlook`), so the two flows stay independent. A
successful authorisation also clears the account's ``needs_reauth`` status, so the next
cycle syncs it again.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from syncd.cli import App
    from syncd.config import AccountConfig


def register(sub: Any) -> None:
    """Add ``auth`` and its provider sub-commands to the top-level sub-parsers."""
    auth = sub.add_parser("auth")
    providers = auth.add_subparsers(dest="auth_provider", metavar="PROVIDER")
    _register_google(providers)
    # ---- auth outlook: owned by the Outlook connector (syncd/cli_auth_outlook.py) --------
    from syncd.cli_auth_outlook import register_outlook

    register_outlook(providers)


def _account(app: App, name: str, provider: str) -> AccountConfig:
    from syncd.cli import require

    accounts = {a.name: a for a in app.config.accounts}
    require(name in accounts, f"no account {name!r} in {app.config.source} "
                              f"(accounts: {', '.join(accounts) or 'none'})")
    account = accounts[name]
    require(account.provider == provider,
            f"account {name} is a {account.provider} account, not {provider}")
    return account


def _authorised(app: App, account: AccountConfig, provider: str, scopes: tuple[str, ...]
                ) -> int:
    from syncd.store.state import StateStore

    StateStore(app.db).signed_in(account.name)
    app.emit({"account": account.name, "provider": provider, "scopes": list(scopes)},
             f"Account {account.name} is authorised ({', '.join(scopes)}). "
             "The next sync cycle uses it.")
    return 0


# ---- Google -----------------------------------------------------------------------------


def _register_google(providers: Any) -> None:
    google = providers.add_parser(
        "google", help="OAuth consent for a Google account (auth mode = \"oauth\")",
        description="Print a consent address, then read back the address the browser was "
                    "sent to. Works over SSH. The refresh token is stored encrypted with "
                    "[syncd] state_key.")
    google.add_argument("account", metavar="ACCOUNT", help="the account name in the config")
    google.add_argument("--local-server", action="store_true",
                        help="listen on a loopback port for the answer instead of asking "
                             "for it (needs a browser on this machine)")
    google.add_argument("--port", type=int, default=8765,
                        help="loopback port in the redirect address (default 8765)")
    google.set_defaults(handler=_auth_google)


def _auth_google(args: argparse.Namespace, app: App) -> int:
    from connectors.google_auth import authorize_console, authorize_local_server
    from syncd.cli import require
    from syncd.store.credentials import CredentialStore

    account = _account(app, args.account, "google")
    require(account.auth.get("mode") == "oauth",
            f"account {account.name} signs in with a service account; 'syncd auth google' "
            "is for accounts with auth mode = \"oauth\"")
    store = CredentialStore(app.db, app.config.state_key)
    if args.local_server:
        scopes = authorize_local_server(account, store, port=args.port)
    else:
        scopes = authorize_console(account, store, port=args.port)
    return _authorised(app, account, "google", scopes)
