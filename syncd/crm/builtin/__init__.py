"""The built-in CRM (``[crm] kind = "builtin"``): syncd's own activity store.

Everything here is CRM data and CRM behaviour, none of it sync state:

* :mod:`~syncd.crm.builtin.tables` -- the tables (users, types, linked items, activities,
  guests, notes, the change feed), on the same :class:`syncd.store.base.Base` metadata
  as the sync state, so one database and one Alembic history hold both
  (``syncd/store/migrations``);
* :mod:`~syncd.crm.builtin.activities` -- :class:`ActivityStore`, the only writer of those
  tables, with its helpers: :mod:`fields` (checks), :mod:`read`, :mod:`write`,
  :mod:`change_feed`, :mod:`derived` (A10 dates), :mod:`item_links` (deal/person/org
  links, B1-B3), :mod:`visibility` (B4), :mod:`items` (users, types, persons, deals),
  :mod:`views` (the frozen rows they hand out);
* :mod:`~syncd.crm.builtin.source` -- the adapter the engine sees
  (:class:`syncd.crm.source.CrmSource`);
* :mod:`~syncd.crm.builtin.cli` and :mod:`~syncd.crm.builtin.file_import` -- the
  ``syncd activity/user/type/person/org/deal/import`` commands. They belong to the CLI
  layer (they import ``syncd.cli``); nothing below the CLI imports them.

syncd's own state -- sync pairs, cursors, conflicts, credentials, leases -- stays in
:mod:`syncd.store`, which imports nothing from here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from syncd.crm.builtin.activities import ActivityStore
    from syncd.crm.builtin.source import BuiltinSource

__all__ = ["ActivityStore", "BuiltinSource"]


def __getattr__(name: str) -> Any:
    # Loaded on first use: the package's commands (``syncd --help``, ``config check``)
    # must not pull in SQLAlchemy and the store with them.
    if name == "ActivityStore":
        from syncd.crm.builtin.activities import ActivityStore

        return ActivityStore
    if name == "BuiltinSource":
        from syncd.crm.builtin.source import BuiltinSource

        return BuiltinSource
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
