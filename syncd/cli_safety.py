"""``syncd admin``: the safety valves an admin turns by hand.

* ``syncd admin rotate-key``: re-encrypt every stored provider token with the first key
  of ``[syncd] state_key`` (failure-modes point 3.1), so that the keys after it can be
  removed. The steps: put the new key first (``state_key = ["env:NEW", "env:OLD"]``),
  restart every syncd process, run this, then drop the old key and restart again.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from syncd.cli import App


def register(sub: Any) -> None:
    """``syncd admin`` and its actions."""
    admin = sub.add_parser("admin")
    actions = admin.add_subparsers(dest="admin_command", metavar="ACTION")
    rotate = actions.add_parser(
        "rotate-key", help="re-encrypt every stored token with the first key of "
                           "[syncd] state_key, so that the others can be removed")
    rotate.set_defaults(handler=_rotate_key)


def _rotate_key(args: argparse.Namespace, app: App) -> int:
    from syncd.errors import ConfigError, ConfigProblem
    from syncd.store.credentials import KEY_OPTION, CredentialStore

    config = app.config
    if not config.state_keys:
        raise ConfigError(problems=[ConfigProblem(
            config.source, "syncd.state_key", "is not set, so there is no key to rotate to",
            "state_key = [\"env:NEW\", \"env:OLD\"] (the new Fernet key first)")])
    done = CredentialStore(app.db, config.state_keys).rotate()
    text = f"Re-encrypted {done.rotated} stored token(s) with the first key of {KEY_OPTION}"
    if not done.unreadable:
        text += ("; the keys after it can now be removed from state_key (restart syncd "
                 "afterwards).")
    else:
        named = ", ".join(f"{kind} of {account}" for account, kind in done.unreadable)
        text += (f"; {len(done.unreadable)} could be opened with none of its keys and were "
                 f"left as they were ({named}): add the key they were stored with to state_key and "
                 "run this again, or sign those accounts in again with 'syncd auth'.")
    app.emit({"rotated": done.rotated,
              "unreadable": [{"account": a, "kind": k} for a, k in done.unreadable]}, text)
    return 1 if done.unreadable else 0
