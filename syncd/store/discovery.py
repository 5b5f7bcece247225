"""Discovery results kept between runs (table ``calendar_discovery``).

A daemon keeps its connectors, so it discovers a CalDAV calendar once; a ``syncd sync``
from cron starts afresh each time. :class:`DiscoveryStore` gives each connector a
:class:`KeptDiscovery` for its account: what it found last time (when the account's
identity is still the one it was found with), to keep or to forget. Nothing secret is
kept: URLs and the name of an auth scheme.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping

from syncd.store.base import utcnow
from syncd.store.db import Database
from syncd.store.state_tables import CalendarDiscovery

#: Bounds on what is kept (and on what is read back): a few URLs of sane length.
MAX_ENTRIES = 8
MAX_VALUE = 2048


def identity_key(identity: str) -> str:
    """The key of an account's identity (URL, user name, calendar): a hash, so a change
    of any of them makes what was found unusable."""
    return hashlib.sha256(identity.encode()).hexdigest()


def _bounded(found: object) -> dict[str, str] | None:
    """``found`` as a small str -> str mapping, or None when it is anything else."""
    if not isinstance(found, Mapping) or len(found) > MAX_ENTRIES:
        return None
    if not all(isinstance(k, str) and isinstance(v, str) and len(k) <= 40
               and len(v) <= MAX_VALUE for k, v in found.items()):
        return None
    return dict(found)


class KeptDiscovery:
    """One account's kept discovery (the connector's ``ConnectorContext.discovery``)."""

    def __init__(self, db: Database, account: str, key: str) -> None:
        self.db = db
        self.account = account
        self.key = key

    def recall(self) -> dict[str, str] | None:
        """What was found for this identity; None when nothing (or another identity's)."""
        with self.db.session() as s:
            row = s.get(CalendarDiscovery, self.account)
            if row is None or row.key != self.key:
                return None
            return _bounded(row.found)

    def keep(self, found: Mapping[str, str]) -> None:
        """Replace what is kept; ignored when it is not a small mapping of strings."""
        value = _bounded(found)
        if value is None:
            return
        with self.db.session() as s:
            row = s.get(CalendarDiscovery, self.account)
            if row is None:
                s.add(CalendarDiscovery(account=self.account, key=self.key, found=value,
                                        updated_at=utcnow()))
            elif row.key != self.key or row.found != value:
                row.key, row.found, row.updated_at = self.key, value, utcnow()

    def forget(self) -> None:
        with self.db.session() as s:
            row = s.get(CalendarDiscovery, self.account)
            if row is not None:
                s.delete(row)


class DiscoveryStore:
    """Hands out each account's :class:`KeptDiscovery`."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def for_account(self, account: str, identity: str) -> KeptDiscovery:
        return KeptDiscovery(self.db, account, identity_key(identity))
