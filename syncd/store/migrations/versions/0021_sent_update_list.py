"""sent update list: a link's sent holds every unrecorded update, oldest first

A link's ``sent`` held one dict of fields, a later update's fields replacing an earlier
one's; it now holds the list of updates (syncd.engine.planning.landed). Data only: a row's
dict becomes a list of one, and back (later fields over earlier ones, as it was).

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-07 17:55:00
"""

from collections.abc import Callable, Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

revision: str = '0021'
down_revision: str | None = '0020'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_links = sa.table('sync_links', sa.column('account', sa.String()),
                  sa.column('activity_id', sa.BigInteger()), sa.column('sent', sa.JSON()))


def _rewrite(change: Callable[[Any], Any]) -> None:
    conn = op.get_bind()
    rows = conn.execute(sa.select(_links.c.account, _links.c.activity_id, _links.c.sent)
                        .where(_links.c.sent.is_not(None))).all()
    for account, activity_id, sent in rows:
        conn.execute(sa.update(_links).where(_links.c.account == account,
                                             _links.c.activity_id == activity_id)
                     .values(sent=change(sent)))


def upgrade() -> None:
    _rewrite(lambda sent: [sent] if isinstance(sent, dict) else sent)


def downgrade() -> None:
    _rewrite(lambda sent: {k: v for update in sent for k, v in update.items()}
             if isinstance(sent, list) else sent)
