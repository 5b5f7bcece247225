"""CRM sources: the protocol (:mod:`syncd.crm.source`) and the sources that implement it.

:func:`open_source` builds the one a config names: ``builtin`` (syncd's own store) or
``pipedrive`` (:mod:`syncd.crm.pipedrive`).

Adding a CRM (Pipedrive is next): its modules here, split like the calendar connectors
(``X.py`` the source, ``X_http.py``, ``X_map.py``, ``X_auth.py``); its ``[crm]`` options in
``X_options.py`` (a ``PROVIDER``, named in :data:`OPTIONS`); one branch in :func:`open_source`
and its name in :data:`KINDS`; and a test module that subclasses
``tests.crm.contract.SourceContract``. The engine does not change.
A remote CRM keeps the markers (``sync_uid``) in syncd's state, not in its records.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from syncd.config_types import ProviderOptions
from syncd.errors import InvalidInput

if TYPE_CHECKING:
    from syncd.crm.source import CrmSource
    from syncd.store.db import Database

KINDS = ("builtin", "pipedrive")
#: kind -> the module declaring its ``[crm]`` options as ``PROVIDER``; importing it loads
#: no HTTP library, so validating a config stays cheap.
OPTIONS: dict[str, str] = {"pipedrive": "syncd.crm.pipedrive_options"}


def source_options() -> dict[str, ProviderOptions]:
    """Every remote source's ``[crm]`` options, for :func:`syncd.config.load_config`."""
    return {kind: importlib.import_module(module).PROVIDER for kind, module in OPTIONS.items()}


def open_source(kind: str, db: Database, options: Mapping[str, Any] | None = None, *,
                default_zone: str = "UTC", timeout: float = 30.0) -> CrmSource:
    """The CRM source of kind ``kind`` over the database ``db``, with the rest of its
    ``[crm]`` table (``options``, as validated). ``default_zone`` (``[syncd]
    default_time_zone``) is the zone of a remote CRM's user who has none set; ``timeout``
    (``[syncd] request_timeout_seconds``) how long a remote CRM's request waits."""
    if kind == "builtin":
        # Imported here: reading the options (every command) needs no store.
        from syncd.crm.builtin.activities import ActivityStore
        from syncd.crm.builtin.source import BuiltinSource

        return BuiltinSource(ActivityStore(db))
    if kind == "pipedrive":
        from syncd.crm.pipedrive import open_pipedrive  # loads requests only when used

        return open_pipedrive(options or {}, db, default_zone=default_zone, timeout=timeout)
    raise InvalidInput(field="crm.kind", value=kind,
                       reason=f"must be one of: {', '.join(KINDS)}")


__all__ = ["KINDS", "CrmSource", "open_source", "source_options"]


def __getattr__(name: str) -> Any:
    # Loaded on first use: reading the [crm] options (every command given a config)
    # needs not the protocol's classes.
    if name == "CrmSource":
        from syncd.crm.source import CrmSource

        return CrmSource
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
