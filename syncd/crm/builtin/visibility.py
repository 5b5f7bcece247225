"""Who may see an activity (seed rule B4).

The item-visibility model is deliberately small. Every linked item (deal, person,
organization, lead, project) has an optional ``owner_id`` and a ``visible_to_owner_only``
flag:

* an item is visible to a user when the flag is off, or the user is its owner;
* an activity is visible to its own owner always (it is on their calendar, A9), and to
  any other user, admin or regular, only when that user can see **every** item the
  activity is linked to, automatic links (B1/B2) included.

A richer permission system plugs in through ``can_see(kind, item_id)``, which replaces
the item rule; the activity rule stays the same.
"""

from __future__ import annotations

from sqlalchemy import Select, and_, exists, not_, or_, select
from sqlalchemy.orm import Session, aliased

from syncd.crm.builtin.item_links import ITEM_TABLES, linked_items
from syncd.crm.builtin.tables import ActivityLink, ActivityRow
from syncd.crm.builtin.views import CanSee


def visible_ids_query(user_id: int) -> Select[int]:
    """Ids of the live activities ``user_id`` may see under the built-in item model."""
    link = aliased(ActivityLink)
    hidden_conditions = []
    query = select(link.id)
    for table, field in ITEM_TABLES.values():
        item = aliased(table)
        query = query.outerjoin(item, getattr(link, field) == item.id)
        hidden_conditions.append(
            and_(item.visible_to_owner_only.is_(True),
                 or_(item.owner_id.is_(None), item.owner_id != user_id))
        )
    hidden_link = exists(
        query.where(link.activity_id == ActivityRow.id, or_(*hidden_conditions))
    )
    return (
        select(ActivityRow.id)
        .where(ActivityRow.deleted_at.is_(None))
        .where(or_(ActivityRow.owner_id == user_id, not_(hidden_link)))
        .order_by(ActivityRow.id)
    )


def visible_ids_with(session: Session, user_id: int, can_see: CanSee) -> list[int]:
    """Ids of the live activities ``user_id`` may see when ``can_see`` decides per item."""
    rows = session.execute(
        select(ActivityRow.id, ActivityRow.owner_id)
        .where(ActivityRow.deleted_at.is_(None))
        .order_by(ActivityRow.id)
    ).all()
    links = linked_items(session, [row.id for row in rows if row.owner_id != user_id])
    return [
        row.id for row in rows
        if row.owner_id == user_id
        or all(can_see(kind, item_id) for kind, item_id in links.get(row.id, ()))
    ]
