"""What an activity is linked to, and the automatic links of seed rules B1-B3.

The rules, as applied here:

* B1: linked to a deal -> also linked to the deal's person and organization, unless the
  caller named a person or an organization of its own.
* B2: linked to a person (named, or the deal's) -> also linked to that person's
  organization, unless an organization is already named or comes from the deal (the
  deal is the more specific link, so its organization wins).
* B3: an organization adds nothing: it has many deals and persons, none of them implied.

Automatic links are stored with ``automatic = True``. On an edit, only the explicit links
are carried over and the automatic ones are derived again, so moving an activity to
another deal moves its automatic person and organization with it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, insert, select
from sqlalchemy.orm import Session

from syncd.crm.builtin.tables import (
    ActivityLink,
    Deal,
    Lead,
    LinkedItem,
    Organization,
    Person,
    Project,
)
from syncd.errors import InvalidInput

#: A linked item: (kind, id), kind being one of ``tables.LINK_KINDS``.
ItemRef = tuple[str, int | str]

#: kind -> (table class, field name on activities and activity_links).
ITEM_TABLES: dict[str, tuple[type[Any], str]] = {
    "deal": (Deal, "deal_id"),
    "person": (Person, "person_id"),
    "org": (Organization, "org_id"),
    "lead": (Lead, "lead_id"),
    "project": (Project, "project_id"),
}
_NAMES = {"deal": "deal", "person": "person", "org": "organization", "lead": "lead",
          "project": "project"}


@dataclass(frozen=True)
class LinkSet:
    """The resolved links of one activity: at most one item of each kind."""

    deal_id: int | None = None
    person_id: int | None = None
    org_id: int | None = None
    lead_id: str | None = None
    project_id: int | None = None
    automatic: frozenset[str] = frozenset()  # the kinds that B1/B2 added

    def refs(self) -> set[ItemRef]:
        """Every linked item as (kind, id)."""
        return {(kind, value) for kind, (_, column) in ITEM_TABLES.items()
                if (value := getattr(self, column)) is not None}

    def columns(self) -> dict[str, Any]:
        """The ``activities.<kind>_id`` column values."""
        return {column: getattr(self, column) for _, column in ITEM_TABLES.values()}


class LinkResolver:
    """Resolves explicit links to a :class:`LinkSet`, caching item look-ups.

    One resolver serves one transaction; the cache makes a bulk insert of many activities
    on the same deal cost one look-up.
    """

    def __init__(self, session: Session) -> None:
        self.session = session
        self._cache: dict[ItemRef, LinkedItem | None] = {}

    def _item(self, kind: str, item_id: int | str) -> Any:
        key = (kind, item_id)
        if key not in self._cache:
            self._cache[key] = self.session.get(ITEM_TABLES[kind][0], item_id)
        return self._cache[key]

    def _require(self, kind: str, item_id: int | str) -> Any:
        item = self._item(kind, item_id)
        if item is None:
            raise InvalidInput(field=ITEM_TABLES[kind][1], value=item_id,
                               reason=f"no such {_NAMES[kind]}")
        return item

    def resolve(self, explicit: Mapping[str, Any]) -> LinkSet:
        """Apply B1-B3 to the explicitly given link fields (``deal_id`` ... ``project_id``).

        Raises:
            InvalidInput: a named item does not exist (field = the link field).
        """
        for kind, (_, column) in ITEM_TABLES.items():
            if explicit.get(column) is not None:
                self._require(kind, explicit[column])
        deal_id = explicit.get("deal_id")
        person_id = explicit.get("person_id")
        org_id = explicit.get("org_id")
        automatic: set[str] = set()
        deal = self._item("deal", deal_id) if deal_id is not None else None
        if person_id is None and deal is not None and deal.person_id is not None:
            person_id = deal.person_id  # B1
            automatic.add("person")
        if org_id is None and deal is not None and deal.org_id is not None:
            org_id = deal.org_id  # B1
            automatic.add("org")
        if org_id is None and person_id is not None:
            person = self._item("person", person_id)
            if person is not None and person.org_id is not None:
                org_id = person.org_id  # B2
                automatic.add("org")
        return LinkSet(deal_id, person_id, org_id, explicit.get("lead_id"),
                       explicit.get("project_id"), frozenset(automatic))


def explicit_links(session: Session, activity_id: int) -> dict[str, Any]:
    """The links the user chose (not the automatic ones), as link-field values."""
    out: dict[str, Any] = {column: None for _, column in ITEM_TABLES.values()}
    rows = session.scalars(
        select(ActivityLink).where(ActivityLink.activity_id == activity_id,
                                   ActivityLink.automatic.is_(False))
    )
    for row in rows:
        column = ITEM_TABLES[row.kind][1]
        out[column] = getattr(row, column)
    return out


def link_rows(activity_id: int, links: LinkSet) -> list[dict[str, Any]]:
    """The ``activity_links`` rows for one activity."""
    rows = []
    for kind, (_, column) in ITEM_TABLES.items():
        value = getattr(links, column)
        if value is not None:
            # Every row names all five columns: an executemany needs uniform keys.
            row: dict[str, Any] = {c: None for _, c in ITEM_TABLES.values()}
            row.update(activity_id=activity_id, kind=kind,
                       automatic=kind in links.automatic)
            row[column] = value
            rows.append(row)
    return rows


def replace_links(session: Session, activity_id: int, links: LinkSet) -> None:
    """Make ``activity_links`` hold exactly ``links`` for the activity."""
    session.execute(delete(ActivityLink).where(ActivityLink.activity_id == activity_id))
    rows = link_rows(activity_id, links)
    if rows:
        session.execute(insert(ActivityLink), rows)


def linked_items(session: Session, activity_ids: Iterable[int]) -> dict[int, set[ItemRef]]:
    """activity id -> the items it is linked to (automatic links included)."""
    out: dict[int, set[ItemRef]] = {}
    ids = list(activity_ids)
    for start in range(0, len(ids), 500):
        chunk = ids[start:start + 500]
        for row in session.scalars(
            select(ActivityLink).where(ActivityLink.activity_id.in_(chunk))
        ):
            value = getattr(row, ITEM_TABLES[row.kind][1])
            out.setdefault(row.activity_id, set()).add((row.kind, value))
    return out
