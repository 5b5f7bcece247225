"""CRM sources: the protocol (:mod:`syncd.crm.source`) and the sources that implement it.

:func:`open_source` builds the one a config names; ``builtin`` is the only kind so far.

Adding a CRM (Pipedrive is next): its modules here, split like the calendar connectors
(``X.py`` the source, ``X_http.py``, ``X_map.py``, ``X_auth.py``); one branch in
:func:`open_source` and its name in :data:`KINDS`; its name in the choices of ``[crm] kind``
in :mod:`syncd.config` (with its options, until sources declare their own); and a test
module that subclasses ``tests.crm.contract.SourceContract``. The engine does not change.
A remote CRM keeps the markers (``sync_uid``) in syncd's state, not in its records.
"""

from __future__ import annotations

from syncd.crm.builtin import BuiltinSource
from syncd.crm.source import CrmSource
from syncd.errors import InvalidInput
from syncd.store.activities import ActivityStore
from syncd.store.db import Database

KINDS = ("builtin",)


def open_source(kind: str, db: Database) -> CrmSource:
    """The CRM source of kind ``kind`` over the database ``db``."""
    if kind == "builtin":
        return BuiltinSource(ActivityStore(db))
    raise InvalidInput(field="crm.kind", value=kind,
                       reason=f"must be one of: {', '.join(KINDS)}")


__all__ = ["KINDS", "CrmSource", "open_source"]
